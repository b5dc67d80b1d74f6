"""A yes/no question over the current screen, for actions that are hard to take back."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from screens.keys import KEYMAP


class ConfirmDialog(ModalScreen[bool]):
    """Dismisses True for yes; Escape or n is no."""

    CSS_PATH = "../styles/deploy.tcss"
    HELP_NAMESPACE = "confirm"
    # No is focused first: Enter alone never takes the hard-to-undo answer. (Textual focuses
    # it once the screen is shown; a query in on_mount raced the compose under load.)
    AUTO_FOCUS = "#no"
    BINDINGS = KEYMAP[HELP_NAMESPACE]

    def __init__(self, title: str, question: str | Content, yes: str, no: str) -> None:
        super().__init__()
        self.title_text = title
        self.question = question
        self.yes = yes
        self.no = no

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box") as box:
            box.border_title = self.title_text
            yield Static(self.question, id="question")
            with Horizontal(id="confirm-buttons"):
                yield Button(f"{self.yes} (y)", id="yes", variant="error")
                yield Button(f"{self.no} (n)", id="no", variant="primary")

    @on(Button.Pressed, "#yes")
    def _yes(self) -> None:
        self.dismiss(True)

    @on(Button.Pressed, "#no")
    def _no(self) -> None:
        self.dismiss(False)

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
