"""The fleet matrix: one row per project, one column per cluster, updated cell by cell."""

from __future__ import annotations

from rich.cells import cell_len
from rich.style import Style
from rich.text import Text
from textual.reactive import reactive
from textual.widgets.data_table import CellDoesNotExist, RowKey

from console.config import ClusterConfig, ProjectConfig
from console.model import EnvStatus, FleetSnapshot, Health
from console.queue.marks import Mark, PairMark
from screens.widgets.cluster_look import cluster_look
from screens.widgets.format import (
    DNS_MARK,
    HEALTH_GLYPHS,
    LOCK,
    MARK_GLYPHS,
    NOT_DEPLOYED_GLYPH,
    shorten,
    version_summary,
)
from screens.widgets.tables import TABLE_NAVIGATION, CursorCachedTable, cell_style

PROJECT_COLUMN = "project"
MIN_CELL_WIDTH = 20
# A mark's word cut shorter than this (with its `…`) says nothing: the glyph alone is clearer.
MIN_WORD = 4
# (drift) After a cell's counts: the pair has a drift finding to look at (console/drift/).
DRIFT_MARK = "!"
# A cell's style by its mark: one class a kind (rolled back looks like failed).
MARK_COMPONENTS: dict[Mark, str] = {
    Mark.DEPLOYING: "fleet-matrix--deploying",
    Mark.QUEUED: "fleet-matrix--queued",
    Mark.FROZEN: "fleet-matrix--frozen",
    Mark.LOCKED: "fleet-matrix--locked",
    Mark.FAILED: "fleet-matrix--failed",
    Mark.ROLLED_BACK: "fleet-matrix--failed",
}


def cluster_label(cluster: ClusterConfig) -> str:
    return f"{cluster.name} {LOCK}" if cluster.protected else cluster.name


def cell_text(env: EnvStatus | None, width: int) -> str:
    """What one cell says, without style: `● 2.14.1 +1      3/3` fitted to width."""
    if env is None:
        return "…"
    glyph = HEALTH_GLYPHS[env.health]
    if env.health is Health.EMPTY:
        return f"{glyph} no instances"
    if env.health is Health.UNKNOWN and not env.instances:
        return f"{glyph} unknown"
    counts = f"{env.serving_count}/{env.total_count}"
    if dns_finding(env):
        counts = f"{DNS_MARK} {counts}"
    room = width - len(glyph) - 1 - len(counts) - 1
    version = shorten(version_summary(env.versions) or "-", room)
    return f"{glyph} {version.ljust(room)} {counts}"


def dns_finding(env: EnvStatus | None) -> str | None:
    """(dns) What is wrong with the pair's DNS record, if anything."""
    return env.dns.finding if env is not None and env.dns is not None else None


def marked_text(mark: PairMark, env: EnvStatus | None, width: int) -> str:
    """A cell with a mark: `⟳ deploying 2.16.0 ●`: the mark, the release it is about (for a
    freeze or a lock: the version running), then the health glyph when the cluster was read."""
    assert mark.mark is not None
    health = HEALTH_GLYPHS[env.health] if env is not None and env.instances else ""
    about = mark.release
    if about is None:
        about = version_summary(env.versions) if env is not None else ""
    room = width - (len(health) + 1 if health else 0)
    shown = fit_mark(MARK_GLYPHS[mark.mark], str(mark.mark), about, room)
    return f"{shown.ljust(room)} {health}" if health else shown


def fit_mark(glyph: str, word: str, about: str, room: int) -> str:
    """`glyph word about` in `room` columns, the release (`about`) kept whole: the word gives
    way first (`↶ rolled… 2.16.0`), then goes (`↶ 2.16.0`); only then is the release cut."""
    full = " ".join(part for part in (glyph, word, about) if part)
    if len(full) <= room or not about:
        return shorten(full, room)
    word_room = room - len(glyph) - 1 - 1 - len(about)
    if word_room >= MIN_WORD:
        return f"{glyph} {shorten_words(word, word_room)} {about}"
    return f"{glyph} {shorten(about, room - len(glyph) - 1)}"


def shorten_words(text: str, width: int) -> str:
    """Cut text to width at a word's end when it can (`rolled…`), else mid-word, with `…`."""
    if len(text) <= width:
        return text
    cut = text[: width - 1]
    space = cut.rfind(" ")
    return (cut[:space] if space > 0 else cut) + "…"


class FleetMatrix(CursorCachedTable[Text], inherit_bindings=False):
    """Health, version and instance counts of every project in every cluster.

    Column widths are fixed when the columns are made, so a refresh only swaps cell values
    (`update_cell(..., update_width=False)`): re-measuring is quadratic in the cell count.
    """

    BINDINGS = TABLE_NAVIGATION

    COMPONENT_CLASSES = {
        "fleet-matrix--healthy",
        "fleet-matrix--degraded",
        "fleet-matrix--down",
        "fleet-matrix--empty",
        "fleet-matrix--unknown",
        "fleet-matrix--not-deployed",
        "fleet-matrix--loading",
        "fleet-matrix--cluster",
        "fleet-matrix--deploying",
        "fleet-matrix--queued",
        "fleet-matrix--frozen",
        "fleet-matrix--locked",
        "fleet-matrix--failed",
        "fleet-matrix--drift",
        "fleet-matrix--dns",
    }

    DEFAULT_CSS = """
    FleetMatrix {
        height: 1fr;
    }
    FleetMatrix > .fleet-matrix--healthy { color: $text-success; }
    FleetMatrix > .fleet-matrix--degraded { color: $text-warning; }
    FleetMatrix > .fleet-matrix--down { color: $text-error; text-style: bold; }
    FleetMatrix > .fleet-matrix--empty { color: $text-muted; }
    FleetMatrix > .fleet-matrix--unknown { color: $text-muted; text-style: italic; }
    FleetMatrix > .fleet-matrix--not-deployed { color: $text-disabled; }
    FleetMatrix > .fleet-matrix--loading { color: $text-disabled; }
    FleetMatrix > .fleet-matrix--cluster { color: $text-primary; text-style: bold; }
    FleetMatrix > .fleet-matrix--deploying { color: $text-accent; text-style: bold; }
    FleetMatrix > .fleet-matrix--queued { color: $text-accent; }
    FleetMatrix > .fleet-matrix--frozen { color: $text-primary; text-style: bold; }
    FleetMatrix > .fleet-matrix--locked { color: $text-warning; text-style: bold; }
    FleetMatrix > .fleet-matrix--failed { color: $text-error; text-style: bold; }
    FleetMatrix > .fleet-matrix--drift { color: $text-warning; text-style: bold; }
    FleetMatrix > .fleet-matrix--dns { color: $text-error; text-style: bold; }
    """

    snapshot: reactive[FleetSnapshot | None] = reactive(None, always_update=True, init=False)
    """The fleet to show; set it and the cells change in place."""

    marks: reactive[dict[tuple[str, str], PairMark]] = reactive(
        dict, always_update=True, init=False
    )
    """(project, cluster) -> what its cell shows of deploys and holds, over its health."""

    drift: reactive[frozenset[tuple[str, str]]] = reactive(frozenset, init=False)
    """(drift) The pairs with a finding to look at: `!` after their counts."""

    filter_text: reactive[str] = reactive("", init=False)
    """Only projects whose name contains this (case-insensitive) are shown."""

    project_order: reactive[tuple[str, ...]] = reactive((), init=False)
    """The rows' order, every project named once (empty: the config's order)."""

    def __init__(
        self,
        projects: tuple[ProjectConfig, ...],
        clusters: tuple[ClusterConfig, ...],
        *,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(
            name=name,
            id=id,
            classes=classes,
            cursor_type="cell",
            fixed_columns=1,
            zebra_stripes=True,
        )
        self.projects = projects
        self.clusters = clusters
        self._deployed = {
            (project.name, cluster_name)
            for project in projects
            for cluster_name in project.clusters
        }
        self.project_width = max([len("project"), *(len(p.name) for p in projects)]) + 1
        self.cell_width = max([MIN_CELL_WIDTH, *(cell_len(cluster_label(c)) + 2 for c in clusters)])
        # What each visible cell shows now, to skip cells a refresh did not change.
        self._shown: dict[tuple[str, str], tuple[str, str]] = {}
        self._styles: dict[str, Style] = {}

    # -- reading -------------------------------------------------------------------------

    @property
    def visible_projects(self) -> list[str]:
        return [row_key.value for row_key in self.rows if row_key.value is not None]

    @property
    def cursor_project(self) -> str | None:
        if not self.row_count:
            return None
        try:
            row_key, _ = self.coordinate_to_cell_key(self.cursor_coordinate)
        except CellDoesNotExist:
            return None
        return row_key.value

    @property
    def cursor_cluster(self) -> str | None:
        column = self.cursor_coordinate.column
        if column < 1 or column > len(self.clusters):
            return None
        return self.clusters[column - 1].name

    def column_of(self, cluster: str) -> int:
        """The column index of a cluster (the project names are column 0)."""
        names = [c.name for c in self.clusters]
        return names.index(cluster) + 1

    def move_to(self, project: str | None, cluster: str | None) -> bool:
        """Put the cursor on a project's row and a cluster's column (None: stay in the row or
        column it is in); False when the project's row is not shown (the filter hides it)."""
        if project is not None and project not in self.rows:
            return False
        row = self.get_row_index(project) if project is not None else self.cursor_row
        column = self.column_of(cluster) if cluster is not None else self.cursor_column
        self.move_cursor(row=row, column=column, animate=False)
        return True

    def cell_plain(self, project: str, cluster: str) -> str:
        """The text a person reads in one cell (for tests and the help)."""
        return self.get_cell(project, cluster).plain

    # -- building ------------------------------------------------------------------------

    def on_mount(self) -> None:
        self.add_column(Text("project"), width=self.project_width, key=PROJECT_COLUMN)
        for cluster in self.clusters:
            self.add_column(self._column_label(cluster), width=self.cell_width, key=cluster.name)
        self._add_rows()
        self.app.theme_changed_signal.subscribe(self, self._on_theme_changed)

    def _matches(self, project: str) -> bool:
        return self.filter_text.casefold() in project.casefold()

    def _add_rows(self) -> None:
        self._shown.clear()
        names = self.project_order or tuple(project.name for project in self.projects)
        for name in names:
            if not self._matches(name):
                continue
            cells = [Text(name, no_wrap=True, overflow="ellipsis")]
            cells.extend(self._cell(name, cluster) for cluster in self.clusters)
            self.add_row(*cells, key=name)

    def _column_label(self, cluster: ClusterConfig) -> Text:
        """In the cluster's colour (config); a protected cluster's is a bar in it."""
        look = cluster_look(cluster)
        style = self._style("fleet-matrix--cluster") if look.plain else look.rich_style
        return Text(cluster_label(cluster), style=style, no_wrap=True)

    def _style(self, component: str) -> Style:
        # Cached here: every update_cell() clears the widget's own style cache.
        style = self._styles.get(component)
        if style is None:
            style = self._styles[component] = cell_style(self, component)
        return style

    def _cell(self, project: str, cluster: ClusterConfig) -> Text:
        key = (project, cluster.name)
        mark = self.marks.get(key)
        if mark is not None and mark.mark is not None:
            env = self.snapshot.env(project, cluster.name) if self.snapshot else None
            plain = marked_text(mark, env, self.cell_width)
            self._shown[key] = (plain, MARK_COMPONENTS[mark.mark])
            return self._marked(plain, MARK_COMPONENTS[mark.mark], env)
        elif key not in self._deployed:
            plain, component = NOT_DEPLOYED_GLYPH, "fleet-matrix--not-deployed"
        elif self.snapshot is None:
            plain, component = "…", "fleet-matrix--loading"
        else:
            env = self.snapshot.env(project, cluster.name)
            drifted = env is not None and key in self.drift
            plain = cell_text(env, self.cell_width - (2 if drifted else 0))
            component = (
                "fleet-matrix--loading" if env is None else f"fleet-matrix--{env.health.value}"
            )
            if drifted:
                self._shown[key] = (f"{plain} {DRIFT_MARK}", component)
                text = self._styled(plain, component)
                text.append(f" {DRIFT_MARK}", self._style("fleet-matrix--drift"))
                return text
        self._shown[key] = (plain, component)
        return self._styled(plain, component)

    def _marked(self, plain: str, component: str, env: EnvStatus | None) -> Text:
        """The mark in its style, the health glyph after it in its own."""
        text = Text(plain, no_wrap=True, overflow="ellipsis")
        read = env is not None and bool(env.instances)
        text.stylize(self._style(component), 0, len(plain) - 1 if read else len(plain))
        if env is not None and read:
            text.stylize(self._style(f"fleet-matrix--{env.health.value}"), len(plain) - 1)
        return text

    def _styled(self, plain: str, component: str) -> Text:
        style = self._style(component)
        text = Text(plain, no_wrap=True, overflow="ellipsis")
        if component == "fleet-matrix--healthy":
            # Calm when all is well: colour the glyph and the counts, not the version.
            text.stylize(style, 0, 1)
            counts_at = plain.rstrip().rfind(" ")
            text.stylize(style, counts_at + 1)
        else:
            text.stylize(style)
        dns_at = plain.find(f" {DNS_MARK} ")
        if dns_at > 0:  # (dns) the record's mark in red, whatever the health's colour
            text.stylize(self._style("fleet-matrix--dns"), dns_at + 1, dns_at + 1 + len(DNS_MARK))
        return text

    # -- updating ------------------------------------------------------------------------

    def watch_snapshot(self, snapshot: FleetSnapshot | None) -> None:
        if not self.columns:
            return
        for row_key in list(self.rows):
            project = row_key.value
            assert project is not None
            for cluster in self.clusters:
                self._update_cell(row_key, project, cluster)

    def _update_cell(self, row_key: RowKey, project: str, cluster: ClusterConfig) -> None:
        before = self._shown.get((project, cluster.name))
        value = self._cell(project, cluster)
        if self._shown[(project, cluster.name)] != before:
            self.update_cell(row_key, cluster.name, value, update_width=False)

    def watch_marks(self) -> None:
        self.watch_snapshot(self.snapshot)

    def watch_drift(self) -> None:
        self.watch_snapshot(self.snapshot)

    def watch_filter_text(self, _old: str, _new: str) -> None:
        self._remake_rows()

    def watch_project_order(self, old: tuple[str, ...], new: tuple[str, ...]) -> None:
        if old != new:
            self._remake_rows()

    def _remake_rows(self) -> None:
        """All rows again (filtered, in order), the cursor kept on its project and column."""
        if not self.columns:
            return
        keep = self.cursor_project
        column = self.cursor_coordinate.column
        self.clear()
        self._add_rows()
        if keep is not None and keep in self.rows:
            self.move_cursor(row=self.get_row_index(keep), column=column, animate=False)
        elif self.row_count:
            self.move_cursor(row=0, column=column, animate=False)

    def _on_theme_changed(self, _theme: object) -> None:
        # Cell styles are resolved from the theme when a cell is made: remake them all.
        self.call_after_refresh(self._restyle)

    def _restyle(self) -> None:
        self._styles.clear()
        for cluster in self.clusters:
            self.columns[cluster.name].label = self._column_label(cluster)  # type: ignore[index]
        self._shown.clear()
        self.watch_snapshot(self.snapshot)
