"""The plugin manager: which plugins are installed, and calling their hooks.

Plugins come from the ``incident_flow`` entry-point group and from ``IncidentFlow(plugins=[...])``.
Entry points are loaded one at a time: one that fails to import, or misspells a hook, is reported
in :attr:`PluginRegistry.failures` and a log warning, and the others still load. A plugin passed
explicitly that cannot be registered raises :class:`~incident_flow.errors.PluginError`.

Environment:
    ``INCIDENT_FLOW_PLUGINS``: comma-separated entry-point names to load (empty: none); unset
    loads all. ``INCIDENT_FLOW_TRACE_HOOKS=1`` logs every hook call at DEBUG level.
"""

from __future__ import annotations

import logging
import os
import types
from collections.abc import Callable, Iterable
from datetime import datetime
from importlib.metadata import entry_points
from typing import Any

import attrs
import pluggy

from incident_flow import hookspecs
from incident_flow.comms import Rule
from incident_flow.errors import PluginError
from incident_flow.model import Incident
from incident_flow.requirements import Context, Requirement

__all__ = ["ENTRY_POINT_GROUP", "Notifier", "PluginLoadFailure", "PluginRegistry", "plugin_name"]

ENTRY_POINT_GROUP = "incident_flow"
logger = logging.getLogger("incident_flow.plugins")


@attrs.frozen
class PluginLoadFailure:
    """An entry-point plugin that was skipped, and why."""

    name: str
    error: str


_NOTIFY_ARGUMENTS = ("event", "incident", "key", "flow")


def _invoker(
    function: Callable[..., object], argnames: tuple[str, ...]
) -> Callable[[Any, Any, str, Any], object]:
    """A call taking (event, incident, key, flow) that passes the implementation what it asks
    for."""
    if argnames == _NOTIFY_ARGUMENTS:
        return function
    if argnames == ("event",):
        return lambda event, incident, key, flow: function(event)
    if argnames == ("event", "incident"):
        return lambda event, incident, key, flow: function(event, incident)
    if argnames == ("event", "incident", "key"):
        return lambda event, incident, key, flow: function(event, incident, key)
    positions = [_NOTIFY_ARGUMENTS.index(name) for name in argnames]
    return lambda *arguments: function(*[arguments[p] for p in positions])


@attrs.frozen
class Notifier:
    """One plugin's implementation of the notification hook, callable on its own."""

    plugin: str
    function: Callable[..., object]
    argnames: tuple[str, ...]
    invoke: Callable[[Any, Any, str, Any], object] = attrs.field(init=False, eq=False, repr=False)
    """``invoke(event, incident, key, flow)``: the implementation, given the arguments it
    takes."""

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "invoke", _invoker(self.function, self.argnames))


def plugin_name(plugin: object) -> str:
    """The stable name a plugin object is registered (and its deliveries recorded) under.

    ``plugin.incident_flow_name`` if set, else a module's ``__name__``, else the qualified
    name of the object's class.
    """
    explicit = getattr(plugin, "incident_flow_name", None)
    if isinstance(explicit, str) and explicit:
        return explicit
    if isinstance(plugin, types.ModuleType):
        return plugin.__name__
    cls = plugin if isinstance(plugin, type) else type(plugin)
    return f"{cls.__module__}.{cls.__qualname__}"


class PluginRegistry:
    """Registered plugins and fast, per-plugin access to their hooks."""

    def __init__(self, plugins: Iterable[object] = (), *, entry_points: bool = True) -> None:
        self.manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.manager.add_hookspecs(hookspecs)
        self.failures: list[PluginLoadFailure] = []
        self._notifiers: tuple[Notifier, ...] | None = None
        self._has_policies = False
        self._status_rules: tuple[Rule, ...] | None = None
        if os.environ.get("INCIDENT_FLOW_TRACE_HOOKS") == "1":
            self.manager.trace.root.setwriter(logger.debug)
            self.manager.enable_tracing()
        if entry_points:
            self._load_entry_points()
        for plugin in plugins:
            self.register(plugin)

    def _load_entry_points(self) -> None:
        wanted = os.environ.get("INCIDENT_FLOW_PLUGINS")
        allowed = None if wanted is None else {n.strip() for n in wanted.split(",") if n.strip()}
        for entry_point in entry_points(group=ENTRY_POINT_GROUP):
            if allowed is not None and entry_point.name not in allowed:
                continue
            try:
                self.register(entry_point.load(), name=entry_point.name)
            except Exception as error:
                failure = PluginLoadFailure(entry_point.name, f"{type(error).__name__}: {error}")
                self.failures.append(failure)
                logger.warning("plugin %s skipped: %s", failure.name, failure.error)

    def register(self, plugin: object, *, name: str | None = None) -> str:
        """Register ``plugin`` and return its name.

        Raises:
            PluginError: the name is taken, or a hook is misspelled or has unknown arguments.
        """
        name = name or plugin_name(plugin)
        if self.manager.get_plugin(name) is not None or self.manager.is_registered(plugin):
            raise PluginError(
                f"a plugin named {name!r} is already registered; give one of them a distinct "
                "`incident_flow_name` attribute"
            )
        try:
            self.manager.register(plugin, name=name)
        except pluggy.PluginValidationError as error:
            raise PluginError(f"plugin {name!r} is invalid: {error}") from error
        try:
            self.manager.check_pending()
        except pluggy.PluginValidationError as error:
            self.manager.unregister(name=name)
            raise PluginError(
                f"plugin {name!r} implements a hook that does not exist: {error}; "
                f"hooks are {', '.join(self.hook_names())}"
            ) from error
        self._notifiers = None
        self._status_rules = None
        self._has_policies = bool(self.manager.hook.incident_flow_requirements.get_hookimpls())
        return name

    @property
    def has_policies(self) -> bool:
        """True when a plugin implements ``incident_flow_requirements``."""
        return self._has_policies

    def hook_names(self) -> list[str]:
        """Names of every hook a plugin can implement."""
        return sorted(n for n in dir(hookspecs) if n.startswith(f"{hookspecs.PROJECT_NAME}_"))

    def names(self) -> list[str]:
        """Names of the registered plugins."""
        return [name for name, _ in self.manager.list_name_plugin()]

    @property
    def notifiers(self) -> tuple[Notifier, ...]:
        """Every implementation of ``incident_flow_event``, one per plugin."""
        if self._notifiers is None:
            impls = self.manager.hook.incident_flow_event.get_hookimpls()
            self._notifiers = tuple(
                Notifier(impl.plugin_name, impl.function, tuple(impl.argnames)) for impl in impls
            )
        return self._notifiers

    def requirements(self, incident: Incident, action: str, context: Context) -> list[Requirement]:
        """Unmet requirements that plugins add to ``action``.

        Raises:
            PluginError: a plugin raised; the command must not go ahead half-decided.
        """
        if not self._has_policies:
            return []
        caller = self.manager.hook.incident_flow_requirements
        try:
            results = caller(incident=incident, action=action, context=context)
        except Exception as error:
            raise PluginError(
                f"a requirements hook raised while deciding {action}: {error!r}"
            ) from error
        unmet: list[Requirement] = []
        for result in results:
            for requirement in result or ():
                if not isinstance(requirement, Requirement):
                    raise PluginError(
                        f"a requirements hook returned {requirement!r}, not a Requirement"
                    )
                unmet.append(requirement)
        return unmet

    def status_rules(self) -> tuple[Rule, ...]:
        """The communication rules plugins add (``incident_flow_status_rules``), in plugin order.

        Raises:
            PluginError: a plugin raised, or returned something that is not a
                :class:`~incident_flow.comms.Rule`.
        """
        if self._status_rules is None:
            caller = self.manager.hook.incident_flow_status_rules
            try:
                results = caller()
            except Exception as error:
                raise PluginError(f"a status rules hook raised: {error!r}") from error
            rules: list[Rule] = []
            for result in results:
                for rule in result or ():
                    if not isinstance(rule, Rule):
                        raise PluginError(f"a status rules hook returned {rule!r}, not a Rule")
                    rules.append(rule)
            self._status_rules = tuple(rules)
        return self._status_rules

    def who_is_on_call(self, schedule: str | None, at: datetime) -> str | None:
        """The first plugin's answer to who is on call, or None."""
        answer = self.manager.hook.incident_flow_who_is_on_call(schedule=schedule, at=at)
        return answer if isinstance(answer, str) else None
