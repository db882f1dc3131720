"""The benchmark cases of issue 8, each against a baseline measured in the same run.

Each ``case_*`` function takes :class:`~benchmarks.harness.Settings` and returns a
:class:`~benchmarks.harness.Result`; :data:`CASES` lists them in order. ``workload_*`` functions
return the incident_flow side of a case for ``--profile``.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import linecache
import os
import shutil
import sqlite3
import statistics
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import attrs

from benchmarks import baselines
from benchmarks.harness import (
    Case,
    Result,
    Row,
    Settings,
    Stats,
    Unit,
    format_value,
    paired_ratio,
    run_interleaved,
    share,
    speedup,
    timed,
    within,
)
from incident_flow import HANDBOOK, Context, FakeClock, Incident, IncidentFlow, Role, hookimpl
from incident_flow.events import Event, fold
from incident_flow.serialization import dumps_event
from incident_flow.store import MemoryStore, SQLiteStore

__all__ = ["CASES", "flow_lifecycle", "flow_to_mitigating"]

START = datetime(2024, 1, 1, tzinfo=UTC)
TITLE = "Search is down"
REQUIRED_ITEMS = [item.name for item in HANDBOOK.checklist if item.required]
COMMANDS = (
    "declare",
    "assign",
    "acknowledge",
    "triage",
    "start_mitigation",
    "record_rollback",
    "pause_release",
    "resume_release",
    "post_status_update",
    "change_severity",
    "resolve",
    "reopen",
    "mark_false_positive",
    "start_postmortem",
    "complete_item",
    "waive_item",
    "close",
    "transition",
)
"""IncidentFlow's command methods, counted by the harness case."""
PEER_LIVE = 50
"""Case 1: how many incidents a peer keeps alive at once."""


class TickingClock:
    """A clock that moves one millisecond per reading, so every event gets its own datetime
    (as with the system clock) and time never goes backwards."""

    def __init__(self) -> None:
        self._ticks = itertools.count()

    def now(self) -> datetime:
        """The next millisecond."""
        return START + timedelta(milliseconds=next(self._ticks))


class Sink:
    """A plugin that is told of every event and does nothing with it."""

    def __init__(self, name: str) -> None:
        self.incident_flow_name = name

    @hookimpl
    def incident_flow_event(self, event: Event, incident: Incident) -> None:
        """Do nothing."""


def _sink(event: Event, incident: Incident) -> None:
    """The bare loop's plain function: the same arguments, nothing done."""


def flow_to_mitigating(flow: IncidentFlow, title: str = TITLE) -> str:
    """Declare a customer-impacting incident and take it to ``mitigating``; return its id."""
    incident_id = flow.declare(title, severity="critical", customer_impact=True, by="alice").id
    flow.assign(incident_id, Role.LEAD, "bob", by="alice")
    flow.acknowledge(incident_id, by="bob")
    flow.assign(incident_id, Role.MESSENGER, "carol", by="bob")
    flow.triage(incident_id, by="bob")
    flow.start_mitigation(incident_id, by="bob")
    return incident_id


def flow_lifecycle(flow: IncidentFlow, title: str = TITLE) -> Incident:
    """Declare an incident and run the handbook's commands until it is closed."""
    incident_id = flow_to_mitigating(flow, title)
    flow.record_rollback(incident_id, by="bob", outcome="rolled back to 3.29")
    flow.post_status_update(
        incident_id,
        "Identified: we are aware. Questions: support@sourcegraph.com.",
        phase="identified",
        by="carol",
    )
    flow.resolve(incident_id, by="bob")
    flow.start_postmortem(incident_id, by="bob")
    for item in REQUIRED_ITEMS:
        flow.complete_item(incident_id, item, by="bob")
    return flow.close(incident_id, by="bob")


def _check(condition: bool, what: str) -> None:
    """Stop the run when a side did not do the work it is timed for."""
    if not condition:
        raise RuntimeError(f"benchmark check failed: {what}")


def _memory_flow(**options: Any) -> IncidentFlow:
    return IncidentFlow(store=MemoryStore(), entry_points=False, clock=FakeClock(), **options)


@contextmanager
def _scratch() -> Iterator[Path]:
    """A temporary directory (on the file system SQLite's files will live on), removed after."""
    path = Path(tempfile.mkdtemp(prefix="incident-flow-bench-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


# -- 1. a whole incident in memory -----------------------------------------------------------


def case_incident(settings: Settings) -> Result:
    """Declare + the handbook's 15 commands to closed, against a Machine per incident."""
    sizes = {
        "ours": settings.pick(2000, 300, 2),
        "transitions": settings.pick(500, 100, 1),
        "statemachine": settings.pick(100, 20, 1),
    }

    def ours() -> float:
        flow = _memory_flow()
        try:
            n = sizes["ours"]
            return timed(lambda: [flow_lifecycle(flow) for _ in range(n)], n)
        finally:
            flow.shutdown()

    def peer(declare: Callable[..., baselines.IncidentRecord], n: int) -> Callable[[], float]:
        def batches() -> None:
            for first in range(0, n, PEER_LIVE):
                # At most PEER_LIVE machines alive at once, as in a bot with a few open incidents.
                records = [
                    baselines.drive_lifecycle(declare, f"inc-{i}", TITLE, lambda: START)
                    for i in range(first, min(first + PEER_LIVE, n))
                ]
                del records

        def run() -> float:
            return timed(batches, n)

        return run

    stats = run_interleaved(
        {
            "ours": ours,
            "transitions": peer(baselines.transitions_incident, sizes["transitions"]),
            "statemachine": peer(baselines.statemachine_incident, sizes["statemachine"]),
        },
        settings,
    )
    name = "1 incident in memory"
    commands = 1 + 10 + len(REQUIRED_ITEMS)
    per_command = format_value(stats["ours"].median / commands, Unit.NS)
    return Result(
        rows=[
            speedup(
                name,
                "declare → closed, per incident",
                stats["ours"],
                "transitions Machine",
                stats["transitions"],
                at_least=10,
            ),
            speedup(
                name,
                "declare → closed, per incident",
                stats["ours"],
                "python-statemachine",
                stats["statemachine"],
                at_least=50,
            ),
        ],
        notes=[
            f"{commands} commands per incident (declare, assign lead, acknowledge, assign "
            "messenger, triage, start_mitigation, record_rollback, post_status_update, resolve, "
            f"start_postmortem, {len(REQUIRED_ITEMS)} × complete_item, close), "
            f"{per_command} per command; IncidentFlow(store=MemoryStore(), entry_points=False, "
            "clock=FakeClock()), one flow per sample, its store keeping every incident; the "
            "peers create a machine per incident and record the same history, with at most "
            f"{PEER_LIVE} incidents alive at a time; {sizes['ours']} / {sizes['transitions']} / "
            f"{sizes['statemachine']} incidents per sample. With the garbage collector on, the "
            "peers' machines (reference cycles) cost more, the more of them a process holds.",
        ],
    )


def workload_incident(settings: Settings) -> tuple[Callable[[], object], Callable[[], None]]:
    """Many whole incidents through one flow."""
    flow = _memory_flow()
    n = settings.pick(2000, 300, 2)
    return (lambda: [flow_lifecycle(flow) for _ in range(n)]), flow.shutdown


# -- 2. memory per open incident ---------------------------------------------------------------


def _where(trace: tracemalloc.Statistic) -> str:
    frame = trace.traceback[0]
    filename = frame.filename
    for prefix in (os.getcwd() + os.sep, *(p + os.sep for p in _site_dirs())):
        if filename.startswith(prefix):
            filename = filename[len(prefix) :]
            break
    if filename.startswith("<"):
        return f"`{filename}:{frame.lineno}` (generated code: an attrs __init__ or evolve)"
    line = linecache.getline(frame.filename, frame.lineno).strip()
    # A closing bracket says nothing; the site is then the statement that ends there.
    code = f" `{line[:60]}`" if sum(c.isalnum() for c in line) > 3 else ""
    return f"`{filename}:{frame.lineno}`{code}"


def _site_dirs() -> list[str]:
    import site

    return [*site.getsitepackages(), site.getusersitepackages()]


def _traced() -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


def case_memory(settings: Settings) -> Result:
    """Bytes per open incident (store + loaded Incident) against a Machine + model each."""
    n = settings.pick(100_000, 10_000, 20)
    n_peer = settings.pick(5_000, 1_000, 5)
    name = "2 memory per open incident"
    clock = TickingClock()

    tracing = tracemalloc.is_tracing()  # (python -X tracemalloc, say): leave it running after
    if not tracing:
        tracemalloc.start()
    try:
        start = _traced()
        flow = IncidentFlow(store=MemoryStore(), entry_points=False, clock=clock)
        for i in range(n):
            flow_to_mitigating(flow, f"{TITLE} #{i}")
        stored = _traced()
        loaded = flow.list(phase="mitigating")
        end = _traced()
        snapshot = tracemalloc.take_snapshot()
        _check(len(loaded) == n and all(i.phase == "mitigating" for i in loaded), "loaded")
        flow.shutdown()
        del loaded, flow
        gc.collect()

        peer_start = _traced()
        records = [
            baselines.drive_to_mitigating(
                baselines.transitions_incident, f"inc-{i}", f"{TITLE} #{i}", clock.now
            )
            for i in range(n_peer)
        ]
        peer_end = _traced()
        _check(all(r.state == "mitigating" for r in records), "peer at mitigating")
        del records
    finally:
        if not tracing:
            tracemalloc.stop()

    ours = (end - start) / n
    theirs = (peer_end - peer_start) / n_peer
    limit = 4096
    filtered = snapshot.filter_traces(
        [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, __file__)]
    )
    top = filtered.statistics("lineno")[:5]
    total = end - start
    sites = "; ".join(
        f"{_where(stat)}: {stat.size / n:,.0f} B/incident ({stat.size / total:.0%}, "
        f"{stat.count / n:.3g} blocks)"
        for stat in top
    )
    return Result(
        rows=[
            Row(
                name,
                f"store + loaded Incident, {n:,} at mitigating",
                Unit.BYTES,
                Stats.of([ours]),
                "transitions Machine + model",
                Stats.of([theirs]),
                theirs / ours,
                f"{theirs / ours:.3g}× smaller",
                f"≤ 4 KiB ({limit:,} B)",
                ours <= limit,
            )
        ],
        notes=[
            "tracemalloc's current traced memory after gc.collect(), before and after, divided by "
            f"the number of incidents; measured once (it does not vary between runs). After the "
            f"commands the flow and its MemoryStore hold {(stored - start) / n:,.0f} "
            f"B/incident (the event log and what the flow keeps of each incident); holding "
            f"flow.list()'s incidents adds {(end - stored) / n:,.0f} B/incident. The peer holds "
            f"{n_peer:,} models at mitigating, each with its Machine and history "
            f"(bytes per incident do not depend on the count). Every event has its own datetime "
            f"and every incident its own title, as when loaded from a database.",
            f"Top 5 allocation sites (tracemalloc, by file:line): {sites}.",
        ],
    )


# -- 3. a guarded decision ---------------------------------------------------------------------

_FLOOR_GUARDS: dict[str, baselines.Guard] = {
    "lead_assigned": lambda inc, actor: "lead" in inc["roles"],
    "lead_acknowledged": lambda inc, actor: inc["ack"] == inc["roles"].get("lead"),
    "actor_is_lead": lambda inc, actor: actor == inc["roles"].get("lead"),
    "messenger_assigned": lambda inc, actor: not inc["impact"] or "messenger" in inc["roles"],
    "status_update_posted": lambda inc, actor: not inc["impact"] or bool(inc["updates"]),
    "required_items_done": lambda inc, actor: not any(inc["open_items"]),
    "item_open": lambda inc, actor: bool(inc["open_items"]),
    "release_not_paused": lambda inc, actor: True,
    "release_is_paused": lambda inc, actor: bool(inc["paused"]),
    "severity_differs": lambda inc, actor: True,
    "page_open": lambda inc, actor: bool(inc["pages"]),
}


def _floor_table() -> dict[tuple[str, str], list[baselines.Guard]]:
    """(phase, action) → the plain guard callables, read from the handbook's transitions."""
    return {
        (source, t.action): [_FLOOR_GUARDS[name] for name in t.guards]
        for t in HANDBOOK.transitions
        for source in t.sources
    }


def case_decision(settings: Settings) -> Result:
    """``requirements`` and ``available_actions`` on an incident in mitigating vs a dict floor."""
    n = settings.pick(20_000, 3_000, 5)
    flow = _memory_flow()
    try:
        incident_id = flow_to_mitigating(flow)
        incident = flow.get(incident_id)
        actions = HANDBOOK.actions_in(incident.phase)
        table = _floor_table()
        plain = {
            "roles": dict(incident.roles),
            "ack": incident.lead_acknowledged_by,
            "impact": incident.customer_impact,
            "updates": list(incident.status_updates),
            "open_items": [],
            "paused": [],
            "pages": [],
        }
        context = Context("resolve", "bob", flow.clock.now())
        unmet = [r.name for r in flow.requirements(incident_id, "resolve")]
        _check(unmet == ["status_update_posted"], f"requirements: {unmet}")
        floor_unmet = baselines.decision_floor(table, plain, "mitigating", ["resolve"], "bob")
        _check(floor_unmet == ["resolve"], f"floor: {floor_unmet}")

        def loop(body: Callable[[], object]) -> Callable[[], float]:
            def run() -> float:
                def many() -> None:
                    for _ in range(n):
                        body()

                return timed(many, n)

            return run

        floor = baselines.decision_floor
        stats = run_interleaved(
            {
                "requirements": loop(lambda: flow.requirements(incident_id, "resolve")),
                "available": loop(lambda: flow.available_actions(incident_id)),
                "decide": loop(lambda: HANDBOOK.decide(incident, context)),
                "floor one": loop(lambda: floor(table, plain, "mitigating", ["resolve"], "bob")),
                "floor all": loop(lambda: floor(table, plain, "mitigating", actions, "bob")),
            },
            settings,
        )
    finally:
        flow.shutdown()
    name = "3 guarded decision"
    return Result(
        rows=[
            within(
                name,
                'requirements(id, "resolve")',
                stats["requirements"],
                "dict floor, 1 action",
                stats["floor one"],
                at_most=20,
                of="floor",
            ),
            within(
                name,
                "available_actions(id)",
                stats["available"],
                f"dict floor, {len(actions)} actions",
                stats["floor all"],
                at_most=20,
                of="floor",
            ),
            within(
                name,
                "(info) process.decide on a held Incident",
                stats["decide"],
                "dict floor, 1 action",
                stats["floor one"],
                at_most=None,
                of="floor",
            ),
        ],
        notes=[
            "An incident at mitigating with no status update yet (so resolve has one unmet "
            "guard). The flow's queries take an id, so each call also fetches the incident "
            "(flow.get: from the flow's cache, checked against the store's version, or by "
            "folding its events); the floor looks up (phase, action) in a dict of guard callables "
            "over a "
            "plain dict, calls them and appends the unmet ones to a list. The info row is the "
            "process's decision alone, on an Incident already in hand.",
        ],
    )


def workload_decision(settings: Settings) -> tuple[Callable[[], object], Callable[[], None]]:
    """Repeated ``requirements`` and ``available_actions`` on one incident."""
    flow = _memory_flow()
    incident_id = flow_to_mitigating(flow)
    n = settings.pick(20_000, 3_000, 5)

    def body() -> None:
        for _ in range(n):
            flow.requirements(incident_id, "resolve")
            flow.available_actions(incident_id)

    return body, flow.shutdown


# -- 4. a durable command on SQLite ------------------------------------------------------------

_UPDATE = "Investigating: we are still on it. Questions: support@sourcegraph.com."


def _bare_connection(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("CREATE TABLE IF NOT EXISTS bare (id INTEGER PRIMARY KEY, data TEXT NOT NULL)")
    return conn


def _sqlite_flow(path: Path, *, deliver: bool = True) -> IncidentFlow:
    return IncidentFlow(
        store=SQLiteStore(path),
        plugins=[Sink("noop")],
        entry_points=False,
        clock=FakeClock(),
        deliver=deliver,
    )


def _without_partial_index(path: Path) -> Path:
    """Create an SQLiteStore file, then drop migration 2's partial index ``outbox_unfinished``
    from it (a scratch file for a measurement only: claims need the index)."""
    SQLiteStore(path).close()
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("DROP INDEX outbox_unfinished")
        left = conn.execute(
            "SELECT count(*) FROM sqlite_master WHERE name = 'outbox_unfinished'"
        ).fetchone()
    finally:
        conn.close()
    _check(left == (0,), "the partial index is gone from the scratch file")
    return path


_WAL_BYTES = 5 << 20
"""Case 4: what every file's write-ahead log is grown to before the timing (over SQLite's
automatic checkpoint at 1,000 pages), so that every commit overwrites blocks the log already has."""


def _grow_wal(path: Path) -> None:
    """Grow the write-ahead log of ``path`` (kept open by another connection) to _WAL_BYTES.

    One transaction writes a blob of that size into a scratch table, which is then dropped: the
    log keeps its size after the checkpoint and later commits overwrite it from the start, as in
    a database that has been in use for a while. On ext4 a commit that extends the log costs
    about twice one that overwrites it, so the sides of a comparison must be in the same state.
    """
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("CREATE TABLE bench_scratch (data BLOB)")
        conn.execute("INSERT INTO bench_scratch VALUES (zeroblob(?))", (_WAL_BYTES,))
        conn.execute("COMMIT")
        conn.execute("DROP TABLE bench_scratch")
    finally:
        conn.close()
    wal = Path(f"{path}-wal")
    _check(wal.stat().st_size >= _WAL_BYTES, f"the write-ahead log of {path.name} was grown")


class _Marker:
    """For a flow that does not deliver: marks its pending outbox rows delivered with one
    statement from a connection of its own, as a drain would leave them (outside the timing)."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA synchronous = FULL")

    def __call__(self) -> None:
        self.conn.execute(
            "UPDATE outbox SET status = 'delivered', attempts = 1 WHERE status = 'pending'"
        )

    def close(self) -> None:
        self.conn.close()


def case_sqlite(settings: Settings) -> Result:
    """A durable command on SQLite with one plugin, against bare single-row commits."""
    blocks = settings.pick(30, 6, 1)
    block = 10
    n = blocks * block
    per_thread = settings.pick(100, 25, 2)
    threads = 4
    with _scratch() as tmp:
        flow = _sqlite_flow(tmp / "flow.db")
        quiet = IncidentFlow(store=SQLiteStore(tmp / "quiet.db"), entry_points=False)
        # Info rows: the command's own transaction, with no delivery thread about, on the
        # schema as migrated and on a scratch file without the partial index.
        alone = _sqlite_flow(tmp / "alone.db", deliver=False)
        unindexed = _sqlite_flow(_without_partial_index(tmp / "unindexed.db"), deliver=False)
        marks = {alone: _Marker(tmp / "alone.db"), unindexed: _Marker(tmp / "unindexed.db")}
        conn = _bare_connection(tmp / "bare.db")
        try:
            for path in ("flow.db", "quiet.db", "alone.db", "unindexed.db", "bare.db"):
                _grow_wal(tmp / path)
            probe = flow.declare(TITLE, severity="critical", customer_impact=True, by="alice")
            flow.post_status_update(probe.id, _UPDATE, phase="investigating", by="carol")
            row = dumps_event(flow.history(probe.id)[-1])  # the bare rows carry the same JSON
            flow.drain()
            side: dict[str, list[float]] = {
                "bare": [],
                "drained": [],
                "quiet": [],
                "alone": [],
                "unindexed": [],
                "bare after threads": [],
                "bare after quiet threads": [],
            }

            def settle(where: IncidentFlow) -> None:
                if where in marks:
                    marks[where]()
                else:
                    where.drain()

            def fresh(count: int, where: IncidentFlow = flow) -> list[str]:
                ids = [
                    where.declare(TITLE, severity="critical", customer_impact=True, by="alice").id
                    for _ in range(count)
                ]
                settle(where)
                return ids

            def commands(where: IncidentFlow, ids: list[str]) -> None:
                for incident_id in ids:
                    where.post_status_update(incident_id, _UPDATE, phase="investigating", by="bob")

            def single() -> float:
                """Blocks of commands, of bare commits and of the info rows' commands, in an
                order that rotates from block to block, so all meet the same disk."""
                ids = {where: fresh(n, where) for where in (flow, quiet, alone, unindexed)}
                spent = dict.fromkeys(("ours", "bare", "drained", "quiet", "alone", "unindexed"), 0)

                def ours(first: int) -> None:
                    start = time.perf_counter_ns()
                    commands(flow, ids[flow][first : first + block])
                    spent["ours"] += time.perf_counter_ns() - start
                    flow.drain()
                    spent["drained"] += time.perf_counter_ns() - start

                def bare(first: int) -> None:
                    start = time.perf_counter_ns()
                    baselines.bare_commits(conn, [row] * block)
                    spent["bare"] += time.perf_counter_ns() - start

                def info(key: str, where: IncidentFlow) -> Callable[[int], None]:
                    def run(first: int) -> None:
                        start = time.perf_counter_ns()
                        commands(where, ids[where][first : first + block])
                        spent[key] += time.perf_counter_ns() - start
                        settle(where)

                    return run

                sides = [
                    ours,
                    bare,
                    info("quiet", quiet),
                    info("alone", alone),
                    info("unindexed", unindexed),
                ]
                for number, first in enumerate(range(0, n, block)):
                    turn = number % len(sides)
                    for run in sides[turn:] + sides[:turn]:
                        run(first)
                for key in ("bare", "drained", "quiet", "alone", "unindexed"):
                    side[key].append(spent[key] / n)
                return spent["ours"] / n

            def concurrent(where: IncidentFlow, key: str) -> Callable[[], float]:
                def run() -> float:
                    """4 threads at once on one flow, then as many bare commits right after."""
                    lanes = [fresh(per_thread, where) for _ in range(threads)]
                    barrier = threading.Barrier(threads + 1)
                    errors: list[BaseException] = []

                    def work(ids: list[str]) -> None:
                        barrier.wait()
                        try:
                            commands(where, ids)
                        except BaseException as error:  # reported below, not lost in the thread
                            errors.append(error)

                    workers = [threading.Thread(target=work, args=(ids,)) for ids in lanes]
                    for worker in workers:
                        worker.start()
                    barrier.wait()
                    start = time.perf_counter_ns()
                    for worker in workers:
                        worker.join()
                    elapsed = time.perf_counter_ns() - start
                    where.drain()
                    if errors:
                        raise errors[0]
                    total = threads * per_thread
                    side[key].append(
                        timed(lambda: baselines.bare_commits(conn, [row] * total), total)
                    )
                    return elapsed / total

                return run

            stats = run_interleaved(
                {
                    "single": single,
                    "threads": concurrent(flow, "bare after threads"),
                    "quiet threads": concurrent(quiet, "bare after quiet threads"),
                },
                settings,
            )
            pending = sum(
                len(where.deliveries(status="pending")) for where in (flow, alone, unindexed)
            )
            _check(pending == 0, "every outbox row was delivered or marked delivered")
        finally:
            flow.shutdown()
            quiet.shutdown()
            alone.shutdown()
            unindexed.shutdown()
            for mark in marks.values():
                mark.close()
            conn.close()

    def rate(values: Sequence[float]) -> Stats:
        return Stats.of([1e9 / v for v in values])

    def kept(key: str) -> Stats:
        return Stats.of(side[key][settings.warmups :])

    name = "4 durable command (SQLite)"
    bare = kept("bare")
    one, many = rate(stats["single"].samples), rate(stats["threads"].samples)
    bare_rate = rate(side["bare after threads"][settings.warmups :])
    over_single = paired_ratio(many, one)
    over_bare = paired_ratio(many, bare_rate)
    quiet_many = rate(stats["quiet threads"].samples)
    quiet_bare = rate(side["bare after quiet threads"][settings.warmups :])
    quiet_over_bare = paired_ratio(quiet_many, quiet_bare)
    index_cost = paired_ratio(kept("alone"), kept("unindexed"))
    return Result(
        rows=[
            share(
                name,
                "post_status_update, 1 thread",
                stats["single"],
                "bare sqlite3 commit",
                bare,
                at_least=0.8,
                of="bare",
            ),
            share(
                name,
                "(info) the command alone: outbox row written, delivery off",
                kept("alone"),
                "bare sqlite3 commit",
                bare,
                at_least=None,
                of="bare",
            ),
            share(
                name,
                "(info) the same without the partial index outbox_unfinished (scratch file)",
                kept("unindexed"),
                "bare sqlite3 commit",
                bare,
                at_least=None,
                of="bare",
                note=f"the partial index makes the command alone {index_cost - 1:+.1%} slower "
                "(median of the per-repeat ratios of the two info rows above)",
            ),
            share(
                name,
                "(info) the same with no plugin: no outbox row, no delivery",
                kept("quiet"),
                "bare sqlite3 commit",
                bare,
                at_least=None,
                of="bare",
            ),
            Row(
                name,
                f"{threads} threads, one flow: commands/s",
                Unit.RATE,
                many,
                "1 thread",
                one,
                over_single,
                f"{over_single:.3g}× 1 thread",
            ),
            Row(
                name,
                f"{threads} threads vs one fdatasync per command",
                Unit.RATE,
                many,
                "bare commits/s",
                bare_rate,
                over_bare,
                f"{over_bare:.3g}× bare",
                "> 1× bare (group commit)",
                over_bare > 1,
            ),
            Row(
                name,
                f"(info) {threads} threads, no plugin",
                Unit.RATE,
                quiet_many,
                "bare commits/s",
                quiet_bare,
                quiet_over_bare,
                f"{quiet_over_bare:.3g}× bare",
            ),
        ],
        notes=[
            "SQLiteStore on a file in a temporary directory (WAL, synchronous=FULL; schema "
            "version 2: the outbox's lease and retry columns and the partial index "
            "outbox_unfinished) with one no-op plugin, so each command writes its event and an "
            "outbox row in one transaction. Timed is the latency the caller sees: the command "
            "returns without waiting for plugins; flow.drain() runs after each block of "
            f"{block} commands, outside the timer. The in-process delivery worker still writes "
            "to the same file while the block runs: per command a claim (a transaction that "
            "leases the row) and a record (one that marks it delivered, taking it out of the "
            "partial index), both with synchronous=NORMAL, so their pages are synced by the "
            "next command's commit. Each command is a post_status_update on its own freshly "
            f"declared incident. Per round, blocks of {block} commands, of {block} bare commits "
            "and of each info row's commands follow one another, in an order that rotates "
            "from block to block, so all meet the same disk (fsync time on this machine varies "
            "several-fold from second to second); each side commits as many times. Including "
            "the drain, a command and its delivery take "
            f"{format_value(kept('drained').median, Unit.NS)}. The bare baseline commits one "
            "row of the same JSON per BEGIN IMMEDIATE … COMMIT (isolation_level=None) on a "
            "file in the same directory with the same pragmas (WAL, synchronous=FULL). The "
            f"{threads}-thread sample is followed by as many bare commits, its own baseline. "
            f"Before the timing, every file's write-ahead log is grown to {_WAL_BYTES >> 20} MiB "
            "(a blob committed and dropped from another connection), so every side's commits "
            "overwrite log blocks that exist, as in a database in use for a while: on this ext4 "
            "file system a commit that extends the log took about twice as long (bare commits "
            "measured separately: 252 µs against 131 µs), and the sides' logs grew at different "
            "rates.",
            "Info rows, each flow on its own file in the same directory: the command alone is "
            "the same flow and plugin with deliver=False (the event and its outbox row in one "
            "transaction, no delivery thread); after each block its rows are marked delivered "
            "by one UPDATE from another connection, outside the timer. The same again on a "
            "scratch file whose partial index outbox_unfinished was dropped after migrating "
            "(the library is unchanged; its claims need the index, hence no delivery there). "
            f"No plugin: a flow without plugins, single-threaded and from {threads} threads.",
        ],
    )


def workload_sqlite(settings: Settings) -> tuple[Callable[[], object], Callable[[], None]]:
    """Durable commands on a temporary SQLite file."""
    tmp = Path(tempfile.mkdtemp(prefix="incident-flow-bench-"))
    flow = _sqlite_flow(tmp / "flow.db")
    n = settings.pick(300, 60, 2)
    ids = [
        flow.declare(TITLE, severity="critical", customer_impact=True, by="alice").id
        for _ in range(n)
    ]
    flow.drain()

    def body() -> None:
        for incident_id in ids:
            flow.post_status_update(incident_id, _UPDATE, phase="investigating", by="bob")

    def cleanup() -> None:
        flow.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)

    return body, cleanup


# -- 5. replay -----------------------------------------------------------------------------------


def _long_history(length: int) -> list[Event]:
    """One incident's first ``length`` events: to mitigating, then the usual traffic."""
    clock = FakeClock(START)
    with IncidentFlow(store=MemoryStore(), entry_points=False, clock=clock) as flow:
        incident_id = flow_to_mitigating(flow)
        steps: list[Callable[[], object]] = [
            lambda: flow.post_status_update(
                incident_id,
                "Investigating: still on it. Questions: support@sourcegraph.com.",
                phase="investigating",
                by="carol",
            ),
            lambda: flow.record_rollback(incident_id, by="bob", outcome="rolled back to 3.29"),
            lambda: flow.pause_release(incident_id, release="3.30", by="bob"),
            lambda: flow.assign(incident_id, Role.RESOLUTION_OWNER, "dave", by="bob"),
            lambda: flow.resume_release(incident_id, release="3.30", by="bob"),
            lambda: flow.change_severity(
                incident_id,
                "major" if flow.get(incident_id).severity == "critical" else "critical",
                by="bob",
            ),
        ]
        for step in itertools.cycle(steps):
            if flow.store.version(incident_id) >= length:
                break
            clock.advance(minutes=1)
            step()
        return flow.history(incident_id)[:length]


def _build_replay_file(path: Path, incidents: int, per_incident: int) -> None:
    template = _long_history(per_incident)
    last = fold(template)
    if last is None:
        raise RuntimeError("benchmark check failed: an empty history")
    with SQLiteStore(path) as store:
        for i in range(incidents):
            incident_id = f"inc-{i:06d}"
            events = [attrs.evolve(event, incident_id=incident_id) for event in template]
            store.append(incident_id, 0, events, phase=last.phase)


def case_replay(settings: Settings) -> Result:
    """Fold every stored incident through ``flow.list()`` vs json.loads + dict per row."""
    incidents = settings.pick(1000, 100, 3)
    per_incident = settings.pick(100, 100, 10)
    total = incidents * per_incident
    with _scratch() as tmp:
        path = tmp / "replay.db"
        _build_replay_file(path, incidents, per_incident)

        def ours() -> float:
            flow = IncidentFlow(store=SQLiteStore(path), entry_points=False, clock=FakeClock())
            try:
                start = time.perf_counter_ns()
                loaded = flow.list()
                elapsed = time.perf_counter_ns() - start
            finally:
                flow.shutdown()
            _check(len(loaded) == incidents and loaded[0].version == per_incident, "replayed")
            return elapsed / total

        def bare() -> float:
            conn = sqlite3.connect(path)
            try:
                start = time.perf_counter_ns()
                folded = baselines.bare_replay(conn)
                elapsed = time.perf_counter_ns() - start
            finally:
                conn.close()
            _check(len(folded) == incidents, "bare replay")
            return elapsed / total

        stats = run_interleaved({"ours": ours, "bare": bare}, settings)
    name = "5 replay"
    return Result(
        rows=[
            share(
                name,
                f"flow.list(): {total:,} events, {incidents:,} incidents, per event",
                stats["ours"],
                "json.loads + dict per row",
                stats["bare"],
                at_least=0.5,
                of="bare",
            )
        ],
        notes=[
            f"A SQLiteStore file of {incidents:,} incidents × {per_incident} events (status "
            "updates, rollbacks, releases paused and resumed, role and severity changes), built "
            "once per run outside the timing. Each sample opens a fresh SQLiteStore and "
            "IncidentFlow, so no cache of incidents or decoded events helps (the operating "
            "system's page cache is warm for both sides); the baseline reads the same file with "
            "sqlite3: SELECT data FROM events ORDER BY incident_id, version, then json.loads "
            "and a new dict per row merging the row into its incident's dict.",
        ],
    )


def workload_replay(settings: Settings) -> tuple[Callable[[], object], Callable[[], None]]:
    """Loading every incident of a replay file through a fresh flow."""
    tmp = Path(tempfile.mkdtemp(prefix="incident-flow-bench-"))
    path = tmp / "replay.db"
    _build_replay_file(path, settings.pick(1000, 100, 3), settings.pick(100, 100, 10))

    def body() -> None:
        with IncidentFlow(store=SQLiteStore(path), entry_points=False) as flow:
            flow.list()

    return body, lambda: shutil.rmtree(tmp, ignore_errors=True)


# -- 6. hook fan-out ---------------------------------------------------------------------------


def case_fanout(settings: Settings) -> Result:
    """Delivering one event to 5 and 20 plugins, against a bare loop of calls."""
    n = settings.pick(300, 60, 2)
    bare_n = settings.pick(100_000, 20_000, 10)
    counts = (5, 20)
    flows = {k: _memory_flow(plugins=[Sink(f"sink-{i}") for i in range(k)]) for k in (0, *counts)}
    try:
        sample = flows[0].get(flow_to_mitigating(flows[0]))
        event = flows[0].history(sample.id)[-1]

        def deliver(flow: IncidentFlow) -> Callable[[], float]:
            def run() -> float:
                ids = [flow_to_mitigating(flow) for _ in range(n)]
                flow.drain()
                start = time.perf_counter_ns()
                for incident_id in ids:
                    flow.post_status_update(incident_id, _UPDATE, phase="investigating", by="bob")
                    flow.drain()
                return (time.perf_counter_ns() - start) / n

            return run

        def bare(k: int) -> Callable[[], float]:
            functions = [_sink] * k

            def run() -> float:
                def many() -> None:
                    for _ in range(bare_n):
                        for function in functions:
                            function(event=event, incident=sample)

                return timed(many, bare_n)

            return run

        contenders = {f"flow {k}": deliver(flows[k]) for k in (0, *counts)}
        contenders.update({f"bare {k}": bare(k) for k in counts})
        stats = run_interleaved(contenders, settings)
    finally:
        for flow in flows.values():
            flow.shutdown()

    def paired(k: int) -> Stats:
        """Delivery time per event with ``k`` plugins: the command + drain minus the command."""
        with_k, without = stats[f"flow {k}"].samples, stats["flow 0"].samples
        return Stats.of([a - b for a, b in zip(with_k, without, strict=True)])

    low, high = counts
    delivered = {k: paired(k) for k in counts}
    slope = Stats.of(
        [
            (b - a) / (high - low)
            for a, b in zip(delivered[low].samples, delivered[high].samples, strict=True)
        ]
    )
    bare_call = Stats.of([t / high for t in stats[f"bare {high}"].samples])
    fixed = Stats.of(
        [a - low * p for a, p in zip(delivered[low].samples, slope.samples, strict=True)]
    )
    averages = ", ".join(
        f"{format_value(delivered[k].median / k, Unit.NS)} per plugin at {k}" for k in counts
    )
    name = "6 hook fan-out"
    rows = [
        within(
            name,
            f"{k} plugins: submission → all recorded, per event",
            delivered[k],
            f"bare loop of {k} calls",
            stats[f"bare {k}"],
            at_most=None,
            of="bare",
        )
        for k in counts
    ]
    rows.append(
        within(
            name,
            f"per plugin (slope {low}→{high})",
            slope,
            "bare call",
            bare_call,
            at_most=2,
            of="bare",
        )
    )
    rows.append(
        Row(
            name,
            "fixed cost per event (intercept)",
            Unit.NS,
            fixed,
            ratio_text="stated",
            note=(
                "negative: the cost per plugin grows with the number of plugins "
                f"({averages}), so no fixed part can be separated from it"
                if fixed.median < 0
                else f"on top of the per-plugin cost ({averages})"
            ),
        )
    )
    return Result(
        rows=rows,
        notes=[
            "In-process delivery: IncidentFlow(plugins=[...], store=MemoryStore(), "
            "entry_points=False), each plugin a no-op incident_flow_event. Per event: one "
            "post_status_update then flow.drain() (until every delivery is recorded on its "
            "outbox row), minus the same with no plugins (the command alone), paired per "
            "repeat. The bare loop calls 5 or 20 plain functions with event= and incident=. "
            "The per-plugin cost is the slope between 5 and 20 plugins; the fixed cost is what "
            "is left at 5 plugins.",
        ],
    )


def workload_fanout(settings: Settings) -> tuple[Callable[[], object], Callable[[], None]]:
    """Commands delivered to 20 plugins, draining after each (main thread only is profiled)."""
    flow = _memory_flow(plugins=[Sink(f"sink-{i}") for i in range(20)])
    ids = [flow_to_mitigating(flow) for _ in range(settings.pick(300, 60, 2))]
    flow.drain()

    def body() -> None:
        for incident_id in ids:
            flow.post_status_update(incident_id, _UPDATE, phase="investigating", by="bob")
            flow.drain()

    return body, flow.shutdown


# -- 7. the harness ----------------------------------------------------------------------------


def _handbook_machine() -> type:
    """The handbook's state machine of tests/test_stateful.py: its ``HandbookMachine``, or, where
    the test module builds it with :func:`incident_flow.testing.machine_for`, the same."""
    try:
        from tests.test_stateful import HandbookMachine
    except ImportError:
        from incident_flow.testing.stateful import machine_for
        from tests.test_stateful import HANDBOOK_RULES

        return machine_for(HANDBOOK, rules=HANDBOOK_RULES)
    return HandbookMachine  # type: ignore[no-any-return]


def case_harness(settings: Settings) -> Result:
    """Commands per second through the hypothesis state machine of tests/test_stateful.py."""
    from hypothesis import HealthCheck
    from hypothesis import settings as hypothesis_settings
    from hypothesis.stateful import run_state_machine_as_test

    HandbookMachine = _handbook_machine()

    examples = settings.pick(60, 10, 5)
    steps = settings.pick(40, 40, 10)
    counts = {"commands": 0, "ns": 0, "depth": 0}

    def counted(function: Callable[..., Incident]) -> Callable[..., Incident]:
        def wrapper(*args: Any, **kwargs: Any) -> Incident:
            if counts["depth"]:  # a command calling another (triage → transition) counts once
                return function(*args, **kwargs)
            counts["commands"] += 1
            counts["depth"] = 1
            start = time.perf_counter_ns()
            try:
                return function(*args, **kwargs)
            finally:
                counts["ns"] += time.perf_counter_ns() - start
                counts["depth"] = 0

        return wrapper

    shares: list[float] = []

    def run() -> float:
        counts.update(commands=0, ns=0, depth=0)
        options = hypothesis_settings(
            max_examples=examples,
            stateful_step_count=steps,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        start = time.perf_counter_ns()
        run_state_machine_as_test(HandbookMachine, settings=options)
        elapsed = time.perf_counter_ns() - start
        _check(counts["commands"] > 0, "the harness ran commands")
        shares.append(counts["ns"] / elapsed)
        return elapsed / counts["commands"]

    originals = {name: getattr(IncidentFlow, name) for name in COMMANDS}
    for name, function in originals.items():
        setattr(IncidentFlow, name, counted(function))
    try:
        stats = run_interleaved({"harness": run}, settings)
    finally:
        for name, function in originals.items():
            setattr(IncidentFlow, name, function)
    in_flow = Stats.of(shares).median
    rate = Stats.of([1e9 / v for v in stats["harness"].samples])
    return Result(
        rows=[
            Row(
                "7 harness",
                "HandbookMachine: commands/s",
                Unit.RATE,
                rate,
                ratio=in_flow,
                ratio_text=f"{in_flow:.0%} of time in commands",
            )
        ],
        notes=[
            "run_state_machine_as_test(HandbookMachine, settings(max_examples="
            f"{examples}, stateful_step_count={steps}, deadline=None, database=None, "
            "derandomize=True)); commands are the IncidentFlow commands called (refused ones "
            "included), counted by wrapping each command method for the run. The rest of the "
            "time is hypothesis (drawing and mutating examples) and the machine's own checks "
            "(get, history, available_actions, and the invariants run after every step). "
            "No target yet.",
        ],
    )


# -- 8. PostgreSQL -----------------------------------------------------------------------------


def case_postgres(settings: Settings) -> Result:
    """Durable commands on PostgreSQL: not measured yet (the workers' drain is case 9)."""
    exists = find_spec("incident_flow.store.postgres") is not None
    why = (
        "not measured: the PostgreSQL store exists but this case is not written yet (the "
        "outbox drain with 1 and 4 workers is case 9)"
        if exists
        else "not measured yet: incident_flow has no PostgreSQL store"
    )
    return Result(
        rows=[
            Row(
                "8 PostgreSQL",
                "durable commands/s (1, 4 threads)",
                Unit.RATE,
                None,
                ratio_text="not measured",
                note=why,
            )
        ]
    )


# -- 9. PostgreSQL workers ---------------------------------------------------------------------

_PG_PLUGINS = ("sleepy-a", "sleepy-b")
"""Case 9: the plugins every outbox row of the backlog is for (one row per event and plugin)."""
_PG_SLEEP = 0.002
"""Case 9: seconds each delivery sleeps, standing for a plugin's network call."""
_PG_WORKERS = 4
_PG_UNFINISHED = "SELECT count(*) FROM outbox WHERE status IN ('pending', 'failed')"
_PG_REQUEUE = (
    "UPDATE outbox SET status = 'pending', attempts = 0, last_error = NULL, updated_at = NULL, "
    "next_attempt_at = NULL, claimed_by = NULL, claimed_until = NULL"
)


class Sleeper:
    """A plugin whose every delivery sleeps, as a call over the network would wait."""

    def __init__(self, name: str, seconds: float = _PG_SLEEP) -> None:
        self.incident_flow_name = name
        self.seconds = seconds
        self.calls = 0
        self.busy = 0.0
        """Seconds spent inside the calls, for the lanes' utilisation."""

    @hookimpl
    def incident_flow_event(self, event: Event, incident: Incident) -> None:
        """Wait, doing nothing else."""
        start = time.perf_counter()
        time.sleep(self.seconds)
        self.busy += time.perf_counter() - start
        self.calls += 1


def _cpu_ticks() -> tuple[int, int] | None:
    """(busy, total) clock ticks of the whole machine so far, from /proc/stat (Linux only)."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            fields = [int(value) for value in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields) - idle, sum(fields)


def _postgres_cpu() -> float | None:
    """CPU seconds used so far by the local PostgreSQL server's processes (Linux only)."""
    total = 0
    try:
        hertz = os.sysconf("SC_CLK_TCK")
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/stat", encoding="ascii") as stat:
                    text = stat.read()
            except OSError:
                continue  # gone meanwhile
            command, fields = text[text.index("(") + 1 : text.rindex(")")], text.split(")")[-1]
            if command.startswith("postgres"):
                values = fields.split()
                total += int(values[11]) + int(values[12])  # utime, stime
    except (OSError, ValueError, AttributeError):
        return None
    return total / hertz


def _postgres() -> tuple[str, str | None]:
    """The test server's conninfo, and why it cannot be used (None when it answers).

    Decided as tests/pg.py decides for the PostgreSQL tests: the server that
    ``$INCIDENT_FLOW_TEST_POSTGRES`` names (or the default one) must answer. Outside CI an
    unreachable server skips the case; in CI (``CI`` set) it is an error.

    Raises:
        RuntimeError: the server is unreachable in CI.
    """
    from tests.pg import postgres_conninfo, server_available

    conninfo, reason = postgres_conninfo(), server_available()
    if reason is not None and os.environ.get("CI"):
        raise RuntimeError(f"PostgreSQL is not reachable (CI): {reason}")
    return conninfo, reason


def _timed_calls(function: Callable[..., Any], tally: list[float]) -> Callable[..., Any]:
    """Wrap a store method to count its calls, the rows they return and their time."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        result = function(*args, **kwargs)
        tally[0] += 1
        tally[1] += len(result) if isinstance(result, list) else len(args[1])
        tally[2] += time.perf_counter() - start
        return result

    return wrapper


def _pg_worker(
    conninfo: str,
    schema: str,
    plugins: Sequence[str],
    sleep: float,
    ready: Any,
    go: Any,
    stop: Any,
    out: Any,
) -> None:
    """One worker process of case 9: its own PostgresStore and DeliveryWorker (defaults), run
    from ``go`` until ``stop``; puts its counts on ``out``."""
    from incident_flow.delivery import DeliveryWorker
    from incident_flow.plugins import PluginRegistry
    from incident_flow.store.postgres import PostgresStore

    store = PostgresStore(conninfo, schema=schema)
    try:
        claims, records = [0, 0, 0.0], [0, 0, 0.0]
        store.claim = _timed_calls(store.claim, claims)  # type: ignore[method-assign]
        store.record = _timed_calls(store.record, records)  # type: ignore[method-assign]
        sleepers = [Sleeper(name, sleep) for name in plugins]
        worker = DeliveryWorker(store, PluginRegistry(sleepers, entry_points=False))
        ready.put(os.getpid())
        go.wait()
        before = time.process_time()
        worker.run(stop)
        cpu = time.process_time() - before
        out.put(
            {
                "delivered": worker.delivered,
                "failed": worker.failed + worker.dead,
                "claims": claims,
                "records": records,
                "busy": sum(sleeper.busy for sleeper in sleepers),
                "calls": sum(sleeper.calls for sleeper in sleepers),
                "cpu": cpu,
            }
        )
    finally:
        store.close()


def _pg_backlog(conninfo: str, schema: str, incidents: int) -> int:
    """Declare ``incidents`` incidents and take each through 4 more commands (5 events) on a
    flow that does not deliver: one outbox row per event and plugin. Returns the rows."""
    from incident_flow.store.postgres import PostgresStore

    flow = IncidentFlow(
        store=PostgresStore(conninfo, schema=schema),
        plugins=[Sink(name) for name in _PG_PLUGINS],
        entry_points=False,
        deliver=False,
    )
    threads = 4
    errors: list[BaseException] = []

    def build(count: int) -> None:
        try:
            for _ in range(count):
                incident_id = flow.declare(
                    TITLE, severity="critical", customer_impact=True, by="alice"
                ).id
                flow.assign(incident_id, Role.LEAD, "bob", by="alice")
                flow.acknowledge(incident_id, by="bob")
                flow.assign(incident_id, Role.MESSENGER, "carol", by="bob")
                flow.triage(incident_id, by="bob")
        except BaseException as error:  # reported below, not lost in the thread
            errors.append(error)

    shares = [incidents // threads + (i < incidents % threads) for i in range(threads)]
    builders = [threading.Thread(target=build, args=(count,)) for count in shares]
    for builder in builders:
        builder.start()
    for builder in builders:
        builder.join()
    flow.shutdown()
    if errors:
        raise errors[0]
    return incidents * 5 * len(_PG_PLUGINS)


def case_workers(settings: Settings) -> Result:
    """Draining an outbox backlog on PostgreSQL with 4 worker processes, against 1."""
    name = "9 PostgreSQL workers"
    measure = f"drain the backlog: {_PG_WORKERS} worker processes vs 1"
    conninfo, unreachable = _postgres()
    if unreachable is not None:
        return Result(
            rows=[
                Row(
                    name,
                    measure,
                    Unit.NS,
                    None,
                    ratio_text="not measured",
                    note=f"skipped: PostgreSQL is not reachable ({unreachable}); set "
                    "INCIDENT_FLOW_TEST_POSTGRES or start a server",
                )
            ]
        )
    import multiprocessing
    import uuid

    import psycopg
    from psycopg import sql

    incidents = settings.pick(2000, 200, 10)
    repeats = settings.pick(3, 2, 1)
    schema = f"bench_{uuid.uuid4().hex}"
    context = multiprocessing.get_context("spawn")
    tallies: dict[int, list[dict[str, Any]]] = {1: [], _PG_WORKERS: []}
    admin = psycopg.connect(conninfo, autocommit=True)
    try:
        began = time.perf_counter()
        rows = _pg_backlog(conninfo, schema, incidents)
        built = time.perf_counter() - began
        admin.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))

        def drain(workers: int) -> float:
            """Requeue the backlog, start ``workers`` processes, time them until it is done."""
            admin.execute(_PG_REQUEUE)
            admin.execute("VACUUM ANALYZE outbox")
            (unfinished,) = admin.execute(_PG_UNFINISHED).fetchone() or (0,)
            _check(unfinished == rows, f"the backlog holds {rows} rows ({unfinished})")
            ready, out = context.Queue(), context.Queue()
            go, stop = context.Event(), context.Event()
            processes = [
                context.Process(
                    target=_pg_worker,
                    args=(conninfo, schema, _PG_PLUGINS, _PG_SLEEP, ready, go, stop, out),
                    daemon=True,
                )
                for _ in range(workers)
            ]
            for process in processes:
                process.start()
            try:
                for _ in processes:
                    ready.get(timeout=60)
                started = datetime.now(UTC)
                ticks, server = _cpu_ticks(), _postgres_cpu()
                go.set()
                while True:
                    time.sleep(0.01)
                    (unfinished,) = admin.execute(_PG_UNFINISHED).fetchone() or (0,)
                    if unfinished == 0:
                        break
                    _check(all(p.is_alive() for p in processes), "every worker process is alive")
                (finished,) = admin.execute("SELECT max(updated_at) FROM outbox").fetchone() or (
                    None,
                )
                after, server_after = _cpu_ticks(), _postgres_cpu()
                stop.set()
                tally: dict[str, Any] = {"workers": [out.get(timeout=60) for _ in processes]}
                if ticks is not None and after is not None:
                    tally["cpu"] = (after[0] - ticks[0]) / max(after[1] - ticks[1], 1)
                if server is not None and server_after is not None:
                    tally["server"] = server_after - server
                tallies[workers].append(tally)
            finally:
                stop.set()
                for process in processes:
                    process.join(30)
                    if process.is_alive():
                        process.kill()
            statuses = dict(
                admin.execute("SELECT status, count(*) FROM outbox GROUP BY status").fetchall()
            )
            _check(statuses == {"delivered": rows}, f"every row delivered ({statuses})")
            elapsed = (finished - started).total_seconds()
            tallies[workers][-1]["lanes"] = sum(w["busy"] for w in tally["workers"]) / (
                elapsed * workers * len(_PG_PLUGINS)
            )
            return elapsed

        times: dict[int, list[float]] = {1: [], _PG_WORKERS: []}
        for repeat in range(repeats):
            for workers in (1, _PG_WORKERS) if repeat % 2 == 0 else (_PG_WORKERS, 1):
                times[workers].append(drain(workers) * 1e9 / rows)
    finally:
        with contextlib.suppress(psycopg.Error):
            admin.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
            )
        admin.close()
    one, many = Stats.of(times[1]), Stats.of(times[_PG_WORKERS])
    row = speedup(name, measure, many, "1 worker process", one, at_least=2.5)

    def described(workers: int) -> str:
        """What the workers did in a run (medians over the runs, all workers together)."""
        runs = tallies[workers]

        def median(value: Callable[[dict[str, Any]], float]) -> float:
            return statistics.median(value(run) for run in runs)

        parts = []
        for what in ("claims", "records"):
            calls = median(lambda run, what=what: sum(w[what][0] for w in run["workers"]))
            got = median(lambda run, what=what: sum(w[what][1] for w in run["workers"]))
            spent = median(lambda run, what=what: sum(w[what][2] for w in run["workers"]))
            parts.append(
                f"{calls:,.0f} {what} of {got / max(calls, 1):.1f} rows on average"
                f"{' (empty ones included)' if what == 'claims' else ''}, "
                f"{spent / max(calls, 1) * 1e3:.2f} ms each"
            )
        lanes = len(_PG_PLUGINS) * workers
        call = median(
            lambda run: (
                sum(w["busy"] for w in run["workers"])
                / max(sum(w["calls"] for w in run["workers"]), 1)
            )
        )
        parts.append(
            f"its {lanes} plugin lanes inside a plugin call {median(lambda r: r['lanes']):.0%} "
            f"of the time, a {_PG_SLEEP * 1e3:g} ms sleep taking {call * 1e3:.2f} ms"
        )
        if all("cpu" in run for run in runs):
            parts.append(f"the machine's CPUs {median(lambda r: r['cpu']):.0%} busy")
        own = median(lambda run: sum(w["cpu"] for w in run["workers"]))
        cpu = f"CPU time: the worker processes {own:.2f} s"
        if all("server" in run for run in runs):
            cpu += f", the PostgreSQL server {median(lambda r: r['server']):.2f} s"
        parts.append(cpu)
        plural = "s" if workers > 1 else ""
        return f"{workers} worker{plural}: " + "; ".join(parts)

    ceiling = len(_PG_PLUGINS) / _PG_SLEEP
    return Result(
        rows=[row],
        notes=[
            f"Backlog: {incidents:,} incidents × 5 events (declare, assign lead, acknowledge, "
            f"assign messenger, triage) × {len(_PG_PLUGINS)} plugins = {rows:,} outbox rows, "
            "written by an IncidentFlow(deliver=False) on a PostgresStore in a fresh schema "
            f"({built:.1f} s, outside the timing). Each plugin sleeps {_PG_SLEEP * 1e3:g} ms "
            "per delivery (standing for a network call). Each sample requeues every row "
            "(UPDATE outbox SET status='pending', attempts=0, …; VACUUM ANALYZE outbox), "
            "starts the worker processes (multiprocessing spawn; each its own "
            "PostgresStore(conninfo, schema=…) and DeliveryWorker(store, registry) with "
            "default settings, run()), waits until every one is ready, then times from the "
            "go signal to the last outcome recorded (max(updated_at); the end is detected by "
            "polling the unfinished rows every 10 ms). Process start-up is outside the timing. "
            f"{repeats} rounds, 1 and {_PG_WORKERS} workers alternating in order; times are "
            "per row.",
            f"A worker calls each plugin from one lane thread, so one worker delivers at most "
            f"{ceiling:,.0f} rows/s here ({len(_PG_PLUGINS)} plugins, {_PG_SLEEP * 1e3:g} ms "
            f"each); 1 worker drained the {rows:,} rows in {one.median * rows / 1e9:.2f} s "
            f"({1e9 / one.median:,.0f}/s), {_PG_WORKERS} in {many.median * rows / 1e9:.2f} s "
            f"({1e9 / many.median:,.0f}/s). Per run (medians): {described(1)}. "
            f"{described(_PG_WORKERS)}.",
        ],
    )


CASES: tuple[Case, ...] = (
    Case(1, "incident", "a whole incident in memory", case_incident, workload_incident),
    Case(2, "memory", "memory per open incident", case_memory),
    Case(3, "decision", "a guarded decision", case_decision, workload_decision),
    Case(4, "sqlite", "a durable command on SQLite", case_sqlite, workload_sqlite),
    Case(5, "replay", "replay", case_replay, workload_replay),
    Case(6, "fanout", "hook fan-out", case_fanout, workload_fanout),
    Case(7, "harness", "the property-based harness", case_harness),
    Case(8, "postgres", "PostgreSQL", case_postgres),
    Case(9, "workers", "PostgreSQL workers", case_workers),
)
"""Every case, in the order of the issue."""
