"""Crash safety: kill a writer with SIGKILL at random moments, then check what survived.

Shared by ``tests/test_crash.py`` (a few dozen kills) and ``benchmarks/soak.py`` (hundreds).

A *child* process (``python -m benchmarks.crashkit child …``) opens a flow on a store with two
recorder plugins and runs commands in a loop over a few incidents. Each plugin appends one line
per delivery it receives (``<key> <event type>``) to a receipts file, and after each command
returns the child appends ``ACK <incident_id> <version>`` to an acks file: each line is one
``os.write`` on an ``O_APPEND`` descriptor, so a kill never leaves half a line that parses. The
parent (:func:`crash_cycles`) kills the child at a random moment and starts a new one on the same
store, again and again; then (:func:`settle`) it opens the store itself, with the same recorders,
and delivers what the dead children left; then (:func:`check`) it compares the files with the
store:

a. every acknowledged (incident, version) is committed: no committed command is lost;
b. each incident's versions run 1, 2, 3… without a gap: no command is half written;
c. every (event, plugin) has its outbox row, every row is delivered, and every committed event
   reached every recorder at least once;
d. no recorder received an event that is not committed, or another event than the one committed
   under its version, or an incident that does not match the event;
e. per incident and plugin, the first receipts of the versions come in version order.
"""

from __future__ import annotations

import argparse
import os
import random
import select
import signal
import subprocess
import sys
import threading
import time
import traceback
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from incident_flow import Event, Incident, IncidentFlow, RetryPolicy, hookimpl
from incident_flow.store import DeliveryStatus, SQLiteStore, Store

__all__ = [
    "PLUGINS",
    "Recorder",
    "Report",
    "StoreSpec",
    "check",
    "crash_cycles",
    "run",
    "settle",
]

ROOT = Path(__file__).resolve().parent.parent
PLUGINS = ("recorder-a", "recorder-b")
"""The recorders every child (and the final flow) delivers to, each under its own name."""
LEASE = 0.5
"""Seconds a child's claim holds an outbox row: rows a dead child held come free this soon."""
OPEN_PER_THREAD = 2
THREADS = 2
RECEIPTS = "receipts.log"
ACKS = "acks.log"


# -- the store under test ------------------------------------------------------------------------


@dataclass(frozen=True)
class StoreSpec:
    """Which store the children and the checks open: an SQLite file or a PostgreSQL schema."""

    kind: Literal["sqlite", "postgres"]
    path: str = ""
    """The SQLite file."""
    conninfo: str = ""
    schema: str = ""

    @classmethod
    def sqlite(cls, path: str | os.PathLike[str]) -> StoreSpec:
        return cls("sqlite", path=os.fspath(path))

    @classmethod
    def postgres(cls, conninfo: str, schema: str) -> StoreSpec:
        return cls("postgres", conninfo=conninfo, schema=schema)

    def open(self) -> Store:
        if self.kind == "sqlite":
            return SQLiteStore(self.path)
        from incident_flow.store.postgres import PostgresStore

        return PostgresStore(self.conninfo, schema=self.schema, max_size=4)

    def argv(self) -> list[str]:
        """The child's command-line arguments naming this store."""
        if self.kind == "sqlite":
            return ["--store", "sqlite", "--path", self.path]
        return ["--store", "postgres", "--conninfo", self.conninfo, "--schema", self.schema]


# -- lines written with one write each -----------------------------------------------------------


def open_log(path: Path) -> int:
    """An ``O_APPEND`` descriptor on ``path``: each :func:`write_line` lands whole at the end."""
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)


def write_line(fd: int, text: str) -> None:
    """Append ``text`` and a newline in a single ``os.write`` (a kill leaves all or nothing)."""
    data = (text + "\n").encode()
    written = os.write(fd, data)
    if written != len(data):  # pragma: no cover - regular files take short lines whole
        raise OSError(f"short write of {written} of {len(data)} bytes")


def read_lines(path: Path) -> list[str]:
    """The complete lines of ``path`` (a trailing line without its newline is ignored)."""
    if not path.exists():
        return []
    text = path.read_bytes().decode()
    return text.split("\n")[:-1]


class Recorder:
    """A plugin that appends ``<key> <event type>`` for every delivery it receives, and a
    ``BAD`` line when the delivery does not hang together (key, event and incident disagree)."""

    def __init__(self, name: str, fd: int) -> None:
        self.incident_flow_name = name
        self.fd = fd

    @hookimpl
    def incident_flow_event(self, event: Event, incident: Incident, key: str) -> None:
        expected = f"{event.incident_id}:{event.version}:{self.incident_flow_name}"
        if key != expected or incident.id != event.incident_id or incident.version != event.version:
            write_line(self.fd, f"BAD {key} {event.type} incident={incident.id}:{incident.version}")
        write_line(self.fd, f"{key} {event.type}")


def make_flow(store: Store, receipts_fd: int, *, lease: float = LEASE) -> IncidentFlow:
    """A flow delivering to the recorders, with a short lease and quick retries."""
    return IncidentFlow(
        store=store,
        plugins=[Recorder(name, receipts_fd) for name in PLUGINS],
        entry_points=False,
        delivery_timeout=5.0,
        retry=RetryPolicy(base=0.05, cap=0.5),
        delivery_lease=lease,
    )


# -- the child -------------------------------------------------------------------------------------


def _closing_after(incident_id: str) -> int:
    """The version after which the child takes ``incident_id`` to closed (20 to 59)."""
    return 20 + zlib.crc32(incident_id.encode()) % 40


def next_command(
    flow: IncidentFlow, incident_id: str, incident: Incident | None, rng: random.Random
) -> Callable[[], Incident]:
    """A command the handbook allows on ``incident`` now (None: not declared yet).

    The incident is set up as the handbook asks (a lead who acknowledged, a messenger), goes to
    mitigating, and gets status updates, release pauses, rollbacks, severity changes and
    messenger swaps (making the lead the messenger records a warning too: two events in one
    command); after some dozens of events it is resolved, goes through its post-mortem checklist
    and is closed, so no incident's log grows without end.
    """
    if incident is None:
        return lambda: flow.declare(
            f"Crash test {incident_id}",
            severity="critical",
            customer_impact=True,
            by="alice",
            incident_id=incident_id,
        )
    i = incident.id
    if incident.lead is None:
        return lambda: flow.assign(i, "lead", "bob", by="alice")
    if incident.lead_acknowledged_by is None:
        return lambda: flow.acknowledge(i, by="bob")
    if incident.messenger is None:
        return lambda: flow.assign(i, "messenger", "carol", by="bob")

    def post() -> Incident:
        text = f"Identified: update {incident.version + 1}. Questions: support@sourcegraph.com."
        return flow.post_status_update(i, text, phase="identified", by="carol")

    closing = incident.version >= _closing_after(i)
    roll = rng.random()
    if incident.phase == "identified":
        return (lambda: flow.triage(i, by="bob")) if closing or roll < 0.3 else post
    if incident.phase == "triaged":
        return (lambda: flow.start_mitigation(i, by="bob")) if closing or roll < 0.3 else post
    if incident.phase == "resolved":
        return lambda: flow.start_postmortem(i, by="bob")
    if incident.phase == "postmortem":
        for item in incident.checklist:
            if item.is_open:
                name = item.name
                if item.required:
                    return lambda: flow.complete_item(i, name, by="bob")
                return lambda: flow.waive_item(i, name, reason="not needed", by="bob")
        return lambda: flow.close(i, by="bob")
    if closing:
        return (lambda: flow.resolve(i, by="bob")) if incident.status_updates else post
    if roll < 0.5:
        return post
    if roll < 0.7:
        if incident.paused_releases:
            release = incident.paused_releases[0]
            return lambda: flow.resume_release(i, release=release, by="bob")
        return lambda: flow.pause_release(i, release=f"r{incident.version}", by="bob")
    if roll < 0.8:
        other = "carol" if incident.messenger == "bob" else "bob"
        return lambda: flow.assign(i, "messenger", other, by="bob")
    if roll < 0.9:
        return lambda: flow.record_rollback(i, by="bob", outcome=f"rolled back {incident.version}")
    severity = "major" if incident.severity == "critical" else "critical"
    return lambda: flow.change_severity(i, severity, by="bob")


def _drive(
    flow: IncidentFlow, owned: list[str], rng: random.Random, acks_fd: int, prefix: str
) -> None:
    """Run commands for ever on the ``owned`` open incidents (no other thread touches them),
    declaring a new one whenever fewer than :data:`OPEN_PER_THREAD` are open."""
    known: dict[str, Incident | None] = {
        incident_id: flow.get(incident_id) for incident_id in owned
    }
    serial = 0
    while True:
        while len(known) < OPEN_PER_THREAD:
            serial += 1
            known[f"{prefix}-{serial}"] = None
        incident_id = rng.choice(list(known))
        incident = next_command(flow, incident_id, known[incident_id], rng)()
        write_line(acks_fd, f"ACK {incident.id} {incident.version}")
        if incident.phase == "closed":
            del known[incident_id]
        else:
            known[incident_id] = incident


def _watch_parent(parent: int) -> None:
    """End this child when its parent is gone (so no child outlives a killed test run)."""
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)


def child_main(args: argparse.Namespace) -> None:
    """A child's life: open the store and the flow, say ``ready``, run commands until killed."""
    parent = os.getppid()
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    spec = StoreSpec(args.store, args.path, args.conninfo, args.schema)
    workdir = Path(args.workdir)
    receipts_fd = open_log(workdir / RECEIPTS)
    acks_fd = open_log(workdir / ACKS)
    flow = make_flow(spec.open(), receipts_fd, lease=args.lease)
    closed = set(flow.store.incident_ids(phase="closed"))
    ids = [i for i in flow.store.incident_ids() if i not in closed]
    print("ready", flush=True)
    failed = threading.Event()

    def drive(t: int) -> None:
        try:
            rng = random.Random(args.seed * 100 + t)
            _drive(flow, ids[t::THREADS], rng, acks_fd, prefix=f"x{args.seed}-{t}")
        except BaseException:
            traceback.print_exc()
            failed.set()

    threads = [threading.Thread(target=drive, args=(t,), daemon=True) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    failed.wait()
    sys.stderr.flush()
    os._exit(3)  # a command failed: the parent reports the traceback


# -- the parent ------------------------------------------------------------------------------------


@dataclass
class Report:
    """What a run did, and what it found wrong (``violations`` must be empty)."""

    kills: int = 0
    acks: int = 0
    """Commands the children acknowledged (each after the command returned)."""
    events: int = 0
    """Events committed in the store at the end."""
    deliveries: int = 0
    """Deliveries the recorders received, redeliveries included."""
    redeliveries: int = 0
    """(event, plugin) pairs received more than once."""
    violations: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"kills={self.kills} acks={self.acks} events={self.events} "
            f"deliveries={self.deliveries} redeliveries={self.redeliveries} "
            f"violations={len(self.violations)}"
        )

    def explain(self, limit: int = 20) -> str:
        lines = [self.summary(), *self.violations[:limit]]
        if len(self.violations) > limit:
            lines.append(f"… and {len(self.violations) - limit} more")
        return "\n".join(lines)


def _tail(path: Path, size: int = 3000) -> str:
    return path.read_text(errors="replace")[-size:] if path.exists() else ""


def _start_child(spec: StoreSpec, workdir: Path, seed: int, lease: float) -> subprocess.Popen[str]:
    stderr = (workdir / f"child-{seed}.err").open("w")
    try:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "benchmarks.crashkit",
                "child",
                *spec.argv(),
                "--workdir",
                str(workdir),
                "--seed",
                str(seed),
                "--lease",
                str(lease),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    finally:
        stderr.close()


def _wait_ready(child: subprocess.Popen[str], timeout: float) -> bool:
    """Wait for the child's ``ready`` line; False if it exited or took too long."""
    assert child.stdout is not None
    readable, _, _ = select.select([child.stdout], [], [], timeout)
    return bool(readable) and child.stdout.readline().strip() == "ready"


def crash_cycles(
    spec: StoreSpec,
    workdir: Path,
    *,
    kills: int,
    seed: int,
    lease: float = LEASE,
    max_delay: float = 0.6,
    log: Callable[[str], None] | None = None,
) -> Report:
    """Start a child on ``spec``, kill it with SIGKILL at a random moment; ``kills`` times.

    One kill in ten lands while the child is still starting (opening the store, maybe creating
    its schema); the others a random time up to ``max_delay`` seconds after it said ``ready``.
    """
    rng = random.Random(seed)
    report = Report()
    for cycle in range(kills):
        child_seed = seed * 1000 + cycle
        child = _start_child(spec, workdir, child_seed, lease)
        try:
            if rng.random() < 0.1:
                time.sleep(rng.uniform(0.0, 0.3))
            else:
                if not _wait_ready(child, timeout=60) and child.poll() is not None:
                    report.violations.append(
                        f"child {child_seed} exited with {child.returncode} before it was ready:\n"
                        + _tail(workdir / f"child-{child_seed}.err")
                    )
                    continue
                time.sleep(rng.uniform(0.02, max_delay))
            if child.poll() is not None:
                report.violations.append(
                    f"child {child_seed} exited with {child.returncode} before it was killed:\n"
                    + _tail(workdir / f"child-{child_seed}.err")
                )
                continue
            child.send_signal(signal.SIGKILL)
            report.kills += 1
        finally:
            if child.poll() is None:
                child.kill()
            child.wait()
            if child.stdout is not None:
                child.stdout.close()
        if log is not None and (cycle + 1) % 25 == 0:
            log(f"{cycle + 1}/{kills} kills")
    return report


def settle(spec: StoreSpec, workdir: Path, *, lease: float = LEASE, timeout: float = 60) -> None:
    """Open the store with the recorders, as the next process would, and deliver everything:
    drain until no row is unfinished (the dead children's leases run out meanwhile)."""
    receipts_fd = open_log(workdir / RECEIPTS)
    try:
        flow = make_flow(spec.open(), receipts_fd, lease=lease)
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                flow.drain(timeout=max(0.1, deadline - time.monotonic()))
                if not any(flow.deliveries(status=status) for status in ("pending", "failed")):
                    break
                time.sleep(0.05)
        finally:
            flow.shutdown()
    finally:
        os.close(receipts_fd)


def check(spec: StoreSpec, workdir: Path, report: Report | None = None) -> Report:
    """Compare the store with the acks and receipts files (checks a to e of the module's docs);
    fill in ``report``'s counts and violations."""
    report = report if report is not None else Report()
    bad = report.violations
    with spec.open() as store:
        committed: dict[tuple[str, int], str] = {}
        for incident_id in store.incident_ids():
            events = store.load(incident_id)
            versions = [event.version for event in events]
            if versions != list(range(1, len(events) + 1)):
                bad.append(f"(b) {incident_id} has versions {versions}")
            for event in events:
                committed[(incident_id, event.version)] = event.type
        rows = store.deliveries()
    report.events = len(committed)

    acks = read_lines(workdir / ACKS)
    report.acks = len(acks)
    for line in acks:
        match line.split():
            case ["ACK", acked, acked_version] if (acked, int(acked_version)) in committed:
                pass
            case ["ACK", acked, acked_version]:
                bad.append(f"(a) acknowledged {acked} v{acked_version} is not committed")
            case _:
                bad.append(f"malformed ack line {line!r}")

    outbox: dict[tuple[str, int, str], DeliveryStatus] = {}
    for row in rows:
        outbox[row.ident] = row.status
        if row.status is not DeliveryStatus.DELIVERED:
            bad.append(f"(c) outbox row {row.key} is {row.status} ({row.last_error})")
    for incident_id, version in committed:
        for plugin in PLUGINS:
            if (incident_id, version, plugin) not in outbox:
                bad.append(f"(c) no outbox row for {incident_id}:{version}:{plugin}")

    receipts = read_lines(workdir / RECEIPTS)
    report.deliveries = len(receipts)
    counts: Counter[tuple[str, int, str]] = Counter()
    firsts: dict[tuple[str, str], list[int]] = {}
    for line in receipts:
        parts = line.split()
        if len(parts) != 2 or parts[0] == "BAD" or parts[0].count(":") != 2:
            bad.append(f"(d) bad receipt {line!r}")
            continue
        key, event_type = parts
        incident_id, version_text, plugin = key.split(":")
        version = int(version_text)
        if (incident_id, version) not in committed:
            bad.append(f"(d) received {key} ({event_type}), which is not committed")
            continue
        if committed[(incident_id, version)] != event_type:
            bad.append(
                f"(d) received {key} as {event_type}; committed {committed[incident_id, version]}"
            )
        ident = (incident_id, version, plugin)
        if counts[ident] == 0:
            firsts.setdefault((incident_id, plugin), []).append(version)
        counts[ident] += 1
    report.redeliveries = sum(1 for n in counts.values() if n > 1)
    for incident_id, version in committed:
        for plugin in PLUGINS:
            if counts[(incident_id, version, plugin)] == 0:
                bad.append(f"(c) {incident_id}:{version}:{plugin} never reached {plugin}")
    for (incident_id, plugin), versions in firsts.items():
        if versions != sorted(versions):
            bad.append(f"(e) {plugin} first received {incident_id} in order {versions}")
    return report


def run(
    spec: StoreSpec,
    workdir: Path,
    *,
    kills: int,
    seed: int,
    lease: float = LEASE,
    log: Callable[[str], None] | None = None,
) -> Report:
    """Kill children ``kills`` times, settle the outbox, and check everything."""
    report = crash_cycles(spec, workdir, kills=kills, seed=seed, lease=lease, log=log)
    settle(spec, workdir, lease=lease)
    return check(spec, workdir, report)


@contextmanager
def postgres_schema(conninfo: str) -> Iterator[StoreSpec]:
    """A fresh, uniquely named PostgreSQL schema (created by the first store), dropped after."""
    import uuid

    import psycopg
    from psycopg import sql

    schema = f"crash_{uuid.uuid4().hex[:16]}"
    try:
        yield StoreSpec.postgres(conninfo, schema)
    finally:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.crashkit")
    sub = parser.add_subparsers(dest="command", required=True)
    child = sub.add_parser("child", help="run commands until killed (started by the parent)")
    child.add_argument("--store", choices=["sqlite", "postgres"], required=True)
    child.add_argument("--path", default="")
    child.add_argument("--conninfo", default="")
    child.add_argument("--schema", default="")
    child.add_argument("--workdir", required=True)
    child.add_argument("--seed", type=int, required=True)
    child.add_argument("--lease", type=float, default=LEASE)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    child_main(args)


if __name__ == "__main__":
    main()
