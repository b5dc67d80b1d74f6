"""The dashboard: every project in every cluster at a glance, filterable, refreshed on a timer."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from textual import on
from textual.app import ComposeResult
from textual.content import Content
from textual.reactive import reactive
from textual.widgets import DataTable, Footer, Input, Static

from console.config import Config
from console.model import FleetSnapshot
from console.queue.marks import PairMark
from screens.dashboard.fleet_matrix import FleetMatrix
from screens.keys import KEYMAP
from screens.messages import (
    DeployAsked,
    HistoryAsked,
    ProjectChosen,
    QueueAsked,
    RefreshRequested,
)
from screens.refusals import SaysWhyNot, deploy_refusal
from screens.widgets.filter_line import FilteringScreen
from screens.widgets.fleet_header import FleetHeader
from screens.widgets.format import (
    HEALTH_GLYPHS,
    HEALTH_STYLES,
    MARK_GLYPHS,
    MARK_MEANINGS,
    MARK_STYLES,
    NOT_DEPLOYED_GLYPH,
    health_word,
)


def legend() -> Content:
    parts: list[str | tuple[str, str]] = []
    for health, glyph in HEALTH_GLYPHS.items():
        parts.extend([(glyph, HEALTH_STYLES[health]), f" {health_word(health)}  "])
    parts.extend([(NOT_DEPLOYED_GLYPH, "$text-disabled"), " not in this cluster  "])
    parts.append(("cell: version (+N more) serving/total\n", "$text-muted"))
    for mark, glyph in MARK_GLYPHS.items():
        parts.extend([(glyph, MARK_STYLES[mark]), f" {MARK_MEANINGS[mark]}  "])
    return Content.assemble(*parts)


class DashboardScreen(FilteringScreen, SaysWhyNot):
    """The first screen: a matrix of projects x clusters."""

    CSS_PATH = "../styles/dashboard.tcss"
    HELP_NAMESPACE = "dashboard"
    BINDINGS = KEYMAP[HELP_NAMESPACE]
    FILTER_ID = "filter"

    snapshot: reactive[FleetSnapshot | None] = reactive(None, always_update=True, init=False)
    refreshing: reactive[bool] = reactive(False, init=False)
    refresh_error: reactive[str | None] = reactive(None, init=False)
    marks: reactive[dict[tuple[str, str], PairMark]] = reactive(
        dict, always_update=True, init=False
    )
    """(project, cluster) -> what its cell shows of deploys and holds."""

    def __init__(
        self,
        config: Config,
        clock: Callable[[], datetime],
        *,
        may_deploy: Callable[[str, str | None], bool] = lambda _cluster, _project: False,
    ) -> None:
        super().__init__()
        self.config = config
        self.clock = clock
        self.may_deploy = may_deploy
        """Whether this user's role may deploy to a cluster (the core checks again)."""
        self._ready = False  # is_mounted is still False inside on_mount

    @property
    def matrix(self) -> FleetMatrix:
        return self.query_one(FleetMatrix)

    @property
    def header(self) -> FleetHeader:
        return self.query_one(FleetHeader)

    def compose(self) -> ComposeResult:
        yield FleetHeader(self.config.clusters, len(self.config.projects), self.clock, id="header")
        yield Input(placeholder="filter projects by name (Escape clears)", id="filter")
        yield Static("", id="no-match")
        yield FleetMatrix(self.config.projects, self.config.clusters, id="matrix")
        yield Static(legend(), id="legend")
        yield Footer()

    def on_mount(self) -> None:
        self._ready = True
        for name in ("snapshot", "refreshing", "refresh_error", "marks"):
            self.watch(self, name, self._pass_down, init=False)
        self._pass_down()
        self.matrix.focus()

    # -- attributes down ---------------------------------------------------------------

    def _pass_down(self) -> None:
        header = self.header
        header.snapshot = self.snapshot
        header.refreshing = self.refreshing
        header.refresh_error = self.refresh_error
        if self.matrix.snapshot is not self.snapshot:
            self.matrix.snapshot = self.snapshot
        if self.matrix.marks != self.marks:
            self.matrix.marks = dict(self.marks)

    # -- actions -----------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # "Clear filter" is hidden from the footer while there is no filter to clear.
        if action == "clear_filter":
            return any(widget.display for widget in self.query("#filter"))
        if action == "deploy":
            return any(self.may_deploy(c, p) for p, c in self.deploy_pairs())
        return True

    def deploy_pairs(self) -> list[tuple[str, str]]:
        """Where `d` would deploy (project, cluster): the cursor's cell, else any cluster of the
        cursor's project (or of any project, before the matrix is there)."""
        project = self.matrix.cursor_project if self._ready else None
        if project is None:
            return [(p.name, c) for p in self.config.projects for c in p.clusters]
        clusters = self.config.project(project).clusters
        cluster = self.matrix.cursor_cluster
        return [(project, c) for c in ([cluster] if cluster in clusters else clusters)]

    def why_not(self, action: str, parameters: tuple[object, ...]) -> str:
        if action == "deploy":
            return deploy_refusal(self, self.deploy_pairs())
        return ""

    def on_data_table_cell_highlighted(self) -> None:
        # What `d` may do depends on the cell under the cursor.
        self.refresh_bindings()

    def action_refresh(self) -> None:
        self.post_message(RefreshRequested())

    def action_clear_filter(self) -> None:
        self.filter_input.value = ""
        self.filter_input.display = False
        self.set_focus(self.matrix)
        self.refresh_bindings()

    def action_open_project(self) -> None:
        project = self.matrix.cursor_project
        if project is None:
            return
        cluster = self.matrix.cursor_cluster
        if cluster is not None and cluster not in self.config.project(project).clusters:
            cluster = None
        self.post_message(ProjectChosen(project, cluster))

    def action_deploy(self) -> None:
        project = self.matrix.cursor_project
        if project is None:
            return
        self.post_message(DeployAsked(project, self.matrix.cursor_cluster))

    def action_open_queue(self) -> None:
        self.post_message(QueueAsked())

    def action_history(self) -> None:
        self.post_message(HistoryAsked())

    # -- events ------------------------------------------------------------------------

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.matrix.filter_text = event.value.strip()
        no_match = self.query_one("#no-match", Static)
        if self.matrix.row_count:
            no_match.display = False
        else:
            # Content, not markup: what a person typed may hold square brackets.
            no_match.update(
                Content(f"No project matches {event.value.strip()!r}. Escape clears the filter.")
            )
            no_match.display = True

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self) -> None:
        self.set_focus(self.matrix)

    @on(DataTable.CellSelected, "#matrix")
    def _cell_selected(self, event: DataTable.CellSelected) -> None:
        event.stop()
        self.action_open_project()
