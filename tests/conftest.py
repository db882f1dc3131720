"""Fixtures shared by the test modules."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from incident_flow import FakeClock, Incident, IncidentFlow, Role, Severity

START = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def flow(clock: FakeClock) -> Iterator[IncidentFlow]:
    with IncidentFlow(clock=clock, entry_points=False, reminders=False) as flow:
        yield flow


def declare(flow: IncidentFlow, *, customer_impact: bool = True) -> Incident:
    return flow.declare(
        "Search is down", severity=Severity.CRITICAL, customer_impact=customer_impact, by="alice"
    )


def to_mitigating(flow: IncidentFlow, *, customer_impact: bool = True) -> Incident:
    """An incident with lead bob (acknowledged), messenger carol, mitigation started."""
    incident = declare(flow, customer_impact=customer_impact)
    flow.assign(incident.id, Role.LEAD, "bob", by="alice")
    flow.acknowledge(incident.id, by="bob")
    flow.assign(incident.id, Role.MESSENGER, "carol", by="bob")
    flow.triage(incident.id, by="bob")
    return flow.start_mitigation(incident.id, by="bob")


def to_postmortem(flow: IncidentFlow) -> Incident:
    incident = to_mitigating(flow)
    flow.record_rollback(incident.id, by="bob", outcome="rolled back to 3.29")
    flow.post_status_update(
        incident.id,
        "Identified: we are aware. Questions: support@sourcegraph.com.",
        phase="identified",
        by="carol",
    )
    flow.resolve(incident.id, by="bob")
    return flow.start_postmortem(incident.id, by="bob")


# -- PostgreSQL ------------------------------------------------------------------------------------
# Skipped without a server, failed in CI: see tests/pg.py.

from typing import TYPE_CHECKING  # noqa: E402 - appended with the PostgreSQL fixtures

if TYPE_CHECKING:
    from incident_flow.store.postgres import PostgresStore


@pytest.fixture
def pg_schema() -> Iterator[tuple[str, str]]:
    """``(conninfo, schema)`` for a fresh schema of the test server, dropped afterwards."""
    from tests.pg import fresh_schema

    with fresh_schema() as conninfo_and_schema:
        yield conninfo_and_schema


@pytest.fixture
def postgres_store(pg_schema: tuple[str, str]) -> Iterator[PostgresStore]:
    """An open :class:`PostgresStore` on a fresh schema, closed afterwards."""
    from incident_flow.store.postgres import PostgresStore

    conninfo, schema = pg_schema
    with PostgresStore(conninfo, schema=schema, max_size=4) as store:
        yield store
