"""Numbers, durations and times that people type (arguments, dialog fields), parsed within bounds.

Python's integers have no limit, but SQLite's, timedelta's and datetime's do: a value past
them raises OverflowError far from where it was typed. Every such input is parsed here, and
a value out of bounds is an InputError: one line naming the option and what it accepts.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta

from console.errors import ConsoleError

SQLITE_INTEGER_MAX = 2**63 - 1
DURATION = re.compile(r"^(\d{1,12})\s*([smhd])$")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
SHOWN_LENGTH = 40


class InputError(ConsoleError):
    """What a person typed is malformed or out of bounds."""


def shown(text: str) -> str:
    """Text for an error message: a 5,000-digit number is shortened, never printed whole."""
    text = str(text)
    if len(text) <= SHOWN_LENGTH:
        return text
    return f"{text[:SHOWN_LENGTH]}… ({len(text)} characters)"


def whole_number(text: str, name: str, minimum: int, maximum: int) -> int:
    """An integer from minimum to maximum, e.g. --limit, a lock's number, a port."""
    try:
        value = int(text)
    except ValueError:
        raise InputError(
            f"{name} must be a whole number between {minimum} and {maximum}, not {shown(text)!r}"
        ) from None
    if not minimum <= value <= maximum:
        raise InputError(f"{name} must be between {minimum} and {maximum}, not {shown(text)}")
    return value


def seconds(text: str, name: str, maximum: float) -> float:
    """A number of seconds above 0 and at most maximum (nan and inf are not numbers here)."""
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"{name} must be a number of seconds, not {shown(text)!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise InputError(f"{name} must be a number of seconds above 0, not {value}")
    if value > maximum:
        raise InputError(f"{name} must be at most {maximum:g} seconds, not {value:g}")
    return value


def duration(text: str, name: str, maximum: timedelta) -> timedelta | None:
    """30s, 30m, 2h or 1d at most `maximum`; None when the text is not a duration at all."""
    match = DURATION.match(text.strip())
    if match is None:
        if re.match(r"^\d+\s*[smhd]$", text.strip()):
            raise InputError(f"{name} {shown(text)} is longer than {maximum.days} days")
        return None
    amount = int(match[1]) * UNITS[match[2]]
    if amount > maximum.total_seconds():
        raise InputError(f"{name} {text.strip()} is longer than {maximum.days} days")
    return timedelta(seconds=amount)


def moment(text: str, name: str) -> datetime | None:
    """An ISO 8601 date or time, in UTC (UTC when it names no zone); None if it is not one.

    Converted to UTC here: 9999-12-31T23:00-05:00 parses, but is past the last datetime."""
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise InputError(
            f"{name} {shown(text)!r} is outside the years 1 to 9999 once in UTC"
        ) from None


def expiry(text: str, name: str, now: datetime, maximum: timedelta) -> datetime | None:
    """A duration from now (30m, 2h, 1d) or an ISO time; None when it is neither."""
    span = duration(text, name, maximum)
    if span is not None:
        return now + span
    return moment(text, name)


# A lock or freeze may be set to expire at most this far ahead.
LONGEST_HOLD = timedelta(days=3650)


def until(text: str | None, now: datetime) -> datetime | None:
    """--until: an ISO time (UTC if no zone) or a duration from now (30m, 2h, 1d)."""
    if text is None:
        return None
    moment = expiry(text, "--until", now, LONGEST_HOLD)
    if moment is None:
        raise InputError(
            f"--until {shown(text)!r} is neither a duration (30m, 2h, 1d) nor an ISO time"
        )
    return moment
