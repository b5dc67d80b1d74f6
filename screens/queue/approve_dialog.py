"""The queue's approve dialog: a deploy waiting for approval, its plan (what will change, read
from AWS as the deploy dialog shows it), and approve (with a comment) or reject (a reason)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static

from console.model import DeployPlan
from console.queue.release_queue import QueueEntry
from screens.deploy.dialog import plan_content
from screens.keys import KEYMAP
from screens.messages import error_text
from screens.widgets.format import LOCK


@dataclass(frozen=True)
class Verdict:
    """What the approver decided: approve (the image they were shown) or reject (why)."""

    approve: bool
    text: str  # the comment, or the reason
    image_id: str | None


class ApproveDialog(ModalScreen[Verdict | None]):
    """Approve or reject one queued deploy; the plan is read when the dialog opens."""

    HELP_NAMESPACE = "approve"
    BINDINGS = KEYMAP[HELP_NAMESPACE]
    DEFAULT_CSS = """
    ApproveDialog { align: center middle; }
    ApproveDialog #approve-box {
        width: 80; max-width: 100%; height: auto; max-height: 100%;
        border: round $warning; border-title-color: $text-warning; padding: 0 1;
    }
    ApproveDialog #approve-plan-area { height: auto; max-height: 12; }
    ApproveDialog #approve-error { display: none; height: auto; }
    ApproveDialog #approve-end { dock: bottom; height: auto; }
    ApproveDialog #approve-buttons { height: auto; align-horizontal: right; }
    ApproveDialog #approve-buttons Button { margin-left: 2; }
    """

    def __init__(self, entry: QueueEntry, plan: Callable[[], Awaitable[DeployPlan]]) -> None:
        super().__init__()
        self.entry = entry
        self._read = plan
        self.plan: DeployPlan | None = None

    def compose(self) -> ComposeResult:
        record = self.entry.record
        with Vertical(id="approve-box") as box:
            box.border_title = f"approve or reject {record.id}"
            yield Static(
                Content.assemble(
                    (f"{record.project} {record.release}", "bold"),
                    f" → {record.cluster} {LOCK} · by {record.actor}\n",
                    (self.entry.waiting or "its approvals are complete", "$text-warning"),
                ),
                id="approve-what",
            )
            with VerticalScroll(id="approve-plan-area", can_focus=False):
                yield Static(Content.styled("reading the plan…", "$text-muted"), id="approve-plan")
            with Vertical(id="approve-end"):
                yield Input(placeholder="comment (approve) or reason (reject)", id="approve-text")
                yield Static(id="approve-error")
                with Horizontal(id="approve-buttons"):
                    yield Button("Approve", id="approve", variant="success", disabled=True)
                    yield Button("Reject", id="reject", variant="error")
                    yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#approve-text", Input).focus()
        self._read_plan()

    @work(exclusive=True, group="approve-plan", exit_on_error=False)
    async def _read_plan(self) -> None:
        area = self.query_one("#approve-plan", Static)
        try:
            self.plan = await self._read()
        except Exception as error:
            area.update(Content.assemble(("No plan: ", "bold $text-error"), error_text(error)))
            return
        area.update(plan_content(self.plan))
        self.query_one("#approve", Button).disabled = False

    @property
    def plan_text(self) -> str:
        visual = self.query_one("#approve-plan", Static).visual
        return str(getattr(visual, "plain", visual))

    @on(Button.Pressed, "#cancel")
    def action_close(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#approve")
    def action_approve(self) -> None:
        if self.plan is None:
            self._error("The plan is not read yet: approve what you have seen.")
            return
        text = self.query_one("#approve-text", Input).value.strip()
        self.dismiss(Verdict(True, text, self.plan.release.image_id))

    @on(Button.Pressed, "#reject")
    def action_reject(self) -> None:
        reason = self.query_one("#approve-text", Input).value.strip()
        if not reason:
            self._error("A rejection needs a reason: type it above.")
            return
        self.dismiss(Verdict(False, reason, None))

    def _error(self, text: str) -> None:
        error = self.query_one("#approve-error", Static)
        error.update(Content.styled(text, "$text-error"))
        error.display = True


class BreakGlassDialog(ModalScreen[str | None]):
    """An admin's rollback during an incident: the reason it waits for no approval."""

    HELP_NAMESPACE = "break glass"
    BINDINGS = KEYMAP[HELP_NAMESPACE]
    DEFAULT_CSS = """
    BreakGlassDialog { align: center middle; }
    BreakGlassDialog #glass-box {
        width: 72; max-width: 100%; height: auto; max-height: 100%;
        border: heavy $error; border-title-color: $text-error; padding: 0 1;
    }
    BreakGlassDialog #glass-error { display: none; height: auto; }
    BreakGlassDialog #glass-buttons { height: auto; align-horizontal: right; margin-top: 1; }
    BreakGlassDialog #glass-buttons Button { margin-left: 2; }
    """

    def __init__(self, entry: QueueEntry) -> None:
        super().__init__()
        self.entry = entry

    def compose(self) -> ComposeResult:
        record = self.entry.record
        with Vertical(id="glass-box") as box:
            box.border_title = "BREAK GLASS"
            yield Static(
                Content.assemble(
                    ("Roll back without approval? ", "bold $text-error"),
                    f"{record.id} rolls {record.project} in {record.cluster} back to "
                    f"{record.release} (rollback of {record.rollback_of}). It starts without "
                    "waiting for approval; the audit and every notification say so loudly.",
                )
            )
            yield Input(placeholder="the incident (required)", id="glass-reason")
            yield Static(id="glass-error")
            with Horizontal(id="glass-buttons"):
                yield Button("Break glass", id="glass", variant="error")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#glass-reason", Input).focus()

    @on(Button.Pressed, "#cancel")
    def action_close(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#glass")
    @on(Input.Submitted, "#glass-reason")
    def action_break_glass(self) -> None:
        reason = self.query_one("#glass-reason", Input).value.strip()
        if not reason:
            error = self.query_one("#glass-error", Static)
            error.update(Content.styled("Breaking glass needs the reason.", "$text-error"))
            error.display = True
            return
        self.dismiss(reason)
