"""CursorCachedTable draws exactly what DataTable draws, while moving the cursor re-renders
only the rows it leaves and enters."""

from __future__ import annotations

from typing import Any

import pytest
from rich.text import Text
from textual.app import App, ComposeResult
from textual.coordinate import Coordinate
from textual.strip import Strip
from textual.widgets import DataTable

from screens.widgets.tables import CursorCachedTable

ROWS = 60
COLUMNS = ("project", "staging", "qaprod1", "prod1", "prod2")


def fill(table: DataTable[Any]) -> None:
    for column in COLUMNS:
        table.add_column(column, key=column, width=14)
    for row in range(ROWS):
        table.add_row(
            *(
                Text(f"{column[:3]}-{row}", style="bold" if row % 7 == 0 else "")
                for column in COLUMNS
            ),
            key=f"row-{row}",
        )


class SideBySide(App[None]):
    """The same rows in a plain DataTable and in a CursorCachedTable, one above the other."""

    def __init__(self, cursor_type: str) -> None:
        super().__init__()
        self.cursor_type = cursor_type

    def compose(self) -> ComposeResult:
        yield DataTable(
            id="plain", cursor_type=self.cursor_type, zebra_stripes=True, fixed_columns=1
        )  # type: ignore[arg-type]
        yield CursorCachedTable(
            id="cached", cursor_type=self.cursor_type, zebra_stripes=True, fixed_columns=1
        )  # type: ignore[arg-type]

    def on_mount(self) -> None:
        for table in self.query(DataTable):
            table.styles.height = 20
            fill(table)


def screen_of(table: DataTable[Any]) -> list[Strip]:
    return table.render_lines(table.region.reset_offset)


async def same_picture(app: SideBySide, pilot: Any) -> None:
    """Each table drawn while it has the focus (focus changes the header's colours)."""
    pictures = []
    for name in ("#plain", "#cached"):
        table = app.query_one(name, DataTable)
        table.focus()
        await pilot.pause()
        pictures.append((table.scroll_offset, [list(line) for line in screen_of(table)]))
    (plain_offset, plain), (cached_offset, cached) = pictures
    assert cached_offset == plain_offset
    for y, (want, got) in enumerate(zip(plain, cached, strict=True)):
        assert got == want, f"line {y} differs"


@pytest.mark.parametrize("cursor_type", ["cell", "row", "column"])
async def test_the_cached_table_draws_what_datatable_draws_as_the_cursor_moves(
    cursor_type: str,
) -> None:
    app = SideBySide(cursor_type)
    async with app.run_test(size=(80, 42)) as pilot:
        await pilot.pause()
        await same_picture(app, pilot)
        # Within the screen, past its bottom (the table scrolls), sideways, and back up.
        for row, column in [(1, 1), (2, 1), (19, 1), (25, 2), (24, 3), (44, 0), (45, 4), (9, 2)]:
            for table in app.query(DataTable):
                table.move_cursor(row=row, column=column, animate=False)
            await same_picture(app, pilot)
        # A changed cell shows at once, wherever the cursor is.
        for table in app.query(DataTable):
            table.update_cell("row-20", "prod1", Text("changed", style="italic"))
            table.move_cursor(row=20, column=3, animate=False)
        await pilot.pause()
        await same_picture(app, pilot)
        for table in app.query(DataTable):
            table.move_cursor(row=22, column=1, animate=False)
        await pilot.pause()
        await same_picture(app, pilot)


async def test_a_cursor_move_renders_only_the_rows_it_leaves_and_enters() -> None:
    app = SideBySide("cell")
    async with app.run_test(size=(80, 42)) as pilot:
        cached = app.query_one("#cached", CursorCachedTable)
        cached.focus()
        await pilot.pause()
        screen_of(cached)  # everything on screen is in the caches now
        before = set(cached._row_render_cache.keys())
        cached.move_cursor(row=3, column=2, animate=False)
        await pilot.pause()
        screen_of(cached)
        drawn = {
            cached._row_locations.get(key[0]) if key[0] in cached._row_locations else -1
            for key in set(cached._row_render_cache.keys()) - before
        }
        assert cached.cursor_coordinate == Coordinate(3, 2)
        # The header and the rows on screen stay cached: only rows 0 and 3 are drawn anew.
        assert drawn == {0, 3}
