"""What the Slack adapter says: channel names, topics, and the text of every post.

Pure functions of events and incidents, so the wording is tested without Slack and shared with
the app (``/incident recap`` posts :func:`recap`). Text is Slack ``mrkdwn``: whatever people typed
(titles, reasons, status posts) is escaped (``&``, ``<``, ``>``) so it can neither mention
anyone nor break the formatting; people given as Slack user ids (``U0123ABCD``) are mentioned
(``<@U0123ABCD>``), other names are written out.

The wording follows the handbook (``handbook/incidents.md``): the declaration says what to do
next (assign a lead, and a messenger when customers are hit); customer-impacting incidents are
announced to the customer-facing channels, to ``#general`` when critical, and to marketing with
its group tagged (the messenger's duties); reminders name the person whose duty it is.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any, Final

from incident_flow.events import (
    ActionTaken,
    ChecklistItemCompleted,
    ChecklistItemWaived,
    Event,
    FalsePositiveMarked,
    FollowUpAdded,
    IncidentDeclared,
    OwnershipAcknowledged,
    PageAcknowledged,
    PageSent,
    PhaseChanged,
    ReleasePaused,
    ReleaseResumed,
    ReminderDue,
    RoleAssigned,
    RollbackRecorded,
    SeverityChanged,
    StatusUpdatePosted,
    WarningRecorded,
)
from incident_flow.model import Finding, Incident, ItemState, Severity
from incident_flow.timers import (
    ANNOUNCEMENT_DAY,
    PAGE_UNACKNOWLEDGED,
    RELEASE_PAUSED_POST,
    STATUS_UPDATE_DUE,
)

__all__ = [
    "MAX_CHANNEL_NAME",
    "MAX_TOPIC",
    "announcement",
    "announcement_day",
    "channel_link",
    "channel_name",
    "channel_suffixes",
    "closing",
    "declaration",
    "declaration_blocks",
    "escape",
    "group_tag",
    "line",
    "mention",
    "recap",
    "recap_blocks",
    "release_paused",
    "reminder",
    "status_relay",
    "status_update",
    "topic",
    "user_id",
]

MAX_CHANNEL_NAME: Final = 80
"""Slack's limit on a channel name."""
MAX_TOPIC: Final = 250
"""Slack's limit on a channel topic."""

SUPPORT_EMAIL: Final = "support@sourcegraph.com"

_USER_ID = re.compile(r"^<?@?([UW][A-Z0-9]{2,})(?:\|[^>]*)?>?$")
_GROUP_ID = re.compile(r"^<?!?(?:subteam\^)?(S[A-Z0-9]{2,})(?:\|[^>]*)?>?$")
_SEVERITY_MARK = {Severity.CRITICAL: ":red_circle:", Severity.MAJOR: ":large_orange_circle:"}


# ------------------------------------------------------------------------------ people


def escape(text: str) -> str:
    """``text`` safe inside Slack ``mrkdwn``: ``&``, ``<`` and ``>`` escaped, as Slack asks."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def user_id(person: str | None) -> str | None:
    """The Slack user id in ``person`` (``U0123ABCD``, ``<@U0123ABCD>``, ``<@U0123ABCD|ann>``),
    or None when ``person`` is a name rather than a user id."""
    if not person:
        return None
    found = _USER_ID.match(person.strip())
    return found.group(1) if found else None


def mention(person: str | None, *, nobody: str = "nobody") -> str:
    """``person`` as Slack shows it: a mention for a user id, the escaped name otherwise."""
    if not person:
        return nobody
    found = user_id(person)
    return f"<@{found}>" if found else escape(person)


def group_tag(group: str) -> str:
    """A user group to tag: ``<!subteam^S…>`` for a group id (``S0123ABCD``), a handle as
    ``@handle`` (posted with ``link_names`` so Slack links it)."""
    text = group.strip()
    if text.startswith("<") and text.endswith(">"):
        return text
    found = _GROUP_ID.match(text)
    if found:
        return f"<!subteam^{found.group(1)}>"
    return "@" + escape(text.lstrip("@"))


def channel_link(channel_id: str) -> str:
    """A link to a channel by id, as Slack renders it (``#inc-20240514-search-is-down``)."""
    return f"<#{channel_id}>"


def _quiet(text: str) -> str:
    """Escaped user text in a post sent with ``link_names``: an ``@`` followed by a word
    joiner, so a title holding ``@channel`` or ``@here`` cannot ping anyone."""
    return escape(text).replace("@", "@\u2060")


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _label(phase: str) -> str:
    return phase.replace("_", " ")


def _duration(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min"
    return f"{hours // 24} days {hours % 24} h"


# ------------------------------------------------------------------------------ channel


def _slug(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9_]+", "-", ascii_text.lower()).strip("-_")


def channel_suffixes(incident_id: str) -> tuple[str, ...]:
    """Short suffixes derived from the incident id, tried in turn when a name is taken: the
    id's last six letters or digits, then eight hex digits of its hash."""
    tail = re.sub(r"[^a-z0-9]", "", incident_id.lower())[-6:]
    digest = hashlib.sha256(incident_id.encode()).hexdigest()[:8]
    return tuple(dict.fromkeys(s for s in (tail, digest) if s))


def channel_name(prefix: str, incident: Incident, suffix: str = "") -> str:
    """``<prefix>-YYYYMMDD-<slug of the title>[-<suffix>]``: lower case, only ``a-z0-9-_``,
    at most 80 characters (the title is cut, never the date or the suffix)."""
    head = "-".join(p for p in (_slug(prefix), incident.declared_at.strftime("%Y%m%d")) if p)
    tail = f"-{_slug(suffix)}" if _slug(suffix) else ""
    room = MAX_CHANNEL_NAME - len(head) - len(tail) - 1
    title = _slug(incident.title)[: max(room, 0)].strip("-_") or "incident"
    return f"{head}-{title}"[: MAX_CHANNEL_NAME - len(tail)] + tail


def topic(incident: Incident) -> str:
    """The channel's topic: severity, phase, lead and messenger (at most 250 characters)."""
    parts = [
        f"{incident.severity.value.capitalize()}",
        _label(incident.phase),
        f"Lead: {mention(incident.lead, nobody='unassigned')}",
    ]
    if incident.customer_impact or incident.messenger:
        parts.append(f"Messenger: {mention(incident.messenger, nobody='unassigned')}")
    if incident.customer_impact:
        parts.append("customer impact")
    text = " | ".join(parts)
    return text if len(text) <= MAX_TOPIC else text[: MAX_TOPIC - 1] + "…"


# ------------------------------------------------------------------------------ declaration


def declaration(incident: Incident) -> str:
    """The first post in the incident's channel: what happened and what to do next."""
    mark = _SEVERITY_MARK.get(incident.severity, ":rotating_light:")
    impact = "customers are affected" if incident.customer_impact else "no customer impact"
    lines = [
        f"{mark} *Incident declared: {escape(incident.title)}*",
        f"Severity *{incident.severity.value}*, {impact}. Reported by "
        f"{mention(incident.roles.get('reporter'))} at {_when(incident.declared_at)}.",
    ]
    if incident.description:
        # cut so the declaration fits one section block (3,000 characters)
        description = incident.description
        if len(description) > 1500:
            description = description[:1500] + "…"
        lines.extend(f"> {line}" for line in escape(description).splitlines())
    lines.append("All communication about this incident happens in this channel. Next:")
    lines.append(
        "• Assign an Incident Lead, usually an engineer (`/incident lead @engineer`); find who "
        "is on call with `/genie whoisoncall`."
    )
    if incident.customer_impact:
        lines.append(
            "• Customers are affected: assign a Messenger other than the lead "
            "(`/incident messenger @someone`) to keep the status page and the customer-facing "
            "channels up to date."
        )
    lines.append(
        "• Not in product, engineering or customer support? Page someone who is: "
        "`/genie alert we have an incident, please help for customer-support`."
    )
    if incident.severity is Severity.CRITICAL and incident.customer_impact:
        lines.append(
            "• Critical: the messenger loops in a member of @cs-leadership if executive "
            "communication is needed."
        )
    return "\n".join(lines)


def declaration_blocks(incident: Incident) -> list[dict[str, Any]]:
    """:func:`declaration` as Block Kit blocks (one section), with a context line."""
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": declaration(incident)[:3000]}},
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": f"incident `{escape(incident.id)}` · `/incident recap` shows where "
                    "it stands",
                }
            ],
        },
    ]


def announcement(incident: Incident, channel_id: str, audience: str, group: str = "") -> str:
    """The messenger's post about a customer-impacting incident outside its channel.

    ``audience`` is ``customer-facing`` (``#customer-support``, ``#ce``, ``#sales``: so they
    are informed and can join), ``severe`` (``#general``, for a critical one) or ``marketing``
    (tagging ``group``: visibility, no need to answer at once).
    """
    title = _quiet(incident.title)
    where = channel_link(channel_id)
    severity = incident.severity.value
    if audience == "marketing":
        return (
            f"{group_tag(group) if group else ''} A customer-impacting {severity} incident: "
            f"*{title}*. For your visibility: decide whether marketing needs to act (hold "
            f"planned activities, draft social posts); no need to answer right away. "
            f"Details in {where}."
        ).strip()
    if audience == "severe":
        return (
            f":red_circle: A *critical* incident affects customers: *{title}*. "
            f"Follow it in {where}."
        )
    return (
        f":rotating_light: A customer-impacting {severity} incident: *{title}*. Join {where} "
        f"for more information; status updates follow here."
    )


# ------------------------------------------------------------------------------ event lines


def _findings(findings: Iterable[Finding]) -> list[str]:
    return [
        f":warning: departs from the handbook's rule `{escape(f.rule)}`: {escape(f.message)}"
        + (f" (“{escape(f.excerpt)}”)" if f.excerpt else "")
        for f in findings
    ]


def status_update(event: StatusUpdatePosted) -> str:
    """A status-page post, quoted in the incident's channel, with its findings as warnings."""
    quoted = "\n".join(f"> {line}" for line in escape(event.text).splitlines() or [""])
    lines = [
        f":mega: Status update (*{escape(event.status_phase)}*) by {mention(event.actor)}:",
        quoted,
        *_findings(event.findings),
    ]
    return "\n".join(lines)


def status_relay(event: StatusUpdatePosted, incident: Incident, channel_id: str) -> str:
    """A status-page post passed on to a channel told of the incident (the messenger's duty
    to keep customer-facing roles informed)."""
    quoted = "\n".join(f"> {line}" for line in escape(event.text).splitlines() or [""])
    text = (
        f":mega: Update on *{escape(incident.title)}* ({escape(event.status_phase)}), for "
        f"customers:\n{quoted}\nMore in {channel_link(channel_id)}."
    )
    if event.findings:
        rules = ", ".join(f"`{escape(f.rule)}`" for f in event.findings)
        text += f"\n:warning: This post departs from the handbook's rules ({rules})."
    return text


def release_paused(event: ReleasePaused) -> str:
    """A paused release, tagging the groups to alert (posted with ``link_names``)."""
    groups = " ".join(group_tag(g) for g in event.alert)
    text = (
        f":octagonal_sign: Release *{_quiet(event.release)}* is paused because of this "
        f"incident ({mention(event.actor)})."
    )
    if groups:
        text += f" {groups}: plan accordingly."
    return text + " The messenger tells customers on the status page."


def reminder(event: ReminderDue, incident: Incident) -> str:
    """A reminder in the incident's channel, mentioning whoever it is for."""
    person = event.person or (incident.lead if event.recipient == "lead" else None)
    who = mention(person, nobody=f"({escape(event.recipient)} unassigned)")
    missed = f" ({event.missed} earlier reminder(s) missed)" if event.missed else ""
    text = escape(event.message)
    if event.reminder == STATUS_UPDATE_DUE:
        return (
            f":alarm_clock: {who} ({escape(event.recipient)}): {text}{missed}. "
            "`/incident statuspage <phase> <text>`"
        )
    if event.reminder == PAGE_UNACKNOWLEDGED:
        return f":pager: {who} (lead): {text}{missed}."
    if event.reminder == RELEASE_PAUSED_POST:
        return (
            f":octagonal_sign: {who} ({escape(event.recipient)}): {text}. Tell customers on the "
            "status page (`/incident statuspage <phase> <text>`)."
        )
    if event.reminder == ANNOUNCEMENT_DAY:
        return f":loudspeaker: Big announcement day: {text}. Marketing has been told.{missed}"
    return (
        f":alarm_clock: {who} ({escape(event.recipient)}): {escape(event.reminder)}: {text}{missed}"
    )


def announcement_day(event: ReminderDue, incident: Incident, channel_id: str, group: str) -> str:
    """The marketing channel's post on a big announcement day (posted with ``link_names``)."""
    contact = f" (contact: {mention(event.person)})" if event.person else ""
    return (
        f"{group_tag(group)} An incident is open on an announcement day{contact}: "
        f"*{_quiet(incident.title)}* ({incident.severity.value}"
        f"{', customers affected' if incident.customer_impact else ''}). "
        f"Consider holding planned activities. Details in {channel_link(channel_id)}."
    )


def line(event: Event, incident: Incident, *, invite_error: str | None = None) -> str:
    """One readable line about ``event`` for the incident's channel, naming its actor.

    ``invite_error`` is, for a :class:`RoleAssigned`, Slack's reason for not inviting the
    person (``user_not_found``), when it refused.
    """
    by = mention(event.actor)
    match event:
        case IncidentDeclared():
            return declaration(incident)
        case RoleAssigned(role=role, person=person):
            text = f":bust_in_silhouette: {mention(person)} is now *{escape(_label(role))}* ({by})."
            if user_id(person) is None:
                text += (
                    f" “{escape(person)}” is not a Slack user id, so nobody was invited; use "
                    f"`/incident {escape(role)} @someone` to name them."
                )
            elif invite_error:
                text += f" Could not invite them ({escape(invite_error)}); invite them by hand."
            return text
        case OwnershipAcknowledged():
            return f":raising_hand: {by} acknowledged ownership: “I'm on it.”"
        case PhaseChanged(source=source, dest=dest):
            return f":arrow_right: *{escape(_label(source))}* → *{escape(_label(dest))}* ({by})."
        case ActionTaken(action=action, arguments=arguments):
            detail = ", ".join(f"{escape(k)}: {escape(v)}" for k, v in arguments.items())
            return f":gear: {by} did *{escape(action)}*" + (f" ({detail})." if detail else ".")
        case RollbackRecorded(outcome=outcome, succeeded=succeeded):
            verdict = {True: "it worked", False: "it did not help", None: "outcome unknown"}
            return (
                f":leftwards_arrow_with_hook: {by} rolled back: {escape(outcome)} "
                f"({verdict[succeeded]})."
            )
        case ReleasePaused():
            return release_paused(event)
        case ReleaseResumed(release=release):
            return f":arrow_forward: Release *{escape(release)}* may go ahead again ({by})."
        case StatusUpdatePosted():
            return status_update(event)
        case SeverityChanged(severity=severity, previous=previous):
            return (
                f"{_SEVERITY_MARK.get(severity, '')} Severity {previous.value} → "
                f"*{severity.value}* ({by})."
            ).strip()
        case FalsePositiveMarked(reason=reason):
            return (
                f":white_check_mark: {by} marked this a *false positive*: {escape(reason)}. "
                "Thank you for raising it: every suspected incident is worth looking into."
            )
        case FollowUpAdded(title=title, owner=owner):
            owner_text = f" for {mention(owner)}" if owner else ""
            return f":memo: Follow-up added{owner_text}: {escape(title)} ({by})."
        case PageSent(target=target, message=message):
            said = f": {escape(message)}" if message else ""
            return f":pager: {by} paged *{escape(target)}* ({event.page_id}){said}."
        case PageAcknowledged(page_id=page_id):
            page = incident.page(page_id)
            target = f" to {escape(page.target)}" if page is not None else ""
            return f":ok_hand: {by} answered the page{target} ({escape(page_id)})."
        case ReminderDue():
            return reminder(event, incident)
        case ChecklistItemCompleted(item=item, link=link):
            where = f" <{escape(link)}|link>" if link and link.startswith("http") else ""
            return f":ballot_box_with_check: Post-mortem: *{escape(item)}* done ({by}).{where}"
        case ChecklistItemWaived(item=item, reason=reason):
            return (
                f":heavy_minus_sign: Post-mortem: *{escape(item)}* waived ({by}): {escape(reason)}"
            )
        case WarningRecorded(reason=reason, handbook_ref=ref):
            return f":warning: {escape(reason)} (handbook: {escape(ref)})"
        case _:
            return f"{escape(event.type)} ({by})."


def closing(event: Event, incident: Incident) -> str:
    """The last post before the channel is archived."""
    took = _duration(event.at - incident.declared_at)
    if incident.false_positive:
        head = (
            f":white_check_mark: Closed as a *false positive* after {took}: "
            f"{escape(incident.false_positive_reason or '')}"
        )
    else:
        head = f":checkered_flag: *Incident closed* by {mention(event.actor)} after {took}."
    done = sum(1 for item in incident.checklist if item.state is ItemState.DONE)
    waived = sum(1 for item in incident.checklist if item.state is ItemState.WAIVED)
    lines = [head]
    if incident.checklist and not incident.false_positive:
        lines.append(f"Post-mortem checklist: {done} done, {waived} waived.")
    if incident.follow_ups:
        lines.append(f"{len(incident.follow_ups)} follow-up(s) recorded.")
    lines.append("This channel is archived now; its history stays searchable.")
    return "\n".join(lines)


# ------------------------------------------------------------------------------ recap


def _recap_fields(incident: Incident) -> list[tuple[str, str]]:
    fields = [
        ("Severity", incident.severity.value),
        (
            "Phase",
            _label(incident.phase) + (" (false positive)" if incident.false_positive else ""),
        ),
        ("Customer impact", "yes" if incident.customer_impact else "no"),
        ("Lead", mention(incident.lead, nobody="unassigned")),
    ]
    if incident.lead:
        ack = "yes" if incident.lead_acknowledged_by else "not yet"
        fields.append(("Lead said “I'm on it”", ack))
    if incident.customer_impact or incident.messenger:
        fields.append(("Messenger", mention(incident.messenger, nobody="unassigned")))
    fields.append(("Declared", _when(incident.declared_at)))
    if incident.status_updates:
        last = incident.status_updates[-1]
        fields.append(
            ("Last status update", f"{_when(last.at)} ({escape(last.phase)}): {escape(last.text)}")
        )
    elif incident.customer_impact:
        fields.append(("Last status update", "none yet"))
    if incident.open_pages:
        fields.append(
            ("Open pages", ", ".join(f"{escape(p.target)} ({p.id})" for p in incident.open_pages))
        )
    if incident.paused_releases:
        fields.append(("Paused releases", ", ".join(escape(r) for r in incident.paused_releases)))
    if incident.resolved_at is not None:
        fields.append(("Resolved", _when(incident.resolved_at)))
        done = sum(1 for item in incident.checklist if not item.is_open)
        fields.append(("Post-mortem checklist", f"{done}/{len(incident.checklist)} settled"))
    if incident.follow_ups:
        fields.append(("Follow-ups", str(len(incident.follow_ups))))
    return fields


def recap(incident: Incident) -> str:
    """Where the incident stands, as ``mrkdwn`` text (``/incident recap``)."""
    lines = [f"*{escape(incident.title)}* (`{escape(incident.id)}`)"]
    lines.extend(f"*{name}:* {value}" for name, value in _recap_fields(incident))
    return "\n".join(lines)


def recap_blocks(incident: Incident) -> list[dict[str, Any]]:
    """:func:`recap` as Block Kit blocks: a header and one section of fields."""
    fields = [
        {"type": "mrkdwn", "text": f"*{name}*\n{value}"[:2000]}
        for name, value in _recap_fields(incident)
    ]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": incident.title[:150]}}
    ]
    # a section holds at most ten fields
    blocks.extend(
        {"type": "section", "fields": fields[i : i + 10]} for i in range(0, len(fields), 10)
    )
    return blocks
