"""The queue screen's table (a row per deploy, why it waits) and its lines of freezes and locks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from rich.cells import cell_len
from rich.style import Style
from rich.text import Text
from textual.content import Content
from textual.coordinate import Coordinate
from textual.widgets import DataTable

from console.model import DeployState
from console.queue.release_queue import QueueEntry, QueueView
from console.stacks.labels import entry_label
from screens.widgets.format import LOCK, format_age
from screens.widgets.tables import TABLE_NAVIGATION, cell_style

FREEZE_MARK = "❄"

# (key, label) of the table's columns, in order.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("deploy", "pair / deploy"),
    ("state", "state"),
    ("release", "release"),
    ("actor", "actor"),
    ("waited", "waited"),
    ("status", "why waiting / where running"),
)
# Under this width (an 80-column terminal) release and actor fold under the state, so the
# why-waiting column keeps room to be read.
NARROW_COLUMNS = (
    ("deploy", "pair / deploy"),
    ("state", "state"),
    ("waited", "waited"),
    ("status", "why waiting"),
)
NARROW_WIDTH = 100
WAITED_WIDTH = 7  # "59m 59s"
MIN_STATUS_WIDTH = 30
MIN_NARROW_STATUS_WIDTH = 16
CELL_PADDING = 1

# A cell as (component class, text) pieces; "" is the table's own style.
Cell = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class QueueRow:
    """One row as shown, but for its age (which ticks): the other cells, in column order."""

    deploy_id: str
    cells: tuple[Cell, ...]
    created_at: datetime


STATE_COMPONENTS: dict[str, str] = {
    DeployState.RUNNING: "queue-table--running",
    DeployState.INTERRUPTED: "queue-table--interrupted",
}


def state_component(entry: QueueEntry) -> str:
    return STATE_COMPONENTS.get(entry.record.state, "queue-table--queued")


def status_component(entry: QueueEntry) -> str:
    record = entry.record
    if record.cancel_requested or record.state == DeployState.INTERRUPTED:
        return "queue-table--alert"
    if record.state == DeployState.QUEUED and not entry.waiting:
        return "queue-table--next"
    return ""


def queue_row(entry: QueueEntry, protected: set[str]) -> QueueRow:
    """Two lines a deploy: its pair over its id (the id the reasons and the CLI name)."""
    record = entry.record
    lock = f" {LOCK}" if record.cluster in protected else ""
    state = "reconciling" if record.state == DeployState.INTERRUPTED else record.state
    return QueueRow(
        record.id,
        (
            (
                ("queue-table--pair", f"{record.project} → {record.cluster}{lock}\n"),
                ("queue-table--muted", record.id),
            ),
            ((state_component(entry), state),),
            (("", entry_label(record.kind, record.release)),),
            (("", record.actor),),
            ((status_component(entry), entry.status),),
        ),
        record.created_at,
    )


def folded(cells: tuple[Cell, ...]) -> tuple[Cell, ...]:
    """The narrow layout's cells: release and actor on a second line under the state."""
    pair, state, release, actor, status = cells
    under = ("queue-table--muted", f"\n{release[0][1]} {actor[0][1]}")
    return pair, (*state, under), status


def waited(row: QueueRow, now: datetime) -> str:
    return format_age((now - row.created_at).total_seconds())


def cell_width(cell: Cell) -> int:
    text = "".join(piece for _, piece in cell)
    return max(cell_len(line) for line in text.split("\n"))


class QueueTable(DataTable[Text], inherit_bindings=False):
    """The queue's deploys, one row per deploy keyed by its id; the status column wraps."""

    BINDINGS = TABLE_NAVIGATION

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "queue-table--pair",
        "queue-table--queued",
        "queue-table--running",
        "queue-table--interrupted",
        "queue-table--next",
        "queue-table--alert",
        "queue-table--muted",
    }

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True, cell_padding=CELL_PADDING)
        self.shown: tuple[QueueRow, ...] = ()
        self._widths: dict[str, int] = {}
        self.narrow = False
        self._styles: dict[str, Style] = {}
        self._now: datetime | None = None

    def on_mount(self) -> None:
        self.app.theme_changed_signal.subscribe(self, self._on_theme_changed)

    def _on_theme_changed(self, _theme: object) -> None:
        # Cell styles are resolved from the theme when a row is made: remake the rows.
        self._styles.clear()
        self.call_after_refresh(self._remake)

    def _remake(self) -> None:
        if self._now is not None:
            rows, self.shown = self.shown, ()
            self.show(rows, self._now)

    def on_resize(self) -> None:
        # The status column takes the width the others leave: measure again.
        if self._now is not None and self._column_widths(self.shown) != self._widths:
            self._remake()

    def _style(self, component: str) -> Style | str:
        if not component:
            return ""
        style = self._styles.get(component)
        if style is None:
            style = self._styles[component] = cell_style(self, component)
        return style

    def _text(self, cell: Cell) -> Text:
        return Text.assemble(*((piece, self._style(component)) for component, piece in cell))

    @property
    def selected_id(self) -> str | None:
        if not self.row_count:
            return None
        row_key, _ = self.coordinate_to_cell_key(Coordinate(self.cursor_row, 0))
        return row_key.value

    def show(self, rows: Sequence[QueueRow], now: datetime) -> None:
        """Show `rows`, made again (when anything but the ages changed) with the cursor on
        the deploy it was on, or where it was if that one left."""
        self._now = now
        rows = tuple(rows)
        widths = self._column_widths(rows)
        if rows == self.shown and widths == self._widths:
            return  # the ages follow the clock's own tick
        keep, index = self.selected_id, self.cursor_row
        self.clear(columns=True)
        for key, label in NARROW_COLUMNS if self.narrow else COLUMNS:
            self.add_column(label, key=key, width=widths[key])
        for row in rows:
            cells = folded(row.cells) if self.narrow else row.cells
            texts = [self._text(cell) for cell in cells]
            texts.insert(len(cells) - 1, self._age(row, now))
            self.add_row(*texts, key=row.deploy_id, height=None)
        self.shown, self._widths = rows, widths
        ids = [row.deploy_id for row in rows]
        if ids:
            self.move_cursor(row=ids.index(keep) if keep in ids else min(index, len(ids) - 1))

    def _age(self, row: QueueRow, now: datetime) -> Text:
        return self._text((("queue-table--muted", waited(row, now)),))

    def tick(self, now: datetime) -> None:
        """Only the ages move with the clock: the cells whose text changed, at a fixed width."""
        self._now = now
        for row in self.shown:
            age = self._age(row, now)
            if self.get_cell(row.deploy_id, "waited").plain != age.plain:
                self.update_cell(row.deploy_id, "waited", age, update_width=False)

    def _column_widths(self, rows: Sequence[QueueRow]) -> dict[str, int]:
        # Before the first layout the table's width is unknown: the screen's, less margins.
        width = self.size.width or self.app.size.width - 2
        self.narrow = width < NARROW_WIDTH
        columns = NARROW_COLUMNS if self.narrow else COLUMNS
        widths: dict[str, int] = {}
        keys = [key for key, _ in columns if key not in ("waited", "status")]
        labels = dict(columns)
        for position, key in enumerate(keys):
            cells = (folded(r.cells) if self.narrow else r.cells for r in rows)
            widths[key] = max([cell_len(labels[key]), *(cell_width(c[position]) for c in cells)])
        widths["waited"] = WAITED_WIDTH
        available = width - 1  # room for a vertical scrollbar
        used = sum(width + 2 * CELL_PADDING for width in widths.values())
        least = MIN_NARROW_STATUS_WIDTH if self.narrow else MIN_STATUS_WIDTH
        widths["status"] = max(least, available - used - 2 * CELL_PADDING)
        return widths


def hold_lines(view: QueueView) -> list[tuple[str, Content]]:
    """Each freeze and manual lock in force, one line each: (key for removal, text)."""
    lines: list[tuple[str, Content]] = []
    for freeze in view.freezes:
        lines.append(
            (
                f"freeze:{freeze.cluster}",
                Content.assemble((f"{FREEZE_MARK} ", "bold $text-error"), freeze.describe()),
            )
        )
    for lock in view.manual_locks:
        style = "bold $text-warning" if lock.warning else "bold $text-error"
        lines.append(
            (
                f"lock:{lock.id}",
                Content.assemble((f"{LOCK} #{lock.id} ", style), lock.describe()),
            )
        )
    return lines
