"""A screen's filter line: an Input that / shows and sends the next keys to."""

from __future__ import annotations

from typing import ClassVar

from textual.screen import Screen
from textual.widgets import Input


class FilteringScreen(Screen[None]):
    """A screen with a filter line, the Input whose id is FILTER_ID; its `filter` action (the
    / key) shows it and focuses it."""

    FILTER_ID: ClassVar[str]

    @property
    def filter_input(self) -> Input:
        return self.query_one(f"#{self.FILTER_ID}", Input)

    def action_filter(self) -> None:
        # set_focus, not Widget.focus(): the latter waits a tick, and the next key a person
        # types must already land in the filter.
        self.filter_input.display = True
        self.set_focus(self.filter_input)
        self.refresh_bindings()
