"""Plain-text wording shared by the screens: ages, durations, versions, health words."""

from __future__ import annotations

from datetime import UTC, datetime

from console.model import Health
from console.queue.marks import Mark

# One glyph per health, readable without colour: the colour only repeats what the glyph says.
HEALTH_GLYPHS: dict[Health, str] = {
    Health.HEALTHY: "●",
    Health.DEGRADED: "◐",
    Health.DOWN: "✖",
    Health.EMPTY: "○",
    Health.UNKNOWN: "?",
}
NOT_DEPLOYED_GLYPH = "·"
# (dns) A cell whose pair's DNS record points elsewhere (console/fleet/dns.py): red, ASCII.
DNS_MARK = "DNS!"
DNS_MARK_STYLE = "bold $text-error"
DNS_MARK_MEANING = "record amiss"
# Content styles (theme variables) for each health, for text outside the matrix.
HEALTH_STYLES: dict[Health, str] = {
    Health.HEALTHY: "$text-success",
    Health.DEGRADED: "$text-warning",
    Health.DOWN: "bold $text-error",
    Health.EMPTY: "$text-muted",
    Health.UNKNOWN: "italic $text-muted",
}
LOCK = "🔒"
# What a cell shows of deploys and holds, glyph then word (console.queue.marks): readable
# without colour; the style only repeats it.
MARK_GLYPHS: dict[Mark, str] = {
    Mark.DEPLOYING: "⟳",
    Mark.QUEUED: "◷",
    Mark.FROZEN: "❄",
    Mark.LOCKED: "⊘",
    Mark.FAILED: "✗",
    Mark.ROLLED_BACK: "↶",
}
MARK_STYLES: dict[Mark, str] = {
    Mark.DEPLOYING: "bold $text-accent",
    Mark.QUEUED: "$text-accent",
    Mark.FROZEN: "bold $text-primary",
    Mark.LOCKED: "bold $text-warning",
    Mark.FAILED: "bold $text-error",
    Mark.ROLLED_BACK: "$text-error",
}
MARK_MEANINGS: dict[Mark, str] = {
    Mark.DEPLOYING: "deploying",
    Mark.QUEUED: "queued",
    Mark.FROZEN: "cluster frozen",
    Mark.LOCKED: "locked",
    Mark.FAILED: "last deploy failed",
    Mark.ROLLED_BACK: "last deploy rolled back",
}


def format_age(seconds: float) -> str:
    """A short age: 4s, 1m 05s, 2h 03m, 3d 04h."""
    whole = max(0, int(seconds))
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


def age_between(now: datetime, then: datetime | None) -> str | None:
    if then is None:
        return None
    return format_age((now - then).total_seconds())


def format_seconds(seconds: int | None) -> str:
    """Settings in seconds, with minutes spelled out when that helps: 300s (5m 00s)."""
    if seconds is None:
        return "?"
    if seconds < 60:
        return f"{seconds}s"
    return f"{seconds}s ({format_age(seconds)})"


def format_launched(moment: datetime | None) -> str:
    """A launch time in UTC, to the minute."""
    if moment is None:
        return "-"
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def version_summary(versions: tuple[str, ...]) -> str:
    """The main version, and how many others run beside it: `2.14.1 +1`."""
    if not versions:
        return ""
    if len(versions) == 1:
        return versions[0]
    return f"{versions[0]} +{len(versions) - 1}"


def health_word(health: Health) -> str:
    return "no instances" if health is Health.EMPTY else str(health)


def shorten(text: str, width: int) -> str:
    """Cut text to width characters, marking the cut with an ellipsis."""
    if width <= 0:
        return ""
    if len(text) <= width:
        return text
    return text[: width - 1] + "…"
