"""One kiosk tile: a project in a cluster, large (health, version, the deploy in flight or
the pair's mark, staleness, the last deploy when there is room) or dense (one line)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

from textual.content import Content
from textual.widgets import Static

from console.model import DeployState, EnvStatus, Health
from console.queue.board import ROLLBACK, InFlight, finished_at
from console.queue.marks import Mark, PairMark
from console.store import DeployRecord
from screens.widgets.cluster_look import ClusterLook
from screens.widgets.format import (
    HEALTH_GLYPHS,
    HEALTH_STYLES,
    LOCK,
    MARK_GLYPHS,
    MARK_STYLES,
    format_age,
    health_word,
    version_summary,
)

OUTCOME_GLYPHS: dict[str, tuple[str, str]] = {
    DeployState.SUCCEEDED: ("✔", "$text-success"),
    DeployState.FAILED: ("✖", "bold $text-error"),
    DeployState.ROLLED_BACK: ("↩", "$text-warning"),
    DeployState.CANCELLED: ("⊘", "$text-muted"),
    DeployState.INTERRUPTED: ("!", "$text-warning"),
}


def rough_age(age: timedelta) -> str:
    """An age to its largest unit: 45s, 38m, 2h, 3d (a ticker is read in passing)."""
    return format_age(age.total_seconds()).split()[0]


def clock_text(moment: datetime) -> str:
    return moment.strftime("%H:%M:%S")


@dataclass(frozen=True)
class TileView:
    """What one tile shows: a project in a cluster."""

    project: str
    cluster: str
    protected: bool
    look: ClusterLook
    env: EnvStatus | None
    stale_since: datetime | None
    flight: InFlight | None
    mark: PairMark | None = None
    last: DeployRecord | None = None


class KioskTile(Static):
    """One project in one cluster."""

    def show(self, view: TileView, now: datetime, local_zone: tzinfo | None) -> None:
        env = view.env
        health = env.health if env is not None else Health.UNKNOWN
        for name in Health:
            self.set_class(health is name, f"-{name.value}")
        self.set_class(view.stale_since is not None, "-stale")
        self.set_class(view.flight is not None, "-deploying")
        if self.has_class("-dense"):
            self._show_dense(view, health)
            return
        self.border_title = view.project
        counts = f"{env.serving_count}/{env.total_count}" if env and env.total_count else ""
        version = version_summary(_versions(env)) if env is not None else ""
        if view.flight is not None:
            release = view.flight.record.release
            version = f"{version} → {release}" if version else release
        lines: list[Content] = [
            Content.assemble(_cluster_title(view), f"  {counts}" if counts else ""),
            Content.styled(f"{HEALTH_GLYPHS[health]} {health_word(health)}", HEALTH_STYLES[health])
            if env is not None
            else Content.styled("? no data yet", "italic $text-muted"),
            Content(version),
        ]
        if view.flight is not None:
            lines.append(_flight_line(view.flight))
        elif view.mark is not None and view.mark.mark is not None:
            lines.append(_mark_line(view.mark.mark, view.mark))
        if view.stale_since is not None:
            lines.append(
                Content.styled(
                    f"stale since {clock_text(view.stale_since.astimezone(local_zone))}",
                    "$text-warning",
                )
            )
        width, height = self.content_size.width, self.content_size.height
        if view.last is not None and len(lines) < height:
            lines.append(_last_deploy_line(view.last, now, width))
        self.update(Content("\n").join(lines))

    def _show_dense(self, view: TileView, health: Health) -> None:
        """One line: ● project cluster🔒 version [→ release ⟳ 3/9 | ❄ frozen] [stale]."""
        env = view.env
        version = version_summary(_versions(env)) if env is not None else "no data"
        parts: list[Content | str | tuple[str, str]] = [
            (HEALTH_GLYPHS[health], HEALTH_STYLES[health]),
            " ",
            (view.project, "bold"),
            " ",
            _cluster_title(view, dense=True),
            f" {version}",
        ]
        flight, mark = view.flight, view.mark
        if flight is not None:
            progress = f"{flight.steps_done}/{flight.steps_total}" if flight.running else "queued"
            parts.append((f" → {flight.record.release} ⟳{progress}", "bold $text-primary"))
        elif mark is not None and mark.mark is not None:
            parts.append((f" {MARK_GLYPHS[mark.mark]} {mark.words}", MARK_STYLES[mark.mark]))
        if view.stale_since is not None:
            parts.append((" stale", "$text-warning"))
        self.border_title = None
        self.update(Content.assemble(*parts))


def _cluster_title(view: TileView, *, dense: bool = False) -> Content:
    """The cluster's name in its look: a protected one a bar with the lock (` prod1 🔒 `)."""
    name = f"{view.cluster}{'' if dense else ' '}{LOCK}" if view.protected else view.cluster
    if view.look.bar and not dense:
        name = f" {name} "
    return Content.styled(name, view.look.style)


def _mark_line(kind: Mark, mark: PairMark) -> Content:
    """A hold or a last deploy gone wrong, glyph and words: ❄ frozen, ✗ failed 2.16.0."""
    return Content.styled(f"{MARK_GLYPHS[kind]} {mark.words}", MARK_STYLES[kind])


def _last_deploy_line(record: DeployRecord, now: datetime, width: int) -> Content:
    """Who deployed last, when and how it ended: `✔ succeeded by alice 38m ago`, or
    `✔ alice 38m ago` in a narrow tile."""
    glyph, style = OUTCOME_GLYPHS.get(record.state, ("?", "$text-muted"))
    when = f"{rough_age(now - finished_at(record))} ago"
    word = record.state.replace("_", " ")
    long = f"{glyph} {word} by {record.actor} {when}"
    if len(long) <= width:
        return Content.assemble(
            (f"{glyph} {word}", style), (f" by {record.actor} {when}", "$text-muted")
        )
    return Content.assemble((glyph, style), (f" {record.actor} {when}", "$text-muted"))


def _versions(env: EnvStatus) -> tuple[str, ...]:
    """The versions running; when none runs (all stopped), what the instances hold."""
    return env.versions or tuple(dict.fromkeys(i.version for i in env.instances if i.version))


def _flight_line(flight: InFlight) -> Content:
    """The deploy's progress (its release is on the version line): ⟳ 3/9 configure +1."""
    more = f" +{flight.queued_behind}" if flight.queued_behind else ""
    if not flight.running:
        glyph = MARK_GLYPHS[Mark.QUEUED]
        return Content.styled(f"{glyph} queued{more}", MARK_STYLES[Mark.QUEUED])
    step = "rolling back" if flight.current_step == ROLLBACK else (flight.current_step or "")
    return Content.styled(
        f"⟳ {flight.steps_done}/{flight.steps_total} {step}".rstrip() + more, "bold $text-primary"
    )
