"""Deploy windows, pure: whether a cluster's windows are open at an instant, when they open
next (wall-clock time in each window's zone, so DST changes move them in UTC), and why a
deploy waits for them."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from console.config.windows import DeployWindow

__all__ = ["DeployWindow", "is_open", "next_open", "outside_windows"]


def _intervals(window: DeployWindow, now: datetime) -> Iterator[tuple[datetime, datetime]]:
    """The window's open intervals (UTC) that end after `now`, earliest first, for two weeks
    (a week's only interval may fall in a DST gap)."""
    zone = window.tz
    today = now.astimezone(zone).date()
    for offset in range(-1, 15):
        day = today + timedelta(days=offset)
        if day.weekday() not in window.days:
            continue
        start = _instant(day, window.start, zone)
        end = (
            _instant(day, window.end, zone)
            if window.end is not None
            else _instant(day + timedelta(days=1), time(0), zone)
        )
        # A start in a spring-forward gap moves past it; the window may be gone that day.
        if start < end and end > now:
            yield start, end


def _instant(day: date, at: time, zone: ZoneInfo) -> datetime:
    """The first UTC instant when the wall clock in `zone` reads `at` or later on `day`: a
    time in a DST gap (02:30 when clocks jump 02:00 -> 03:00) is the end of the gap."""
    wall = datetime.combine(day, at, tzinfo=zone)
    before, after = wall.replace(fold=1).astimezone(UTC), wall.replace(fold=0).astimezone(UTC)
    if before >= after or after.astimezone(zone).replace(tzinfo=None) == wall.replace(tzinfo=None):
        return after  # the time exists (the first of two, in the hour that repeats)
    while after - before > timedelta(seconds=1):  # the jump lies between: find it
        middle = before + (after - before) / 2
        if middle.astimezone(zone).replace(tzinfo=None) < wall.replace(tzinfo=None):
            before = middle
        else:
            after = middle
    return after.replace(microsecond=0)


def is_open(windows: Sequence[DeployWindow], now: datetime) -> bool:
    """Whether a deploy may start at `now`; no windows configured: always."""
    if not windows:
        return True
    return any(start <= now for window in windows for start, _ in _intervals(window, now))


def next_open(windows: Sequence[DeployWindow], now: datetime) -> datetime:
    """When a deploy may start: `now` when open, else the earliest window start after it, in
    that window's zone."""
    if is_open(windows, now):
        return now
    starts = [
        start.astimezone(window.tz)
        for window in windows
        for start, _ in _intervals(window, now)
        if start > now
    ]
    return min(starts)


def outside_windows(cluster: str, windows: Sequence[DeployWindow], now: datetime) -> str:
    """Why a deploy to `cluster` waits for its windows ("" when open): until when, local and UTC."""
    if is_open(windows, now):
        return ""
    opens = next_open(windows, now)
    zone = opens.tzinfo.key if isinstance(opens.tzinfo, ZoneInfo) else "UTC"
    local = f"{opens:%a %H:%M} {zone}"
    if zone != "UTC":
        utc = opens.astimezone(UTC)
        day = "" if utc.date() == opens.date() else f"{utc:%a} "
        local += f" ({day}{utc:%H:%M} UTC)"
    return f"outside deploy windows of {cluster} until {local}"
