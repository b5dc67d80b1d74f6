"""Deploy window specs ("Mon-Fri 09:00-16:00 Europe/Berlin") parsed into DeployWindow values."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
SPEC = re.compile(
    r"^(?P<days>\S+)\s+(?P<start>\d{1,2}:\d{2})-(?P<end>\d{1,2}:\d{2})\s+(?P<zone>\S+)$"
)
FORM = 'a window is "DAYS HH:MM-HH:MM ZONE", e.g. "Mon-Fri 09:00-16:00 Europe/Berlin"'


class WindowSpecError(ValueError):
    """A window spec that does not parse (the config reader adds the file and line)."""


@dataclass(frozen=True)
class DeployWindow:
    """Deploys may start on these weekdays (0 = Monday) from start to end, local time in zone.

    end is exclusive; None means midnight at the end of the day (written 24:00).
    """

    days: frozenset[int]
    start: time
    end: time | None
    zone: str
    spec: str

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.zone)


def parse_window(spec: str) -> DeployWindow:
    """One window spec; WindowSpecError (one line saying what is wrong) otherwise."""
    match = SPEC.match(spec.strip())
    if match is None:
        raise WindowSpecError(f"{spec!r}: {FORM}")
    days = _days(match["days"], spec)
    start = _time(match["start"], spec, allow_midnight=False) or time(0)
    end = _time(match["end"], spec, allow_midnight=True)
    if end is not None and end <= start:
        raise WindowSpecError(
            f"{spec!r}: the end must be after the start (a window past midnight is two windows)"
        )
    zone = match["zone"]
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise WindowSpecError(
            f"{spec!r}: unknown time zone {zone!r} (a tz database name: UTC, Europe/Berlin, ...)"
        ) from None
    return DeployWindow(frozenset(days), start, end, zone, spec.strip())


def _days(text: str, spec: str) -> set[int]:
    days: set[int] = set()
    for part in text.split(","):
        first, _, last = part.partition("-")
        begin, finish = _day(first, spec), _day(last or first, spec)
        if finish < begin:
            raise WindowSpecError(f"{spec!r}: day range {part!r} runs backwards (write Sat-Sun)")
        days.update(range(begin, finish + 1))
    return days


def _day(name: str, spec: str) -> int:
    for index, day in enumerate(DAYS):
        if name.lower() == day.lower():
            return index
    raise WindowSpecError(f"{spec!r}: unknown day {name!r} (days: {', '.join(DAYS)})")


def _time(text: str, spec: str, *, allow_midnight: bool) -> time | None:
    hours, minutes = (int(part) for part in text.split(":"))
    if allow_midnight and (hours, minutes) == (24, 0):
        return None
    if hours > 23 or minutes > 59:
        raise WindowSpecError(f"{spec!r}: {text!r} is not a time of day (00:00 to 23:59)")
    return time(hours, minutes)
