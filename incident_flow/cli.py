"""``incident-flow``: run the demo, draw the process, and read incidents back from a database.

Subcommands:

``demo [--db PATH]``
    Runs a whole handbook incident into an SQLite file, printing what Slack and the status page
    would receive, then its timeline.
``diagram [--process MODULE:ATTR]``
    Prints the process (the handbook's, or a team's) as a Mermaid state diagram.
``show ID --db DB [--json]``, ``log ID --db DB [--json]``, ``list --db DB [--phase P]``
    Read an incident, its timeline, or all incidents. They never create a database.
``worker --db DB [--plugin MODULE:ATTR …] [--once] [--process MODULE:ATTR] […]``
    Record the reminders that fall due and deliver the outbox's due rows to the installed
    plugins until stopped (SIGINT, SIGTERM), or until nothing is due (``--once``). Several
    workers may share one database.
``deliveries --db DB [--status S] [--plugin P] [--incident ID] [--retry] [--json]``
    List pending, failed and dead-lettered deliveries (flagging plugins not installed here), or
    requeue the failed and dead ones (``--retry``).

``audit FILE [--json] [--process MODULE:ATTR] [--backdate-tolerance MINUTES]``
    Replay a past incident's timeline (JSON or YAML, see ``docs/audit.md``) through the process
    and report every departure: refusals, warnings, reminders that fell due, rule findings,
    entries out of order or backdated.
``postmortem ID --db DB [--output FILE] [--complete-item --by PERSON [--link URL]]``
    Print (or write) the incident's post-mortem document as Markdown; ``--complete-item`` then
    completes the checklist item ``generate_postmortem_doc``, pointing at the document.
``template PHASE [--issue TEXT]``, ``review-post TEXT [--phase P] [--first]``
    Print the handbook's example post for a status phase; check a post against the rules.

``DB`` is an SQLite file's path or a PostgreSQL connection string (``postgresql://…`` or
``host=… dbname=…``, with ``--schema``).

Exit status: 0 on success, 1 when incident_flow refuses (the message goes to standard error as
``error: …``; for ``review-post``, when a rule refuses the post), 2 for a malformed command
line, 3 when ``audit`` found departures from the process.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import shlex
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs

from incident_flow.audit import audit_file
from incident_flow.clock import FakeClock
from incident_flow.comms import TEMPLATES, StatusPost, render_template
from incident_flow.console import ConsoleSlack, ConsoleStatusPage, format_utc
from incident_flow.delivery import DEFAULT_LEASE, DEFAULT_TIMEOUT, DeliveryWorker, RetryPolicy
from incident_flow.errors import IncidentFlowError, TransitionRefused
from incident_flow.events import Event, PhaseChanged
from incident_flow.flow import IncidentFlow
from incident_flow.model import Incident, ItemState, Role, Severity
from incident_flow.plugins import PluginRegistry
from incident_flow.postmortem import render_postmortem
from incident_flow.process import HANDBOOK, Process
from incident_flow.serialization import dumps_event, incident_to_dict
from incident_flow.store import Delivery, DeliveryStatus, open_store
from incident_flow.store.sqlite import SQLiteStore

__all__ = ["DEFAULT_DB", "format_event", "main"]

DEFAULT_DB = "incident-flow-demo.db"
AUDIT_DEPARTED = 3
"""Exit status of ``audit`` when the timeline departs from the process."""
POSTMORTEM_ITEM = "generate_postmortem_doc"
"""The handbook's checklist item for the post-mortem document."""
DEMO_START = datetime(2024, 5, 14, 9, 0, tzinfo=UTC)
"""When the demo incident starts: a fixed past moment, so its timeline reads the same every run."""

DEMO_ISSUE = "search on sourcegraph.com"
"""What the demo's posts say is broken; the posts are the handbook's templates."""

DRAIN_TIMEOUT = 30.0
"""Seconds to wait for the console adapters after a command; a finite bound, since
``drain(None)`` can overflow the platform's timeout while a delivery is still running."""

_BASE_FIELDS = {field.name for field in attrs.fields(Event)}
_TEXT_LIMIT = 72


class CommandError(Exception):
    """A command line that parsed but cannot be carried out (a --process that does not import)."""


# -- formatting ------------------------------------------------------------------------------------


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")


def _value(value: object) -> str:
    if isinstance(value, datetime):
        return _timestamp(value)
    if isinstance(value, tuple):
        text = ",".join(str(getattr(item, "rule", item)) for item in value)
        return text if len(text) <= _TEXT_LIMIT else text[: _TEXT_LIMIT - 3] + "..."
    text = str(value)
    if len(text) > _TEXT_LIMIT:
        text = text[: _TEXT_LIMIT - 3] + "..."
    return repr(text) if " " in text or not text else text


def format_event(event: Event) -> str:
    """One timeline line: version, time (UTC), actor, event type and the event's key fields."""
    if isinstance(event, PhaseChanged):
        details = f"{event.source} -> {event.dest} ({event.action})"
        details += " resolves" if event.resolves else ""
        details += " closes" if event.closes else ""
    else:
        parts = []
        for field in attrs.fields(type(event)):
            value = getattr(event, field.name)
            # The declared checklist is the process's, the same on every incident: noise here.
            if field.name in _BASE_FIELDS or field.name == "checklist":
                continue
            if (
                value is None
                or value == ""
                or value == ()
                or (field.name == "missed" and not value)
            ):
                continue
            parts.append(f"{field.name}={_value(value)}")
        details = " ".join(parts)
    return (
        f"{event.version:>3}  {_timestamp(event.at)}  {event.actor:<13} {event.type:<22} {details}"
    )


def _print_timeline(events: Iterable[Event]) -> None:
    for event in events:
        print(format_event(event).rstrip())


def _describe(incident: Incident, process: Process) -> list[str]:
    """The incident's current state, for people."""

    def title_of(role: str) -> str:
        return process.roles.get(role, role)

    def phase_title(name: str) -> str:
        try:
            return process.phase(name).title or name
        except IncidentFlowError:
            return name  # written under another process: show the bare name

    impact = "customer impact" if incident.customer_impact else "no customer impact"
    lines = [f"{incident.id}  {incident.title}"]
    if incident.description:
        lines.append(f"  {incident.description}")
    lines += [
        f"  severity         {incident.severity}, {impact}",
        f"  phase            {incident.phase} ({phase_title(incident.phase)})",
        f"  declared         {format_utc(incident.declared_at)}",
    ]
    if incident.resolved_at is not None:
        lines.append(f"  resolved         {format_utc(incident.resolved_at)}")
    if incident.closed_at is not None:
        lines.append(f"  closed           {format_utc(incident.closed_at)}")
    if incident.false_positive:
        lines.append(f"  false positive   {incident.false_positive_reason}")
    roles = "; ".join(f"{title_of(role)}: {person}" for role, person in incident.roles.items())
    lines.append(f"  roles            {roles}")
    if incident.lead is not None:
        acknowledged = "yes" if incident.lead_acknowledged_by == incident.lead else "not yet"
        lines.append(f"  acknowledged     {acknowledged}")
    lines.append(f"  status updates   {len(incident.status_updates) or 'none'}")
    for update in incident.status_updates:
        lines.append(f"    {format_utc(update.at)}  {update.phase:<13} {update.by}: {update.text}")
        for finding in update.findings:
            lines.append(f"      finding {finding.rule}: {finding.message}")
    lines.append(f"  pages            {len(incident.pages) or 'none'}")
    for page in incident.pages:
        answered = (
            f"answered by {page.acknowledged_by}, {format_utc(page.acknowledged_at)}"
            if page.acknowledged_at is not None
            else "not answered"
        )
        lines.append(
            f"    {format_utc(page.at)}  {page.id} to {page.target} by {page.by}: {answered}"
        )
    lines.append(f"  reminders        {len(incident.reminders) or 'none'}")
    for reminder in incident.reminders:
        who = reminder.person or reminder.recipient
        lines.append(f"    {format_utc(reminder.due_at)}  {reminder.name} for {who}")
    lines.append(f"  rollbacks        {len(incident.rollbacks) or 'none'}")
    outcomes = {True: "worked", False: "did not work", None: "outcome unknown"}
    for rollback in incident.rollbacks:
        lines.append(
            f"    {format_utc(rollback.at)}  {rollback.by}: {rollback.outcome} "
            f"({outcomes[rollback.succeeded]})"
        )
    lines.append(f"  paused releases  {', '.join(incident.paused_releases) or 'none'}")
    lines.append(f"  follow-ups       {len(incident.follow_ups) or 'none'}")
    for follow_up in incident.follow_ups:
        owner = f" (owner {follow_up.owner})" if follow_up.owner else ""
        lines.append(f"    {follow_up.id}: {follow_up.title}{owner}")
    lines.append(f"  outside          {len(incident.external_refs) or 'none'}")
    for ref in incident.external_refs:
        source = f" for {ref.source}" if ref.source else ""
        url = f" {ref.url}" if ref.url else ""
        lines.append(f"    {ref.system} {ref.kind} {ref.external_id}{source}{url}")
    lines.append("  checklist")
    marks = {ItemState.OPEN: "[ ]", ItemState.DONE: "[x]", ItemState.WAIVED: "[-]"}
    width = max((len(item.name) for item in incident.checklist), default=0)
    for item in incident.checklist:
        state = str(item.state)
        if item.by is not None and item.at is not None:
            state += f" by {item.by}, {format_utc(item.at)}"
        if item.reason:
            state += f": {item.reason}"
        if not item.required:
            state += " (optional)"
        lines.append(f"    {marks[item.state]} {item.name:<{width}}  {state}")
    lines.append(f"  warnings         {len(incident.warnings) or 'none'}")
    for warning in incident.warnings:
        lines.append(
            f"    {format_utc(warning.at)}  {warning.name}: {warning.reason} "
            f"(handbook: {warning.handbook_ref})"
        )
    lines.append(f"  version          {incident.version}")
    return lines


# -- opening the database ----------------------------------------------------------------------


def _open_existing(args: argparse.Namespace, **options: Any) -> IncidentFlow:
    """A flow over the database ``--db`` names, which must exist: reading never creates one."""
    store = open_store(args.db, schema=args.schema, create=False)
    return IncidentFlow(store=store, entry_points=False, deliver=False, reminders=False, **options)


# -- subcommands -----------------------------------------------------------------------------------


def _demo(args: argparse.Namespace) -> int:
    path: str = args.db
    clock = FakeClock(DEMO_START)
    with IncidentFlow(
        store=SQLiteStore(path),
        plugins=[ConsoleSlack(), ConsoleStatusPage()],
        clock=clock,
        entry_points=False,
        reminders=False,  # the demo moves its clock by hand and looks for reminders itself
    ) as flow:
        incident_id = _run_demo(flow, clock)
        print("\nTimeline (times in UTC)")
        _print_timeline(flow.history(incident_id))
        quoted = shlex.quote(path)
        print(f"\nSaved in {os.path.abspath(path)}. Read it back with:")
        print(f"  incident-flow show {incident_id} --db {quoted}")
        print(f"  incident-flow log {incident_id} --db {quoted}")
        print(f"  incident-flow postmortem {incident_id} --db {quoted}")
    return 0


def _run_demo(flow: IncidentFlow, clock: FakeClock) -> str:
    """Take one incident through the whole handbook process; return its id."""

    def at(minutes: int) -> datetime:
        return DEMO_START + timedelta(minutes=minutes)

    def post(phase: str) -> str:
        return f"{phase.title()}: {render_template(phase, issue=DEMO_ISSUE)}"

    print(f"{at(0):%H:%M}  alice declares a critical incident with customer impact")
    incident = flow.declare(
        "Search is down",
        description="Searches on sourcegraph.com time out since the 3.30 deploy.",
        severity=Severity.CRITICAL,
        customer_impact=True,
        by="alice",
    )
    incident_id = incident.id
    flow.drain(DRAIN_TIMEOUT)

    def step(minutes: int, narration: str, command: Callable[..., object], **kw: Any) -> None:
        clock.set(at(minutes))
        print(f"\n{at(minutes):%H:%M}  {narration}")
        command(incident_id, **kw)
        # Let the console adapters print before the next narration line.
        flow.drain(DRAIN_TIMEOUT)

    def refused(minutes: int, narration: str, command: Callable[..., object], **kw: Any) -> None:
        clock.set(at(minutes))
        print(f"\n{at(minutes):%H:%M}  {narration}")
        try:
            command(incident_id, **kw)
        except TransitionRefused as refusal:
            print(f"      refused in phase {refusal.phase}; nothing was recorded. Unmet:")
            for requirement in refusal.unmet:
                print(f"      - {requirement.name}: {requirement.reason}")
                print(f"        (handbook: {requirement.handbook_ref})")

    step(
        1,
        "alice pages the on-call engineer (/genie alert … for delivery team)",
        flow.page,
        target="delivery team",
        message="Searches on sourcegraph.com time out",
        by="alice",
    )
    refused(
        1,
        "alice tries to start mitigation before anyone leads the incident",
        flow.start_mitigation,
        by="alice",
    )
    step(3, "bob, on call for delivery, answers the page", flow.acknowledge_page, by="bob")
    step(3, "alice asks bob to lead", flow.assign, role=Role.LEAD, person="bob", by="alice")
    step(4, "bob acknowledges ownership", flow.acknowledge, by="bob")
    step(
        5,
        "bob asks carol to be the messenger",
        flow.assign,
        role=Role.MESSENGER,
        person="carol",
        by="bob",
    )
    step(6, "bob triages the incident", flow.triage, by="bob")
    step(8, "bob starts mitigating", flow.start_mitigation, by="bob")
    step(
        10,
        "bob rolls back first, as the handbook advises",
        flow.record_rollback,
        outcome="rolled sourcegraph.com back to 3.29; search answers again",
        succeeded=True,
        by="bob",
    )
    step(12, "bob pauses release 3.30", flow.pause_release, release="3.30", by="bob")
    refused(
        13,
        "carol drafts a post with a local time and no support address",
        flow.post_status_update,
        text="Search is slow since 9am EST; a fix is coming this morning.",
        phase="identified",
        by="carol",
    )
    step(
        14,
        "carol posts the handbook's first post on the status page",
        flow.post_status_update,
        text=post("identified"),
        phase="identified",
        by="carol",
    )
    step(44, "30 minutes without a status post: a reminder falls due", _fire, flow=flow)
    step(
        45,
        "carol posts an update",
        flow.post_status_update,
        text=post("investigating"),
        phase="investigating",
        by="carol",
    )
    step(
        65,
        "carol posts the resolution",
        flow.post_status_update,
        text=post("resolved"),
        phase="resolved",
        by="carol",
    )
    step(66, "bob resolves the incident", flow.resolve, by="bob")
    step(
        90,
        "bob lets release 3.30 go ahead with the fix",
        flow.resume_release,
        release="3.30",
        by="bob",
    )
    step(95, "bob starts the post-mortem", flow.start_postmortem, by="bob")
    step(
        97,
        "bob notes follow-up work",
        flow.add_follow_up,
        title="Add a canary stage for search before a release reaches sourcegraph.com",
        owner="dave",
        by="bob",
    )
    for minutes, item, link in (
        (100, "update_status", None),
        (105, "confirm_messenger_updates", None),
        (110, "generate_postmortem_doc", f"postmortems/{incident_id}.md"),
        (115, "create_followup_issues", None),
    ):
        step(minutes, f"bob completes {item}", flow.complete_item, item=item, link=link, by="bob")
    step(
        116,
        "bob waives close_github_issues",
        flow.waive_item,
        item="close_github_issues",
        reason="no public GitHub issue was opened for this incident",
        by="bob",
    )
    step(120, "bob closes the incident", flow.close, by="bob")
    return incident_id


def _fire(incident_id: str, *, flow: IncidentFlow) -> None:
    flow.fire_reminders(incident_id)


def _diagram(args: argparse.Namespace) -> int:
    process = HANDBOOK if args.process is None else _import_process(args.process)
    print(process.to_mermaid(), end="")
    return 0


def _import_process(spec: str) -> Process:
    module_name, _, attribute = spec.partition(":")
    # Like other tools that import an object by name, look in the current directory first.
    cwd = os.getcwd()
    sys.path.insert(0, cwd)
    try:
        target: object = importlib.import_module(module_name)
    except ImportError as error:
        raise CommandError(f"cannot import {module_name!r}: {error}") from error
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(cwd)
    for name in attribute.split("."):
        try:
            target = getattr(target, name)
        except AttributeError:
            raise CommandError(f"{module_name!r} has no attribute {attribute!r}") from None
    if not isinstance(target, Process):
        raise CommandError(f"{spec} is a {type(target).__name__}, not an incident_flow Process")
    return target


def _show(args: argparse.Namespace) -> int:
    with _open_existing(args) as flow:
        incident = flow.get(args.id)
        if args.json:
            print(json.dumps(incident_to_dict(incident), indent=2))
        else:
            print("\n".join(_describe(incident, flow.process)))
    return 0


def _log(args: argparse.Namespace) -> int:
    with _open_existing(args) as flow:
        events = flow.history(args.id)
        if args.json:
            for event in events:
                print(dumps_event(event))
        else:
            _print_timeline(events)
    return 0


def _process_of(args: argparse.Namespace) -> Process:
    return HANDBOOK if args.process is None else _import_process(args.process)


def _audit(args: argparse.Namespace) -> int:
    report = audit_file(
        args.file,
        _process_of(args),
        backdate_tolerance=timedelta(minutes=args.backdate_tolerance),
    )
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.to_text().rstrip("\n"))
    return 0 if report.ok else AUDIT_DEPARTED


def _postmortem(args: argparse.Namespace) -> int:
    if args.complete_item and not args.by:
        raise CommandError("--complete-item needs --by PERSON: who completes the item")
    with _open_existing(args, process=_process_of(args)) as flow:
        document = render_postmortem(flow.history(args.id), flow.process)
        if args.output is None:
            print(document, end="")
        else:
            # Written whole, then renamed: a reader never sees half a document.
            partial = f"{args.output}.partial"
            with open(partial, "w", encoding="utf-8") as file:
                file.write(document)
            os.replace(partial, args.output)
            print(f"wrote {args.output}", file=sys.stderr)
        if args.complete_item:
            link = args.link or (os.path.abspath(args.output) if args.output else None)
            flow.complete_item(args.id, POSTMORTEM_ITEM, by=args.by, link=link)
            print(f"completed {POSTMORTEM_ITEM}" + (f" -> {link}" if link else ""), file=sys.stderr)
    return 0


def _template(args: argparse.Namespace) -> int:
    template = TEMPLATES.get(str(args.phase).strip().lower())
    if template is not None and template.needs_issue and not (args.issue or "").strip():
        raise CommandError(
            f"the {template.phase} post names what is broken: pass --issue TEXT, such as "
            "--issue 'search on sourcegraph.com'"
        )
    print(render_template(args.phase, issue=args.issue, policy=_process_of(args).comms))
    return 0


def _review_post(args: argparse.Namespace) -> int:
    process = _process_of(args)
    phase = process.check_status_phase(args.phase)
    text = args.text if args.text != "-" else sys.stdin.read()
    post = StatusPost(text.strip(), phase, first=args.first)
    findings = process.comms.review(post)
    for finding in findings:
        verdict = "refused" if finding.refused else "recorded"
        excerpt = f" [{finding.excerpt}]" if finding.excerpt else ""
        print(f"{verdict:<8}  {finding.rule}{excerpt}: {finding.message}")
    if not findings:
        print("the post follows every communication rule")
    return 1 if any(finding.refused for finding in findings) else 0


def _list(args: argparse.Namespace) -> int:
    with _open_existing(args) as flow:
        for incident in flow.list(phase=args.phase):
            print(
                f"{incident.id}  {incident.phase:<14} {incident.severity:<8} "
                f"{_timestamp(incident.declared_at)}  {incident.title}"
            )
    return 0


def _load_plugins(specs: Sequence[str]) -> list[object]:
    """The objects ``--plugin MODULE:ATTR`` names; a class is instantiated without arguments."""
    plugins: list[object] = []
    for spec in specs:
        module_name, _, attribute = spec.partition(":")
        try:
            target = getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError) as error:
            raise CommandError(f"cannot load plugin {spec}: {error}") from error
        plugins.append(target() if isinstance(target, type) else target)
    return plugins


def _registry(args: argparse.Namespace) -> PluginRegistry:
    return PluginRegistry(_load_plugins(args.plugin), entry_points=not args.no_entry_points)


def _worker(args: argparse.Namespace) -> int:
    registry = _registry(args)
    for failure in registry.failures:
        print(f"warning: plugin {failure.name} not loaded: {failure.error}", file=sys.stderr)
    names = [notifier.plugin for notifier in registry.notifiers]
    if not names:
        raise CommandError(
            "no plugin to deliver to: install an adapter package (entry-point group "
            "incident_flow) or pass --plugin MODULE:ATTR"
        )
    process = HANDBOOK if args.process is None else _import_process(args.process)
    store = open_store(args.db, schema=args.schema, create=False)
    # A flow over the same store and plugins: the plugins are handed it (to read incidents as
    # they are now and record what they made outside), and it records the reminders that fall
    # due, so that they get an outbox row for each plugin like any other event. Several
    # workers may do this at once: each reminder is still recorded once.
    flow = IncidentFlow(
        process=process,
        store=store,
        plugins=registry,
        deliver=False,
        reminders=not (args.once or args.no_reminders),
        reminder_interval=args.reminder_interval,
    )
    reminders = None if args.no_reminders else flow
    try:
        if reminders is not None and args.once:
            fired = reminders.fire_reminders()
            if fired:
                print(f"recorded {len(fired)} reminder(s) that fell due", file=sys.stderr)
        worker = DeliveryWorker(
            store,
            registry,
            name=args.name,
            timeout=args.timeout,
            retry=RetryPolicy(max_attempts=args.max_attempts),
            lease=args.lease,
            batch=args.batch,
            poll=args.poll,
            flow=flow,
        )
        _warn_stranded(store.deliveries(status=DeliveryStatus.PENDING), names)
        print(
            f"worker {worker.name} delivering to {', '.join(names)}"
            + (" until nothing is due" if args.once else "; stop with Ctrl-C or SIGTERM"),
            file=sys.stderr,
        )
        if args.once:
            while worker.run_once():
                pass
        else:
            stop = threading.Event()
            previous = {
                signum: signal.signal(signum, lambda *_: stop.set())
                for signum in (signal.SIGINT, signal.SIGTERM)
            }
            try:
                worker.run(stop)
            finally:
                for signum, handler in previous.items():
                    signal.signal(signum, handler)
        print(
            f"delivered {worker.delivered}, failed {worker.failed}, dead {worker.dead}",
            file=sys.stderr,
        )
    finally:
        flow.shutdown()  # stops the reminder loop and closes the store
    return 0


def _warn_stranded(rows: Iterable[Delivery], installed: Sequence[str]) -> None:
    stranded: dict[str, int] = {}
    for row in rows:
        if row.plugin not in installed:
            stranded[row.plugin] = stranded.get(row.plugin, 0) + 1
    for plugin, count in sorted(stranded.items()):
        print(
            f"warning: {count} pending deliveries to {plugin}, which is not installed here; "
            "they are kept for a worker that has it",
            file=sys.stderr,
        )


_LISTED = {
    "open": (DeliveryStatus.PENDING, DeliveryStatus.FAILED, DeliveryStatus.DEAD),
    "all": tuple(DeliveryStatus),
    **{status.value: (status,) for status in DeliveryStatus},
}


def _deliveries(args: argparse.Namespace) -> int:
    # What a worker started here would deliver to: the installed adapter packages.
    installed = {notifier.plugin for notifier in PluginRegistry().notifiers}
    with _open_existing(args) as flow:
        if args.retry:
            status = None if args.status == "open" else args.status
            count = flow.retry_deliveries(
                status=status, plugin=args.plugin_name, incident_id=args.incident
            )
            print(f"requeued {count} deliveries")
            return 0
        rows = sorted(
            (
                row
                for status in _LISTED[args.status]
                for row in flow.deliveries(
                    status=status,
                    plugin=args.plugin_name,
                    incident_id=args.incident,
                    limit=args.limit,
                )
            ),
            key=lambda row: (row.incident_id, row.plugin, row.version),
        )[: args.limit]
    for row in rows:
        if args.json:
            print(json.dumps(_delivery_dict(row, installed=row.plugin in installed)))
        else:
            print(_delivery_line(row, installed=row.plugin in installed))
    if not args.json:
        print(f"{len(rows)} deliveries", file=sys.stderr)
    return 0


def _delivery_dict(row: Delivery, *, installed: bool) -> dict[str, object]:
    moments = {
        name: None if value is None else value.isoformat()
        for name, value in (
            ("updated_at", row.updated_at),
            ("next_attempt_at", row.next_attempt_at),
            ("claimed_until", row.claimed_until),
        )
    }
    return {
        "key": row.key,
        "incident_id": row.incident_id,
        "version": row.version,
        "plugin": row.plugin,
        "status": row.status.value,
        "attempts": row.attempts,
        "last_error": row.last_error,
        "claimed_by": row.claimed_by,
        "plugin_installed": installed,
        **moments,
    }


def _delivery_line(row: Delivery, *, installed: bool) -> str:
    parts = [f"{row.key}  {row.status.value:<9} attempts {row.attempts}"]
    if row.status is DeliveryStatus.FAILED and row.next_attempt_at is not None:
        parts.append(f"next {_timestamp(row.next_attempt_at)}")
    if row.claimed_by is not None:
        parts.append(f"held by {row.claimed_by}")
    if not installed and row.status is not DeliveryStatus.DELIVERED:
        parts.append("(plugin not installed here)")
    if row.last_error:
        error = row.last_error
        parts.append(error if len(error) <= _TEXT_LIMIT else error[: _TEXT_LIMIT - 1] + "…")
    return "  ".join(parts)


# -- the command line ------------------------------------------------------------------------------


def _minutes(value: str) -> float:
    try:
        minutes = float(value)
    except ValueError:
        minutes = -1.0
    if not minutes >= 0:
        raise argparse.ArgumentTypeError(f"expected a number of minutes >= 0, not {value!r}")
    return minutes


def _process_spec(value: str) -> str:
    module, colon, attribute = value.partition(":")
    if not colon or not module or not attribute:
        raise argparse.ArgumentTypeError(
            f"expected MODULE:ATTR, such as team.process:PROCESS, not {value!r}"
        )
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="incident-flow",
        description="Incident response as code: the handbook's process over an event log.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser("demo", help="run a whole handbook incident into a database")
    demo.add_argument(
        "--db",
        default=DEFAULT_DB,
        help=f"SQLite file, added to if it exists (default: {DEFAULT_DB})",
    )
    demo.set_defaults(run=_demo)

    diagram = commands.add_parser("diagram", help="print the process as a Mermaid state diagram")
    diagram.add_argument(
        "--process",
        type=_process_spec,
        metavar="MODULE:ATTR",
        help="a team's Process object to draw instead of the handbook's",
    )
    diagram.set_defaults(run=_diagram)

    show = commands.add_parser("show", help="an incident's current state")
    show.add_argument("id", help="the incident's id")
    _database_options(show)
    show.add_argument("--json", action="store_true", help="print the incident as JSON")
    show.set_defaults(run=_show)

    log = commands.add_parser("log", help="an incident's timeline, one line per event")
    log.add_argument("id", help="the incident's id")
    _database_options(log)
    log.add_argument("--json", action="store_true", help="print one JSON event per line")
    log.set_defaults(run=_log)

    listing = commands.add_parser("list", help="one line per incident, oldest first")
    _database_options(listing)
    listing.add_argument("--phase", help="only incidents in this phase")
    listing.set_defaults(run=_list)

    audit = commands.add_parser(
        "audit", help="replay a past incident's timeline file and report every departure"
    )
    audit.add_argument("file", help="a timeline in JSON or YAML (see docs/audit.md)")
    audit.add_argument("--json", action="store_true", help="print the report as JSON")
    audit.add_argument(
        "--process",
        type=_process_spec,
        metavar="MODULE:ATTR",
        help="replay against a team's Process instead of the handbook's",
    )
    audit.add_argument(
        "--backdate-tolerance",
        type=_minutes,
        default=15.0,
        metavar="MINUTES",
        help="how long after the fact an entry may be written down (default 15)",
    )
    audit.set_defaults(run=_audit)

    postmortem = commands.add_parser(
        "postmortem", help="the post-mortem document of an incident, as Markdown"
    )
    postmortem.add_argument("id", help="the incident's id")
    _database_options(postmortem)
    postmortem.add_argument(
        "--process", type=_process_spec, metavar="MODULE:ATTR", help="a team's Process"
    )
    postmortem.add_argument("--output", "-o", help="write the document to this file")
    postmortem.add_argument(
        "--complete-item",
        action="store_true",
        help=f"then complete the checklist item {POSTMORTEM_ITEM}, pointing at the document",
    )
    postmortem.add_argument("--link", help="where the document is published (with --complete-item)")
    postmortem.add_argument("--by", help="who completes the item (with --complete-item)")
    postmortem.set_defaults(run=_postmortem)

    template = commands.add_parser(
        "template", help="the handbook's example status-page post for a phase"
    )
    template.add_argument("phase", help="identified, investigating or resolved")
    template.add_argument("--issue", help="what is broken (the identified post names it)")
    template.add_argument(
        "--process", type=_process_spec, metavar="MODULE:ATTR", help="a team's Process"
    )
    template.set_defaults(run=_template)

    review = commands.add_parser(
        "review-post", help="check a status-page post against the communication rules"
    )
    review.add_argument("text", help="the post's text ('-' reads it from standard input)")
    review.add_argument("--phase", default="investigating", help="its status phase")
    review.add_argument("--first", action="store_true", help="it is the incident's first post")
    review.add_argument(
        "--process", type=_process_spec, metavar="MODULE:ATTR", help="a team's Process"
    )
    review.set_defaults(run=_review_post)

    worker = commands.add_parser("worker", help="deliver the outbox to the installed plugins")
    _database_options(worker)
    _plugin_options(worker)
    worker.add_argument("--once", action="store_true", help="stop when nothing is due")
    worker.add_argument("--name", help="the worker's name on the rows it claims")
    worker.add_argument(
        "--timeout",
        type=_seconds,
        default=DEFAULT_TIMEOUT,
        help=f"seconds a plugin may take over one event (default {DEFAULT_TIMEOUT:g})",
    )
    worker.add_argument(
        "--lease",
        type=_seconds,
        default=DEFAULT_LEASE,
        help=f"seconds a claim holds a row (default {DEFAULT_LEASE:g})",
    )
    worker.add_argument(
        "--max-attempts",
        type=_count,
        default=RetryPolicy().max_attempts,
        help=f"attempts before a row is dead-lettered (default {RetryPolicy().max_attempts})",
    )
    worker.add_argument(
        "--batch", type=_count, default=256, help="rows claimed at once (default 256)"
    )
    worker.add_argument(
        "--poll", type=_seconds, default=1.0, help="seconds between looks (default 1)"
    )
    worker.add_argument(
        "--process",
        type=_process_spec,
        metavar="MODULE:ATTR",
        help="the team's Process whose reminders to record (default: the handbook's)",
    )
    worker.add_argument(
        "--reminder-interval",
        type=_seconds,
        default=5.0,
        help="seconds between looks for reminders that fell due (default 5)",
    )
    worker.add_argument(
        "--no-reminders",
        action="store_true",
        help="only deliver; leave recording reminders to other workers",
    )
    worker.set_defaults(run=_worker)

    deliveries = commands.add_parser(
        "deliveries", help="list pending, failed and dead deliveries, or retry them"
    )
    _database_options(deliveries)
    deliveries.add_argument(
        "--status",
        choices=list(_LISTED),
        default="open",
        help="which rows (default: open = pending, failed and dead)",
    )
    deliveries.add_argument("--plugin", dest="plugin_name", help="one plugin's deliveries")
    deliveries.add_argument("--incident", metavar="ID", help="one incident's deliveries")
    deliveries.add_argument("--limit", type=_count, help="at most this many rows")
    deliveries.add_argument("--json", action="store_true", help="one JSON object per line")
    deliveries.add_argument(
        "--retry", action="store_true", help="requeue the failed and dead rows that match"
    )
    deliveries.set_defaults(run=_deliveries)
    return parser


def _database_options(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--db",
        required=True,
        metavar="DB",
        help="an existing SQLite file, or a PostgreSQL connection string (postgresql://…)",
    )
    command.add_argument(
        "--schema", default="public", help="the PostgreSQL schema (default: public)"
    )


def _plugin_options(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--plugin",
        action="append",
        default=[],
        metavar="MODULE:ATTR",
        type=_process_spec,
        help="a plugin object (or class) to load besides the installed ones; repeatable",
    )
    command.add_argument(
        "--no-entry-points",
        action="store_true",
        help="load only the --plugin plugins, not the installed adapter packages",
    )


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds > 0 or seconds == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, not {value!r}")
    return seconds


def _count(value: str) -> int:
    try:
        count = int(value)
    except ValueError:
        count = 0
    if count < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, not {value!r}")
    return count


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``incident-flow`` command line with ``argv`` (the process's arguments by default).

    Returns the exit status: 0, 1 for an error incident_flow reports, 2 for bad usage, 3 when an
    audit found departures.
    """
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:
        # argparse exits on --help and on usage errors; callers of main() get a status instead.
        return stop.code if isinstance(stop.code, int) else 2
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        return run(args)
    except (IncidentFlowError, CommandError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, and keep the interpreter's final flush
        # of standard output from failing again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
