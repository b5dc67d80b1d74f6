"""The help: every key of the screen below it and of the app, with what it does."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual.app import App, ComposeResult
from textual.containers import Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Static

from screens.keys import KEYMAP
from screens.logging_setup import log_file


@dataclass(frozen=True)
class KeyHelp:
    """One line of the help."""

    where: str
    key: str
    description: str
    binding_id: str


def keys_of(screen: Screen[Any], app: App[Any]) -> list[KeyHelp]:
    """The keys a person can press on `screen` now, its own first, then tables', then the app's.

    Read from the live bindings, so keys remapped through the keymap show as remapped.
    """
    own: list[KeyHelp] = []
    tables: list[KeyHelp] = []
    app_keys: list[KeyHelp] = []
    namespace = getattr(screen, "HELP_NAMESPACE", type(screen).__name__)
    palette_shown = False
    for active in screen.active_bindings.values():
        binding = active.binding
        if binding.action == "command_palette" and not palette_shown:
            palette_shown = True
            app_keys.append(
                KeyHelp("app", app.get_key_display(binding), "Command palette", binding.id or "")
            )
            continue
        # Only the console's own bindings (they all carry an id); Textual's focus and copy
        # keys would bury them.
        if binding.system or not binding.description or not binding.id:
            continue
        if active.node is screen:
            where, bucket = namespace, own
        elif active.node is app:
            where, bucket = "app", app_keys
        elif isinstance(active.node, DataTable):
            where, bucket = "table", tables
        else:
            continue
        bucket.append(
            KeyHelp(where, app.get_key_display(binding), binding.description, binding.id or "")
        )
    return own + tables + app_keys


class HelpScreen(ModalScreen[None]):
    """A box over the current screen; Escape, q or ? closes it."""

    CSS_PATH = "styles/help.tcss"
    HELP_NAMESPACE = "help"
    BINDINGS = KEYMAP[HELP_NAMESPACE]

    def __init__(self, title: str, keys: list[KeyHelp]) -> None:
        super().__init__()
        self.title_text = title
        self.keys = keys

    def compose(self) -> ComposeResult:
        with Vertical(id="help-box") as box:
            box.border_title = self.title_text
            yield DataTable(id="help-keys", cursor_type="none", zebra_stripes=True)
            yield Static(id="help-hint")

    def on_mount(self) -> None:
        table = self.query_one("#help-keys", DataTable)
        table.add_column("where", key="where")
        table.add_column("key", key="key")
        table.add_column("what it does", key="description")
        table.add_column("binding id", key="binding_id")
        for item in self.keys:
            # Text, not str: a DataTable reads a str as markup, and a key may be "[".
            table.add_row(*(Text(value) for value in self.rows_of(item)))
        self.query_one("#help-hint", Static).update(Text(self.hint))

    @property
    def hint(self) -> str:
        """Where the keys come from and how to change one, with an example from this list."""
        example = next((item.binding_id for item in self.keys if item.binding_id), "app.help")
        close = next(
            (
                self.app.get_key_display(active.binding)
                for active in self.active_bindings.values()
                if active.binding.id == "help.close"
            ),
            "escape",
        )
        logs = log_file()
        return (
            f"Your own keys: in the config's [keymap], a binding id and its keys, e.g. "
            f'{example} = "f5" (`deploy-console config keys` lists every id). '
            f"ctrl+p: the same actions by name. {close} closes this help."
        ) + (f"\nLogs: {logs}" if logs is not None else "")

    @staticmethod
    def rows_of(item: KeyHelp) -> tuple[str, str, str, str]:
        return (item.where, item.key, item.description, item.binding_id)

    @property
    def rows(self) -> list[tuple[str, str, str, str]]:
        """What the help lists, as plain text."""
        return [self.rows_of(item) for item in self.keys]

    def action_close(self) -> None:
        self.dismiss(None)
