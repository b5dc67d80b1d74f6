"""The history's filter: typed as words (`storefront failed 24h`) or as key:value, shown back.

A bare word is read by what it names: a project or cluster of the config, an outcome, a
time range (`1h`, `24h`, `7d`, `all`), a day (`2026-11-20`) or days (`2026-11-20..2026-11-22`);
any other word is an actor. `key:value` says it outright, for names the config does not know.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from console.model import DeployState

OUTCOMES: tuple[str, ...] = (
    DeployState.SUCCEEDED,
    DeployState.FAILED,
    DeployState.ROLLED_BACK,
    DeployState.CANCELLED,
    DeployState.INTERRUPTED,
    DeployState.RUNNING,
    DeployState.QUEUED,
)
OUTCOME_ALIASES: dict[str, str] = {
    "rolled-back": DeployState.ROLLED_BACK,
    "rolledback": DeployState.ROLLED_BACK,
    "ok": DeployState.SUCCEEDED,
}
# What `t` steps through.
TIME_RANGES: tuple[str | None, ...] = (None, "1h", "24h", "7d")
KEYS = {
    "project": "project",
    "p": "project",
    "cluster": "cluster",
    "c": "cluster",
    "actor": "actor",
    "by": "actor",
    "a": "actor",
    "outcome": "state",
    "state": "state",
    "o": "state",
    "last": "last",
    "since": "since",
    "from": "since",
    "until": "until",
    "to": "until",
}
SPAN = re.compile(r"^(\d+)([mhdw])$")
UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
HINT = (
    "type words: storefront prod1 failed alice 24h 2026-11-20..2026-11-22 — or project: "
    "cluster: actor: outcome: since: until: (UTC) · Enter applies · Escape clears"
)


def span(label: str) -> timedelta:
    """`24h` as a timedelta (the label is checked by parse_filter)."""
    match = SPAN.match(label)
    if match is None:
        raise ValueError(label)
    return timedelta(**{UNITS[match[2]]: int(match[1])})


def moment(label: str, *, end: bool = False) -> datetime:
    """A typed date or time, UTC unless it names a zone; a bare day as `end` is the whole day."""
    value = datetime.fromisoformat(label)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    if end and len(label) == len("2026-11-20"):
        value += timedelta(days=1)
    return value


@dataclass(frozen=True)
class HistoryFilter:
    """What the history shows: exact project, cluster, actor and outcome, and a time range:
    either the `last` span (`24h`) before now or typed `since` / `until` moments."""

    project: str | None = None
    cluster: str | None = None
    actor: str | None = None
    state: str | None = None
    last: str | None = None
    since: str | None = None
    until: str | None = None

    @property
    def active(self) -> bool:
        return self != HistoryFilter()

    def bounds(self, now: datetime) -> tuple[datetime | None, datetime | None]:
        """The created_at range to read: since inclusive, until exclusive."""
        if self.last is not None:
            return now - span(self.last), None
        since = None if self.since is None else moment(self.since)
        until = None if self.until is None else moment(self.until, end=True)
        return since, until

    def next_time_range(self) -> HistoryFilter:
        """The next of all, last 1h, 24h, 7d (typed dates give way to `1h`)."""
        if self.since is not None or self.until is not None or self.last not in TIME_RANGES:
            following: str | None = TIME_RANGES[1]
        else:
            following = TIME_RANGES[(TIME_RANGES.index(self.last) + 1) % len(TIME_RANGES)]
        return replace(self, last=following, since=None, until=None)

    def text(self) -> str:
        """The filter as one would type it; parse_filter reads it back to the same filter."""
        words = [
            f"{key}:{value}"
            for key, value in (
                ("project", self.project),
                ("cluster", self.cluster),
                ("actor", self.actor),
                ("outcome", self.state),
                ("last", self.last),
                ("since", self.since),
                ("until", self.until),
            )
            if value is not None
        ]
        return " ".join(words)

    def parts(self) -> list[tuple[str, str]]:
        """(what, value) pairs for a person: ("project", "storefront"), ("last", "24h")."""
        named = [
            ("project", self.project),
            ("cluster", self.cluster),
            ("by", self.actor),
            ("outcome", None if self.state is None else self.state.replace("_", " ")),
            ("last", self.last),
            ("since", self.since),
            ("until", self.until),
        ]
        return [(what, value) for what, value in named if value is not None]


def parse_filter(
    text: str, projects: Collection[str], clusters: Collection[str]
) -> tuple[HistoryFilter, list[str]]:
    """The filter a person typed, and a sentence for each word it could not use."""
    values: dict[str, str | None] = {}
    problems: list[str] = []
    for word in text.split():
        key, value = _word(word, projects, clusters)
        if not value:
            problems.append(f"{word}: say what it is after the colon")
            continue
        problem = _check(key, value, values)
        if problem is not None:
            problems.append(f"{word}: {problem}")
    return HistoryFilter(**values), problems


def _word(word: str, projects: Collection[str], clusters: Collection[str]) -> tuple[str, str]:
    """(field, value) for one typed word."""
    head, colon, tail = word.partition(":")
    if colon and head.lower() in KEYS:
        return KEYS[head.lower()], tail
    lowered = word.lower()
    if word in projects:
        return "project", word
    if word in clusters:
        return "cluster", word
    if lowered in OUTCOMES or lowered in OUTCOME_ALIASES:
        return "state", lowered
    if lowered == "all" or SPAN.match(lowered):
        return "last", lowered
    if ".." in word or re.match(r"^\d{4}-\d{2}-\d{2}", word):
        return "days", word
    return "actor", word


def _check(key: str, value: str, values: dict[str, str | None]) -> str | None:
    """Store the value in values, or say why it cannot be used."""
    if key == "state":
        state = OUTCOME_ALIASES.get(value.lower(), value.lower())
        if state not in OUTCOMES:
            return f"not an outcome ({', '.join(OUTCOMES)})"
        values["state"] = state
    elif key == "last":
        if value.lower() == "all":
            values.update(last=None, since=None, until=None)
        elif SPAN.match(value.lower()) and span(value.lower()) > timedelta(0):
            values.update(last=value.lower(), since=None, until=None)
        else:
            return "a time range is a number and m, h, d or w (30m, 24h, 7d), or all"
    elif key in ("since", "until", "days"):
        return _dates(key, value, values)
    else:
        values[key] = value
    return None


def _dates(key: str, value: str, values: dict[str, str | None]) -> str | None:
    if key == "days":
        first, dots, last = value.partition("..")
        since, until = (first or None, last or None) if dots else (value, value)
    else:
        since, until = (value, None) if key == "since" else (None, value)
    try:
        for label, end in ((since, False), (until, True)):
            if label is not None:
                moment(label, end=end)
    except ValueError:
        return "not a date (2026-11-20, 2026-11-20T14:00 or with a zone, +02:00)"
    values["last"] = None
    if since is not None or key == "days":
        values["since"] = since
    if until is not None or key == "days":
        values["until"] = until
    return None
