"""The hooks a plugin can implement. Every hook is named ``incident_flow_<moment>``.

Mark implementations with :data:`hookimpl`. An implementation may accept fewer arguments than
the spec lists, so new arguments never break an existing plugin. Each hook is documented, with an
example, in ``docs/hooks.md``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from incident_flow.comms import Rule
    from incident_flow.events import Event
    from incident_flow.flow import IncidentFlow
    from incident_flow.model import Incident
    from incident_flow.requirements import Context, Requirement

__all__ = [
    "hookimpl",
    "hookspec",
    "incident_flow_event",
    "incident_flow_requirements",
    "incident_flow_status_rules",
    "incident_flow_who_is_on_call",
]

PROJECT_NAME = "incident_flow"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
"""Marks a hook specification (used by incident_flow itself)."""

hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
"""Marks a plugin's hook implementation: ``@hookimpl def incident_flow_event(event): ...``."""


@hookspec
def incident_flow_event(
    event: Event, incident: Incident, key: str, flow: IncidentFlow | None
) -> None:
    """Notification: ``event`` was committed; ``incident`` is the incident right after it.

    Fires once per event per plugin, after the command's transaction committed, never before and
    never for a refused command. Calls for one plugin and one incident come in version order.
    Each plugin is called on its own thread, away from the caller of the command, at least once:
    a redelivery carries the same ``key``. A raise, or a call slower than the flow's
    ``delivery_timeout``, is recorded against that delivery and retried with backoff (see
    :meth:`IncidentFlow.deliveries <incident_flow.IncidentFlow.deliveries>`), without reaching
    the caller or any other plugin; raise
    :class:`~incident_flow.errors.PermanentDeliveryError` when a retry cannot help.

    :param event: the committed event (an instance of a class of :mod:`incident_flow.events`).
    :param incident: the incident as of ``event.version``.
    :param key: an idempotency key, the same on every redelivery of this event to this plugin.
    :param flow: the flow whose outbox is delivered, for the incident as it is now
        (``flow.get``), for recording what the plugin made outside
        (:meth:`~incident_flow.IncidentFlow.record_external`) and for commands; None only
        from a :class:`~incident_flow.delivery.DeliveryWorker` built without ``flow=``.
    :return: ignored.
    """


@hookspec
def incident_flow_requirements(
    incident: Incident, action: str, context: Context
) -> Iterable[Requirement] | None:
    """Policy: add requirements of your own to an action, before it is decided.

    Called for every command but ``declare``, and for every ``requirements`` and
    ``available_actions`` question, after the process's own guards are checked (but not when
    the action is not defined from the incident's phase: that refusal stands alone). Return the
    requirements that are *not* met (an empty iterable or None when all are). They are reported
    together with the process's own, and any of them refuses the command. Must be fast and
    free of side effects. A raise refuses nothing: it fails the command with
    :class:`~incident_flow.errors.PluginError`, writing nothing.

    :param incident: the incident before the action.
    :param action: the action's name, such as ``"resolve"``.
    :param context: the actor, the time and the command's arguments (``context.payload``).
    :return: the unmet requirements, or None.
    """


@hookspec
def incident_flow_status_rules() -> Iterable[Rule] | None:
    """Policy: add communication rules that every status-page post is checked against.

    Asked once per flow, the first time a post is checked; the rules are then kept. Each
    :class:`~incident_flow.comms.Rule` says whether a departure refuses the post
    (``refuses=True``) or is only recorded on it as a finding; the process's
    :class:`~incident_flow.comms.CommsPolicy` can override that by rule name. A rule's check
    that raises fails the post with :class:`~incident_flow.errors.PluginError`, writing nothing;
    a name that another rule already has fails it with
    :class:`~incident_flow.errors.ProcessDefinitionError`.

    :return: the rules to add, or None.
    """


@hookspec(firstresult=True)
def incident_flow_who_is_on_call(schedule: str | None, at: datetime) -> str | None:
    """Provider: who is on call for ``schedule`` at ``at``? The first non-None answer wins.

    Asked by :meth:`IncidentFlow.who_is_on_call <incident_flow.IncidentFlow.who_is_on_call>`
    (the handbook's ``/genie whoisoncall``). A raise reaches the caller of that method.

    :param schedule: the schedule or team to ask about, or None for the default one.
    :param at: the moment asked about (aware, UTC).
    :return: the person on call (a name or e-mail), or None to let another plugin answer.
    """
