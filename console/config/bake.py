"""Per cluster watching after cutover: bake, alarms, keep_old, 5xx and unhealthy limits."""

from __future__ import annotations

import re
from dataclasses import dataclass

from console.config.reader import Table

__all__ = ["BakeSettings", "format_span", "parse_bake", "parse_span"]

_SPAN = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
SPAN_FORM = 'a duration like "90s", "10m", "2h" or "1d" ("0": none)'
MAX_BAKE = 24 * 3600  # a day of watching is a release train, not a bake
MAX_KEEP_OLD = 14 * 86400  # stopped instances cost their volumes: two weeks at most
DEFAULT_MAX_5XX = 10
DEFAULT_MAX_UNHEALTHY = 0


@dataclass(frozen=True)
class BakeSettings:
    """What the engine watches once the new instances take traffic, and for how long.

    `seconds` 0 and `keep_old_seconds` 0 (the defaults): the old instances are terminated as
    soon as they are drained, as before. `alarms`: CloudWatch alarm names or fnmatch patterns;
    one in ALARM during the bake rolls back. `max_5xx`: the most 5xx answers of the targets
    (HTTPCode_Target_5XX_Count, classic ELB HTTPCode_Backend_5XX) summed over the pair's load
    balancers during the bake; `max_unhealthy`: the most new instances not healthy in any one
    load balancer at a look. More rolls back.
    """

    seconds: int = 0
    alarms: tuple[str, ...] = ()
    keep_old_seconds: int = 0
    max_5xx: int = DEFAULT_MAX_5XX
    max_unhealthy: int = DEFAULT_MAX_UNHEALTHY

    @property
    def keeps_old(self) -> bool:
        """Whether the old instances are stopped and kept rather than terminated at once."""
        return self.seconds > 0 or self.keep_old_seconds > 0

    def watches(self) -> str:
        """What the bake watches, in one line (the bake step's detail, the deploy screen)."""
        alarms = f"alarms {', '.join(self.alarms)}" if self.alarms else "no alarms"
        return f"{alarms}; unhealthy > {self.max_unhealthy} or 5xx > {self.max_5xx} rolls back"


def parse_span(text: str) -> int | None:
    """Seconds in "90s", "10m", "2h", "1d" or "0"; None when the text is not one."""
    match = _SPAN.match(text)
    if match is None:
        return None
    return int(match[1]) * _UNIT_SECONDS[match[2]]


def format_span(seconds: float) -> str:
    """A short duration as people read it: 45s, 9m30s, 2h, 1h05m."""
    whole = max(0, round(seconds))
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        minutes, rest = divmod(whole, 60)
        return f"{minutes}m{rest:02d}s" if rest else f"{minutes}m"
    hours, rest = divmod(whole, 3600)
    return f"{hours}h{rest // 60:02d}m" if rest >= 60 else f"{hours}h"


def _span(table: Table, key: str, maximum: int) -> int:
    raw = table.string(key)
    if raw is None:
        return 0
    seconds = parse_span(raw)
    if seconds is None:
        table.fail(f"{raw!r} is not {SPAN_FORM}", key)
        raise AssertionError  # fail raises
    if seconds > maximum:
        table.fail(f"{raw!r} is longer than {format_span(maximum)}", key)
    return seconds


def parse_bake(table: Table) -> BakeSettings:
    """A cluster's bake keys (`bake`, `alarms`, `keep_old`, `bake_max_5xx`,
    `bake_max_unhealthy`); a wrong one fails naming its file and line."""
    seconds = _span(table, "bake", MAX_BAKE)
    alarms = table.strings("alarms")
    keep_old = _span(table, "keep_old", MAX_KEEP_OLD)
    max_5xx = table.integer("bake_max_5xx", DEFAULT_MAX_5XX, minimum=0, maximum=1_000_000)
    max_unhealthy = table.integer(
        "bake_max_unhealthy", DEFAULT_MAX_UNHEALTHY, minimum=0, maximum=10_000
    )
    if seconds == 0:
        for key, given in (
            ("alarms", bool(alarms)),
            ("bake_max_5xx", max_5xx != DEFAULT_MAX_5XX),
            ("bake_max_unhealthy", max_unhealthy != DEFAULT_MAX_UNHEALTHY),
        ):
            if given:
                table.fail('is watched during the bake: set bake too (e.g. bake = "10m")', key)
    for pattern in alarms:
        if len(pattern) > 255 or not pattern.isprintable():
            table.fail(f"{pattern!r} is not an alarm name or pattern (1-255 characters)", "alarms")
    return BakeSettings(seconds, alarms, keep_old, max_5xx, max_unhealthy)
