"""The dashboard: every project in every cluster at a glance, filterable, sortable, with a jump
to a name and a line on the highlighted cell's last deploy; refreshed on a timer."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from textual import on
from textual.app import ComposeResult
from textual.content import Content
from textual.reactive import reactive
from textual.widgets import DataTable, Footer, Input, Static

from console.access import Access
from console.config import Config
from console.fleet.jump import Jump
from console.fleet.order import RowOrder, sort_projects
from console.model import FleetSnapshot
from console.queue.marks import LastDeploy, PairMark
from screens.dashboard.detail import DetailStrip, cell_detail, project_detail
from screens.dashboard.fleet_matrix import FleetMatrix, dns_finding
from screens.dashboard.jump_line import JumpLine
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
    DNS_MARK,
    DNS_MARK_MEANING,
    DNS_MARK_STYLE,
    HEALTH_GLYPHS,
    HEALTH_STYLES,
    MARK_GLYPHS,
    MARK_MEANINGS,
    MARK_STYLES,
    NOT_DEPLOYED_GLYPH,
    health_word,
)

if TYPE_CHECKING:
    from console.drift.review import Reviewed


def legend() -> Content:
    parts: list[str | tuple[str, str]] = []
    for health, glyph in HEALTH_GLYPHS.items():
        parts.extend([(glyph, HEALTH_STYLES[health]), f" {health_word(health)}  "])
    parts.extend([(NOT_DEPLOYED_GLYPH, "$text-disabled"), " not in this cluster  "])
    parts.append(("cell: version (+N more) serving/total\n", "$text-muted"))
    for mark, glyph in MARK_GLYPHS.items():
        parts.extend([(glyph, MARK_STYLES[mark]), f" {MARK_MEANINGS[mark]}  "])
    parts.extend([(DNS_MARK, DNS_MARK_STYLE), f" {DNS_MARK_MEANING}"])  # (dns)
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
    """(project, cluster) -> what its cell shows of deploys and holds, and its last deploy."""
    findings: reactive[dict[tuple[str, str], list[Reviewed]]] = reactive(
        dict, always_update=True, init=False
    )
    """(drift) Each pair's drift findings (console/drift/review.py)."""
    order: reactive[RowOrder] = reactive(RowOrder, init=False)
    """How the rows are sorted (`s` picks the key, `S` reverses it)."""

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
        self.last_deploys: dict[tuple[str, str], LastDeploy] = {}
        """Each pair's last deploy as last read: kept while a mark read after it has none
        (this console's own running deploy stands for the pair meanwhile)."""

    @property
    def matrix(self) -> FleetMatrix:
        return self.query_one(FleetMatrix)

    @property
    def header(self) -> FleetHeader:
        return self.query_one(FleetHeader)

    def compose(self) -> ComposeResult:
        yield FleetHeader(
            self.config.clusters,
            len(self.config.projects),
            self.clock,
            read_only=Access(self.config).read_only,
            id="header",
        )
        yield Input(placeholder="filter projects by name (Escape clears)", id="filter")
        yield Static("", id="no-match")
        yield FleetMatrix(self.config.projects, self.config.clusters, id="matrix")
        yield DetailStrip("", id="detail")
        yield Static(legend(), id="legend")
        yield JumpLine(
            self.config.project_names, tuple(c.name for c in self.config.clusters), id="jump-line"
        )
        yield Footer()

    def on_mount(self) -> None:
        self._ready = True
        for name in ("snapshot", "refreshing", "refresh_error", "marks", "order", "findings"):
            self.watch(self, name, self._pass_down, init=False)
        self._pass_down()
        self.matrix.focus()
        # The strip's "3h 04m ago" moves with the clock even when nothing is read.
        self.set_interval(5.0, self.show_detail, name="detail-age")

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
        drifted = frozenset(p for p, found in self.findings.items() if any(f.counts for f in found))
        if self.matrix.drift != drifted:
            self.matrix.drift = drifted
        for pair, mark in self.marks.items():
            if mark.last is not None:
                self.last_deploys[pair] = mark.last
        self.matrix.project_order = tuple(
            sort_projects(
                self.config.project_names,
                self.order,
                self.snapshot,
                {pair: last.at for pair, last in self.last_deploys.items()},
            )
        )
        header.arrangement = self.arrangement()
        self.show_detail()

    def arrangement(self) -> str:
        """The header's line on the rows: `filter: web · sort: health in prod1, worst first`."""
        parts = []
        if self.matrix.filter_text:
            parts.append(f"filter: {self.matrix.filter_text}")
        if not self.order.is_default:
            parts.append(f"sort: {self.order.describe()}")
        return " · ".join(parts)

    def show_detail(self) -> None:
        """The strip under the matrix: the highlighted cell's mark and last deploy."""
        matrix = self.matrix
        project, cluster = matrix.cursor_project, matrix.cursor_cluster
        now = self.clock()
        if project is None:
            content = Content("")
        elif cluster is None:
            clusters = tuple(c.name for c in self.config.clusters)
            content = project_detail(project, self.last_deploys, clusters, now)
        else:
            content = cell_detail(
                project,
                cluster,
                deployed=cluster in self.config.project(project).clusters,
                mark=self.marks.get((project, cluster)),
                last=self.last_deploys.get((project, cluster)),
                now=now,
                drift=self.findings.get((project, cluster), ()),
                dns_finding=dns_finding(self.snapshot.env(project, cluster))
                if self.snapshot is not None
                else None,
            )
        detail = self.query_one("#detail", Static)
        if detail.visual != content:
            detail.update(content)

    # -- actions -----------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # "Clear filter" is hidden from the footer while there is no filter to clear.
        jump_open = self._ready and self.jump_line.is_open
        if action == "close_jump":
            return jump_open
        if action == "filter":
            # "/" in the jump line is `project/cluster`: the key is typed, not the filter's.
            return not jump_open
        if action == "jump":
            # ":" typed in the filter is a character of it.
            return not (jump_open or self.focused is self.filter_input)
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
        self.show_detail()

    @property
    def jump_line(self) -> JumpLine:
        return self.query_one(JumpLine)

    def action_refresh(self) -> None:
        self.post_message(RefreshRequested())

    def action_clear_filter(self) -> None:
        self.filter_input.value = ""
        # At once, not when the Input's change arrives: a jump goes to a row it showed.
        self.matrix.filter_text = ""
        self.header.arrangement = self.arrangement()
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

    def action_jump(self) -> None:
        self.jump_line.open()
        self.refresh_bindings()

    def action_close_jump(self) -> None:
        self.jump_line.close()
        self.set_focus(self.matrix)
        self.refresh_bindings()

    def action_sort(self) -> None:
        """The next sort key, read in the cursor's cluster (on the project column: the
        cluster sorted by now, else the first)."""
        cluster = self.matrix.cursor_cluster or self.order.cluster or self.config.clusters[0].name
        self.order = self.order.next_key(cluster)

    def action_sort_reverse(self) -> None:
        self.order = self.order.reversed()

    def action_open_queue(self) -> None:
        self.post_message(QueueAsked())

    def action_history(self) -> None:
        self.post_message(HistoryAsked())

    # -- events ------------------------------------------------------------------------

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.matrix.filter_text = event.value.strip()
        self.header.arrangement = self.arrangement()
        self.show_detail()
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

    @on(JumpLine.Chosen)
    def _jump_chosen(self, event: JumpLine.Chosen) -> None:
        self.action_close_jump()
        if event.jump is not None:
            self.jump_to(event.jump)

    def jump_to(self, jump: Jump) -> None:
        """Put the cursor where `jump` says; a filter that hides the project is cleared, and
        the person told so."""
        matrix = self.matrix
        if jump.project is not None and jump.project not in matrix.visible_projects:
            hidden_by = matrix.filter_text
            self.action_clear_filter()
            self.notify(
                f"Filter {hidden_by!r} cleared: it hid {jump.project}.",
                title="Jump",
                markup=False,
            )
        matrix.move_to(jump.project, jump.cluster)
        self.show_detail()
