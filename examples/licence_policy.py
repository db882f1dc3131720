"""The handbook's temporary licence policy as a team's own rule.

Run it with ``python examples/licence_policy.py``; copy it to start a rule of your own.

The handbook (section "Go-to-market (license and subscription) issues") says: when a customer
has a problem with their licence key or subscription during an incident, any teammate may
generate a temporary licence key, valid for **at most 7 days**, so the responder is not held up
waiting for the go-to-market team; and once a licence has expired there is a **72-hour grace
period** before non-admin users are locked out.

This module adds that to :data:`~incident_flow.HANDBOOK` through the public extension points
only:

- an action, ``issue_temporary_licence``, open to anyone from declaration until the
  post-mortem (a customer may still need a key after the fix is out). It keeps the phase and
  is recorded, with its arguments, as an ``ActionTaken`` event::

      flow.transition(incident_id, "issue_temporary_licence", by="carol",
                      customer="acme", days="7", account="acme-admin")

  ``customer`` names the customer, ``days`` how long the key is valid, and ``account`` (not
  required) the Sourcegraph.com account it is attached to. Arguments arrive as strings.
- two guards: ``temporary_licence_valid_days`` refuses anything but a whole number of days
  from 1 to 7, and ``temporary_licence_arguments`` refuses a command that leaves out the
  customer or the number of days;
- a reminder rule, :class:`LicenceExpiry` (``temporary_licence_expiry``), that reminds the
  Incident Lead (or whoever issued the key, when there is no lead) three times for each key:
  when it expires, 24 hours before the grace period ends and non-admin users are locked out,
  and at the lockout.

The reminders come from the incident's log alone (no timer keeps running): a key's expiry is
the time the action was recorded plus its ``days``. They fall due in every phase that is not
terminal, including ``resolved`` and ``postmortem``, because a key issued during an incident
outlives the fix. Closing the incident (or marking it a false positive) ends them: close it
once the customer has a real licence. As with the handbook's reminders, a worker that was away
while several reminders of one key fell due records only the latest, with ``missed`` counting
the others.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import attrs

from incident_flow import (
    HANDBOOK,
    Context,
    FakeClock,
    Guard,
    Incident,
    IncidentFlow,
    Phase,
    Process,
    Role,
    Severity,
    Transition,
    TransitionRefused,
)
from incident_flow.timers import Due

__all__ = [
    "GRACE_PERIOD",
    "ISSUE_TEMPORARY_LICENCE",
    "LICENCE_ARGUMENTS_GUARD",
    "LICENCE_DAYS_GUARD",
    "LICENCE_EXPIRY",
    "LICENCE_PROCESS",
    "LOCKOUT_WARNING",
    "MAX_DAYS",
    "LicenceExpiry",
    "TemporaryLicence",
    "licence_days",
    "main",
    "temporary_licences",
]

ISSUE_TEMPORARY_LICENCE = "issue_temporary_licence"
"""The team's action: issue a temporary licence key to a customer."""
LICENCE_EXPIRY = "temporary_licence_expiry"
"""The name of the reminder rule (and of the reminders it records)."""
MAX_DAYS = 7
"""The longest a temporary licence key may be valid, in days."""
GRACE_PERIOD = timedelta(hours=72)
"""How long after a licence expired non-admin users can still use the instance."""
LOCKOUT_WARNING = timedelta(hours=24)
"""How long before the lockout the last warning is given."""
GO_TO_MARKET = "Go-to-market (license and subscription) issues"
"""The handbook section the policy comes from."""

_WHOLE_NUMBER = re.compile(r"[0-9]{1,3}")


# -- the guards -------------------------------------------------------------------------------


def licence_days(value: object) -> int | None:
    """The number of days ``value`` (a command argument, a string) stands for, when it is a
    whole number from 1 to :data:`MAX_DAYS`; None otherwise."""
    if not isinstance(value, str) or not _WHOLE_NUMBER.fullmatch(value.strip()):
        return None
    days = int(value)
    return days if 1 <= days <= MAX_DAYS else None


def _customer(context: Context) -> str:
    customer = context.payload.get("customer")
    return customer.strip() if isinstance(customer, str) else ""


def _days_reason(incident: Incident, context: Context) -> str:
    return (
        f"a temporary licence key is valid for a whole number of days from 1 to {MAX_DAYS}, "
        f"not {context.payload.get('days')!r}: the handbook lets anyone issue one for at most "
        f"{MAX_DAYS} days; for a longer licence, ask the go-to-market team to validate the "
        "customer's subscription"
    )


LICENCE_DAYS_GUARD = Guard(
    "temporary_licence_valid_days",
    # Left out, the number of days is temporary_licence_arguments' to report.
    lambda incident, context: (
        "days" not in context.payload or licence_days(context.payload["days"]) is not None
    ),
    _days_reason,
    GO_TO_MARKET,
    # Asked only when the command gives ``days``: "which actions are available?" (asked with
    # no arguments) still lists issue_temporary_licence.
    reads=("days",),
)
"""``days`` is a whole number from 1 to 7."""


def _arguments_given(incident: Incident, context: Context) -> bool:
    return bool(_customer(context)) and "days" in context.payload


def _arguments_reason(incident: Incident, context: Context) -> str:
    missing = []
    if not _customer(context):
        missing.append("the customer the key is for (customer=...)")
    if "days" not in context.payload:
        missing.append(f"how many days it is valid (days=1 to {MAX_DAYS})")
    return "a temporary licence key needs " + " and ".join(missing)


LICENCE_ARGUMENTS_GUARD = Guard(
    "temporary_licence_arguments",
    _arguments_given,
    _arguments_reason,
    GO_TO_MARKET,
    # A question ("which actions are available?") that leaves them out skips this guard; a
    # command is always asked, so one without a customer or days is refused.
    reads=("customer", "days"),
)
"""A command names the customer (not blank) and gives the number of days."""


# -- the reminders ----------------------------------------------------------------------------


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@attrs.frozen
class TemporaryLicence:
    """A temporary licence key, as recorded on the incident by ``issue_temporary_licence``."""

    number: int
    """1 for the incident's first key, 2 for its second…: two keys issued at the same moment
    are still told apart."""
    customer: str
    days: int
    issued_at: datetime
    issued_by: str
    account: str | None = None

    @property
    def expires_at(self) -> datetime:
        """When the key stops being valid."""
        return self.issued_at + timedelta(days=self.days)

    @property
    def lockout_at(self) -> datetime:
        """When the grace period ends and non-admin users are locked out."""
        return self.expires_at + GRACE_PERIOD

    @property
    def subject(self) -> str:
        """What the key's reminders are about, unique per key: ``acme@<issued>#1``."""
        return f"{self.customer}@{_stamp(self.issued_at)}#{self.number}"


def temporary_licences(incident: Incident) -> Iterator[TemporaryLicence]:
    """The temporary licence keys issued on ``incident``, oldest first."""
    issued = (r for r in incident.team_actions if r.action == ISSUE_TEMPORARY_LICENCE)
    for number, record in enumerate(issued, start=1):
        days = licence_days(record.arguments.get("days"))
        customer = record.arguments.get("customer", "").strip()
        if days is None or not customer:
            continue  # refused by the guards; only a command with no arguments gets through
        yield TemporaryLicence(
            number, customer, days, record.at, record.by, record.arguments.get("account")
        )


# Not frozen: ReminderRule declares ``name`` as a plain attribute, and a type checker does not
# accept a frozen class's read-only ``name`` for it.
@attrs.define
class LicenceExpiry:
    """``temporary_licence_expiry``: the reminders of each temporary licence key.

    For each key, in order: ``expired`` at its expiry, ``lockout_warning`` 24 hours before the
    72-hour grace period ends, and ``locked_out`` when it ends. Each occurrence's key is
    ``temporary_licence_expiry:<customer>@<issued at>#<number>:<stage>``.

    Implements :class:`~incident_flow.timers.ReminderRule`: :meth:`next_due` depends on the
    incident alone, and once an occurrence (or a later one of the same key) is recorded on the
    incident, it moves on to the next.
    """

    name: str = LICENCE_EXPIRY

    def occurrences(self, incident: Incident, licence: TemporaryLicence) -> tuple[Due, ...]:
        """The three reminders of ``licence``, in the order they fall due."""
        expiry, lockout = _utc(licence.expires_at), _utc(licence.lockout_at)
        issued = (
            f"issued by {licence.issued_by} at {_utc(licence.issued_at)} for {licence.days} "
            f"day{'s' if licence.days != 1 else ''}"
        )
        if licence.account:
            issued += f", attached to account {licence.account}"
        stages = (
            (
                "expired",
                licence.expires_at,
                f"temporary licence for {licence.customer} ({issued}) expired at {expiry}; the "
                f"72-hour grace period runs until {lockout}: replace it with a real licence",
            ),
            (
                "lockout_warning",
                licence.lockout_at - LOCKOUT_WARNING,
                f"non-admin users of {licence.customer} will be locked out at {lockout}: "
                f"their temporary licence expired at {expiry}; replace it with a real licence",
            ),
            (
                "locked_out",
                licence.lockout_at,
                f"non-admin users of {licence.customer} are locked out since {lockout}: the "
                f"72-hour grace period after their temporary licence expired ({expiry}) is "
                "over; replace it with a real licence",
            ),
        )
        recipient = Role.LEAD
        person = incident.roles.get(recipient) or licence.issued_by
        return tuple(
            Due(
                self.name,
                f"{self.name}:{licence.subject}:{stage}",
                due_at,
                str(recipient),
                person,
                subject=licence.subject,
                message=message,
            )
            for stage, due_at, message in stages
        )

    def next_due(self, incident: Incident, process: Process) -> Due | None:
        """The earliest reminder of any key that is not recorded yet, or None."""
        if process.is_terminal(incident.phase):
            return None
        earliest: Due | None = None
        for licence in temporary_licences(incident):
            dues = self.occurrences(incident, licence)
            # Overdue reminders of one key are recorded as the latest of them: whatever comes
            # before a recorded one is done too.
            recorded = [index for index, due in enumerate(dues) if incident.reminded(due.key)]
            following = dues[max(recorded) + 1 :] if recorded else dues
            if following and (earliest is None or following[0].due_at < earliest.due_at):
                earliest = following[0]
        return earliest


# -- the process ------------------------------------------------------------------------------

LICENCE_PROCESS: Process = (
    HANDBOOK.with_transition(
        Transition(
            ISSUE_TEMPORARY_LICENCE,
            (
                Phase.IDENTIFIED,
                Phase.TRIAGED,
                Phase.MITIGATING,
                Phase.RESOLVED,
                Phase.POSTMORTEM,
            ),
        )
    )
    .with_guard(ISSUE_TEMPORARY_LICENCE, LICENCE_DAYS_GUARD)
    .with_guard(ISSUE_TEMPORARY_LICENCE, LICENCE_ARGUMENTS_GUARD)
    .with_reminder(LicenceExpiry())
    .evolve(name="handbook-with-temporary-licences")
)
"""The handbook's process with the temporary licence policy."""


# -- a short scenario -------------------------------------------------------------------------

START = datetime(2024, 5, 14, 9, 0, tzinfo=UTC)


def main() -> None:
    """Issue a temporary key during an incident and follow its reminders past the lockout."""
    clock = FakeClock(START)
    with IncidentFlow(
        process=LICENCE_PROCESS, clock=clock, entry_points=False, reminders=False
    ) as flow:
        incident = flow.declare(
            "Acme's instance reports 'license expired'",
            severity=Severity.MAJOR,
            customer_impact=False,
            by="alice",
            incident_id="inc-acme-licence",
        )
        incident_id = incident.id
        flow.assign(incident_id, Role.LEAD, "bob", by="alice")
        flow.acknowledge(incident_id, by="bob")
        flow.start_mitigation(incident_id, by="bob")
        print(f"== {_utc(clock.now())}: {incident.title} ({incident_id})")
        available = ISSUE_TEMPORARY_LICENCE in flow.available_actions(incident_id)
        print(f"  {ISSUE_TEMPORARY_LICENCE} available: {'yes' if available else 'no'}")

        clock.advance(minutes=20)
        incident = flow.transition(
            incident_id,
            ISSUE_TEMPORARY_LICENCE,
            by="carol",
            customer="acme",
            days="7",
            account="acme-admin",
        )
        licence = next(temporary_licences(incident))
        print(f"\n== {_utc(clock.now())}: carol issues a 7-day key for acme")
        print(f"  recorded: {dict(incident.team_actions[-1].arguments)}")
        print(f"  expires {_utc(licence.expires_at)}; lockout {_utc(licence.lockout_at)}")

        print(f"\n== {_utc(clock.now())}: a 30-day key is refused")
        try:
            flow.transition(
                incident_id, ISSUE_TEMPORARY_LICENCE, by="carol", customer="acme", days="30"
            )
        except TransitionRefused as refused:
            for requirement in refused.unmet:
                print(f"  refused, {requirement.name}: {requirement.reason}")
                print(f"    (handbook: {requirement.handbook_ref})")

        clock.advance(hours=2)
        incident = flow.resolve(incident_id, by="bob")
        print(f"\n== {_utc(clock.now())}: bob resolves the incident; it is {incident.phase}")

        moments = [due.due_at for due in LicenceExpiry().occurrences(incident, licence)]
        for moment in moments:
            clock.set(moment)
            print(f"\n== {_utc(clock.now())}: looking for due reminders")
            for reminder in flow.fire_reminders():
                print(f"  {reminder.reminder} for {reminder.recipient} ({reminder.person}):")
                print(f"    {reminder.message}")
        upcoming = flow.next_reminder(incident_id)
        print(f"\n== afterwards, next reminder: {upcoming.key if upcoming else 'none'}")


if __name__ == "__main__":
    main()
