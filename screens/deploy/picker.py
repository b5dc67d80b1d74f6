"""The deploys this console started (running first): pick one to open its deploy screen."""

from __future__ import annotations

from collections.abc import Iterable

from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from screens.deploy.screen import STATE_STYLES, state_word
from screens.deploy.tracking import TrackedDeploy
from screens.keys import KEYMAP


def deploy_label(tracked: TrackedDeploy) -> Content:
    step = tracked.current_step
    where = f" · {step}" if step is not None and not tracked.finished else ""
    return Content.assemble(
        ("⟳ " if not tracked.finished else "  ", "$text-accent"),
        (tracked.title, "bold" if not tracked.finished else ""),
        "  ",
        (state_word(tracked.state), STATE_STYLES[tracked.state]),
        where,
        (f"  {tracked.deploy_id or ''}", "$text-muted"),
    )


class DeployListDialog(ModalScreen[int | None]):
    """Dismisses the local key of the deploy picked, or None."""

    CSS_PATH = "../styles/deploy.tcss"
    HELP_NAMESPACE = "deploys"
    BINDINGS = KEYMAP[HELP_NAMESPACE]

    def __init__(self, deploys: Iterable[TrackedDeploy]) -> None:
        super().__init__()
        # Running first, then the finished, newest first within each.
        self.deploys = sorted(deploys, key=lambda t: (t.finished, -t.key))

    def compose(self) -> ComposeResult:
        with Vertical(id="deploy-list-box") as box:
            box.border_title = "deploys from this console"
            yield OptionList(
                *(Option(deploy_label(t), id=str(t.key)) for t in self.deploys),
                id="deploy-list",
            )
            yield Static("Enter opens a deploy; Escape closes.", id="deploy-list-hint")

    @on(OptionList.OptionSelected, "#deploy-list")
    def _picked(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(int(event.option.id or "0"))

    def action_close(self) -> None:
        self.dismiss(None)
