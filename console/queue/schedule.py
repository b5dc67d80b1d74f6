"""Scheduled deploys and window overrides, pure: `deploy --at` parsed into a UTC time, and why a
deploy waits for its time (its schedule, then its cluster's deploy windows unless overridden)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from console.config.windows import DeployWindow
from console.identity import person
from console.inputs import InputError, duration, shown
from console.queue.windows import outside_windows
from console.store import DeployRecord

# A deploy may be scheduled at most this far ahead (further is a typo).
LONGEST_SCHEDULE = timedelta(days=90)
_TOO_FAR = f"more than {LONGEST_SCHEDULE.days} days ahead (schedule it later)"
CLOCK = re.compile(r"^(\d{1,2}):(\d{2})$")
AT_FORMS = (
    "an ISO 8601 time with an offset (2026-12-04T14:00+01:00 or ...Z), HH:MM (the next such "
    "time in the local zone) or +30m / +2h"
)


def parse_at(text: str, now: datetime, zone: ZoneInfo | None = None) -> datetime:
    """--at: the UTC time a deploy may start at the earliest (`now` is aware). HH:MM is the next
    such wall-clock time in `zone` (None: this system's local zone, its DST rules included).
    InputError (one line) when malformed, past, or too far ahead."""
    written = text.strip()
    if written.startswith("+"):
        try:
            span = duration(written[1:], "--at", LONGEST_SCHEDULE)
        except InputError:
            raise InputError(f"--at {shown(text)!r}: {_TOO_FAR}") from None
        if span is None:
            raise InputError(f"--at {shown(text)!r}: {AT_FORMS}")
        return _ahead((now + span).astimezone(UTC), text, now)
    clock = CLOCK.match(written)
    if clock is not None:
        hours, minutes = int(clock[1]), int(clock[2])
        if hours > 23 or minutes > 59:
            raise InputError(f"--at {shown(text)!r} is not a time of day (00:00 to 23:59)")
        return _ahead(_next_wall_time(now, time(hours, minutes), zone), text, now)
    try:
        parsed = datetime.fromisoformat(written)
    except ValueError:
        raise InputError(f"--at {shown(text)!r}: {AT_FORMS}") from None
    if parsed.tzinfo is None:
        raise InputError(
            f"--at {shown(text)!r} names no zone: add its offset (+01:00, Z), or use HH:MM"
        )
    try:
        moment = parsed.astimezone(UTC)
    except OverflowError:
        raise InputError(f"--at {shown(text)!r} is past the last year once in UTC") from None
    return _ahead(moment, text, now)


def _next_wall_time(now: datetime, at: time, zone: ZoneInfo | None) -> datetime:
    """The next time the wall clock of `zone` (None: the system's) reads `at`, in UTC."""
    day = (now.astimezone(zone) if zone is not None else now.astimezone()).date()
    for offset in (0, 1, 2):
        wall = datetime.combine(day + timedelta(days=offset), at)
        # A naive time's astimezone() reads it in the system's zone, with its DST rules.
        candidate = wall.replace(tzinfo=zone) if zone is not None else wall.astimezone()
        if candidate > now:
            return candidate.astimezone(UTC)
    raise InputError(f"--at {at:%H:%M}: no such time in the next days")  # pragma: no cover


def _ahead(moment: datetime, text: str, now: datetime) -> datetime:
    if moment <= now:
        raise InputError(
            f"--at {shown(text)!r} is already past ({moment:%Y-%m-%d %H:%M:%S} UTC; "
            f"now {now.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC)"
        )
    if moment - now > LONGEST_SCHEDULE:
        raise InputError(f"--at {shown(text)!r}: {_TOO_FAR}")
    return moment


def time_left(seconds: float) -> str:
    """How long until then, in two units at most: 45s, 12m 05s, 2h 10m, 3d 04h."""
    whole = max(0, int(seconds + 0.999))  # rounded up: "in 0s" only once it is time
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours:02d}h"


def scheduled_for(not_before: datetime, now: datetime) -> str:
    """ "scheduled for Fri 14:00 UTC (in 2h 10m)" (with its date when a week or more ahead)."""
    at = not_before.astimezone(UTC)
    when = f"{at:%a %Y-%m-%d %H:%M}" if at - now >= timedelta(days=6) else f"{at:%a %H:%M}"
    if at.second:
        when += f":{at:%S}"
    return f"scheduled for {when} UTC (in {time_left((at - now).total_seconds())})"


def waits_for_time(record: DeployRecord, windows: Sequence[DeployWindow], now: datetime) -> str:
    """Why a queued deploy waits for its time ("" when it need not): its schedule (and the
    windows closed at that time), else its cluster's windows; an admin's override skips the
    windows, never the schedule."""
    overridden = bool(record.window_override)
    if record.not_before is not None and record.not_before > now:
        why = scheduled_for(record.not_before, now)
        closed = "" if overridden else outside_windows(record.cluster, windows, record.not_before)
        return f"{why}, then {closed}" if closed else why
    return "" if overridden else outside_windows(record.cluster, windows, now)


def override_note(record: DeployRecord) -> str:
    """What the queue shows of an override: "outside its window by alice: hotfix"."""
    if not record.window_override:
        return ""
    who = person(record.window_override_by or record.actor)
    return f"outside its window by {who}: {record.window_override}"
