"""The Bolt app: ``/incident`` commands and the declaration form, carried out on a flow.

Slack's half of the conversation is two kinds of request: the slash command ``/incident …``
(see :mod:`incident_flow_slack.commands`) and the submission of the declaration form it opens.
Both are answered here and only ever *write to the flow*: what Slack should show everyone (the
channel, the announcements) is done by the reactions plugin
(:class:`incident_flow_slack.reactions.SlackPlugin`) when the flow's delivery worker hands it
the new events. So a command never waits on Slack's Web API, and a Slack outage costs a late
announcement, never a lost command.

The incident a command is about is the one whose Slack channel it is typed in: the reactions
plugin records each channel it makes on the incident (``external_refs``: system ``slack``,
kind ``channel``), and :class:`ChannelIndex` maps channel ids back to open incidents.

Requests are verified by Bolt (the ``v0`` signature with the signing secret, timestamps at most
five minutes old), and a :class:`ReplayGuard` refuses a signed request that was seen before,
which Bolt alone would accept again within those five minutes.
"""

from __future__ import annotations

import concurrent.futures
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
from slack_bolt import Ack, App, BoltRequest, BoltResponse, Respond
from slack_bolt.authorization import AuthorizeResult
from slack_sdk import WebClient

from incident_flow.errors import (
    AdapterConfigError,
    IncidentFlowError,
    TransitionRefused,
    UnknownIncidentError,
    ValidationError,
)
from incident_flow.flow import MAX_TITLE, IncidentFlow
from incident_flow.model import Incident, Warning
from incident_flow_slack.commands import (
    COMMAND,
    Acknowledge,
    Assign,
    ChangeSeverity,
    Command,
    Declare,
    FalsePositive,
    Help,
    Mitigate,
    Recap,
    Resolve,
    Rollback,
    StatusUpdate,
    Triage,
    escape,
    help_text,
    parse,
)
from incident_flow_slack.config import SlackConfig
from incident_flow_slack.messages import recap, recap_blocks

__all__ = [
    "ACK_WITHIN",
    "DECLARE_CALLBACK",
    "EVENTS_PATH",
    "REPLAY_WINDOW",
    "ChannelIndex",
    "ReplayGuard",
    "build_app",
]

logger = logging.getLogger("incident_flow_slack.app")

EVENTS_PATH = "/slack/events"
"""Where Slack sends commands and form submissions (the manifest's request URLs)."""
ACK_WITHIN = 2.0
"""Seconds a command may take before Slack is told "working on it" and the answer follows
through the command's ``response_url``; Slack gives up on an answer after three."""
DECLARE_CALLBACK = "incident_declare"
"""The ``callback_id`` of the declaration form."""
REPLAY_WINDOW = 300.0
"""Seconds a request's timestamp stays acceptable: Slack's signature scheme allows five
minutes, and Bolt refuses older requests, so a replay guard needs to remember no longer."""
REPLAY_LIMIT = 10_000
"""Signatures a replay guard keeps at most; the oldest go first."""

_SOCKET_MODE = "socket_mode"
_SEVERITIES = (
    ("critical", "Critical: very high impact to customers, a full outage or a data breach"),
    ("major", "Major: significant impact, an important sub-system failing"),
    ("minor", "Minor: not an incident, goes to support"),
)
_FIELD_BLOCKS = {
    "title": "title",
    "severity": "severity",
    "customer_impact": "impact",
    "description": "description",
}
_BROKEN = (
    ":x: Something went wrong on our side and the command was not carried out; it was "
    "logged. Try again in a moment."
)


class ReplayGuard:
    """Refuses a signed request that was seen before.

    Slack signs ``v0:<timestamp>:<body>``; Bolt checks the signature and that the timestamp is
    within five minutes, but keeps no memory, so the same request sent again within those
    five minutes would be carried out twice. This remembers the signatures of requests that
    passed verification for ``window`` seconds after their timestamp (at most ``limit`` of
    them, oldest dropped first), and answers a repeat with 401, as Bolt answers a bad
    signature. Socket Mode requests are not signed and not checked.

    One guard protects one process: several processes behind a load balancer each remember
    only what they saw.
    """

    def __init__(
        self,
        *,
        window: float = REPLAY_WINDOW,
        limit: int = REPLAY_LIMIT,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not window > 0 or limit < 1:
            raise ValueError("a replay guard needs a window > 0 and a limit >= 1")
        self._window = window
        self._limit = limit
        self._clock = clock
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ReplayGuard(window={self._window:g}, remembered={len(self._seen)})"

    def first_time(self, signature: str, timestamp: str) -> bool:
        """Remember ``signature`` and say whether it was new (False: a replay)."""
        try:
            stamp = float(timestamp)
        except ValueError:
            stamp = self._clock()
        with self._lock:
            self._forget_old(self._clock() - self._window)
            if signature in self._seen:
                return False
            self._seen[signature] = stamp
            while len(self._seen) > self._limit:
                self._seen.popitem(last=False)
            return True

    def _forget_old(self, cutoff: float) -> None:
        while self._seen:
            signature, stamp = next(iter(self._seen.items()))
            if stamp >= cutoff:
                return
            del self._seen[signature]

    def middleware(
        self, req: BoltRequest, resp: BoltResponse, next: Callable[[], BoltResponse]
    ) -> BoltResponse:
        """Bolt middleware, run right after Bolt's signature check (``before_authorize``)."""
        if req.mode == _SOCKET_MODE:
            return next()
        signature = _header(req, "x-slack-signature")
        timestamp = _header(req, "x-slack-request-timestamp")
        if self.first_time(signature, timestamp):
            return next()
        logger.warning("refused a replayed Slack request (timestamp %s)", timestamp)
        return BoltResponse(status=401, body={"error": "invalid request"})


def _header(req: BoltRequest, name: str) -> str:
    values = req.headers.get(name) or [""]
    return values[0]


class ChannelIndex:
    """Which open incident a Slack channel belongs to.

    Built from the open incidents' ``slack``/``channel`` references and kept in memory; a
    channel that is not in it makes it read the open incidents again, since the channel may
    have been made a moment ago. Thread-safe.
    """

    def __init__(self, flow: IncidentFlow, *, system: str = "slack", kind: str = "channel"):
        self._flow = flow
        self._system = system
        self._kind = kind
        self._channels: dict[str, str] = {}
        self._lock = threading.Lock()

    def incident_for(self, channel: str) -> str | None:
        """The id of the open incident whose channel ``channel`` is, or None."""
        if not channel:
            return None
        with self._lock:
            found = self._channels.get(channel)
        if found is not None:
            return found
        self.refresh()
        with self._lock:
            return self._channels.get(channel)

    def refresh(self) -> None:
        """Read every open incident's channels again."""
        channels: dict[str, str] = {}
        for phase in self._flow.process.phases:
            if phase.terminal:
                continue
            for incident in self._flow.list(phase=phase.name):
                for channel in self._channels_of(incident):
                    channels[channel] = incident.id
        with self._lock:
            self._channels = channels

    def update(self, incident: Incident) -> None:
        """Take note of ``incident`` as it is now (its channels leave when it is over)."""
        closed = self._flow.process.is_terminal(incident.phase)
        with self._lock:
            for channel in self._channels_of(incident):
                if closed:
                    self._channels.pop(channel, None)
                else:
                    self._channels[channel] = incident.id

    def forget(self, incident_id: str) -> None:
        """Drop every channel of ``incident_id`` (it no longer exists)."""
        with self._lock:
            self._channels = {c: i for c, i in self._channels.items() if i != incident_id}

    def _channels_of(self, incident: Incident) -> list[str]:
        return [
            ref.external_id
            for ref in incident.external_refs
            if ref.system == self._system and ref.kind == self._kind
        ]


@attrs.frozen
class _Reply:
    """What a command answers: an ephemeral message, or the declaration form to open."""

    text: str
    blocks: Sequence[dict[str, Any]] | None = None
    form_title: str | None = None


class _Commands:
    """The listeners, with what they share."""

    def __init__(self, flow: IncidentFlow, index: ChannelIndex, ack_within: float) -> None:
        self.flow = flow
        self.index = index
        self.ack_within = ack_within
        self.pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=8, thread_name_prefix="incident-flow-slack-command"
        )

    # -- /incident ------------------------------------------------------------------------

    def command(
        self, ack: Ack, command: Mapping[str, Any], respond: Respond, client: WebClient
    ) -> None:
        """Answer ``/incident …`` within Slack's three seconds, whatever the flow's pace."""
        work = self.pool.submit(self.decide, command)
        try:
            reply = work.result(timeout=self.ack_within)
        except concurrent.futures.TimeoutError:
            ack(text=":hourglass_flowing_sand: Working on it…", response_type="ephemeral")
            reply = work.result()
            if reply.form_title is not None:
                # The trigger that opens a form lives three seconds: too late for it now.
                reply = _Reply(f"That took too long to open the form; try `{COMMAND}` again.")
            self.respond(respond, reply)
            return
        if reply.form_title is not None:
            ack()
            self.open_form(client, command.get("trigger_id", ""), reply.form_title, respond)
            return
        ack(text=reply.text, blocks=reply.blocks, response_type="ephemeral")

    def decide(self, command: Mapping[str, Any]) -> _Reply:
        """Parse the command and carry it out on the flow; every failure becomes an answer."""
        text = str(command.get("text") or "")
        user = str(command.get("user_id") or "")
        channel = str(command.get("channel_id") or "")
        try:
            return self._decide(parse(text), text, user, channel)
        except TransitionRefused as refusal:
            return _Reply(_refusal(refusal))
        except ValidationError as error:
            return _Reply(f":warning: {escape(str(error))}")
        except UnknownIncidentError as error:
            self.index.forget(error.incident_id)
            return _Reply(":warning: This channel's incident no longer exists.")
        except Exception:
            logger.exception("%s %r failed", COMMAND, _first_word(text))
            return _Reply(_BROKEN)

    def _decide(self, parsed: Command, text: str, user: str, channel: str) -> _Reply:
        if isinstance(parsed, Help):
            return _Reply(help_text())
        if isinstance(parsed, Declare):
            if not parsed.explicit and self.index.incident_for(channel) is not None:
                # In an incident's channel a bare word is a mistyped subcommand, not a title.
                return _Reply(help_text(unknown=_first_word(text)))
            return _Reply("", form_title=parsed.title)
        incident_id = self.index.incident_for(channel)
        if incident_id is None:
            usage = f"{COMMAND} {_first_word(text)}"
            return _Reply(
                f":information_source: `{escape(usage)}` works in an incident's channel, and "
                "this channel belongs to no open incident. Go to the incident's channel, or "
                f"declare one with `{COMMAND} <title>`.\n\n{help_text()}"
            )
        return self._carry_out(parsed, incident_id, user)

    def _carry_out(self, parsed: Command, incident_id: str, user: str) -> _Reply:
        flow = self.flow
        before = flow.get(incident_id)
        if isinstance(parsed, Recap):
            return _Reply(recap(before), blocks=recap_blocks(before))
        name = f"*{escape(incident_id)}*"
        if isinstance(parsed, Assign):
            person = parsed.user or user
            after = flow.assign(incident_id, parsed.role, person, by=user)
            title = flow.process.roles.get(parsed.role, parsed.role)
            done = f"<@{person}> is now the {escape(title)} of {name}."
        elif isinstance(parsed, Acknowledge):
            after = flow.acknowledge(incident_id, by=user)
            done = f"You own {name} now."
        elif isinstance(parsed, Triage):
            after = flow.triage(incident_id, by=user)
            done = f"{name} is {self._phase(after)}."
        elif isinstance(parsed, Mitigate):
            after = flow.start_mitigation(incident_id, by=user)
            done = f"{name} is {self._phase(after)}."
        elif isinstance(parsed, Rollback):
            after = flow.record_rollback(
                incident_id, by=user, outcome=parsed.outcome, succeeded=parsed.succeeded
            )
            verdict = {True: " (succeeded)", False: " (failed)", None: ""}[parsed.succeeded]
            done = f"Rollback{verdict} recorded on {name}."
        elif isinstance(parsed, StatusUpdate):
            after = flow.post_status_update(incident_id, parsed.text, phase=parsed.phase, by=user)
            post = after.status_updates[-1]
            done = f"Status update ({escape(post.phase)}) posted on {name}."
            done += "".join(f"\n:memo: {escape(finding.message)}" for finding in post.findings)
        elif isinstance(parsed, Resolve):
            after = flow.resolve(incident_id, by=user)
            done = f"{name} is {self._phase(after)}."
        elif isinstance(parsed, FalsePositive):
            after = flow.mark_false_positive(incident_id, reason=parsed.reason, by=user)
            done = f"{name} is marked a false positive."
        elif isinstance(parsed, ChangeSeverity):
            after = flow.change_severity(incident_id, parsed.severity, by=user)
            done = f"{name} is now {escape(str(after.severity))}."
        else:  # pragma: no cover - parse returns nothing else
            raise AssertionError(f"unhandled command {parsed!r}")
        self.index.update(after)
        return _Reply(":white_check_mark: " + done + _warnings(after.warnings, before.warnings))

    def _phase(self, incident: Incident) -> str:
        try:
            title = self.flow.process.phase(incident.phase).title or incident.phase
        except IncidentFlowError:
            title = incident.phase
        return f"now *{escape(title.lower())}*"

    # -- the declaration form --------------------------------------------------------------

    def open_form(self, client: WebClient, trigger_id: str, title: str, respond: Respond) -> None:
        """Open the declaration form; a failure is told to the user, never raised."""
        try:
            client.views_open(trigger_id=trigger_id, view=_form(title))
        except Exception as error:
            logger.warning("Slack did not open the declaration form: %s", error)
            self.respond(
                respond,
                _Reply(
                    ":x: Slack did not open the declaration form. Try again in a moment; if "
                    "Slack stays down, declare with `incident-flow` or the library."
                ),
            )

    def declare(self, ack: Ack, body: Mapping[str, Any], view: Mapping[str, Any]) -> None:
        """Declare the incident the form describes, or show what is wrong in the form."""
        user = str((body.get("user") or {}).get("id") or "")
        values = (view.get("state") or {}).get("values") or {}
        try:
            impact = _choice(values, "impact")
            if impact not in ("yes", "no"):
                ack(response_action="errors", errors={"impact": "Say whether customers are hit."})
                return
            incident = self.flow.declare(
                _text(values, "title"),
                severity=_choice(values, "severity"),
                customer_impact=impact == "yes",
                description=_text(values, "description"),
                by=user,
            )
        except ValidationError as error:
            block = _FIELD_BLOCKS.get(error.field or "", "title")
            ack(response_action="errors", errors={block: str(error)})
            return
        except Exception:
            logger.exception("declaring from the form failed")
            ack(response_action="errors", errors={"title": _BROKEN})
            return
        ack(response_action="update", view=_declared(incident))

    # -- answers ---------------------------------------------------------------------------

    @staticmethod
    def respond(respond: Respond, reply: _Reply) -> None:
        """Answer through the command's ``response_url``; a failure is logged, not raised."""
        try:
            sent = respond(text=reply.text, blocks=reply.blocks, response_type="ephemeral")
        except Exception as error:
            logger.warning("could not answer through the response_url: %s", error)
            return
        status = getattr(sent, "status_code", 200)
        if status != 200:
            logger.warning("Slack refused the answer through the response_url: HTTP %s", status)


def _first_word(text: str) -> str:
    words = text.split(None, 1)
    return words[0] if words else ""


def _refusal(refusal: TransitionRefused) -> str:
    action = refusal.action.replace("_", " ")
    lines = [
        f":no_entry: Cannot {escape(action)} *{escape(refusal.incident_id)}* now "
        f"(phase {escape(refusal.phase)}):"
    ]
    lines += [f"• `{escape(r.name)}`: {escape(r.reason)}" for r in refusal.unmet]
    return "\n".join(lines)


def _warnings(after: Sequence[Warning], before: Sequence[Warning]) -> str:
    return "".join(f"\n:warning: {escape(w.reason)}" for w in after[len(before) :])


def _plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text}


def _form(title: str) -> dict[str, Any]:
    """The declaration form: title, severity, customer impact and description."""
    title_input: dict[str, Any] = {
        "type": "plain_text_input",
        "action_id": "value",
        "max_length": MAX_TITLE,
    }
    if title:
        title_input["initial_value"] = title[:MAX_TITLE]
    return {
        "type": "modal",
        "callback_id": DECLARE_CALLBACK,
        "title": _plain("Declare an incident"),
        "submit": _plain("Declare"),
        "close": _plain("Cancel"),
        "blocks": [
            {
                "type": "input",
                "block_id": "title",
                "label": _plain("What is broken?"),
                "element": title_input,
            },
            {
                "type": "input",
                "block_id": "severity",
                "label": _plain("Severity"),
                "element": {
                    "type": "static_select",
                    "action_id": "value",
                    "placeholder": _plain("How bad is it?"),
                    "options": [
                        {"text": _plain(label), "value": value} for value, label in _SEVERITIES
                    ],
                },
            },
            {
                "type": "input",
                "block_id": "impact",
                "label": _plain("Are customers affected?"),
                "element": {
                    "type": "radio_buttons",
                    "action_id": "value",
                    "options": [
                        {"text": _plain("Yes"), "value": "yes"},
                        {"text": _plain("No"), "value": "no"},
                    ],
                },
            },
            {
                "type": "input",
                "block_id": "description",
                "optional": True,
                "label": _plain("What do you know so far?"),
                "element": {"type": "plain_text_input", "action_id": "value", "multiline": True},
            },
        ],
    }


def _declared(incident: Incident) -> dict[str, Any]:
    """What the form turns into once the incident is declared."""
    text = (
        f":rotating_light: *{escape(incident.id)}* declared: {escape(incident.title)} "
        f"({incident.severity}). Its channel is being made; you will be invited."
    )
    return {
        "type": "modal",
        "callback_id": f"{DECLARE_CALLBACK}_done",
        "title": _plain("Incident declared"),
        "close": _plain("Done"),
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}],
    }


def _state(values: Mapping[str, Any], block: str) -> Mapping[str, Any]:
    state = (values.get(block) or {}).get("value") or {}
    return state if isinstance(state, Mapping) else {}


def _text(values: Mapping[str, Any], block: str) -> str:
    return str(_state(values, block).get("value") or "")


def _choice(values: Mapping[str, Any], block: str) -> str:
    option = _state(values, block).get("selected_option") or {}
    return str(option.get("value") or "") if isinstance(option, Mapping) else ""


def build_app(
    flow: IncidentFlow,
    config: SlackConfig,
    *,
    socket_mode: bool = False,
    ack_within: float = ACK_WITHIN,
    replay_guard: ReplayGuard | None = None,
) -> App:
    """The Bolt app that answers ``/incident`` and its form by writing to ``flow``.

    Args:
        flow: where the commands go; its plugins (the reactions plugin among them) tell Slack.
        config: the bot token, the signing secret (not needed in Socket Mode) and the Web
            API's base URL.
        socket_mode: the app will be run by a Socket Mode handler, whose requests are not
            signed: no signature check, no replay guard.
        ack_within: seconds a command may take before Slack is told "working on it".
        replay_guard: the guard to use (a fresh one by default).

    Raises:
        AdapterConfigError: ``SLACK_SIGNING_SECRET`` is not set (and ``socket_mode`` is off).
    """
    if not socket_mode and config.signing_secret is None:
        raise AdapterConfigError(
            "SLACK_SIGNING_SECRET is not set; set it to the app's signing secret (Basic "
            "Information > App Credentials) so that requests from Slack can be verified",
            setting="SLACK_SIGNING_SECRET",
        )
    bot_token = config.bot_token

    def authorize(
        enterprise_id: str | None, team_id: str | None, user_id: str | None
    ) -> AuthorizeResult:
        # One workspace, one token: answered without auth.test, so that neither starting nor
        # a first command waits on Slack's Web API.
        return AuthorizeResult(
            enterprise_id=enterprise_id,
            team_id=team_id,
            user_id=user_id,
            bot_token=bot_token.reveal(),
        )

    guard = replay_guard if replay_guard is not None else ReplayGuard()
    signing_secret = config.signing_secret.reveal() if config.signing_secret else ""
    app = App(
        name="incident-flow-slack",
        signing_secret=signing_secret,
        client=WebClient(base_url=config.api_url, timeout=math.ceil(config.timeout)),
        authorize=authorize,
        before_authorize=None if socket_mode else guard.middleware,
        request_verification_enabled=not socket_mode,
        listener_executor=concurrent.futures.ThreadPoolExecutor(
            max_workers=16, thread_name_prefix="incident-flow-slack-listener"
        ),
    )
    commands = _Commands(flow, ChannelIndex(flow), ack_within)
    app.command(COMMAND)(commands.command)
    app.view(DECLARE_CALLBACK)(commands.declare)

    @app.error
    def log_error(error: Exception) -> None:
        # Bolt answers Slack with a bare 500; the details stay in the log.
        logger.error("unhandled error in the Slack app", exc_info=error)

    return app
