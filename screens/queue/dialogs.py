"""The queue screen's dialogs: freeze a cluster, add a lock, pick a lock or freeze to lift, let
a deploy start outside its cluster's deploy windows."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import (
    Button,
    Checkbox,
    Input,
    Label,
    OptionList,
    RadioButton,
    RadioSet,
    Static,
)
from textual.widgets.option_list import Option

from console.config import ClusterConfig
from console.errors import ConsoleError
from console.inputs import until
from console.store import DeployRecord
from screens.keys import KEYMAP
from screens.widgets.format import LOCK


@dataclass(frozen=True)
class FreezeRequest:
    cluster: str
    reason: str


@dataclass(frozen=True)
class LockScope:
    """One scope a lock may take: everything (both None), a cluster, a project, or one pair."""

    project: str | None
    cluster: str | None

    @property
    def label(self) -> str:
        if self.project and self.cluster:
            return f"{self.project} in {self.cluster} (this pair only)"
        if self.project:
            return f"project {self.project} (every cluster)"
        if self.cluster:
            return f"cluster {self.cluster} (every project)"
        return "everything (every project in every cluster)"


@dataclass(frozen=True)
class LockRequest:
    scope: LockScope
    reason: str
    expires_at: datetime | None
    warning: bool


def lock_scopes(
    project: str | None, cluster: str | None, clusters: Sequence[str]
) -> list[LockScope]:
    """The scopes offered: from the selected deploy's pair, narrowest first; else everything
    and each cluster."""
    if project is not None and cluster is not None:
        return [
            LockScope(project, cluster),
            LockScope(project, None),
            LockScope(None, cluster),
            LockScope(None, None),
        ]
    return [LockScope(None, None), *(LockScope(None, name) for name in clusters)]


def expiry(text: str, now: datetime) -> datetime | None:
    """A lock's expiry from what a person typed: empty (none), 30m/2h/1d, or an ISO time."""
    if not text.strip():
        return None
    try:
        moment = until(text.strip(), now)
    except ConsoleError:
        raise ConsoleError(
            f"expiry {text.strip()!r}: type a duration (30m, 2h, 1d) or an ISO time "
            "(UTC unless it names a zone), or leave it empty"
        ) from None
    if moment is not None and moment <= now:
        raise ConsoleError(f"expiry {moment:%Y-%m-%d %H:%M} UTC is already past")
    return moment


Answer = TypeVar("Answer")


class QueueDialog(ModalScreen[Answer | None]):
    """What the queue's dialogs share: their stylesheet, closing with no answer (Escape or
    Cancel), and a form's error line and buttons."""

    CSS_PATH = "../styles/queue.tcss"

    @on(Button.Pressed, "#cancel")
    def action_close(self) -> None:
        self.dismiss(None)

    def form_end(self, submit: str, submit_id: str) -> ComposeResult:
        """The error line (hidden until there is one), then the submit and Cancel buttons:
        kept at the foot of the box while the fields above scroll on a short terminal."""
        with Vertical(classes="dialog-end"):
            yield Static(id="dialog-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button(submit, id=submit_id, variant="warning")
                yield Button("Cancel", id="cancel")

    def reason(self, input_id: str, missing: str) -> str | None:
        """The reason typed, stripped; None (and `missing` shown) if there is none."""
        reason = self.query_one(input_id, Input).value.strip()
        if not reason:
            self.show_error(missing)
            return None
        return reason

    def show_error(self, text: str) -> None:
        # Content, not markup: the text may quote what a person typed.
        error = self.query_one("#dialog-error", Static)
        error.update(Content.styled(text, "$text-error"))
        error.display = True


class FormDialog(QueueDialog[Answer]):
    """A queue dialog that is a form: in a box with a title, a hint, then its `fields`."""

    def __init__(self, name: str, title: str, hint: str) -> None:
        super().__init__()
        self.form_name = name
        self.form_title = title
        self.hint = hint

    def compose(self) -> ComposeResult:
        with Vertical(id=f"{self.form_name}-box", classes="queue-dialog") as box:
            box.border_title = self.form_title
            yield Static(self.hint, classes="dialog-hint")
            yield from self.fields()

    def on_mount(self) -> None:
        self.query_one(f"#{self.form_name}-reason", Input).focus()

    def fields(self) -> ComposeResult:
        """The form's labels and inputs (its reason_field among them), down to its form_end."""
        raise NotImplementedError

    def reason_field(self) -> ComposeResult:
        """Why: every form asks, and its input has the focus first."""
        yield Label("why (everyone sees it)")
        yield Input(placeholder="reason", id=f"{self.form_name}-reason")


FREEZE_HINT = (
    "Queued deploys of a frozen cluster wait, with your reason, until someone "
    "unfreezes it. Running deploys go on."
)
LOCK_HINT = (
    "A lock holds the queued deploys it covers (never its owner's) until it is "
    "removed or expires; a warning lock only warns."
)


class FreezeDialog(FormDialog[FreezeRequest]):
    """Which cluster to freeze and why; dismisses a FreezeRequest, or None."""

    HELP_NAMESPACE = "freeze"
    BINDINGS = KEYMAP[HELP_NAMESPACE]

    def __init__(
        self, clusters: Sequence[ClusterConfig], selected: str | None, frozen: set[str]
    ) -> None:
        super().__init__("freeze", "freeze a cluster", FREEZE_HINT)
        self.clusters = list(clusters)
        self.selected = selected or (self.clusters[0].name if self.clusters else "")
        self.frozen = frozen

    def fields(self) -> ComposeResult:
        yield Label("cluster")
        with RadioSet(id="freeze-cluster"):
            for cluster in self.clusters:
                marks = (f" {LOCK}" if cluster.protected else "") + (
                    " (frozen)" if cluster.name in self.frozen else ""
                )
                yield RadioButton(
                    f"{cluster.name}{marks}",
                    value=cluster.name == self.selected,
                    name=cluster.name,
                )
        yield from self.reason_field()
        yield from self.form_end("Freeze (ctrl+s)", "freeze")

    @property
    def cluster(self) -> str:
        pressed = self.query_one("#freeze-cluster", RadioSet).pressed_button
        return (pressed.name if pressed is not None else None) or self.selected

    @on(Input.Submitted, "#freeze-reason")
    @on(Button.Pressed, "#freeze")
    def action_submit(self) -> None:
        reason = self.reason(
            "#freeze-reason", "A freeze needs a reason: the queued deploys show it."
        )
        if reason is None:
            return
        self.dismiss(FreezeRequest(self.cluster, reason))


class LockDialog(FormDialog[LockRequest]):
    """A manual lock: scope, reason, optional expiry, warning only; dismisses a LockRequest."""

    HELP_NAMESPACE = "lock"
    BINDINGS = KEYMAP[HELP_NAMESPACE]

    def __init__(self, scopes: Sequence[LockScope], clock: Callable[[], datetime]) -> None:
        super().__init__("lock", "add a lock", LOCK_HINT)
        self.scopes = list(scopes)
        self.clock = clock

    def fields(self) -> ComposeResult:
        yield Label("what it covers")
        with RadioSet(id="lock-scope"):
            for index, scope in enumerate(self.scopes):
                yield RadioButton(scope.label, value=index == 0, name=str(index))
        yield from self.reason_field()
        yield Label("expires after (30m, 2h, 1d) or at (an ISO time); empty: until removed")
        yield Input(placeholder="no expiry", id="lock-expiry")
        yield Checkbox("warning only (shown, never holds a deploy)", id="lock-warning")
        yield from self.form_end("Lock (ctrl+s)", "lock")

    @property
    def scope(self) -> LockScope:
        index = self.query_one("#lock-scope", RadioSet).pressed_index
        return self.scopes[max(0, index)]

    @on(Input.Submitted, "#lock-reason, #lock-expiry")
    @on(Button.Pressed, "#lock")
    def action_submit(self) -> None:
        reason = self.reason("#lock-reason", "A lock needs a reason: the deploys it holds show it.")
        if reason is None:
            return
        try:
            expires_at = expiry(self.query_one("#lock-expiry", Input).value, self.clock())
        except ConsoleError as error:
            self.show_error(error.message)
            return
        warning = self.query_one("#lock-warning", Checkbox).value
        self.dismiss(LockRequest(self.scope, reason, expires_at, warning))


OVERRIDE_HINT = (
    "It may start outside {cluster}'s deploy windows as soon as nothing else holds it: a "
    "freeze, a lock, its schedule and its turn still do. Your reason is audited and shown "
    "in the queue."
)


class OverrideDialog(FormDialog[str]):
    """An admin's reason to deploy now despite the window; dismisses the reason, or None."""

    HELP_NAMESPACE = "outside window"
    BINDINGS = KEYMAP[HELP_NAMESPACE]

    def __init__(self, record: DeployRecord, waiting: str) -> None:
        super().__init__(
            "override",
            "deploy now despite the window",
            OVERRIDE_HINT.format(cluster=record.cluster),
        )
        self.record = record
        self.waiting = waiting

    def fields(self) -> ComposeResult:
        record = self.record
        yield Static(
            Content.assemble(
                (f"{record.project} {record.release} → {record.cluster}", "bold"),
                f" ({record.id}, by {record.actor})",
                f"\nwaits: {self.waiting}" if self.waiting else "",
            ),
            id="override-deploy",
        )
        yield from self.reason_field()
        yield from self.form_end("Deploy now (ctrl+s)", "override")

    @on(Input.Submitted, "#override-reason")
    @on(Button.Pressed, "#override")
    def action_submit(self) -> None:
        reason = self.reason(
            "#override-reason", "Deploying outside the window needs a reason: it is audited."
        )
        if reason is not None:
            self.dismiss(reason)


class HoldsDialog(QueueDialog[str]):
    """The freezes and locks in force; dismisses the key of the one picked ("freeze:CLUSTER"
    or "lock:ID"), or None."""

    HELP_NAMESPACE = "locks"
    BINDINGS = KEYMAP[HELP_NAMESPACE]

    def __init__(self, holds: Sequence[tuple[str, Content]]) -> None:
        super().__init__()
        self.holds = list(holds)

    def compose(self) -> ComposeResult:
        with Vertical(id="holds-box", classes="queue-dialog") as box:
            box.border_title = "remove a lock or freeze"
            yield OptionList(*(Option(label, id=key) for key, label in self.holds), id="holds")
            yield Static(
                "Enter removes the one under the cursor (you confirm first); Escape closes.",
                classes="dialog-hint",
            )

    @on(OptionList.OptionSelected, "#holds")
    def _picked(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)
