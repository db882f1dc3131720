"""Races between processes: eight processes post to the same incidents at once, through flows
that do not retry conflicts themselves (``conflict_retries=0``), so every lost race reaches the
caller as a :class:`ConcurrencyConflict` and is retried with :func:`retry_on_conflict`.

What this proves, on one SQLite file and on one PostgreSQL schema: conflicts surface as
``ConcurrencyConflict`` and as nothing else, retrying them loses no update (each incident ends
with exactly 8 × K status updates), and every incident's versions stay contiguous.
"""

from __future__ import annotations

import multiprocessing
import queue
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

import pytest

from benchmarks.crashkit import StoreSpec
from incident_flow import ConcurrencyConflict, IncidentFlow, retry_on_conflict
from incident_flow.store import MemoryStore, Store

PROCESSES = 8
INCIDENTS = 3
POSTS = 8
"""Status updates each process posts to each incident (K)."""
ATTEMPTS = 25
"""Attempts ``retry_on_conflict`` makes per update; 8 writers never lose that many in a row."""
TIMEOUT = 90.0


def _set_up(store: Store) -> list[str]:
    """Incidents where anyone may post: a lead who acknowledged and a messenger."""
    flow = IncidentFlow(store=store, entry_points=False, deliver=False)
    ids = []
    for n in range(INCIDENTS):
        incident = flow.declare(f"Race {n}", severity="critical", customer_impact=True, by="a")
        flow.assign(incident.id, "lead", "bob", by="a")
        flow.acknowledge(incident.id, by="bob")
        flow.assign(incident.id, "messenger", "carol", by="bob")
        ids.append(incident.id)
    return ids


def _racer(spec: StoreSpec, ids: list[str], who: str, barrier: Barrier, results: Any) -> None:
    """One process: post POSTS updates to each incident, counting the conflicts it is told of.

    Puts ``(who, conflicts, posted, error)`` on ``results``; ``error`` is None or a traceback.
    """
    conflicts = posted = 0
    error: str | None = None
    try:
        with spec.open() as store:
            flow = IncidentFlow(store=store, entry_points=False, deliver=False, conflict_retries=0)
            for incident_id in ids:
                flow.get(incident_id)  # warm the cache: it goes stale as soon as others write
            barrier.wait(timeout=TIMEOUT)
            for n in range(POSTS):
                for incident_id in ids:

                    def post(incident_id: str = incident_id, n: int = n) -> None:
                        nonlocal conflicts
                        try:
                            flow.post_status_update(
                                incident_id,
                                f"Identified: {who} {n}, support@sourcegraph.com",
                                phase="identified",
                                by=who,
                            )
                        except ConcurrencyConflict:
                            conflicts += 1
                            raise

                    retry_on_conflict(post, attempts=ATTEMPTS, backoff=0.001)
                    posted += 1
    except BaseException:
        error = traceback.format_exc()
    results.put((who, conflicts, posted, error))


def _race(spec: StoreSpec) -> None:
    with spec.open() as store:
        ids = _set_up(store)
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(PROCESSES)
    results = context.Queue()
    workers = [
        context.Process(target=_racer, args=(spec, ids, f"p{i}", barrier, results))
        for i in range(PROCESSES)
    ]
    for worker in workers:
        worker.start()
    outcomes = []
    try:
        for _ in workers:
            outcomes.append(results.get(timeout=TIMEOUT))
    except queue.Empty:
        pytest.fail(f"only {len(outcomes)} of {PROCESSES} processes finished: {outcomes}")
    finally:
        for worker in workers:
            worker.join(timeout=10)
            if worker.is_alive():
                worker.kill()
    errors = [f"{who}: {error}" for who, _, _, error in outcomes if error is not None]
    assert not errors, "\n".join(errors)
    assert sum(posted for _, _, posted, _ in outcomes) == PROCESSES * INCIDENTS * POSTS
    assert sum(conflicts for _, conflicts, _, _ in outcomes) > 0  # they raced, and were told
    with spec.open() as store:
        for incident_id in ids:
            events = store.load(incident_id)
            assert [e.version for e in events] == list(range(1, len(events) + 1))
            updates = [e for e in events if e.type == "StatusUpdatePosted"]
            assert len(updates) == PROCESSES * POSTS
            for i in range(PROCESSES):
                texts = [e.text for e in updates if e.actor == f"p{i}"]  # type: ignore[attr-defined]
                assert texts == [
                    f"Identified: p{i} {n}, support@sourcegraph.com" for n in range(POSTS)
                ]


def test_processes_racing_on_one_sqlite_file_lose_no_update(tmp_path: Path) -> None:
    """Eight processes, one SQLite file: every conflict surfaces as ConcurrencyConflict, and
    retrying them loses no status update."""
    _race(StoreSpec.sqlite(tmp_path / "incidents.db"))


def test_processes_racing_on_one_postgres_schema_lose_no_update(
    pg_schema: tuple[str, str],
) -> None:
    """Eight processes, one PostgreSQL schema: the same, through the server's row locks."""
    conninfo, schema = pg_schema
    _race(StoreSpec.postgres(conninfo, schema))


# -- library bugs found by the races -------------------------------------------------------------


@contextmanager
def _two_flows(**options: Any) -> Iterator[tuple[IncidentFlow, IncidentFlow, str]]:
    store = MemoryStore()
    mine = IncidentFlow(store=store, entry_points=False, deliver=False, **options)
    theirs = IncidentFlow(store=store, entry_points=False, deliver=False)
    incident_id = mine.declare("x", severity="critical", customer_impact=True, by="a").id
    yield mine, theirs, incident_id


def test_retrying_a_conflict_without_flow_retries_gets_through() -> None:
    """A flow with ``conflict_retries=0`` whose cached incident went stale conflicts once; a
    retry must then decide on the incident's new state and succeed.

    Bug (incident_flow/flow.py, ``IncidentFlow._run``): the first attempt of every command
    trusts the snapshot cache (``trust_cache=attempt == 0``), and only a second attempt reloads
    it. With ``conflict_retries=0`` there is no second attempt, so the stale snapshot stays
    cached, and every retry by :func:`retry_on_conflict` decides on it again and conflicts
    again, for ever: the documented way to retry never gets through.
    """
    with _two_flows(conflict_retries=0) as (mine, theirs, incident_id):
        theirs.triage(incident_id, by="b")  # my cached snapshot is now stale
        calls = 0

        def post() -> None:
            nonlocal calls
            calls += 1
            mine.post_status_update(
                incident_id, "Identified: x, support@sourcegraph.com", phase="identified", by="c"
            )

        retry_on_conflict(post, attempts=5, backoff=0)
        assert calls == 2  # one conflict, then a decision on the new state


def test_a_flow_without_a_snapshot_cache_runs_commands() -> None:
    """``snapshot_cache=0`` (keep no incident folded in memory) must work.

    Bug (incident_flow/flow.py, ``IncidentFlow._remember``): with a limit of 0 the cache is
    "full" while empty, and ``del snapshots[next(iter(snapshots))]`` raises StopIteration
    from every command (``declare`` included) and every ``get``.
    """
    flow = IncidentFlow(entry_points=False, deliver=False, snapshot_cache=0)
    incident = flow.declare("x", severity="critical", customer_impact=True, by="a")
    assert flow.get(incident.id).version == 1
