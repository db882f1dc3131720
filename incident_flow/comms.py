"""The handbook's status-page communication rules, as code.

The handbook's "Messenger roles and responsibilities" section says how status-page posts for
customers are written: they "do not orient toward any specific region and remain relevant to a
global population (for example, use UTC timezone and don't say things like 'this morning')",
they are "succinct and informative", and the first post reports awareness of the incident and
tells customers to email support@sourcegraph.com with questions. Internal details (handles,
Slack channels, internal host names) have no place in a post customers read.

Each rule is a :class:`Rule`: a stable ``name``, a one-line ``title`` and a ``check`` that yields
one ``(message, excerpt)`` pair per departure it finds in a :class:`StatusPost`. A
:class:`CommsPolicy` holds the rules (:data:`HANDBOOK_RULES` by default, in this order):

=============================  ========  ==============================================
rule                           default   flags
=============================  ========  ==============================================
``utc_only``                   refuse    zone abbreviations (EST, PT next to a time, GMT),
                                         zone names ("Pacific time"), "local time", UTC
                                         offsets ("UTC+2", "14:30 +02:00") and clock
                                         times with no zone ("14:30" instead of
                                         "14:30 UTC")
``no_regional_words``          record    "this morning", "today", "tonight", "EOD",
                                         "business hours", "midnight" without UTC...
``succinct``                   record    a post longer than ``max_length`` characters
``first_post_names_support``   refuse    a first post that does not name the support
                                         address
``no_internal_details``        record    "@handles", "#slack-channels", internal host
                                         names ("db-1.internal", "localhost")
=============================  ========  ==============================================

**Refuse or record.** A finding of a refusing rule stops the post: the process refuses it
until the text is fixed. A finding of a recording rule lets the post go out and is kept on it
for the post-mortem. The handbook's two explicit instructions that a check can tell reliably
refuse: a time customers cannot read in their own zone is wrong information for most of
them, and a first post without the support address leaves customers with nowhere to ask.
The others record, because they are matters of judgement ("today" is harmless in "fixed
today at 14:30 UTC") or heuristics that can misfire, and a post held back during an
incident costs more than an imperfect one. :attr:`CommsPolicy.decisions` overrides the
default per rule name: ``"refuse"``, ``"record"``, or ``"off"`` to skip the rule.

**How ``utc_only`` reads times.** A clock time is ``14:30``, ``9:05:10``, ``2pm``, ``2 PM``,
``2:30 p.m.`` or the time of an ISO timestamp (``2024-05-01T14:30Z``). It is in UTC when
``UTC`` or ``Z`` follows it (``14:30 UTC``, ``14:30Z``, ``14:30 (UTC)``), when ``UTC``
precedes it (``UTC 14:30``), when it carries a zero offset (``+00:00``), or when it opens a
range whose end is in UTC (``14:30-15:00 UTC``, ``from 2pm to 3pm UTC``). Numbers that are
not clock times are left alone: versions (``3.30``, ``v5.2``), durations ("for 30 minutes"),
dates. Zone abbreviations match case-sensitively as whole words, so "et" in French or "pt"
inside a word never fire; the two-letter ones (ET, PT, CT, MT) are flagged only after a time
or a number ("2pm ET", "at 9 PT"), because alone they too often mean something else ("CT
logs"). Zone names match in any case: "Pacific time", "Eastern Standard", "Central European
Time", "local time"; a bare "central", "eastern", "mountain" or "pacific" only right after a
clock time ("14:30 Central"), never in "a central database".

Errors: a :class:`StatusPost` with a text that is not a non-blank string raises
:class:`~incident_flow.errors.InvalidFieldError` (``field="text"``); a malformed policy or
rule raises :class:`~incident_flow.errors.ProcessDefinitionError` naming the setting at fault,
when it is built; an unknown status phase raises :class:`~incident_flow.errors.UnknownPhaseError`.

The handbook's three example posts are :data:`TEMPLATES`; :func:`render_template` fills one in.
Every rendered template passes every handbook rule.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime
from types import MappingProxyType
from typing import Any, Literal, cast, get_args

import attrs

from incident_flow.errors import (
    InvalidFieldError,
    InvalidTimestampError,
    ProcessDefinitionError,
    UnknownPhaseError,
)
from incident_flow.model import Finding

__all__ = [
    "DECISIONS",
    "HANDBOOK_COMMS",
    "HANDBOOK_RULES",
    "MESSENGER_SECTION",
    "TEMPLATES",
    "AnnouncementDay",
    "Check",
    "CommsPolicy",
    "Decision",
    "Rule",
    "StatusPost",
    "Template",
    "render_template",
]

MESSENGER_SECTION = "Messenger roles and responsibilities"
"""The handbook section the communication rules come from."""

_SUPPORT_ADDRESS = "support@sourcegraph.com"
_MARKETING_CONTACT = "@marketing-incident"

Decision = Literal["refuse", "record", "off"]
"""What a policy does with a rule's findings: refuse the post, record them on it, or skip
the rule."""

DECISIONS: tuple[Decision, ...] = get_args(Decision)
"""Every :data:`Decision`, in order of severity."""


def _blank(value: object) -> bool:
    return not isinstance(value, str) or not value.strip()


# -- the post ------------------------------------------------------------------------------------


def _check_text(instance: object, attribute: attrs.Attribute[str], value: object) -> None:
    if _blank(value):
        raise InvalidFieldError(
            f"a status post's text must be a non-empty string, not {value!r}; write what "
            "customers should know",
            field="text",
        )


def _check_phase(instance: object, attribute: attrs.Attribute[str], value: object) -> None:
    if _blank(value):
        raise InvalidFieldError(
            f"a status post's phase must be a status phase's name (such as 'identified'), "
            f"not {value!r}",
            field="phase",
        )


def _check_first(instance: object, attribute: attrs.Attribute[bool], value: object) -> None:
    if not isinstance(value, bool):
        raise InvalidFieldError(
            f"first must be True (the incident's first post) or False, not {value!r}",
            field="first",
        )


def _check_at(instance: object, attribute: attrs.Attribute[datetime | None], value: object) -> None:
    if value is None:
        return
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise InvalidTimestampError(
            f"at must be a timezone-aware datetime or None, not {value!r}; use datetime.now(UTC)",
            field="at",
        )


@attrs.frozen
class StatusPost:
    """A post about to be published (or replayed): what the rules look at.

    Raises:
        InvalidFieldError: ``text`` or ``phase`` is not a non-blank string, or ``first`` is
            not a bool.
        InvalidTimestampError: ``at`` is not an aware datetime (or None).
    """

    text: str = attrs.field(validator=_check_text)
    """What customers will read."""
    phase: str = attrs.field(validator=_check_phase)
    """The process's status phase, already mapped (``identified``, ``investigating``...)."""
    first: bool = attrs.field(validator=_check_first)
    """True when it is the incident's first post."""
    at: datetime | None = attrs.field(default=None, validator=_check_at)
    """When it is (or was) posted, when known."""


# -- rules ---------------------------------------------------------------------------------------

Check = Callable[[StatusPost, "CommsPolicy"], Iterable[tuple[str, str]]]
"""A rule's check: yields one ``(message, excerpt)`` per departure, in text order. The message
is one sentence saying what is wrong and what to write instead; the excerpt is the words of the
post at fault (empty when the rule cannot point at words)."""


def _rule_name(instance: object, attribute: attrs.Attribute[str], value: object) -> None:
    if not isinstance(value, str) or not value.isidentifier():
        raise ProcessDefinitionError(
            f"a rule's name must be an identifier such as 'utc_only', not {value!r}"
        )


def _rule_title(instance: object, attribute: attrs.Attribute[str], value: object) -> None:
    if _blank(value):
        raise ProcessDefinitionError(f"a rule's title must be a non-empty line, not {value!r}")


def _rule_check(instance: object, attribute: attrs.Attribute[Check], value: object) -> None:
    if not callable(value):
        raise ProcessDefinitionError(
            f"a rule's check must be callable as check(post, policy), not {value!r}"
        )


def _rule_refuses(instance: object, attribute: attrs.Attribute[bool], value: object) -> None:
    if not isinstance(value, bool):
        raise ProcessDefinitionError(f"a rule's refuses must be True or False, not {value!r}")


@attrs.frozen
class Rule:
    """A communication rule: its check yields one ``(message, excerpt)`` per departure.

    Raises:
        ProcessDefinitionError: ``name`` is not an identifier, ``title`` is blank, ``check``
            is not callable or ``refuses`` is not a bool.
    """

    name: str = attrs.field(validator=_rule_name)
    """Stable identifier, such as ``utc_only``; findings carry it."""
    title: str = attrs.field(validator=_rule_title)
    """One line for docs and the CLI."""
    check: Check = attrs.field(validator=_rule_check)
    refuses: bool = attrs.field(default=False, validator=_rule_refuses)
    """The default treatment of a departure: refuse the post (True) or record it (False)."""
    handbook_ref: str = MESSENGER_SECTION
    """The handbook section the rule comes from."""


# Text is matched lower-cased where case does not matter (the same length as the post, so
# positions agree), and as written where it does (zone abbreviations, Slack channels). For
# speed, patterns start with a literal where they can (a search then skips to it), whether a
# match starts a word is checked in Python rather than with a look-behind (which would be tried
# at every position), and a pattern of many words runs only when one of its words is in the
# post at all (a few substring tests).


def _lower(text: str) -> str:
    """``text`` lower-cased, one character for one, so positions in both agree."""
    low = text.lower()
    if len(low) != len(text):  # a few characters lower-case to two ("İ")
        low = "".join(c if len(c.lower()) != 1 else c.lower() for c in text)
    return low


def _is_word(char: str) -> bool:
    return char.isalnum() or char == "_"


def _starts_word(text: str, start: int) -> bool:
    return start == 0 or not _is_word(text[start - 1])


def _mentions(low: str, words: tuple[str, ...]) -> bool:
    """True when one of ``words`` occurs in ``low``: may a pattern made of them match?"""
    return any(map(low.__contains__, words))


# utc_only ----------------------------------------------------------------------------------------

_ZONE_ABBREVIATIONS = frozenset(
    {
        *("AKST", "AKDT", "HST", "EST", "EDT", "CST", "CDT", "MST", "MDT", "PST", "PDT"),
        *("BST", "CET", "CEST", "EET", "EEST", "WET", "IST", "JST", "KST", "SGT", "HKT"),
        *("AEST", "AEDT", "ACST", "ACDT", "AWST", "NZST", "NZDT", "GMT"),
    }
)
_SHORT_ZONES = frozenset({"ET", "PT", "CT", "MT"})
_ABBREVIATION = "|".join(sorted(_ZONE_ABBREVIATIONS | _SHORT_ZONES, key=len, reverse=True))
_SIGN = "+\u2212-"  # plus, minus sign, hyphen-minus
_ZONE_WORDS = ("eastern", "central", "mountain", "pacific")
_TIME = r"(?:\s+(?:standard|daylight(?:\s+saving)?))?\s+time"
_ZONE_NAMES = (
    *(rf"{word}(?:{_TIME}|\s+(?:standard|daylight))" for word in _ZONE_WORDS),
    *(rf"{word}{_TIME}" for word in ("atlantic", "alaska", "hawaii")),
    r"central\s+european(?:\s+summer)?\s+time",
    r"eastern\s+european(?:\s+summer)?\s+time",
    r"western\s+european(?:\s+summer)?\s+time",
    r"greenwich\s+mean\s+time",
    r"british\s+summer\s+time",
    *(rf"{word}\s+standard\s+time" for word in ("india", "indian", "japan", "korea", "china")),
    r"singapore\s+standard\s+time",
    r"local\s+time",
)
# Every zone name starts with one of these ("india" also starts "indian").
_ZONE_FIRST_WORDS = (
    *_ZONE_WORDS,
    *("atlantic", "alaska", "hawaii", "western", "greenwich", "british", "india", "japan"),
    *("korea", "china", "singapore", "local"),
)
_NAMED_OFFSETS = tuple(
    rf"{name}\s?[{_SIGN}][0-9]{{1,2}}(?::?[0-9]{{2}})?(?![0-9])" for name in ("utc", "gmt")
)
# Every zone name contains one of these.
_ZONE_LAST_WORDS = ("time", "standard", "daylight")
# Lower-cased text: zone names and "local time", matched where a first word occurs; "UTC+2";
# "GMT+1".
_ZONE_NAME = re.compile(rf"(?:{'|'.join(_ZONE_NAMES)})(?!\w)")
_OFFSET_SCANS = tuple(re.compile(offset) for offset in _NAMED_OFFSETS)
# Text as written: zone abbreviations.
_ABBREVIATION_SCAN = re.compile(rf"(?:{_ABBREVIATION})(?!\w)")
# Lower-cased text: a clock time ("14:30", "9:05:10", "2pm", "2:30 p.m."); whether it starts
# a word and its hour are judged in Python.
_AM_PM = r"\s?(?:[ap]\.m\.|[ap]\.?m(?!\w))"
_CLOCK_24 = r":[0-5][0-9](?::[0-5][0-9](?:\.[0-9]+)?)?(?![0-9])"
_CLOCK_SCAN = re.compile(
    rf"[0-9][0-9]?(?:(?P<minutes>{_CLOCK_24})(?P<ampm>{_AM_PM})?"
    rf"|(?:\.[0-5][0-9])?(?P<ampm_only>{_AM_PM}))"
)
# Text as written, right after a clock time: what zone it is in, if any.
_AFTER_CLOCK = re.compile(
    r"\s?\(?(?:"
    rf"(?P<named_offset>(?i:{'|'.join(_NAMED_OFFSETS)}))"
    r"|(?P<utc>(?i:utc)|Z)(?!\w)"
    rf"|(?P<abbreviation>{_ABBREVIATION})(?!\w)"
    rf"|(?P<zone>(?i:{'|'.join((*_ZONE_NAMES, *_ZONE_WORDS))}))(?!\w)"
    r")"
    # A range whose end is in UTC: "14:30-15:10 UTC", "from 2pm to 3pm UTC".
    r"|(?P<range>\s*(?:[-\u2013\u2014]|(?i:to|and|until|till|through|thru)(?!\w))\s*"
    rf"[0-9][0-9]?(?:(?:\.[0-5][0-9])?(?i:{_AM_PM})|{_CLOCK_24}(?i:{_AM_PM})?)"
    r"\s?\(?(?:(?i:utc)|Z)(?!\w))"
    rf"|\s?(?P<offset>[{_SIGN}][0-9]{{2}}(?P<colon>:?)(?P<offset_minutes>[0-9]{{2}})?)(?![0-9])"
)
_UTC_BEFORE = re.compile(r"utc\s?\Z")
_ZERO = re.compile(rf"[{_SIGN}]0*(?::?0*)?\Z")

_EXAMPLE = "for example 14:30 UTC"


def _zone_message(words: str) -> str:
    return f"'{words}' is a regional time zone; give times in UTC ({_EXAMPLE})"


def _offset_message(words: str) -> str:
    return f"'{words}' is an offset from UTC; convert the time to UTC and write that ({_EXAMPLE})"


def _local_message(words: str) -> str:
    return f"'{words}' differs for every reader; give the time in UTC ({_EXAMPLE})"


def _is_utc_offset(words: str) -> bool:
    """True for a zero offset from UTC ("UTC+0", "UTC-00:00"): that is UTC."""
    return words[:3].lower() == "utc" and _ZERO.match(words[3:].lstrip()) is not None


def _clock_time(low: str, match: re.Match[str]) -> bool:
    """True when ``match`` (of :data:`_CLOCK_SCAN`) is a clock time, not part of a number."""
    start = match.start()
    if start:
        before = low[start - 1]
        # Only the T of an ISO timestamp may come right before a time: 2024-05-01T14:30Z.
        if (_is_word(before) or before in ".:") and not (
            before == "t" and start > 1 and low[start - 2].isdigit()
        ):
            return False
    digits = low[start : start + 2]
    hour = int(digits if digits[-1].isdigit() else digits[0])
    if match["minutes"] is None or match["ampm"] is not None:
        return 1 <= hour <= 12
    return hour <= 23


def _judge_clock(text: str, low: str, match: re.Match[str]) -> tuple[tuple[str, str] | None, int]:
    """Judge the clock time ``match`` by what follows (or precedes) it.

    Returns the finding (None when the time is in UTC) and where the time and its zone end.
    """
    end = match.end()
    after = _AFTER_CLOCK.match(text, end)
    kind = after.lastgroup if after is not None else None
    if after is not None and kind != "range":
        words = after[kind or 0]
        if kind == "utc":
            return None, after.end()
        if kind == "named_offset":
            if _is_utc_offset(words):
                return None, after.end()
            return (_offset_message(words), words), after.end()
        if kind == "abbreviation":
            return (_zone_message(words), words), after.end()
        if kind == "zone":
            if words[:1].lower() == "l":
                return (_local_message(words), words), after.end()
            return (_zone_message(words), words), after.end()
        # A numeric offset: a plus sign, four digits or an ISO time make it one; otherwise
        # "14:30-15:00" is a range whose end has no zone either.
        iso = match["minutes"] is not None and (
            len(match["minutes"]) > 3 or low[match.start() - 1 : match.start()] == "t"
        )
        if words[0] == "+" or iso or (after["offset_minutes"] and not after["colon"]):
            if _ZERO.match(words):
                return None, after.end()
            return (_offset_message(words), words), after.end()
    if kind == "range" or _UTC_BEFORE.search(low, max(0, match.start() - 4), match.start()):
        return None, end
    words = text[match.start() : end]
    return (f"'{words}' has no time zone; add UTC: {words} UTC", words), end


def _zone_names(low: str) -> list[re.Match[str]]:
    """Every zone name in ``low`` ("pacific time"), found by its first word."""
    found: list[re.Match[str]] = []
    if not _mentions(low, _ZONE_LAST_WORDS):
        return found
    for word in _ZONE_FIRST_WORDS:
        start = low.find(word)
        while start >= 0:
            match = _ZONE_NAME.match(low, start)
            if match is not None:
                found.append(match)
            start = low.find(word, start + 1)
    return found


def _check_utc_only(post: StatusPost, policy: CommsPolicy) -> Iterator[tuple[str, str]]:
    """Times in UTC only: no other zones, no offsets, no clock time without its zone."""
    text = post.text
    low = _lower(text)
    # (start, tie-break, kind, match), in text order; a named offset wins over the
    # abbreviation it starts with ("GMT+1" over "GMT").
    tokens: list[tuple[int, int, str, re.Match[str]]] = []
    zones = _zone_names(low)
    for scan in _OFFSET_SCANS:
        zones.extend(scan.finditer(low))
    for match in zones:
        if _starts_word(low, match.start()):
            tokens.append((match.start(), 0, "zone", match))
    for match in _ABBREVIATION_SCAN.finditer(text):
        start = match.start()
        if not _starts_word(text, start):
            continue
        if match.group() in _SHORT_ZONES:
            # "ET", "PT", "CT", "MT" only right after a number: "9 PT", "2pm ET" (the latter
            # is judged with its clock time).
            before = text[max(0, start - 2) : start].rstrip()
            if not before or not before[-1].isdigit():
                continue
        tokens.append((start, 1, "abbreviation", match))
    for match in _CLOCK_SCAN.finditer(low):
        if _clock_time(low, match):
            tokens.append((match.start(), 2, "clock", match))
    if not tokens:
        return
    tokens.sort(key=lambda token: token[:2])
    done = 0  # the end of the text judged so far
    for start, _, kind, match in tokens:
        if start < done:
            continue
        done = match.end()
        words = text[start:done]
        if kind == "clock":
            finding, done = _judge_clock(text, low, match)
            if finding is not None:
                yield finding
        elif kind == "abbreviation" and words == "GMT":
            yield (
                (
                    f"'GMT' is the time of one region (the UK in winter); give times in UTC "
                    f"({_EXAMPLE})"
                ),
                words,
            )
        elif kind == "abbreviation":
            yield _zone_message(words), words
        elif words[:1].lower() == "l":
            yield _local_message(words), words
        elif any(char.isdigit() for char in words):
            if not _is_utc_offset(words):
                yield _offset_message(words), words
        else:
            yield _zone_message(words), words


# no_regional_words -------------------------------------------------------------------------------

_DAY_PART = r"\s+(?:morning|afternoon|evening)"
# Lower-cased text; each alternative starts with its own letter.
_REGIONAL_SCAN = re.compile(
    r"(?:"
    rf"t(?:his(?:{_DAY_PART}|\s+weekend)|onight|oday"
    rf"|omorrow(?:{_DAY_PART}|\s+night)?|he\s+weekend)"
    rf"|yesterday(?:{_DAY_PART})?"
    rf"|in\s+the{_DAY_PART}"
    r"|o(?:vernight|ver\s+the\s+weekend)"
    r"|l(?:ast\s+(?:night|weekend)|unch\s?time)"
    r"|n(?:ext\s+weekend|oon)"
    rf"|e(?:nd\s+of\s+(?:the\s+)?(?:business\s+)?day|arly\s+in\s+the{_DAY_PART}|od)"
    r"|c(?:lose\s+of\s+business|ob)"
    r"|business\s+hours"
    r"|midnight"
    r")(?!\w)"
)
# Every alternative above contains one of these.
_REGIONAL_HINTS = (
    *("morning", "afternoon", "evening", "night", "day", "tomorrow", "weekend"),
    *("business", "lunch", "noon", "eod", "cob"),
)
_UTC_AFTER = re.compile(r"\s?\(?utc(?!\w)")
_UTC_JUST_BEFORE = re.compile(r"utc\s?\(?\Z")


def _check_no_regional_words(post: StatusPost, policy: CommsPolicy) -> Iterator[tuple[str, str]]:
    """No words that assume where the reader is: "this morning", "tonight", "EOD"..."""
    text = post.text
    low = _lower(text)
    if not _mentions(low, _REGIONAL_HINTS):
        return
    for match in _REGIONAL_SCAN.finditer(low):
        start, end = match.span()
        if not _starts_word(low, start):
            continue
        words = text[start:end]
        key = match.group()
        if key in ("eod", "cob") and words not in ("EOD", "COB"):
            continue  # abbreviations count in capitals only
        if key in ("midnight", "noon"):
            if _UTC_AFTER.match(low, end) or _UTC_JUST_BEFORE.search(low, max(0, start - 5), start):
                continue
            utc = "00:00 UTC" if key == "midnight" else "12:00 UTC"
            yield f"'{words}' depends on the reader's time zone; write {utc} instead", words
        else:
            yield (
                (
                    f"'{words}' depends on where the reader is; give a UTC time or date instead "
                    "(for example 2024-05-01 14:30 UTC)"
                ),
                words,
            )


# succinct ----------------------------------------------------------------------------------------


def _check_succinct(post: StatusPost, policy: CommsPolicy) -> Iterator[tuple[str, str]]:
    """Succinct: no longer than the policy's ``max_length`` characters."""
    length = len(post.text)
    if length > policy.max_length:
        yield (
            (
                f"the post is {length} characters, over the limit of {policy.max_length}; keep "
                "what is affected, what is being done and when the next update comes"
            ),
            "",
        )


# first_post_names_support ------------------------------------------------------------------------


def _check_first_post_names_support(
    post: StatusPost, policy: CommsPolicy
) -> Iterator[tuple[str, str]]:
    """The first post tells customers to email the support address with questions."""
    address = policy.support_address
    if post.first and address.casefold() not in post.text.casefold():
        yield (
            (
                f"the first post must tell customers where to ask; add 'If you have any questions, "
                f"email {address}.'"
            ),
            "",
        )


# no_internal_details -----------------------------------------------------------------------------

# Text as written: @handles (not the @ of an e-mail address such as support@sourcegraph.com)
# and #slack-channels (lower case, as Slack names them; not C#, #123 or a URL's #fragment).
_HANDLE_SCANS = (
    re.compile(r"@[A-Za-z](?:[\w-]|\.(?=\w))*"),
    re.compile(r"#[a-z][a-z0-9_-]*(?!\w)"),
)
_NOT_BEFORE_HANDLE = frozenset(".@+-")
_NOT_BEFORE_CHANNEL = frozenset("&#/")
# Lower-cased text: the end of an internal host name, and localhost.
_HOST_SCANS = (
    re.compile(r"\.(?:internal|local|corp|lan|intranet)(?![\w-])(?!\.[a-z0-9])"),
    re.compile(r"localhost(?::[0-9]+)?(?![\w.-])"),
)
_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-.")


def _check_no_internal_details(post: StatusPost, policy: CommsPolicy) -> Iterator[tuple[str, str]]:
    """No internal handles, Slack channels or host names in a post customers read."""
    text = post.text
    found: list[tuple[int, str, str]] = []
    for match in (*_HANDLE_SCANS[0].finditer(text), *_HANDLE_SCANS[1].finditer(text)):
        start = match.start()
        before = text[start - 1] if start else " "
        words = match.group()
        if words[0] == "@":
            if _is_word(before) or before in _NOT_BEFORE_HANDLE:
                continue
            message = (
                f"'{words}' is an internal handle customers cannot reach; leave it out or say "
                "'our team'"
            )
        else:
            if _is_word(before) or before in _NOT_BEFORE_CHANNEL:
                continue
            message = (
                f"'{words}' is an internal Slack channel customers cannot see; leave it out of "
                "the status page"
            )
        found.append((start, message, words))
    low = _lower(text)
    for match in (*_HOST_SCANS[0].finditer(low), *_HOST_SCANS[1].finditer(low)):
        start, end = match.span()
        if low[start] == ".":  # walk back over the host name's labels
            while start and low[start - 1] in _HOST_CHARS:
                start -= 1
            while start < match.start() and low[start] in ".-":
                start += 1
            if start == match.start():
                continue
        if start and (_is_word(low[start - 1]) or low[start - 1] in "@."):
            continue
        words = text[start:end]
        message = (
            f"'{words}' is an internal host name; name the affected service as customers know "
            "it instead (for example 'search')"
        )
        found.append((start, message, words))
    found.sort(key=lambda item: item[0])
    for _, message, words in found:
        yield message, words


HANDBOOK_RULES: tuple[Rule, ...] = (
    Rule(
        "utc_only",
        "Give times in UTC only: no other zones, no offsets, no time without UTC",
        _check_utc_only,
        refuses=True,
    ),
    Rule(
        "no_regional_words",
        "No words that assume the reader's region or day: 'this morning', 'tonight', 'EOD'",
        _check_no_regional_words,
    ),
    Rule(
        "succinct",
        "Be succinct: no longer than the policy's max_length characters",
        _check_succinct,
    ),
    Rule(
        "first_post_names_support",
        "The first post tells customers to email the support address with questions",
        _check_first_post_names_support,
        refuses=True,
    ),
    Rule(
        "no_internal_details",
        "No internal handles, Slack channels or host names in a customer post",
        _check_no_internal_details,
    ),
)
"""The handbook's rules, in the order findings are reported."""


# -- the policy ----------------------------------------------------------------------------------


def _policy_error(message: str) -> ProcessDefinitionError:
    return ProcessDefinitionError(f"comms policy: {message}")


def _announcement_day(instance: object, attribute: attrs.Attribute[date], value: object) -> None:
    if not isinstance(value, date) or isinstance(value, datetime):
        raise _policy_error(
            f"an announcement day must be a date (a UTC calendar day), not {value!r}; use "
            "datetime.date(2024, 5, 1)"
        )


def _announcement_text(instance: object, attribute: attrs.Attribute[str], value: object) -> None:
    if _blank(value):
        raise _policy_error(
            f"an announcement day's {attribute.name} must be a non-empty string, not {value!r}"
        )


@attrs.frozen
class AnnouncementDay:
    """A big announcement day (funding, product launch, campaign launch).

    On such a day every incident warrants marketing's immediate attention: ``contact`` is told
    at once.

    Raises:
        ProcessDefinitionError: ``day`` is not a date, or ``name`` or ``contact`` is blank.
    """

    day: date = attrs.field(validator=_announcement_day)
    """A UTC calendar date."""
    name: str = attrs.field(validator=_announcement_text)
    """What is announced, such as "Series D announcement"."""
    contact: str = attrs.field(default=_MARKETING_CONTACT, validator=_announcement_text)
    """Who in marketing must be told at once."""


def _sequence(value: object, name: str, kind: str) -> tuple[Any, ...]:
    """``value`` as a tuple; a single item or a non-sequence is refused, naming ``name``."""
    if isinstance(value, (str, Rule, AnnouncementDay)) or not isinstance(value, Iterable):
        raise _policy_error(f"{name} must be a sequence of {kind}, not {value!r}")
    return tuple(value)


def _rules(value: Iterable[Rule]) -> tuple[Rule, ...]:
    return _sequence(value, "rules", "Rule objects")


def _groups(value: Iterable[str] | str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)  # one group
    return _sequence(value, "release_pause_groups", "group names such as '@cs'")


def _days(value: Iterable[AnnouncementDay]) -> tuple[AnnouncementDay, ...]:
    return _sequence(value, "announcement_days", "AnnouncementDay objects")


def _decisions(value: Mapping[str, Decision]) -> Mapping[str, Decision]:
    if not isinstance(value, Mapping):
        raise _policy_error(
            f"decisions must map rule names to refuse, record or off, not {value!r}; for "
            "example {'succinct': 'off'}"
        )
    return MappingProxyType(dict(value))


def _aliases(value: Mapping[str, str]) -> Mapping[str, str]:
    if not isinstance(value, Mapping):
        raise _policy_error(
            f"phase_aliases must map phase names to status phases, not {value!r}; for example "
            "{'monitoring': 'investigating'}"
        )
    aliases: dict[str, str] = {}
    for alias, target in value.items():
        if _blank(alias) or _blank(target):
            raise _policy_error(
                f"phase_aliases must map non-empty names to non-empty names, not "
                f"{alias!r}: {target!r}"
            )
        aliases[alias.strip().lower()] = target.strip().lower()
    return MappingProxyType(aliases)


@attrs.frozen
class CommsPolicy:
    """The communication rules a process checks status-page posts against, and their settings.

    Raises:
        ProcessDefinitionError: a setting is malformed (the message names it): ``max_length``
            not an int of at least 20, ``support_address`` without "@", a decision for a rule
            the policy does not have or not one of refuse/record/off, two rules with one
            name, two announcement days on one date...
    """

    support_address: str = _SUPPORT_ADDRESS
    """Where customers email their questions; the first post must name it."""
    max_length: int = 500
    """The longest post, in characters, that is still succinct."""
    rules: tuple[Rule, ...] = attrs.field(default=HANDBOOK_RULES, converter=_rules)
    """The rules every post is checked against, in the order findings are reported."""
    decisions: Mapping[str, Decision] = attrs.field(factory=dict, converter=_decisions)
    """Per rule name, what to do with its findings instead of the rule's default:
    ``"refuse"``, ``"record"`` or ``"off"`` (skip the rule). A name may be a plugin's rule."""
    phase_aliases: Mapping[str, str] = attrs.field(factory=dict, converter=_aliases)
    """Another vendor's phase name → one of the process's status phases, such as
    ``{"monitoring": "investigating"}``."""
    release_pause_groups: tuple[str, ...] = attrs.field(
        default=("@delivery-support", "@cs", "@ce"), converter=_groups
    )
    """Who the incident lead alerts when a release is paused (handbook: Pausing a release)."""
    announcement_days: tuple[AnnouncementDay, ...] = attrs.field(default=(), converter=_days)
    """Big announcement days, when every incident goes to marketing at once."""
    marketing_contact: str = _MARKETING_CONTACT
    """Who in marketing is tagged about customer-impact incidents."""

    _active: tuple[tuple[Rule, bool], ...] = attrs.field(
        init=False, repr=False, eq=False, hash=False
    )

    def __attrs_post_init__(self) -> None:
        self._validate()
        active = tuple(
            (rule, self.decision(rule) == "refuse")
            for rule in self.rules
            if self.decision(rule) != "off"
        )
        object.__setattr__(self, "_active", active)

    def __hash__(self) -> int:
        return hash(
            (
                self.support_address,
                self.max_length,
                self.rules,
                frozenset(self.decisions.items()),
                frozenset(self.phase_aliases.items()),
                self.release_pause_groups,
                self.announcement_days,
                self.marketing_contact,
            )
        )

    def _validate(self) -> None:
        length = self.max_length
        if not isinstance(length, int) or isinstance(length, bool) or length < 20:
            raise _policy_error(
                f"max_length must be a whole number of characters, at least 20, not {length!r}"
            )
        address = self.support_address
        if _blank(address) or "@" not in address:
            raise _policy_error(
                f"support_address must be an e-mail address such as {_SUPPORT_ADDRESS!r}, "
                f"not {address!r}"
            )
        names: set[str] = set()
        for rule in self.rules:
            if not isinstance(rule, Rule):
                raise _policy_error(f"rules must be Rule objects, not {rule!r}")
            if rule.name in names:
                raise _policy_error(
                    f"two rules are named {rule.name!r}; give each rule its own name"
                )
            names.add(rule.name)
        for name, decision in self.decisions.items():
            # A name the policy lacks may be a plugin's rule (incident_flow_status_rules).
            if not isinstance(name, str) or not name.isidentifier():
                raise _policy_error(
                    f"decisions names rule {name!r}; a rule's name is an identifier, such as "
                    f"{', '.join(r.name for r in self.rules)}"
                )
            if decision not in DECISIONS:
                raise _policy_error(
                    f"decisions[{name!r}] is {decision!r}; use one of {', '.join(DECISIONS)}"
                )
        for group in self.release_pause_groups:
            if _blank(group):
                raise _policy_error(
                    f"release_pause_groups must be non-empty names such as '@cs', not {group!r}"
                )
        if _blank(self.marketing_contact):
            raise _policy_error(
                f"marketing_contact must be a non-empty name such as {_MARKETING_CONTACT!r}, "
                f"not {self.marketing_contact!r}"
            )
        days: set[date] = set()
        for day in self.announcement_days:
            if not isinstance(day, AnnouncementDay):
                raise _policy_error(
                    f"announcement_days must be AnnouncementDay objects, not {day!r}"
                )
            if day.day in days:
                raise _policy_error(
                    f"two announcement days fall on {day.day.isoformat()}; keep one per date"
                )
            days.add(day.day)

    # -- reading ----------------------------------------------------------------------------------

    def decision(self, rule: Rule | str) -> Decision:
        """What this policy does with ``rule``'s findings: refuse, record, or off.

        Args:
            rule: a :class:`Rule` (one of the policy's or an extra one) or a rule's name.

        Raises:
            InvalidFieldError: ``rule`` is a name the policy has neither a rule nor a decision
                for (a plugin's rule, known to the policy only by a decision, is answered).
        """
        if isinstance(rule, Rule):
            override = self.decisions.get(rule.name)
            if override is not None:
                return override
            return "refuse" if rule.refuses else "record"
        for known in self.rules:
            if known.name == rule:
                return self.decision(known)
        if isinstance(rule, str) and rule in self.decisions:
            return self.decisions[rule]
        raise InvalidFieldError(
            f"the policy has no rule named {rule!r}; rules: "
            f"{', '.join(r.name for r in self.rules)}",
            field="rule",
        )

    def review(self, post: StatusPost, extra_rules: Iterable[Rule] = ()) -> tuple[Finding, ...]:
        """Check ``post`` against every rule that is not off.

        Args:
            post: the post to check.
            extra_rules: rules to apply after the policy's own (a plugin's, say); their
                decision is :attr:`decisions` by name, else their ``refuses`` flag.

        Returns:
            Every finding, rule by rule in order (the policy's rules, then ``extra_rules``) and
            in text order within a rule, one per distinct excerpt; each is ``refused`` when the
            rule's decision is refuse.

        Raises:
            ProcessDefinitionError: an extra rule has the name of another rule.
            Exception: whatever a rule's check raises, unchanged (the caller wraps it).
        """
        active = self._active
        extra = tuple(extra_rules)
        if extra:
            active = (*active, *self._extra(extra))
        findings: list[Finding] = []
        for rule, refused in active:
            # One finding per excerpt, compared case-insensitively (per message when a finding
            # points at no words).
            seen: set[tuple[str, str]] = set()
            for message, excerpt in rule.check(post, self):
                key = (excerpt.casefold(), "") if excerpt else ("", message)
                if key not in seen:
                    seen.add(key)
                    findings.append(
                        Finding(rule.name, message, excerpt, refused, rule.handbook_ref)
                    )
        return tuple(findings)

    def _extra(self, extra: tuple[Rule, ...]) -> Iterator[tuple[Rule, bool]]:
        names = {rule.name for rule in self.rules}
        for rule in extra:
            if not isinstance(rule, Rule):
                raise _policy_error(f"extra rules must be Rule objects, not {rule!r}")
            if rule.name in names:
                raise _policy_error(
                    f"an extra rule is named {rule.name!r}, which another rule already has; "
                    "give it its own name"
                )
            names.add(rule.name)
            decision = self.decision(rule)
            if decision != "off":
                yield rule, decision == "refuse"

    @staticmethod
    def refusals(findings: Iterable[Finding]) -> tuple[Finding, ...]:
        """The findings that refuse their post."""
        return tuple(finding for finding in findings if finding.refused)

    def map_phase(self, phase: str, status_phases: Sequence[str]) -> str:
        """The status phase ``phase`` stands for.

        Args:
            phase: a status phase (any case) or an alias from :attr:`phase_aliases`.
            status_phases: the process's status phases.

        Returns:
            ``phase`` lower-cased if it is a status phase, else its alias's target.

        Raises:
            InvalidFieldError: ``phase`` is not a string.
            UnknownPhaseError: ``phase`` is neither a status phase nor an alias of one.
        """
        if not isinstance(phase, str):
            raise InvalidFieldError(
                f"phase must be a status phase's name, not {phase!r}", field="phase"
            )
        name = phase.strip().lower()
        if name in status_phases:
            return name
        listed = ", ".join(status_phases) or "none"
        target = self.phase_aliases.get(name)
        if target is not None:
            if target in status_phases:
                return target
            raise UnknownPhaseError(
                f"phase alias {name!r} maps to {target!r}, which is not one of the status "
                f"phases ({listed}); map it to one of them",
                field="phase",
            )
        example = "investigating" if "investigating" in status_phases else None
        if example is None and status_phases:
            example = status_phases[0]
        suggestion = (
            f"; to accept it, map it: CommsPolicy(phase_aliases={{{name!r}: {example!r}}})"
            if example is not None and name
            else ""
        )
        raise UnknownPhaseError(
            f"status phase {phase!r} is not one of the status phases ({listed}){suggestion}",
            field="phase",
        )

    def announcement_on(self, moment: datetime | date) -> AnnouncementDay | None:
        """The announcement day ``moment`` falls on (by its UTC date), or None.

        Raises:
            InvalidTimestampError: ``moment`` is a naive datetime, or not a date at all.
        """
        if isinstance(moment, datetime):
            if moment.utcoffset() is None:
                raise InvalidTimestampError(
                    f"moment {moment!r} has no timezone; pass an aware datetime "
                    "(datetime.now(UTC))",
                    field="moment",
                )
            day = moment.astimezone(UTC).date()
        elif isinstance(moment, date):
            day = moment
        else:
            raise InvalidTimestampError(
                f"moment must be a datetime or a date, not {moment!r}", field="moment"
            )
        for announcement in self.announcement_days:
            if announcement.day == day:
                return announcement
        return None

    # -- deriving ---------------------------------------------------------------------------------

    def with_decision(self, rule: str, decision: Decision) -> CommsPolicy:
        """A copy of this policy that treats ``rule``'s findings as ``decision``.

        ``rule`` may name a plugin's rule, which the policy itself does not hold.

        Raises:
            ProcessDefinitionError: ``rule`` is not an identifier, or ``decision`` is not one
                of refuse, record, off.
        """
        return attrs.evolve(self, decisions={**self.decisions, rule: decision})

    def with_rule(self, rule: Rule) -> CommsPolicy:
        """A copy of this policy with ``rule`` added after its rules.

        Raises:
            ProcessDefinitionError: a rule of the policy already has that name.
        """
        return attrs.evolve(self, rules=(*self.rules, rule))

    def with_announcement_day(
        self, day: date, name: str, contact: str | None = None
    ) -> CommsPolicy:
        """A copy of this policy with a big announcement day added.

        Args:
            day: the UTC calendar date.
            name: what is announced ("Series D announcement").
            contact: who in marketing to tell; the policy's ``marketing_contact`` by default.

        Raises:
            ProcessDefinitionError: the day is malformed or another one falls on that date.
        """
        announcement = AnnouncementDay(
            day, name, self.marketing_contact if contact is None else contact
        )
        return attrs.evolve(self, announcement_days=(*self.announcement_days, announcement))


HANDBOOK_COMMS = CommsPolicy()
"""The handbook's policy: its five rules with their default decisions."""


# -- templates -----------------------------------------------------------------------------------

_PLACEHOLDERS = frozenset({"issue", "support"})


def _template_text(instance: object, attribute: attrs.Attribute[str], value: object) -> None:
    if _blank(value):
        raise ProcessDefinitionError(f"a template's text must be non-empty, not {value!r}")
    fields = {field for _, field, _, _ in string.Formatter().parse(cast(str, value)) if field}
    unknown = fields - _PLACEHOLDERS
    if unknown:
        raise ProcessDefinitionError(
            f"a template may use the placeholders {{issue}} and {{support}} only, not "
            f"{', '.join(sorted(unknown))}"
        )


def _clean_support(address: object) -> str:
    if _blank(address) or "@" not in cast(str, address):
        raise InvalidFieldError(
            f"support_address must be an e-mail address such as {_SUPPORT_ADDRESS!r}, "
            f"not {address!r}",
            field="support_address",
        )
    return cast(str, address).strip()


@attrs.frozen
class Template:
    """One of the handbook's example posts, with its blanks as placeholders."""

    phase: str
    """The status phase it is written for: ``identified``, ``investigating`` or ``resolved``."""
    text: str = attrs.field(validator=_template_text)
    """The post, with ``{issue}`` and ``{support}`` where the handbook has them."""

    @property
    def needs_issue(self) -> bool:
        """True when the template has the ``{issue}`` blank to fill in."""
        return "{issue}" in self.text

    def render(self, *, issue: str | None = None, support_address: str = _SUPPORT_ADDRESS) -> str:
        """The post, ready to publish.

        Args:
            issue: what is broken ("search on sourcegraph.com"); needed by templates with the
                ``{issue}`` blank, ignored by the others.
            support_address: the address customers email with questions.

        Raises:
            InvalidFieldError: the template needs ``issue`` and it is missing or blank, or
                ``support_address`` is not an e-mail address.
        """
        support = _clean_support(support_address)
        filled = ""
        if self.needs_issue:
            if _blank(issue):
                raise InvalidFieldError(
                    f"the {self.phase} post says what the issue is with; pass what is broken, "
                    f"such as issue='search on sourcegraph.com', not {issue!r}",
                    field="issue",
                )
            filled = cast(str, issue).strip().rstrip(".").strip()
        return self.text.format(issue=filled, support=support)


TEMPLATES: Mapping[str, Template] = MappingProxyType(
    {
        "identified": Template(
            "identified",
            "We are aware there is an issue with {issue}. We are investigating a resolution. "
            "If you have any questions, email {support}.",
        ),
        "investigating": Template(
            "investigating",
            "We are continuing to investigate a resolution. We want to resolve this as quickly "
            "as possible!",
        ),
        "resolved": Template(
            "resolved",
            "We have resolved the issue and will conduct a postmortem to see how we can learn "
            "and grow. If you would like to know more, please email {support}.",
        ),
    }
)
"""The handbook's three example posts, by status phase."""


def render_template(
    phase: str, *, issue: str | None = None, policy: CommsPolicy = HANDBOOK_COMMS
) -> str:
    """The handbook's example post for ``phase``, filled in.

    Args:
        phase: ``identified``, ``investigating`` or ``resolved`` (any case), or an alias of
            one in ``policy.phase_aliases``.
        issue: what is broken; required for ``identified``.
        policy: gives the support address and the phase aliases.

    Raises:
        InvalidFieldError: ``phase`` is not a string, or ``issue`` is missing for a template
            that needs it.
        UnknownPhaseError: there is no template for ``phase``.
    """
    name = policy.map_phase(phase, tuple(TEMPLATES))
    return TEMPLATES[name].render(issue=issue, support_address=policy.support_address)
