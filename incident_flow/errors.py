"""Every error incident_flow raises on purpose.

All of them subclass :class:`IncidentFlowError`, so one ``except`` catches anything the library
refuses. Each class's docstring says when it is raised. Errors about bad input also subclass the
fitting built-in (``ValueError``, ``TypeError``, ``LookupError``) so generic handlers keep working.
A refused or failed command never writes anything: the store is left exactly as it was.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from incident_flow.requirements import Requirement

__all__ = [
    "AdapterConfigError",
    "ConcurrencyConflict",
    "CorruptEventError",
    "DeliveryError",
    "DuplicateIncidentError",
    "IncidentFlowError",
    "InvalidActorError",
    "InvalidFieldError",
    "InvalidSeverityError",
    "InvalidTimestampError",
    "MinorIssueError",
    "PermanentDeliveryError",
    "PluginError",
    "ProcessDefinitionError",
    "RetryableDeliveryError",
    "SchemaVersionError",
    "StoreError",
    "TimeWentBackwardsError",
    "TimelineError",
    "TransitionRefused",
    "UnknownChecklistItemError",
    "UnknownEventTypeError",
    "UnknownIncidentError",
    "UnknownPhaseError",
    "UnknownRoleError",
    "ValidationError",
]


class IncidentFlowError(Exception):
    """Base class of every error raised by incident_flow."""


class ValidationError(IncidentFlowError, ValueError):
    """An argument of a public call is malformed; nothing was written.

    ``field`` names the argument at fault.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class InvalidFieldError(ValidationError):
    """A text or flag argument is empty, too long or of the wrong kind (an empty title, say)."""


class InvalidActorError(ValidationError, TypeError):
    """The ``by=`` of a command is not a non-empty string naming a person."""


class InvalidSeverityError(ValidationError):
    """A severity is not one the incident process knows (``critical`` or ``major``)."""


class MinorIssueError(InvalidSeverityError):
    """A minor (severity 2) issue was declared or an incident was downgraded to minor.

    The handbook keeps minor issues out of the incident process: they go through the usual
    support and feedback processes instead.
    """


class InvalidTimestampError(ValidationError):
    """An ``at=`` is naive (no timezone), not a datetime, or later than the clock's now."""


class TimeWentBackwardsError(InvalidTimestampError):
    """An ``at=`` is earlier than the incident's latest event: its time never goes back."""


class UnknownRoleError(ValidationError, LookupError):
    """A role name is not one of the process's roles."""


class UnknownChecklistItemError(ValidationError, LookupError):
    """A checklist item name is not on the incident's post-mortem checklist."""


class UnknownPhaseError(ValidationError, LookupError):
    """A phase name is not one of the process's phases (or status-page phases, for a post)."""


class TimelineError(ValidationError):
    """Raised when a timeline file for an audit is malformed: ``line`` (when known) and ``field``
    say where, and the message what a correct entry looks like."""

    def __init__(self, message: str, *, field: str | None = None, line: int | None = None) -> None:
        where = f"line {line}: " if line is not None else ""
        super().__init__(f"{where}{message}", field=field)
        self.line = line


class UnknownIncidentError(IncidentFlowError, LookupError):
    """No incident with this id exists in the store."""

    def __init__(self, incident_id: str) -> None:
        super().__init__(
            f"no incident with id {incident_id!r}; list incidents with flow.list() "
            "or `incident-flow list`"
        )
        self.incident_id = incident_id


class DuplicateIncidentError(IncidentFlowError):
    """An incident is declared with an id that is already taken."""


class TransitionRefused(IncidentFlowError):
    """A command is not allowed now; ``unmet`` lists every requirement that is not met.

    Nothing was written. Each entry of ``unmet`` is a
    :class:`~incident_flow.requirements.Requirement` with a stable ``name``, a ``reason`` a
    person can act on and the ``handbook_ref`` it comes from. The same list is available without
    trying, from :meth:`IncidentFlow.requirements <incident_flow.IncidentFlow.requirements>`.
    """

    def __init__(
        self, incident_id: str, action: str, phase: str, unmet: Sequence[Requirement]
    ) -> None:
        self.incident_id = incident_id
        self.action = action
        self.phase = phase
        self.unmet: tuple[Requirement, ...] = tuple(unmet)
        reasons = "; ".join(f"{r.name}: {r.reason}" for r in self.unmet)
        super().__init__(f"{action} refused for {incident_id} (phase {phase}): {reasons}")


class ConcurrencyConflict(IncidentFlowError):
    """Someone else appended to the incident first.

    Raised by a store when ``expected_version`` is stale. :class:`IncidentFlow` retries a command on
    the new state a few times (re-checking every guard) before it lets this through.
    """

    def __init__(self, incident_id: str, expected_version: int, actual_version: int) -> None:
        super().__init__(
            f"incident {incident_id} is at version {actual_version}, not {expected_version}: "
            "another writer committed first; reload it and decide again"
        )
        self.incident_id = incident_id
        self.expected_version = expected_version
        self.actual_version = actual_version


class ProcessDefinitionError(IncidentFlowError, ValueError):
    """A process is malformed: an unknown or unreachable phase, a transition out of a terminal
    phase, a guard that does not exist, a duplicate name. Raised when the process is built."""


class StoreError(IncidentFlowError):
    """The store cannot be read or written as asked (for example a database that is not ours)."""


class CorruptEventError(StoreError):
    """A stored event cannot be decoded; ``incident_id`` and ``version`` say which one."""

    def __init__(self, message: str, *, incident_id: str | None = None, version: int | None = None):
        where = f" (incident {incident_id}, version {version})" if incident_id is not None else ""
        super().__init__(message + where)
        self.incident_id = incident_id
        self.version = version


class UnknownEventTypeError(CorruptEventError):
    """A stored event names a type this version of incident_flow does not know."""


class SchemaVersionError(CorruptEventError):
    """A stored event was written by a newer schema than this version of incident_flow reads."""


class PluginError(IncidentFlowError):
    """A plugin cannot be registered: it misspells a hook, or two plugins share one name."""


class AdapterConfigError(IncidentFlowError, ValueError):
    """An adapter's setting is missing or malformed (an unset ``SLACK_BOT_TOKEN``, an
    Opsgenie region that does not exist). ``setting`` names it; the message says how to set it
    and never holds a secret's value."""

    def __init__(self, message: str, *, setting: str | None = None) -> None:
        super().__init__(message)
        self.setting = setting


class DeliveryError(IncidentFlowError):
    """Raised by a plugin's ``incident_flow_event`` to say how delivering an event failed.

    Any other exception is treated as a :class:`RetryableDeliveryError` with no hint.
    """


class RetryableDeliveryError(DeliveryError):
    """The delivery may succeed later (a timeout, an HTTP 5xx or 429): it is retried with
    backoff until the retry policy's attempts run out.

    ``retry_after`` (seconds), when given, is when the vendor asked to be tried again (an
    HTTP ``Retry-After`` header); the worker waits at least that long.
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        if retry_after is not None and not retry_after >= 0:
            raise InvalidFieldError(
                f"retry_after must be a number of seconds >= 0, not {retry_after!r}",
                field="retry_after",
            )
        self.retry_after = retry_after


class PermanentDeliveryError(DeliveryError):
    """Retrying cannot help (an HTTP 4xx other than 429, a channel that does not exist): the
    delivery is dead-lettered at once. Requeue it after fixing the cause."""
