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
        incident_id, "Identified: we are aware.", phase="identified", by="carol"
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

_UPDATE = "Investigating: we are still on it."


def _bare_connection(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("CREATE TABLE IF NOT EXISTS bare (id INTEGER PRIMARY KEY, data TEXT NOT NULL)")
    return conn


def _sqlite_flow(path: Path) -> IncidentFlow:
    return IncidentFlow(
        store=SQLiteStore(path), plugins=[Sink("noop")], entry_points=False, clock=FakeClock()
    )


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
        conn = _bare_connection(tmp / "bare.db")
        try:
            probe = flow.declare(TITLE, severity="critical", customer_impact=True, by="alice")
            flow.post_status_update(probe.id, _UPDATE, phase="investigating", by="carol")
            row = dumps_event(flow.history(probe.id)[-1])  # the bare rows carry the same JSON
            flow.drain()
            side: dict[str, list[float]] = {
                "bare": [],
                "drained": [],
                "quiet": [],
                "bare after threads": [],
                "bare after quiet threads": [],
            }

            def fresh(count: int, where: IncidentFlow = flow) -> list[str]:
                ids = [
                    where.declare(TITLE, severity="critical", customer_impact=True, by="alice").id
                    for _ in range(count)
                ]
                where.drain()
                return ids

            def commands(where: IncidentFlow, ids: list[str]) -> None:
                for incident_id in ids:
                    where.post_status_update(incident_id, _UPDATE, phase="investigating", by="bob")

            def single() -> float:
                """Alternate blocks of commands and of bare commits, so both see the same disk."""
                ids, quiet_ids = fresh(n), fresh(n, quiet)
                ours = bare = drained = alone = 0
                for first in range(0, n, block):
                    start = time.perf_counter_ns()
                    commands(flow, ids[first : first + block])
                    ours += time.perf_counter_ns() - start
                    flow.drain()
                    drained += time.perf_counter_ns() - start
                    start = time.perf_counter_ns()
                    baselines.bare_commits(conn, [row] * block)
                    bare += time.perf_counter_ns() - start
                    start = time.perf_counter_ns()
                    commands(quiet, quiet_ids[first : first + block])
                    alone += time.perf_counter_ns() - start
                side["bare"].append(bare / n)
                side["drained"].append(drained / n)
                side["quiet"].append(alone / n)
                return ours / n

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
        finally:
            flow.shutdown()
            quiet.shutdown()
            conn.close()

    def rate(values: Sequence[float]) -> Stats:
        return Stats.of([1e9 / v for v in values])

    name = "4 durable command (SQLite)"
    bare = Stats.of(side["bare"][settings.warmups :])
    alone = Stats.of(side["quiet"][settings.warmups :])
    one, many = rate(stats["single"].samples), rate(stats["threads"].samples)
    bare_rate = rate(side["bare after threads"][settings.warmups :])
    over_single = paired_ratio(many, one)
    over_bare = paired_ratio(many, bare_rate)
    quiet_many = rate(stats["quiet threads"].samples)
    quiet_bare = rate(side["bare after quiet threads"][settings.warmups :])
    quiet_over_bare = paired_ratio(quiet_many, quiet_bare)
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
                "(info) the same with no plugin: no outbox row, no delivery",
                alone,
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
            "SQLiteStore on a file in a temporary directory (WAL, synchronous=FULL) with one "
            "no-op plugin, so each command writes its event and an outbox row in one "
            "transaction. Timed is the latency the caller sees: the command returns without "
            "waiting for plugins; flow.drain() runs after each block of "
            f"{block} commands, outside the timer (the delivery thread's own writes, marking "
            "rows delivered, still compete for the file while the block runs). Each command is "
            "a post_status_update on its own freshly declared incident. Blocks of commands and "
            f"blocks of {block} bare commits alternate, so both meet the same disk (fsync time "
            "on this machine varies several-fold from second to second). Including the drain, "
            "a command and its delivery take "
            f"{format_value(Stats.of(side['drained'][settings.warmups :]).median, Unit.NS)}. "
            "The bare baseline commits one row of the same JSON per BEGIN IMMEDIATE … COMMIT "
            "(isolation_level=None) on a file in the same directory with the same pragmas. The "
            f"{threads}-thread sample is followed by as many bare commits, its own baseline. "
            "The info rows run the same commands on a flow with no plugin (its own file in the "
            "same directory): single-threaded in a third block of each round, and from "
            f"{threads} threads.",
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
                incident_id, "Investigating: still on it.", phase="investigating", by="carol"
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


def case_harness(settings: Settings) -> Result:
    """Commands per second through the hypothesis state machine of tests/test_stateful.py."""
    from hypothesis import HealthCheck
    from hypothesis import settings as hypothesis_settings
    from hypothesis.stateful import run_state_machine_as_test

    from tests.test_stateful import HandbookMachine

    examples = settings.pick(60, 10, 2)
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
    """Not measured until incident_flow has a PostgreSQL store."""
    exists = find_spec("incident_flow.store.postgres") is not None
    why = (
        "not measured: the PostgreSQL store exists but this case is not written yet"
        if exists
        else "not measured yet: incident_flow has no PostgreSQL store"
    )
    return Result(
        rows=[
            Row(
                "8 PostgreSQL",
                "durable commands/s (1, 4 threads); drain (1, 4 workers)",
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

    @hookimpl
    def incident_flow_event(self, event: Event, incident: Incident) -> None:
        """Wait, doing nothing else."""
        time.sleep(self.seconds)


def _postgres_or_skip() -> str | None:
    """The test server's conninfo, or None when it is unreachable outside CI.

    Decided as tests/pg.py decides for the PostgreSQL tests: the server that
    ``$INCIDENT_FLOW_TEST_POSTGRES`` names (or the default one) must answer; in CI (``CI`` set)
    an unreachable server is an error, not a skip.
    """
    from tests.pg import postgres_conninfo, server_available

    reason = server_available()
    if reason is None:
        return postgres_conninfo()
    if os.environ.get("CI"):
        raise RuntimeError(f"PostgreSQL is not reachable (CI): {reason}")
    return None


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
        registry = PluginRegistry([Sleeper(name, sleep) for name in plugins], entry_points=False)
        worker = DeliveryWorker(store, registry)
        ready.put(os.getpid())
        go.wait()
        worker.run(stop)
        out.put(
            {
                "delivered": worker.delivered,
                "failed": worker.failed + worker.dead,
                "claims": claims,
                "records": records,
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
    conninfo = _postgres_or_skip()
    if conninfo is None:
        from tests.pg import server_available

        return Result(
            rows=[
                Row(
                    name,
                    measure,
                    Unit.NS,
                    None,
                    ratio_text="not measured",
                    note=f"skipped: PostgreSQL is not reachable ({server_available()}); set "
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
                stop.set()
                tallies[workers].append({"workers": [out.get(timeout=60) for _ in processes]})
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
            return (finished - started).total_seconds()

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

    def per(workers: int, index: int, what: str) -> str:
        runs = tallies[workers]
        calls = statistics.median(sum(w[what][0] for w in run["workers"]) for run in runs)
        got = statistics.median(sum(w[what][1] for w in run["workers"]) for run in runs)
        spent = statistics.median(sum(w[what][2] for w in run["workers"]) for run in runs)
        return (
            f"{calls:,.0f} {what} ({got / max(calls, 1):.1f} rows each, "
            f"{spent / max(calls, 1) * 1e3:.2f} ms each)"
        )

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
            f"{repeats} rounds, 1 and {_PG_WORKERS} workers alternating in order; times are per "
            f"row. Per run: 1 worker: {per(1, 0, 'claims')}, {per(1, 0, 'records')}; "
            f"{_PG_WORKERS} workers: {per(_PG_WORKERS, 0, 'claims')}, "
            f"{per(_PG_WORKERS, 0, 'records')} (all workers together).",
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
