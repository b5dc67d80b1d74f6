"""What the console's tables share: cursor keys, cell styles from the theme, and a DataTable
that re-renders only the rows a cursor move touches."""

from __future__ import annotations

from typing import Any, TypeVar

from rich.style import Style
from textual.coordinate import Coordinate
from textual.geometry import Region
from textual.strip import Strip
from textual.widgets import DataTable
from textual.widgets.data_table import RowKey

from screens.keys import KEYMAP

CellT = TypeVar("CellT")

# Stands for "the cursor is on another row": no cell of this row is highlighted.
ELSEWHERE = Coordinate(-2, -2)
# Marks this module's keys in DataTable's line cache.
STABLE = "cursor-stable"

# The tables' keys, from the keymap: DataTable's without its Enter.
TABLE_NAVIGATION = KEYMAP["table"]


def cell_style(table: DataTable[Any], component: str) -> Style:
    """A component's text colour and emphasis, for a cell, from the current theme.

    The full style is used because only it resolves translucent theme colours ($text-muted)
    against the table's background; its background is dropped so rows and the cursor keep
    theirs.
    """
    full = table.get_component_rich_style(component)
    return Style(
        color=full.color,
        bold=full.bold,
        italic=full.italic,
        underline=full.underline,
        strike=full.strike,
    )


class CursorCachedTable(DataTable[CellT]):
    """A DataTable whose cached rows and lines survive cursor moves.

    DataTable keys its row and line caches on the cursor's coordinate, so one arrow key
    re-renders every visible row (~1.5 ms each for a 5-column row), and a key that scrolls a
    table of 200 rows cost 45-120 ms. With a cell or row cursor only the rows the cursor (or
    the mouse hover) leaves and enters change; here every other row and line keeps its cache
    entry, so a cursor move renders two rows. Column cursors are left as DataTable does them.
    """

    _frame_style: Style | None = None

    def render_lines(self, crop: Region) -> list[Strip]:
        # The widget's style is the same for every line of one frame: resolve it once, not
        # once per line as DataTable.render_line does (it walks the DOM for the background).
        self._frame_style = self.rich_style
        try:
            return super().render_lines(crop)
        finally:
            self._frame_style = None

    def render_line(self, y: int) -> Strip:
        style = self._frame_style
        if style is None:
            return super().render_line(y)
        scroll_x, scroll_y = self.scroll_offset
        fixed_height: int = self.header_height if self.show_header else 0
        for index in range(self.fixed_rows):
            row_key = self._row_locations.get_key(index)
            if row_key is not None:
                fixed_height += self.get_row_height(row_key)
        if y >= fixed_height:
            y += scroll_y
        return self._render_line(y, scroll_x, scroll_x + self.size.width, style)

    def _row_index(self, row_key: RowKey) -> int:
        """The row's index, or -1 for the header."""
        index = self._row_locations.get(row_key) if row_key in self._row_locations else None
        return -1 if index is None else index

    def _cursor_for(self, row_index: int, location: Coordinate) -> Coordinate:
        """`location` if it highlights something on this row, else ELSEWHERE."""
        if self.cursor_type not in ("cell", "row") or location.row == row_index:
            return location
        return ELSEWHERE

    def _render_line_in_row(
        self,
        row_key: RowKey,
        line_no: int,
        base_style: Style,
        cursor_location: Coordinate,
        hover_location: Coordinate,
    ) -> tuple[Any, Any]:
        row_index = self._row_index(row_key)
        return super()._render_line_in_row(
            row_key,
            line_no,
            base_style,
            self._cursor_for(row_index, cursor_location),
            self._cursor_for(row_index, hover_location),
        )

    def _render_line(self, y: int, x1: int, x2: int, base_style: Style) -> Strip:
        if self.cursor_type not in ("cell", "row"):
            return super()._render_line(y, x1, x2, base_style)
        try:
            row_key, _ = self._get_offsets(y)
        except LookupError:
            return super()._render_line(y, x1, x2, base_style)
        row_index = self._row_index(row_key)
        # Kept in DataTable's own line cache, so that whatever clears it clears these too.
        key = (
            STABLE,
            y,
            x1,
            x2,
            self.size.width,
            self._cursor_for(row_index, self.cursor_coordinate),
            self._cursor_for(row_index, self.hover_coordinate),
            base_style,
            self.cursor_type,
            self.show_cursor,
            self._show_hover_cursor,
            self._update_count,
            self._pseudo_class_state,
        )
        strip: Strip | None = self._line_cache.get(key)  # type: ignore[arg-type]
        if strip is None:
            strip = super()._render_line(y, x1, x2, base_style)
            self._line_cache[key] = strip  # type: ignore[arg-type]
        return strip
