"""Several writers on one incident: the flow decides again on conflict and loses no update."""

from __future__ import annotations

import multiprocessing
import threading
from pathlib import Path

from incident_flow import IncidentFlow, TransitionRefused
from incident_flow.store import MemoryStore, SQLiteStore, Store

POSTS = 25


def _post_many(store: Store, incident_id: str, who: str) -> None:
    flow = IncidentFlow(store=store, entry_points=False)
    for n in range(POSTS):
        flow.post_status_update(
            incident_id,
            f"Investigating: {who} {n}, support@sourcegraph.com",
            phase="investigating",
            by=who,
        )


def _post_from_a_process(path: str, incident_id: str, who: str) -> None:
    with SQLiteStore(path) as store:
        _post_many(store, incident_id, who)


def _declare(store: Store) -> str:
    flow = IncidentFlow(store=store, entry_points=False)
    return flow.declare("Search is down", severity="critical", customer_impact=True, by="a").id


def _check(store: Store, incident_id: str, writers: int) -> None:
    flow = IncidentFlow(store=store, entry_points=False)
    incident = flow.get(incident_id)
    assert len(incident.status_updates) == writers * POSTS
    assert [e.version for e in flow.history(incident_id)] == list(range(1, writers * POSTS + 2))


def test_threads_sharing_one_memory_store_lose_no_update() -> None:
    store = MemoryStore()
    incident_id = _declare(store)
    threads = [
        threading.Thread(target=_post_many, args=(store, incident_id, f"w{i}")) for i in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    _check(store, incident_id, 4)


def test_threads_with_their_own_sqlite_connections_lose_no_update(tmp_path: Path) -> None:
    path = tmp_path / "incidents.db"
    stores = [SQLiteStore(path) for _ in range(4)]
    try:
        incident_id = _declare(stores[0])
        threads = [
            threading.Thread(target=_post_many, args=(store, incident_id, f"w{i}"))
            for i, store in enumerate(stores)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        _check(stores[0], incident_id, 4)
    finally:
        for store in stores:
            store.close()


def test_processes_on_one_sqlite_file_lose_no_update(tmp_path: Path) -> None:
    path = str(tmp_path / "incidents.db")
    with SQLiteStore(path) as store:
        incident_id = _declare(store)
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=_post_from_a_process, args=(path, incident_id, f"p{i}"))
        for i in range(3)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0
    with SQLiteStore(path) as store:
        _check(store, incident_id, 3)


def test_a_conflict_is_decided_again_on_the_new_state(tmp_path: Path) -> None:
    """Two leads racing to resolve: one wins, the other is refused on the state it now sees."""
    store = MemoryStore()
    flow = IncidentFlow(store=store, entry_points=False)
    incident = flow.declare("x", severity="major", customer_impact=False, by="a")
    flow.assign(incident.id, "lead", "bob", by="a")
    flow.acknowledge(incident.id, by="bob")
    flow.start_mitigation(incident.id, by="bob")
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def resolve() -> None:
        barrier.wait()
        try:
            flow.resolve(incident.id, by="bob")
            outcomes.append("resolved")
        except TransitionRefused as refused:
            outcomes.append(refused.unmet[0].name)

    threads = [threading.Thread(target=resolve) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["phase", "resolved"]
    assert (
        sum(e.type == "PhaseChanged" and e.dest == "resolved" for e in flow.history(incident.id))
        == 1
    )  # type: ignore[attr-defined]
