"""Crash safety: a process killed with SIGKILL at random moments loses no committed event, leaves
no half-written command, and every committed event still reaches every plugin, in order.

Each test kills a child process (``python -m benchmarks.crashkit child``) many times while it runs
commands and delivers them, each restart a new child continuing on the same store; then the
test delivers what the dead children left and checks the store against what the children
acknowledged and what the plugins received (see ``benchmarks/crashkit.py`` for the checks).

``INCIDENT_FLOW_CRASH_KILLS`` sets the kills per store (24 by default), and
``INCIDENT_FLOW_CRASH_SEED`` the seed of the kill times and the children's commands (random by
default, printed on failure). ``python -m benchmarks.soak`` runs hundreds.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from benchmarks.crashkit import Report, StoreSpec, run

KILLS = int(os.environ.get("INCIDENT_FLOW_CRASH_KILLS", "24"))


@pytest.fixture
def seed() -> int:
    given = os.environ.get("INCIDENT_FLOW_CRASH_SEED")
    return int(given) if given else random.randrange(1_000_000)


def _verify(report: Report, seed: int) -> None:
    context = f"INCIDENT_FLOW_CRASH_SEED={seed}: {report.explain()}"
    assert report.violations == [], context
    assert report.kills > 0, context
    assert report.acks > 0, context  # the children got work done between kills
    assert report.deliveries >= 2 * report.events, context


def test_sqlite_survives_being_killed_at_random_moments(tmp_path: Path, seed: int) -> None:
    """Kills of a writer on one SQLite file (WAL, group commit, leases) lose nothing committed,
    leave every incident's versions contiguous, and every event is delivered to both plugins,
    first in version order, once a new process takes over the outbox."""
    spec = StoreSpec.sqlite(tmp_path / "incidents.db")
    _verify(run(spec, tmp_path, kills=KILLS, seed=seed), seed)


def test_postgres_survives_being_killed_at_random_moments(
    tmp_path: Path, seed: int, pg_schema: tuple[str, str]
) -> None:
    """The same kills against a PostgreSQL schema: the server rolls back what a dead child left
    open, and its claims' leases run out for the next worker."""
    conninfo, schema = pg_schema
    spec = StoreSpec.postgres(conninfo, schema)
    _verify(run(spec, tmp_path, kills=KILLS, seed=seed), seed)
