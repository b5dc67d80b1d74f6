"""What the console's tables share: cursor keys, and cell styles taken from the theme."""

from __future__ import annotations

from typing import Any

from rich.style import Style
from textual.binding import Binding, BindingType
from textual.widgets import DataTable

# DataTable's keys without its Enter: the screens bind Enter to their own action.
TABLE_NAVIGATION: list[BindingType] = [
    Binding("up", "cursor_up", "Move up", show=False, id="table.up"),
    Binding("down", "cursor_down", "Move down", show=False, id="table.down"),
    Binding("left", "cursor_left", "Move left", show=False, id="table.left"),
    Binding("right", "cursor_right", "Move right", show=False, id="table.right"),
    Binding("pageup", "page_up", "Page up", show=False, id="table.page_up"),
    Binding("pagedown", "page_down", "Page down", show=False, id="table.page_down"),
    Binding("ctrl+home", "scroll_top", "First row", show=False, id="table.first_row"),
    Binding("ctrl+end", "scroll_bottom", "Last row", show=False, id="table.last_row"),
    Binding("home", "scroll_home", "First column", show=False, id="table.first_column"),
    Binding("end", "scroll_end", "Last column", show=False, id="table.last_column"),
]


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
