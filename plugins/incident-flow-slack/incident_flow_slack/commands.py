"""What ``/incident …`` asks for: the text Slack sends, parsed into a command.

Parsing is pure (no flow, no Slack) so that every spelling is tested on its own; the Bolt app
(:mod:`incident_flow_slack.app`) finds the incident and carries the command out. Slack sends the
text after ``/incident`` as typed, except that a mention becomes ``<@U123|name>`` when the
command escapes users (the manifest asks for it), so a person is always known by their id.
"""

from __future__ import annotations

import re

import attrs

from incident_flow.errors import InvalidFieldError
from incident_flow.model import Role

__all__ = [
    "COMMAND",
    "SUBCOMMANDS",
    "USAGE_HINT",
    "Acknowledge",
    "Assign",
    "ChangeSeverity",
    "Command",
    "Declare",
    "FalsePositive",
    "Help",
    "Mitigate",
    "Recap",
    "Resolve",
    "Rollback",
    "StatusUpdate",
    "Triage",
    "UsageError",
    "escape",
    "help_text",
    "parse",
]

COMMAND = "/incident"
"""The one slash command the app answers."""


class UsageError(InvalidFieldError):
    """A subcommand was recognised but its arguments are missing or malformed (``/incident
    lead`` with nobody named). The message shows how to write it."""


@attrs.frozen
class Help:
    """``/incident help``, or an empty ``/incident``."""


@attrs.frozen
class Declare:
    """``/incident <title>`` or ``/incident declare <title>``: open the declaration form.

    ``explicit`` is true for the ``declare`` spelling. A bare title typed in an incident's
    channel is more likely a mistyped subcommand than a second incident, so the app answers it
    with help and only the explicit spelling declares from there.
    """

    title: str
    explicit: bool = False


@attrs.frozen
class Assign:
    """``/incident lead @user`` (and ``messenger``, ``owner``). ``user`` is a Slack user id,
    or None for ``me``: the person typing."""

    role: str
    user: str | None


@attrs.frozen
class Acknowledge:
    """``/incident ack``: the Incident Lead takes ownership."""


@attrs.frozen
class Triage:
    """``/incident triage``."""


@attrs.frozen
class Mitigate:
    """``/incident mitigate``: start mitigating."""


@attrs.frozen
class Rollback:
    """``/incident rollback [succeeded|failed] <outcome>``."""

    outcome: str
    succeeded: bool | None = None


@attrs.frozen
class StatusUpdate:
    """``/incident statuspage <phase> <text>``: a post for customers on the status page."""

    phase: str
    text: str


@attrs.frozen
class Resolve:
    """``/incident resolve``."""


@attrs.frozen
class FalsePositive:
    """``/incident false-positive <reason>``."""

    reason: str


@attrs.frozen
class ChangeSeverity:
    """``/incident severity <critical|major>``."""

    severity: str


@attrs.frozen
class Recap:
    """``/incident recap``: where the incident stands, for whoever just joined."""


Command = (
    Help
    | Declare
    | Assign
    | Acknowledge
    | Triage
    | Mitigate
    | Rollback
    | StatusUpdate
    | Resolve
    | FalsePositive
    | ChangeSeverity
    | Recap
)
"""Everything :func:`parse` returns."""

# Each subcommand with its usage and what it does; help is built from this, in this order.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "declare": ("declare <title>", "declare an incident (a bare `/incident <title>` does too)"),
    "lead": ("lead @user", "make someone the Incident Lead (`me` for yourself)"),
    "messenger": ("messenger @user", "make someone the Messenger"),
    "owner": ("owner @user", "make someone the resolution owner"),
    "ack": ("ack", "the Incident Lead takes ownership"),
    "triage": ("triage", "mark the incident triaged"),
    "mitigate": ("mitigate", "start mitigating (needs an acknowledged lead, and a messenger)"),
    "rollback": ("rollback [succeeded|failed] <outcome>", "record a rollback attempt"),
    "statuspage": (
        "statuspage <phase> <text>",
        "post a status-page update (phase: identified, investigating or resolved)",
    ),
    "resolve": ("resolve", "mark the incident resolved (the lead, after a status update)"),
    "false-positive": ("false-positive <reason>", "there was no incident after all"),
    "severity": ("severity <critical|major>", "change the severity"),
    "recap": ("recap", "where the incident stands"),
    "help": ("help", "this list"),
}

_ALIASES = {
    "new": "declare",
    "acknowledge": "ack",
    "triaged": "triage",
    "mitigating": "mitigate",
    "mitigation": "mitigate",
    "resolution-owner": "owner",
    "resolution_owner": "owner",
    "roll-back": "rollback",
    "status": "statuspage",
    "status-page": "statuspage",
    "resolved": "resolve",
    "false_positive": "false-positive",
    "falsepositive": "false-positive",
    "fp": "false-positive",
    "sev": "severity",
    "summary": "recap",
    "?": "help",
}

_ROLES = {"lead": Role.LEAD, "messenger": Role.MESSENGER, "owner": Role.RESOLUTION_OWNER}

USAGE_HINT = "<title> | lead @user | messenger @user | ack | triage | mitigate | resolve | help"
"""The usage hint Slack shows while ``/incident`` is typed (also in the manifest)."""

# <@U123>, <@U123|name>; ids start with U, or W on Enterprise Grid.
_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")
_USER_ID = re.compile(r"[UW][A-Z0-9]{2,}")


def parse(text: str) -> Command:
    """The command ``text`` (what follows ``/incident``) asks for.

    A first word that is not a subcommand starts a title: ``/incident Search is down``
    declares. Subcommands are matched without regard to case; a few common other spellings
    (``acknowledge``, ``fp``, ``status``) are accepted.

    Raises:
        UsageError: a subcommand's arguments are missing or malformed; the message shows
            how to write it.
    """
    words = text.split(None, 1)
    if not words:
        return Help()
    first = words[0].lower()
    rest = words[1].strip() if len(words) > 1 else ""
    name = _ALIASES.get(first, first)
    if name not in SUBCOMMANDS:
        return Declare(_unescape(text.strip()))
    if name == "help":
        return Help()
    if name == "declare":
        return Declare(_unescape(_required(rest, name)), explicit=True)
    if name in _ROLES:
        return Assign(_ROLES[name], _user(rest, name))
    if name == "rollback":
        return _rollback(_required(rest, name))
    if name == "statuspage":
        phase, _, body = _required(rest, name).partition(" ")
        if not body.strip():
            raise _usage(name, "say the status phase and then the text of the post")
        return StatusUpdate(phase.lower(), _unescape(body.strip()))
    if name == "false-positive":
        return FalsePositive(_unescape(_required(rest, name)))
    if name == "severity":
        level = _required(rest, name)
        if len(level.split()) != 1:
            raise _usage(name, "name one severity")
        return ChangeSeverity(level.lower())
    if rest:
        raise _usage(name, f"`{name}` takes nothing after it")
    simple: dict[str, Command] = {
        "ack": Acknowledge(),
        "triage": Triage(),
        "mitigate": Mitigate(),
        "resolve": Resolve(),
        "recap": Recap(),
    }
    return simple[name]


def help_text(unknown: str | None = None) -> str:
    """Every subcommand with its usage, for an ephemeral answer (Slack mrkdwn)."""
    lines = []
    if unknown:
        lines.append(f"I don't know `{escape(unknown)}`. Here is what `{COMMAND}` does:")
    else:
        lines.append(f"`{COMMAND}` runs an incident from Slack:")
    for usage, meaning in SUBCOMMANDS.values():
        lines.append(f"• `{COMMAND} {usage}`: {meaning}")
    lines.append(
        "Type the incident's commands in its channel; "
        f"`{COMMAND} <title>` and `{COMMAND} help` work anywhere."
    )
    return "\n".join(lines)


def escape(text: str) -> str:
    """``text`` with Slack's three control characters escaped, to show it as typed."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _unescape(text: str) -> str:
    # Slack escapes &, < and > in what people type; the flow keeps what they meant.
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _required(rest: str, name: str) -> str:
    if not rest:
        raise _usage(name, "something is missing")
    return rest


def _usage(name: str, problem: str) -> UsageError:
    usage = SUBCOMMANDS[name][0]
    return UsageError(f"{problem}: `{COMMAND} {usage}`", field=name)


def _user(rest: str, name: str) -> str | None:
    if rest.lower() == "me":
        return None
    match = _MENTION.fullmatch(rest)
    if match:
        return match.group(1)
    if _USER_ID.fullmatch(rest):
        return rest
    if not rest:
        raise _usage(name, "mention the person")
    raise _usage(
        name,
        "mention one person with @ (pick them from Slack's list, so that Slack sends who they are)",
    )


def _rollback(rest: str) -> Rollback:
    first, _, outcome = rest.partition(" ")
    verdicts = {"succeeded": True, "failed": False}
    if first.lower().rstrip(":,") in verdicts:
        if not outcome.strip():
            raise _usage("rollback", "say what happened after succeeded or failed")
        return Rollback(_unescape(outcome.strip()), verdicts[first.lower().rstrip(":,")])
    return Rollback(_unescape(rest))
