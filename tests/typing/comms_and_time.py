"""Communication rules, reminders, the audit and the post-mortem, type-checked with mypy --strict
(not run by pytest): a team's own rule, a team's own reminder, and the calls a bot makes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta

import attrs

from incident_flow import HANDBOOK, FakeClock, Incident, IncidentFlow, Process, Severity, hookimpl
from incident_flow.audit import AuditReport, audit_file
from incident_flow.comms import CommsPolicy, Rule, StatusPost, render_template
from incident_flow.events import ReminderDue
from incident_flow.model import Finding
from incident_flow.postmortem import render_postmortem
from incident_flow.timers import Due, TimerPolicy


def no_blame(post: StatusPost, policy: CommsPolicy) -> Iterator[tuple[str, str]]:
    if "fault" in post.text.lower():
        yield ("customer posts assign no blame", "fault")


class TeamRules:
    @hookimpl
    def incident_flow_status_rules(self) -> list[Rule]:
        return [Rule("no_blame", "Posts assign no blame", no_blame, refuses=True)]


@attrs.frozen
class OneHourIn:
    name: str = "one_hour_in"

    def next_due(self, incident: Incident, process: Process) -> Due | None:
        key = f"{self.name}:{incident.id}"
        if incident.reminded(key):
            return None
        return Due(self.name, key, incident.declared_at + timedelta(hours=1), "lead")


TEAM: Process = (
    HANDBOOK.with_comms(
        HANDBOOK.comms.with_decision("no_regional_words", "refuse").with_announcement_day(
            date(2024, 6, 1), "Launch"
        )
    )
    .with_timers(status_update_every=timedelta(minutes=15))
    .with_reminder(OneHourIn())
)
POLICY: TimerPolicy = TEAM.timers


def an_hour(clock: FakeClock) -> list[ReminderDue]:
    with IncidentFlow(process=TEAM, clock=clock, plugins=[TeamRules()], reminders=False) as flow:
        incident = flow.declare("Down", severity=Severity.MAJOR, customer_impact=True, by="a")
        text = render_template("identified", issue="search")
        flow.post_status_update(incident.id, text, phase="identified", by="carol")
        findings: list[Finding] = flow.review_status_post(incident.id, "Later", phase="resolved")
        assert findings is not None
        flow.page(incident.id, "delivery team", by="a")
        flow.acknowledge_page(incident.id, by="bob")
        flow.add_follow_up(incident.id, "Alert on latency", owner="dave", by="bob")
        clock.advance(hours=1)
        upcoming: Due | None = flow.next_reminder(incident.id)
        assert upcoming is not None
        document: str = render_postmortem(flow.history(incident.id), flow.process)
        assert document
        return flow.fire_reminders()


def audited(path: str) -> bool:
    report: AuditReport = audit_file(path, TEAM, backdate_tolerance=timedelta(minutes=5))
    return report.ok
