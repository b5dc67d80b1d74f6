"""The history screen: the deploys the store recorded, newest first, filtered, read page by page."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from rich.style import Style
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.content import Content
from textual.message import Message
from textual.timer import Timer
from textual.widgets import DataTable, Footer, Input, Static

from console.config import Config
from console.errors import ConsoleError
from console.model import DeployState
from console.store import DeployRecord, Store
from screens.history.detail import (
    STATE_STYLES,
    UNFINISHED,
    DeployDetailScreen,
    release_text,
    state_word,
    took,
)
from screens.history.filters import HINT, HistoryFilter, parse_filter
from screens.history.redeploy import LOG, RERUN, ROLLBACK, RedeployKeys
from screens.keys import KEYMAP
from screens.messages import ReadFailed, error_text
from screens.widgets.filter_line import FilteringScreen
from screens.widgets.format import shorten
from screens.widgets.tables import TABLE_NAVIGATION, CursorCachedTable, cell_style

PAGE_SIZE = 100
# A refresh re-reads what is shown (up to this many rows) plus a page, to see what changed.
REFRESH_WINDOW = 2000
REFRESH_SECONDS = 3.0
# Load the next page when the cursor or the view comes this close to the last row.
LOAD_MORE_MARGIN = 5

CELL_PADDING = 1
# (key, label, narrowest, widest): a column is as wide as its longest value among the rows
# shown, within these bounds; a longer value is cut with "…". The reason takes the rest.
COLUMNS = (
    ("id", "deploy", 6, 26),
    ("project", "project", 7, 24),
    ("cluster", "cluster", 7, 12),
    ("release", "release", 7, 21),
    ("actor", "actor", 5, 12),
    ("state", "outcome", 11, 11),
    ("started", "started UTC", 11, 11),
    ("took", "took", 6, 6),
)
# Narrower than this, the reason column is left out (no sideways scrolling): the line under
# the table says the whole reason of the deploy under the cursor anyway.
MIN_REASON_WIDTH = 16
# The table's left margin and its vertical scrollbar.
TABLE_CHROME = 3
STATE_COMPONENTS: dict[str, str] = {
    DeployState.SUCCEEDED: "history-table--succeeded",
    DeployState.FAILED: "history-table--failed",
    DeployState.INTERRUPTED: "history-table--failed",
    DeployState.ROLLED_BACK: "history-table--undone",
    DeployState.CANCELLED: "history-table--undone",
    DeployState.RUNNING: "history-table--running",
    DeployState.QUEUED: "history-table--muted",
}
FIRST, MORE, REFRESH = "first", "more", "refresh"


def started_text(record: DeployRecord) -> str:
    moment = record.started_at or record.created_at
    return moment.astimezone(UTC).strftime("%m-%d %H:%M")


def merged(
    shown: Sequence[DeployRecord], fresh: list[DeployRecord], complete: bool
) -> list[DeployRecord]:
    """What to show after a refresh read `fresh`, the newest rows now (`complete`: all there
    are). Rows below where fresh ends stay as loaded; rows fresh no longer holds are gone (a
    deploy that left the outcome filtered on)."""
    if complete:
        return fresh
    positions = {record.id: index for index, record in enumerate(shown)}
    for cut in range(len(fresh) - 1, -1, -1):
        position = positions.get(fresh[cut].id)
        if position is not None:
            return fresh[: cut + 1] + list(shown[position + 1 :])
    return fresh  # nothing in common: more changed than a refresh covers, start from the top


@dataclass
class DeploysRead(Message):
    """A read of the store finished: `records` for `kind` (first, more, refresh) of `view`."""

    kind: str
    view: HistoryFilter
    records: list[DeployRecord]
    complete: bool
    before: str | None


class DeploysReadFailed(ReadFailed):
    """A read of the store raised; what was shown stays."""


class HistoryTable(CursorCachedTable[Text], inherit_bindings=False):
    """One deploy a row, keyed by deploy id; fixed column widths, the reason takes the rest."""

    BINDINGS = TABLE_NAVIGATION

    COMPONENT_CLASSES = set(STATE_COMPONENTS.values())

    DEFAULT_CSS = """
    HistoryTable > .history-table--succeeded { color: $text-success; }
    HistoryTable > .history-table--failed { color: $text-error; text-style: bold; }
    HistoryTable > .history-table--undone { color: $text-warning; }
    HistoryTable > .history-table--running { color: $text-accent; text-style: bold; }
    HistoryTable > .history-table--muted { color: $text-muted; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True, cell_padding=CELL_PADDING)
        self._styles: dict[str, Style] = {}

    def style_of(self, component: str) -> Style:
        # Cached here: every update_cell() clears the widget's own style cache.
        style = self._styles.get(component)
        if style is None:
            style = self._styles[component] = cell_style(self, component)
        return style


class HistoryScreen(FilteringScreen, RedeployKeys):
    """The deploys of every console on this store; another console's deploys appear as they
    are recorded (re-read every REFRESH_SECONDS, the cursor stays on its deploy). b rolls the
    deploy under the cursor back, R runs it again, o opens its full log."""

    CSS_PATH = "../styles/history.tcss"
    HELP_NAMESPACE = "history"
    BINDINGS = KEYMAP[HELP_NAMESPACE]
    FILTER_ID = "history-filter"

    def __init__(
        self,
        store: Store,
        config: Config,
        clock: Callable[[], datetime],
        view: HistoryFilter | None = None,
    ) -> None:
        super().__init__()
        self.store = store
        self.config = config
        self.clock = clock
        self.filter = view or HistoryFilter()
        self.problems: list[str] = []
        self.records: list[DeployRecord] = []
        """The deploys shown, in table order (newest first)."""
        self.complete = False
        """True when the rows shown are every deploy the filter matches."""
        self.reading = False
        self.read_count = 0
        """Reads handled (good or failed): tests wait on it."""
        self.error: str | None = None
        self._refresh_timer: Timer | None = None
        self._widths: dict[str, int] = {}
        """The columns' widths now; "reason" 0: no reason column (too narrow a screen)."""
        self._enabled: tuple[bool | None, ...] = ()

    @property
    def table(self) -> HistoryTable:
        return self.query_one(HistoryTable)

    @property
    def cursor_record(self) -> DeployRecord | None:
        """The deploy under the cursor."""
        row = self.table.cursor_row
        return self.records[row] if 0 <= row < len(self.records) else None

    @property
    def redeploy_record(self) -> DeployRecord | None:
        return self.cursor_record

    def compose(self) -> ComposeResult:
        yield Static(id="history-title")
        yield Input(value=self.filter.text(), placeholder=HINT, id="history-filter")
        yield HistoryTable(id="history-table")
        yield Static(id="history-empty")
        yield Static(id="history-preview")
        yield Footer()

    def on_mount(self) -> None:
        self._widths = self._layout([])
        self._add_columns()
        self._show_title()
        self._read(FIRST)
        self.table.focus()
        self.watch(self.table, "scroll_y", self._maybe_load_more, init=False)

    # -- reading: one read at a time; a refresh is armed only after the last read ended ---

    def _read(self, kind: str) -> None:
        """Start a read (one at a time: a new one cancels the last, whose rows would be stale)."""
        self.reading = True
        self._read_worker(kind)

    @work(exclusive=True, group="history-read", exit_on_error=False)
    async def _read_worker(self, kind: str) -> None:
        view = self.filter
        before = self.records[-1].id if kind == MORE and self.records else None
        limit = PAGE_SIZE
        if kind == REFRESH:
            limit += min(len(self.records), REFRESH_WINDOW)
        since, until = view.bounds(self.clock())
        try:
            records = await self.store.deploys(
                project=view.project,
                cluster=view.cluster,
                actor=view.actor,
                state=view.state,
                since=since,
                until=until,
                before=before,
                limit=limit,
            )
        except Exception as error:
            self.post_message(DeploysReadFailed(error_text(error)))
        else:
            self.post_message(DeploysRead(kind, view, records, len(records) < limit, before))

    def on_deploys_read(self, message: DeploysRead) -> None:
        if message.view != self.filter:
            return  # read for a filter no longer shown; the read for this one is on its way
        self.reading = False
        self.read_count += 1
        self.error = None
        if message.kind == FIRST:
            self.complete = message.complete
            self._show(message.records, keep_cursor=False)
        elif message.kind == MORE:
            if self.records and self.records[-1].id == message.before:
                self.complete = message.complete
                self._append(message.records)
        else:
            records = merged(self.records, message.records, message.complete)
            kept_tail = bool(self.records and records) and records[-1] is self.records[-1]
            if not kept_tail:
                self.complete = message.complete
            self._show(records, keep_cursor=True)
        self._show_title()
        self._arm_refresh()
        # The cursor may have reached the end while this read ran (and refused a second one).
        self.call_after_refresh(self._maybe_load_more)

    def on_deploys_read_failed(self, message: DeploysReadFailed) -> None:
        self.reading = False
        self.read_count += 1
        self.error = message.error
        self._show_title()
        self._arm_refresh()

    def _arm_refresh(self) -> None:
        if self._refresh_timer is None:
            self._refresh_timer = self.set_timer(
                REFRESH_SECONDS, self._refresh_due, name="history-refresh"
            )

    def _refresh_due(self) -> None:
        self._refresh_timer = None
        if self.reading:
            self._arm_refresh()
        else:
            self._read(REFRESH)

    def _maybe_load_more(self) -> None:
        table = self.table
        if self.complete or self.reading or not self.records:
            return
        near_cursor = table.cursor_row >= table.row_count - 1 - LOAD_MORE_MARGIN
        # max_scroll_y > 0: while rows are being replaced the table has not measured them.
        near_view = 0 < table.max_scroll_y <= table.scroll_y + LOAD_MORE_MARGIN
        if near_cursor or near_view:
            self._read(MORE)
            self._show_title()

    # -- the table ---------------------------------------------------------------------

    def _layout(self, records: Sequence[DeployRecord]) -> dict[str, int]:
        """Column widths for these rows at the screen's width."""
        values = {
            "id": [len(r.id) for r in records],
            "project": [len(r.project) for r in records],
            "cluster": [len(r.cluster) for r in records],
            "release": [len(release_text(r)) for r in records],
            "actor": [len(r.actor) for r in records],
        }
        widths = {
            key: min(widest, max([narrowest, len(label), *values.get(key, [])]))
            for key, label, narrowest, widest in COLUMNS
        }
        used = sum(widths.values()) + 2 * CELL_PADDING * (len(widths) + 1)
        reason = self.size.width - TABLE_CHROME - used
        widths["reason"] = reason if reason >= MIN_REASON_WIDTH else 0
        return widths

    def _add_columns(self) -> None:
        table = self.table
        columns = [(key, label) for key, label, _, _ in COLUMNS] + [("reason", "reason")]
        for key, label in columns:
            if self._widths[key]:
                title = Text(label, justify="right" if key == "took" else "left")
                table.add_column(title, key=key, width=self._widths[key])

    def on_resize(self) -> None:
        if self.is_mounted and self._layout(self.records) != self._widths:
            self._show(self.records, keep_cursor=True)

    def _cells(self, record: DeployRecord) -> list[Text]:
        table = self.table
        widths = self._widths
        state_style = table.style_of(STATE_COMPONENTS.get(record.state, "history-table--muted"))
        muted = table.style_of("history-table--muted")
        reason = " ".join(record.reason.split())
        cells = [
            Text(shorten(record.id, widths["id"]), style=muted),
            Text(shorten(record.project, widths["project"])),
            Text(shorten(record.cluster, widths["cluster"])),
            Text(shorten(release_text(record), widths["release"])),
            Text(shorten(record.actor, widths["actor"])),
            Text(state_word(record.state), style=state_style),
            Text(started_text(record)),
            Text(took(record, self.clock()).rjust(widths["took"])),
        ]
        if widths["reason"]:
            cells.append(Text(shorten(reason, widths["reason"])))
        return cells

    def _append(self, records: list[DeployRecord]) -> None:
        shown = {record.id for record in self.records}
        added = [record for record in records if record.id not in shown]
        if self._layout([*self.records, *added]) != self._widths:
            self._show([*self.records, *added], keep_cursor=True)
            return
        self.records.extend(added)
        for record in added:
            self.table.add_row(*self._cells(record), key=record.id)
        self._show_empty()

    def _show(self, records: list[DeployRecord], *, keep_cursor: bool) -> None:
        """Show these rows; with keep_cursor the cursor stays on its deploy and the view on
        the same rows (unless it was at the top: then new deploys come into view)."""
        table = self.table
        before = {record.id: record for record in self.records}
        widths = self._layout(records)
        new_columns = widths != self._widths
        same_rows = [r.id for r in records] == [r.id for r in self.records] and not new_columns
        cursor, cursor_row = self.cursor_record, table.cursor_row
        self.records = list(records)
        if keep_cursor and same_rows:
            for record in records:
                if record != before[record.id] or record.state in UNFINISHED:
                    for column, cell in zip(table.columns, self._cells(record), strict=True):
                        table.update_cell(record.id, column, cell, update_width=False)
            self._show_empty()
            self._show_preview()  # the highlighted deploy may have ended: its line says so
            return
        offset = cursor_row - round(table.scroll_y)
        at_top = table.scroll_y == 0
        table.clear(columns=new_columns)
        if new_columns:
            self._widths = widths
            self._add_columns()
        for record in records:
            table.add_row(*self._cells(record), key=record.id)
        row = 0
        if keep_cursor and cursor is not None:
            positions = {record.id: index for index, record in enumerate(records)}
            row = positions.get(cursor.id, min(cursor_row, max(0, len(records) - 1)))
        if keep_cursor:
            # Scrolled after the table has measured its new rows.
            view_y = 0 if at_top and row < table.scrollable_content_region.height else row - offset
            table.call_after_refresh(table.scroll_to, y=max(0, view_y), animate=False)
        table.move_cursor(row=row, scroll=not keep_cursor)
        self._show_empty()
        self._show_preview()

    def _show_empty(self) -> None:
        empty = self.query_one("#history-empty", Static)
        empty.display = not self.records
        if self.filter.active:
            empty.update("No deploy matches this filter. Escape clears it.")
        else:
            empty.update("No deploy recorded in this store yet.")

    def _show_title(self) -> None:
        count = len(self.records)
        parts: list[str | tuple[str, str]] = [("deploy history", "bold $text-primary"), "  "]
        if self.reading and not count:
            parts.append(("reading the store…", "$text-muted"))
        else:
            noun = "deploy" if count == 1 else "deploys"
            parts.append(f"{count} {noun}, newest first")
            if not self.complete:
                more = "loading more…" if self.reading else "more load at the end"
                parts.append((f" · {more}", "$text-muted"))
        if self.error is not None:
            parts.extend(["  ", ("✖ cannot read the store: ", "bold $text-error"), self.error])
        parts.append("\nfilter: ")
        if self.filter.active:
            for index, (what, value) in enumerate(self.filter.parts()):
                parts.extend([" · " if index else "", (f"{what} ", "$text-muted"), (value, "bold")])
        else:
            parts.append(("none, every deploy", "$text-muted"))
        for problem in self.problems:
            parts.extend(["  ", (f"✖ {problem}", "$text-warning")])
        self.query_one("#history-title", Static).update(Content.assemble(*parts))

    def _show_preview(self) -> None:
        record = self.cursor_record
        preview = self.query_one("#history-preview", Static)
        if record is None:
            preview.update("")
            return
        reason = " ".join(record.reason.split()) or "no reason recorded"
        rollback = f" (rollback of {record.rollback_of})" if record.rollback_of else ""
        preview.update(
            Content.assemble(
                (f"{record.project} → {record.cluster}", "bold"),
                f"  {release_text(record)}{rollback}  ",
                (state_word(record.state), STATE_STYLES.get(record.state, "")),
                ": ",
                reason,
            )
        )

    @on(DataTable.RowHighlighted, "#history-table")
    def _row_highlighted(self) -> None:
        self._show_preview()
        self._maybe_load_more()
        self._refresh_actions()

    def _refresh_actions(self) -> None:
        """Redraw the footer only when what the row's keys may do changed (it recomposes)."""
        enabled = tuple(self.redeploy_check(action) for action in (ROLLBACK, RERUN, LOG))
        if enabled != self._enabled:
            self._enabled = enabled
            self.refresh_bindings()

    @on(DataTable.RowSelected, "#history-table")
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_open_deploy()

    # -- the filter --------------------------------------------------------------------

    def show_filter(self, view: HistoryFilter, problems: list[str] | None = None) -> None:
        """Show deploys through this filter, read from the top."""
        was_filtering = self.filter.active or bool(self.problems)
        self.problems = problems or []
        if was_filtering != (view.active or bool(self.problems)):
            self.refresh_bindings()  # Escape clears the filter, or goes back
        if view != self.filter:
            self.filter = view
            self.records = []
            self.complete = False
            self.table.clear()
            self._read(FIRST)
        self._show_title()

    @on(Input.Changed, "#history-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        projects = [project.name for project in self.config.projects]
        view, problems = parse_filter(event.value, projects, self.config.cluster_names)
        self.show_filter(view, problems)

    @on(Input.Submitted, "#history-filter")
    def _filter_submitted(self) -> None:
        self.filter_input.display = False
        self.set_focus(self.table)
        self.refresh_bindings()

    # -- actions -----------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # Escape clears the filter while there is one, and goes back when there is none.
        typing = any(widget.display for widget in self.query("#history-filter"))
        filtering = self.filter.active or bool(self.problems) or typing
        if action == "clear_filter":
            return filtering
        if action == "back":
            return not filtering
        if action in (ROLLBACK, RERUN, LOG):
            return self.redeploy_check(action)
        return True

    def action_clear_filter(self) -> None:
        self.filter_input.display = False
        with self.prevent(Input.Changed):
            self.filter_input.value = ""
        self.show_filter(HistoryFilter())
        self.set_focus(self.table)

    def action_time_range(self) -> None:
        view = self.filter.next_time_range()
        with self.prevent(Input.Changed):
            self.filter_input.value = view.text()
        self.show_filter(view, self.problems)

    def action_refresh(self) -> None:
        if not self.reading:
            self._read(REFRESH)

    def action_back(self) -> None:
        self.dismiss()

    def action_open_deploy(self) -> None:
        record = self.cursor_record
        if record is None:
            return
        try:
            protected = self.config.cluster(record.cluster).protected
        except ConsoleError:
            protected = False  # a cluster the config no longer has
        self.app.push_screen(DeployDetailScreen(self.store, record.id, self.clock, protected))
