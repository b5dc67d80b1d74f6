"""The dashboard's top lines: clusters, how fresh the data is, the filter and sort, what failed."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import datetime

from textual.content import Content
from textual.reactive import reactive
from textual.widgets import Static

from console.config import ClusterConfig
from console.model import FleetSnapshot
from screens.widgets.format import HEALTH_GLYPHS, HEALTH_STYLES, LOCK, age_between, health_word


class FleetHeader(Static):
    """Cluster names (protected ones marked), "refreshed 4s ago", the rows' filter and sort,
    and errors per cluster.

    The age is recomputed every second from the injected clock, so a frozen clock gives a
    stable text.
    """

    DEFAULT_CSS = """
    FleetHeader {
        height: auto;
        padding: 0 1;
    }
    """

    snapshot: reactive[FleetSnapshot | None] = reactive(None, always_update=True)
    refreshing: reactive[bool] = reactive(False)
    refresh_error: reactive[str | None] = reactive(None)
    arrangement: reactive[str] = reactive("")
    """Which rows show and in what order, one line (`filter: web · sort: name A→Z`); "": all,
    in the config's order (no line)."""

    def __init__(
        self,
        clusters: tuple[ClusterConfig, ...],
        project_count: int,
        clock: Callable[[], datetime],
        *,
        read_only: bool = False,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(id=id, classes=classes)
        self.read_only = read_only
        self.clusters = clusters
        self.project_count = project_count
        self.clock = clock
        self._shown: Content | None = None

    def on_mount(self) -> None:
        for name in ("snapshot", "refreshing", "refresh_error", "arrangement"):
            self.watch(self, name, self.show_age, init=False)
        self.set_interval(1.0, self.show_age, name="header-age")
        self.show_age()

    def show_age(self) -> None:
        """Recompute the text (ages move with the clock even when the data does not)."""
        content = self.describe(self.clock())
        if content != self._shown:
            self._shown = content
            self.update(content)

    def describe(self, now: datetime) -> Content:
        lines = [self._summary_line(now), self._clusters_line()]
        if self.arrangement:
            lines.append(Content.styled(self.arrangement, "$text-accent"))
        lines.extend(self._error_lines(now))
        return Content("\n").join(lines)

    def _summary_line(self, now: datetime) -> Content:
        parts: list[str | tuple[str, str]] = [
            f"{self.project_count} projects · {len(self.clusters)} clusters · ",
        ]
        if self.read_only:  # a web view without --allow-actions: no one deploys from here
            parts.insert(0, ("READ-ONLY", "bold reverse $text-warning"))
            parts.insert(1, " ")
        snapshot = self.snapshot
        if snapshot is None:
            parts.append(("reading the fleet…", "$text-muted"))
        else:
            parts.append(f"refreshed {age_between(now, snapshot.generated_at)} ago")
            if self.refreshing:
                parts.append(("  refreshing…", "$text-muted"))
            counts = Counter(env.health for env in snapshot.envs.values())
            for health, glyph in HEALTH_GLYPHS.items():
                if counts[health]:
                    parts.append("  ")
                    parts.append(
                        (f"{glyph} {counts[health]} {health_word(health)}", HEALTH_STYLES[health])
                    )
        return Content.assemble(*parts)

    def _clusters_line(self) -> Content:
        parts: list[str | tuple[str, str]] = []
        for cluster in self.clusters:
            if parts:
                parts.append("   ")
            status = None
            if self.snapshot is not None:
                try:
                    status = self.snapshot.cluster(cluster.name)
                except KeyError:
                    status = None
            if cluster.protected:
                parts.append((f"{LOCK} {cluster.name} [protected]", "bold $text-error"))
            else:
                parts.append((cluster.name, "bold $text-primary"))
            if status is None:
                parts.append((" …", "$text-muted"))
            elif status.error:
                parts.append((" ✖ unreachable", "$text-error"))
            else:
                parts.append((" ✔ live", "$text-success"))
        return Content.assemble(*parts)

    def _error_lines(self, now: datetime) -> list[Content]:
        lines: list[Content] = []
        if self.refresh_error:
            lines.append(
                Content.assemble(
                    ("✖ refresh failed: ", "bold $text-error"),
                    (self.refresh_error, "$text-error"),
                    ("  (showing the last data read)", "$text-muted"),
                )
            )
        if self.snapshot is None:
            return lines
        for status in self.snapshot.clusters:
            if not status.error:
                continue
            age = age_between(now, status.fetched_at)
            lines.append(
                Content.assemble(
                    (f"✖ {status.name}: ", "bold $text-error"),
                    (status.error, "$text-error"),
                    (
                        f"  (showing data from {age} ago)" if age else "  (no data yet)",
                        "$text-muted",
                    ),
                )
            )
        return lines
