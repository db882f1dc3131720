"""Where the time comes from. Logic asks a clock; it never calls ``datetime.now()`` itself."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Protocol

from incident_flow.errors import InvalidTimestampError

__all__ = ["Clock", "FakeClock", "SystemClock", "ensure_utc"]


class Clock(Protocol):
    """Anything with a ``now()`` that returns an aware datetime."""

    def now(self) -> datetime:
        """The current time, timezone-aware."""
        ...


class SystemClock:
    """The real time, in UTC."""

    def now(self) -> datetime:
        """The current time in UTC."""
        return datetime.now(UTC)


class FakeClock:
    """A clock that only moves when told to; for tests and replays. Thread-safe.

    Args:
        start: the first ``now()``; defaults to 2024-01-01 00:00 UTC.
    """

    def __init__(self, start: datetime | None = None) -> None:
        self._now = ensure_utc(start or datetime(2024, 1, 1, tzinfo=UTC), field="start")
        self._lock = threading.Lock()

    def now(self) -> datetime:
        """The time the clock was set to."""
        with self._lock:
            return self._now

    def advance(self, delta: timedelta | None = None, **units: float) -> datetime:
        """Move forward by ``delta`` or by ``timedelta(**units)``; return the new now."""
        step = delta if delta is not None else timedelta(**units)
        if step < timedelta(0):
            raise InvalidTimestampError("a clock only moves forward", field="delta")
        with self._lock:
            self._now += step
            return self._now

    def set(self, moment: datetime) -> None:
        """Jump to ``moment`` (aware, not earlier than now)."""
        moment = ensure_utc(moment, field="moment")
        with self._lock:
            if moment < self._now:
                raise InvalidTimestampError("a clock only moves forward", field="moment")
            self._now = moment


def ensure_utc(value: object, *, field: str = "at") -> datetime:
    """Return ``value`` converted to UTC.

    Raises:
        InvalidTimestampError: ``value`` is not a datetime or is naive.
    """
    if not isinstance(value, datetime):
        raise InvalidTimestampError(
            f"{field} must be a timezone-aware datetime, not {type(value).__name__}", field=field
        )
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidTimestampError(
            f"{field}={value.isoformat()} has no timezone; pass an aware datetime, "
            "for example datetime(..., tzinfo=UTC)",
            field=field,
        )
    return value.astimezone(UTC)
