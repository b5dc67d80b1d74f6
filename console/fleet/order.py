"""The dashboard's row order: the config's, by name, or by a cluster's health, version or age of
last deploy."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from console.model import FleetSnapshot, Health


class SortKey(StrEnum):
    """What the rows are sorted by, in the order `s` cycles through them."""

    CONFIG = "config order"
    NAME = "name"
    HEALTH = "health"
    VERSION = "version"
    LAST_DEPLOY = "last deploy"


# Each key's order when first chosen, then reversed, in words.
DIRECTIONS: dict[SortKey, tuple[str, str]] = {
    SortKey.CONFIG: ("", "reversed"),
    SortKey.NAME: ("A→Z", "Z→A"),
    SortKey.HEALTH: ("worst first", "best first"),
    SortKey.VERSION: ("oldest first", "newest first"),
    SortKey.LAST_DEPLOY: ("most recent first", "least recent first"),
}
# Worst first: a cluster that serves nothing before one that serves some, before one that is
# fine; the health of a pair that was not read sorts with the pairs it does not have.
HEALTH_RANK: dict[Health, int] = {
    Health.DOWN: 0,
    Health.DEGRADED: 1,
    Health.EMPTY: 2,
    Health.UNKNOWN: 3,
    Health.HEALTHY: 4,
}
_VERSION_PART = re.compile(r"(\d+)|(\D+)")

# A row's sort value: a tuple that compares; None (nothing to sort by) always goes last.
SortValue = tuple[object, ...]


@dataclass(frozen=True)
class RowOrder:
    """How the rows are sorted: a key, the cluster it is read in (None for the config's order
    and the name), and whether the key's first order is reversed."""

    key: SortKey = SortKey.CONFIG
    cluster: str | None = None
    reverse: bool = False

    def describe(self) -> str:
        """`health in prod1, worst first`; `name A→Z`; `config order`."""
        direction = DIRECTIONS[self.key][1 if self.reverse else 0]
        if self.key is SortKey.CONFIG:
            return f"{self.key}, {direction}" if direction else str(self.key)
        if self.key is SortKey.NAME or self.cluster is None:
            return f"{self.key} {direction}"
        return f"{self.key} in {self.cluster}, {direction}"

    @property
    def is_default(self) -> bool:
        return self == RowOrder()

    def next_key(self, cluster: str) -> RowOrder:
        """The next key in its first order, read in `cluster`; after the last, the config's."""
        keys = list(SortKey)
        key = keys[(keys.index(self.key) + 1) % len(keys)]
        if key in (SortKey.CONFIG, SortKey.NAME):
            return RowOrder(key)
        return RowOrder(key, cluster)

    def reversed(self) -> RowOrder:
        return replace(self, reverse=not self.reverse)


def version_key(version: str) -> SortValue:
    """`2.9.1` before `2.14.0`: numbers compare as numbers, the rest as text (numbers first)."""
    return tuple(
        (0, int(number), "") if number else (1, 0, text)
        for number, text in _VERSION_PART.findall(version.casefold())
    )


def sort_projects(
    projects: Iterable[str],
    order: RowOrder,
    snapshot: FleetSnapshot | None,
    last_deployed: Mapping[tuple[str, str], datetime],
) -> list[str]:
    """`projects` (in the config's order) in `order`. A row with nothing to sort by in the
    order's cluster (not there, not read yet, never deployed) goes last whichever way; ties
    keep the config's order."""
    names = list(projects)
    if order.key is SortKey.NAME:
        names.sort(key=str.casefold)
    if order.key in (SortKey.CONFIG, SortKey.NAME) or order.cluster is None:
        return names[::-1] if order.reverse else names
    value = _value_of(order, snapshot, last_deployed)
    valued = [(value(name), name) for name in names]
    known = [(v, name) for v, name in valued if v is not None]
    unknown = [name for v, name in valued if v is None]
    # A stable sort on the value alone keeps the config's order among equals, either way.
    known.sort(key=lambda item: item[0], reverse=order.reverse)
    return [name for _, name in known] + unknown


def _value_of(
    order: RowOrder,
    snapshot: FleetSnapshot | None,
    last_deployed: Mapping[tuple[str, str], datetime],
) -> Callable[[str], SortValue | None]:
    cluster = order.cluster
    assert cluster is not None

    def value(project: str) -> SortValue | None:
        if order.key is SortKey.LAST_DEPLOY:
            when = last_deployed.get((project, cluster))
            # Most recent first: the larger timestamp sorts first.
            return None if when is None else (-when.timestamp(),)
        env = snapshot.env(project, cluster) if snapshot is not None else None
        if env is None:
            return None
        if order.key is SortKey.HEALTH:
            if env.health is Health.UNKNOWN and not env.instances:
                return None
            return (HEALTH_RANK[env.health],)
        versions = env.versions
        return version_key(versions[0]) if versions else None

    return value
