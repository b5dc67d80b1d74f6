"""The release queue: every queued, running and reconciling deploy in queue order with why it
waits, the freezes and locks that hold them, and cancel, move, freeze and lock, read again from
the store every second (other consoles and the CLI change it too)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import ClassVar, Protocol

from textual import on, work
from textual.app import ComposeResult
from textual.content import Content
from textual.widgets import DataTable, Footer, Static

from console.access import Access, AccessDenied, Action, Role
from console.config import Config
from console.errors import ConsoleError
from console.model import DeployPlan, DeployRequest, DeployState
from console.queue.release_queue import (
    DeployQueue,
    QueueEntry,
    QueueView,
    queue_entries,
)
from console.store import DeployRecord
from screens import PROG
from screens.history.redeploy import DeployLogAsked
from screens.keys import KEYMAP
from screens.messages import QueueActed, QueuedDeployChosen, QueueRead, QueueReadFailed, error_text
from screens.queue.approve_dialog import ApproveDialog, BreakGlassDialog, Verdict
from screens.queue.dialogs import (
    FreezeDialog,
    FreezeRequest,
    HoldsDialog,
    LockDialog,
    LockRequest,
    OverrideDialog,
    lock_scopes,
)
from screens.queue.table import QueueTable, hold_lines, queue_row
from screens.refresh import ReadLoop
from screens.refusals import SaysWhyNot
from screens.widgets.confirm import ConfirmDialog
from screens.widgets.format import format_age

FREEZE_MARK = "❄"
OUTSIDE = Action.DEPLOY_OUTSIDE_WINDOW


class QueueControl(Protocol):
    """What the screen acts through: the console's runner (console.queue.runner.Runner), which
    cancels a deploy wherever it is; everything else goes through its DeployQueue."""

    @property
    def queue(self) -> DeployQueue: ...

    async def cancel(self, deploy_id: str, actor: str, reason: str = "") -> DeployRecord | None:
        """None: it ran here and rolls back now; else the record as the store has it."""
        ...

    def wake(self) -> None:
        """Look at the queue now (a freeze or lock lifted, a deploy moved)."""
        ...


def _denied(
    access: Access, actor: str, action: Action, cluster: str | None, owner: str | None = None
) -> str:
    """Why the role may not (the access check's own words), "" if it may."""
    try:
        access.check(actor, action, cluster, owner)
    except AccessDenied as denied:
        return denied.message
    return ""


class QueueScreen(SaysWhyNot):
    """The release queue, shared by every console and the CLI through the store."""

    CSS_PATH = "../styles/queue.tcss"
    HELP_NAMESPACE = "queue"

    POLL_SECONDS: ClassVar[float] = 1.0

    BINDINGS = KEYMAP[HELP_NAMESPACE]

    def __init__(
        self,
        config: Config,
        control: QueueControl,
        actor: str,
        clock: Callable[[], datetime],
    ) -> None:
        super().__init__()
        self.config = config
        self.control = control
        self.actor = actor
        self.clock = clock
        self.protected = {cluster.name for cluster in config.clusters if cluster.protected}
        self.view: QueueView | None = None
        self.entries: list[QueueEntry] = []
        self.read_count = 0
        """Reads finished (good or failed): tests wait on it."""
        self.read_error: str | None = None
        self.read_at: datetime | None = None
        self._reads = ReadLoop(self, self.poll_now, "queue-poll")
        self._again = False
        self._shown: dict[str, Content] = {}
        self._enabled: tuple[bool | None, ...] = ()

    @property
    def table(self) -> QueueTable:
        return self.query_one("#queue-table", QueueTable)

    @property
    def selected_entry(self) -> QueueEntry | None:
        selected = self.table.selected_id if self.is_mounted else None
        return next((e for e in self.entries if e.record.id == selected), None)

    def compose(self) -> ComposeResult:
        yield Static(id="queue-title")
        yield Static(id="queue-holds")
        yield QueueTable(id="queue-table")
        yield Static(
            "The queue is empty. A deploy started with d on the dashboard, or by "
            f"`{PROG} deploy`, waits here for its turn.",
            id="queue-empty",
        )
        yield Footer()

    def on_mount(self) -> None:
        self.table.focus()
        self._show()
        self.poll_now()
        self.set_interval(1.0, self._tick, name="queue-clock")

    # -- reading: one read at a time, the next armed once it ended -------------------------

    def poll_now(self) -> None:
        """Read the queue now (after an action, or when the timer fires)."""
        if not self._reads.begin():
            self._again = True
            return
        self._read()

    @work(exclusive=True, group="queue-read", exit_on_error=False)
    async def _read(self) -> None:
        try:
            view = await self.control.queue.view()
        except Exception as error:
            self.post_message(QueueReadFailed(error_text(error)))
        else:
            self.post_message(QueueRead(view, queue_entries(view)))

    def on_queue_read(self, message: QueueRead) -> None:
        self.view, self.entries = message.view, message.entries
        self.read_error, self.read_at = None, self.clock()
        self._show()
        self._read_done()

    def on_queue_read_failed(self, message: QueueReadFailed) -> None:
        self.read_error = message.error
        self._show_title()
        self._read_done()

    def _read_done(self) -> None:
        self.read_count += 1
        again, self._again = self._again, False
        self._reads.end(None if again else self.POLL_SECONDS)
        if again:
            self.poll_now()

    # -- showing -----------------------------------------------------------------------------

    def _show(self) -> None:
        self._show_title()
        holds = hold_lines(self.view) if self.view else []
        self._update(
            "#queue-holds",
            Content("\n").join(line for _, line in holds)
            if holds
            else Content.styled("No freezes or locks.", "$text-muted"),
        )
        self.table.show([queue_row(entry, self.protected) for entry in self.entries], self.clock())
        self.query_one("#queue-empty", Static).display = self.view is not None and not self.entries
        self._refresh_actions()

    def _update(self, selector: str, content: Content) -> None:
        # Only what changed: a Static's update lays the screen out again (most reads change
        # nothing).
        if self._shown.get(selector) != content:
            self._shown[selector] = content
            self.query_one(selector, Static).update(content)

    def _refresh_actions(self) -> None:
        """Redraw the footer only when what the keys may do changed (it recomposes)."""
        enabled = tuple(
            self.check_action(action, parameters)
            for action, parameters in (
                ("cancel_deploy", ()),
                ("move", (-1,)),
                ("move", (1,)),
                ("open_deploy", ()),
                ("deploy_log", ()),
                ("unlock", ()),
                ("outside_window", ()),
                ("approve", ()),
                ("break_glass", ()),
            )
        )
        if enabled != self._enabled:
            self._enabled = enabled
            self.refresh_bindings()

    def _show_title(self) -> None:
        queued = sum(1 for e in self.entries if e.record.state == DeployState.QUEUED)
        running = sum(1 for e in self.entries if e.record.state == DeployState.RUNNING)
        reconciling = sum(1 for e in self.entries if e.record.state == DeployState.INTERRUPTED)
        parts: list[str | tuple[str, str]] = [("release queue", "bold"), "  "]
        if self.view is None and self.read_error is None:
            parts.append(("reading the queue…", "$text-muted"))
        else:
            parts.append(f"{queued} queued · {running} running")
            if reconciling:
                parts.append((f" · {reconciling} reconciling", "$text-error"))
            if self.view is not None:
                parts.append((f" · at most {self.view.parallel} at a time", "$text-muted"))
        if self.read_error is not None:
            age = ""
            if self.read_at is not None:
                seconds = (self.clock() - self.read_at).total_seconds()
                age = f" (showing the queue as read {format_age(seconds)} ago)"
            parts.extend(
                ["\n", ("✖ cannot read the queue: ", "bold $text-error"), self.read_error, age]
            )
        self._update("#queue-title", Content.assemble(*parts))

    def _tick(self) -> None:
        self.table.tick(self.clock())
        if self.read_error is not None:
            self._show_title()

    @on(DataTable.RowHighlighted, "#queue-table")
    def _row_highlighted(self) -> None:
        self._refresh_actions()

    @on(DataTable.RowSelected, "#queue-table")
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_open_deploy()

    # -- what applies to the selected row ---------------------------------------------------

    def can_move(self, entry: QueueEntry | None, steps: int) -> bool:
        """Queued, and not already first (up) or last (down) of its pair's queued deploys."""
        if entry is None or entry.record.state != DeployState.QUEUED:
            return False
        record = entry.record
        pair = [
            e.record.id
            for e in self.entries
            if e.record.state == DeployState.QUEUED
            and (e.record.project, e.record.cluster) == (record.project, record.cluster)
        ]
        index = pair.index(record.id)
        return 0 <= index + steps < len(pair)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # None: shown in the footer, but disabled for the row under the cursor.
        entry = self.selected_entry
        access = self.control.queue.access
        record = entry.record if entry is not None else None
        if action in ("freeze", "lock", "unlock"):
            # Admins only (the queue checks again): hidden from everyone else.
            cluster = record.cluster if record is not None else None
            if not access.allows(self.actor, Action.LOCK, cluster) and not access.allows(
                self.actor, Action.LOCK
            ):
                return False
        if action in ("cancel_deploy", "move") and not self._may_ever(
            Action.CANCEL if action == "cancel_deploy" else Action.MOVE
        ):
            return False  # the role may do it to no deploy at all: hidden, not just disabled
        if action == "cancel_deploy":
            cancellable = (
                record is not None
                and record.state in (DeployState.QUEUED, DeployState.RUNNING)
                and not record.cancel_requested
                and access.allows(self.actor, Action.CANCEL, record.cluster, record.actor)
            )
            return True if cancellable else None
        if action == "move":
            steps = parameters[0] if parameters and isinstance(parameters[0], int) else 0
            allowed = record is not None and access.allows(
                self.actor, Action.MOVE, record.cluster, record.actor
            )
            return True if allowed and self.can_move(entry, steps) else None
        if action == "outside_window":
            return self._may_override(entry)
        if action in ("open_deploy", "deploy_log"):
            return True if entry is not None else None
        if action == "unlock":
            return True if self.view and hold_lines(self.view) else None
        if action == "break_glass":
            if not self._may_break_glass_somewhere():
                return False
            return True if entry is not None and not self._why_not_glass(entry) else None
        if action == "approve":
            if not self._may_approve_somewhere():
                return False  # hidden from who may approve nowhere
            return True if record is not None and not self._why_not_approve(record) else None
        return True

    def why_not(self, action: str, parameters: tuple[object, ...]) -> str:
        entry = self.selected_entry
        record = entry.record if entry is not None else None
        access = self.control.queue.access
        if action in ("approve", "break_glass"):
            if entry is None:
                return "No deploy is selected: the queue is empty."
            if action == "break_glass":
                return self._why_not_glass(entry)
            return self._why_not_approve(entry.record)
        kinds = {"freeze": Action.LOCK, "lock": Action.LOCK, "unlock": Action.LOCK}
        kinds |= {"cancel_deploy": Action.CANCEL, "move": Action.MOVE}
        kind = kinds.get(action)
        if kind is not None and not (kind is Action.LOCK or self._may_ever(kind)):
            return _denied(access, self.actor, kind, None, self.actor)
        if kind is Action.LOCK:
            cluster = record.cluster if record is not None else None
            if not access.allows(self.actor, Action.LOCK, cluster):
                return _denied(access, self.actor, Action.LOCK, cluster)
        if action == "unlock":
            return "No lock or freeze to remove: l adds a lock, f freezes a cluster."
        if record is None:
            return "No deploy is selected: the queue is empty." if action != "back" else ""
        if action == "cancel_deploy" and record.cancel_requested:
            return f"{record.id}: a cancel is already on its way ({record.cancel_requested})."
        if action == "cancel_deploy" and record.state not in (
            DeployState.QUEUED,
            DeployState.RUNNING,
        ):
            return f"{record.id} is {record.state.replace('_', ' ')}: it cannot be cancelled."
        if action in ("cancel_deploy", "move") and kind is not None:
            denied = _denied(access, self.actor, kind, record.cluster, record.actor)
            if denied:
                return denied
        if action == "outside_window":
            return self._why_not_override(record)
        if action == "move":
            if record.state != DeployState.QUEUED:
                return f"{record.id} is {record.state}: only a queued deploy moves."
            return f"{record.id} is already at that end of its pair's queue."
        return ""

    def _may_override(self, entry: QueueEntry | None) -> bool | None:
        """w: hidden unless some cluster has windows and the role may override them there;
        enabled on a queued deploy of such a cluster that has no override yet."""
        access = self.control.queue.access
        windowed = [cluster.name for cluster in self.config.clusters if cluster.windows]
        if not any(access.allows(self.actor, OUTSIDE, cluster) for cluster in windowed):
            return False
        record = entry.record if entry is not None else None
        usable = (
            record is not None
            and record.state == DeployState.QUEUED
            and record.cluster in windowed
            and not record.window_override
            and access.allows(self.actor, OUTSIDE, record.cluster, project=record.project)
        )
        return True if usable else None

    def _why_not_override(self, record: DeployRecord) -> str:
        if record.state != DeployState.QUEUED:
            return f"{record.id} is {record.state}: only a queued deploy waits for a window."
        if not self.config.cluster(record.cluster).windows:
            return f"{record.cluster} has no deploy windows: nothing to override."
        if record.window_override:
            return f"{record.id} may already start outside its window ({record.window_override})."
        try:
            self.control.queue.access.check(
                self.actor, OUTSIDE, record.cluster, project=record.project
            )
        except AccessDenied as denied:
            return denied.message
        return ""

    def _may_ever(self, action: Action) -> bool:
        """Whether the role allows `action` on some deploy: its own, in some cluster."""
        access = self.control.queue.access
        return any(
            access.allows(self.actor, action, cluster, self.actor)
            for cluster in self.config.cluster_names
        )

    def _may_approve_somewhere(self) -> bool:
        access = self.control.queue.access
        return any(
            cluster.approvals and access.allows(self.actor, Action.APPROVE, cluster.name)
            for cluster in self.config.clusters
        )

    def _why_not_approve(self, record: DeployRecord) -> str:
        """The queue's own refusal ("" when the actor may approve or reject it)."""
        try:
            self.control.queue.check_judge(record, self.actor, "approve")
        except ConsoleError as refused:
            return refused.message
        return ""

    def _may_break_glass_somewhere(self) -> bool:
        access = self.control.queue.access
        return any(
            cluster.approvals and access.role(self.actor, cluster.name) is Role.ADMIN
            for cluster in self.config.clusters
        )

    def _why_not_glass(self, entry: QueueEntry) -> str:
        record = entry.record
        if record.rollback_of is None or not entry.waiting.startswith("waiting for approval"):
            return f"{record.id} is no rollback waiting for approval: glass is not broken for it."
        role = self.control.queue.access.role(self.actor, record.cluster, record.project)
        if role is not Role.ADMIN:
            return f"{self.actor} is a {role} in {record.cluster}: may not break glass"
        return ""

    # -- actions: each goes through the queue (or the runner), which checks and audits it --

    @work(exclusive=True, group="queue-dialog")
    async def action_break_glass(self) -> None:
        """An admin's queued rollback starts without approval, with the incident's reason."""
        entry = self.selected_entry
        if entry is None or not self.check_action("break_glass", ()):
            return
        reason = await self.app.push_screen_wait(BreakGlassDialog(entry))
        if reason is None:
            return
        record = entry.record

        async def glass() -> str:
            await self.control.queue.break_glass(record.id, self.actor, reason)
            return f"BREAK GLASS: {record.id} rolls back without approval: {reason}"

        self._act(glass)

    @work(exclusive=True, group="queue-dialog")
    async def action_approve(self) -> None:
        """The approve dialog of the selected deploy: its plan, approve or reject."""
        entry = self.selected_entry
        if entry is None or not self.check_action("approve", ()):
            return
        record = entry.record
        deploys = getattr(self.app, "deploys", None)

        async def plan() -> DeployPlan:
            if deploys is None:
                raise ConsoleError("this console reads no plans (it runs no deploys)")
            release = record.image_id or record.release  # approved before: its pinned image
            plan: DeployPlan = await deploys.plan(
                DeployRequest(record.project, record.cluster, release, self.actor)
            )
            return plan

        verdict = await self.app.push_screen_wait(ApproveDialog(entry, plan))
        if verdict is not None:
            self._act(lambda: self._judge(record, verdict))

    async def _judge(self, record: DeployRecord, verdict: Verdict) -> str:
        pair = f"{record.project} → {record.cluster}"
        if not verdict.approve:
            ended = await self.control.queue.reject(record.id, self.actor, verdict.text)
            return f"{record.id} ({pair}) {ended.reason}: it will not run."
        assert verdict.image_id is not None
        given = await self.control.queue.approve(
            record.id, self.actor, verdict.image_id, verdict.text
        )
        after = f"waits for {given.waiting}" if given.waiting else "it may start"
        return f"{record.id} ({pair}) approved, {verdict.image_id}: {after}."

    def action_back(self) -> None:
        self.dismiss()

    def action_open_deploy(self) -> None:
        entry = self.selected_entry
        if entry is not None:
            self.post_message(QueuedDeployChosen(entry.record.id))

    def action_deploy_log(self) -> None:
        """The deploy's full log, from the store, at its end (o, as on the history)."""
        entry = self.selected_entry
        if entry is not None:
            self.post_message(DeployLogAsked(entry.record.id))

    @work(exclusive=True, group="queue-dialog")
    async def action_cancel_deploy(self) -> None:
        entry = self.selected_entry
        if entry is None or not self.check_action("cancel_deploy", ()):
            return
        record = entry.record
        what = Content.assemble(
            "Cancel ",
            (f"{record.project} {record.release}", "bold"),
            f" to {record.cluster} ({record.id}, by {record.actor})?\n\n",
        )
        if record.state == DeployState.RUNNING:
            where = record.runner or "its console"
            question = what + Content(
                f"It is running on {where}: it rolls back there. The new instances are "
                "removed and the old ones, which never left service, keep serving. "
                "A deploy already past its health gate finishes first."
            )
        else:
            question = what + Content("It is queued: it leaves the queue and never starts.")
        confirmed = await self.app.push_screen_wait(
            ConfirmDialog("cancel deploy", question, "Cancel the deploy", "Keep it")
        )
        if confirmed:
            self._act(lambda: self._cancel(record))

    async def _cancel(self, record: DeployRecord) -> str:
        stored = await self.control.cancel(record.id, self.actor)
        if stored is None:
            return f"{record.id} is cancelled: it rolls back here."
        pair = f"{record.project} → {record.cluster}"
        if stored.state == DeployState.CANCELLED:
            return f"{record.id} ({pair}) cancelled: it will not run."
        where = stored.runner or "its console"
        return f"{record.id} ({pair}): asked {where} to cancel; it rolls back there."

    def action_move(self, steps: int) -> None:
        entry = self.selected_entry
        if entry is None or not self.can_move(entry, steps):
            return
        deploy_id = entry.record.id

        async def move() -> str:
            await self.control.queue.move(deploy_id, steps, self.actor)
            return ""  # the table shows it

        self._act(move)

    @work(exclusive=True, group="queue-dialog")
    async def action_outside_window(self) -> None:
        """w (admins): the selected queued deploy may start outside its cluster's windows,
        for a reason they type (audited, shown in the queue)."""
        entry = self.selected_entry
        if entry is None or self.check_action("outside_window", ()) is not True:
            return
        record = entry.record
        reason = await self.app.push_screen_wait(OverrideDialog(record, entry.waiting))
        if reason is not None:
            self._act(lambda: self._override(record, reason))

    async def _override(self, record: DeployRecord, reason: str) -> str:
        await self.control.queue.override_window(record.id, self.actor, reason)
        return f"{record.id} may start outside {record.cluster}'s deploy window."

    @work(exclusive=True, group="queue-dialog")
    async def action_freeze(self) -> None:
        """Freeze the selected row's cluster (or one picked); unfreeze it if it is frozen."""
        entry = self.selected_entry
        cluster = entry.record.cluster if entry is not None else None
        freezes = {freeze.cluster: freeze for freeze in self.view.freezes} if self.view else {}
        if cluster is not None and cluster in freezes:
            question = Content.assemble(
                (f"Unfreeze {cluster}?", "bold"),
                f"\n\n{freezes[cluster].describe()}\n\nIts queued deploys may start at once.",
            )
            if await self.app.push_screen_wait(
                ConfirmDialog("unfreeze", question, f"Unfreeze {cluster}", "Keep it frozen")
            ):
                self._act(lambda: self._unfreeze(cluster))
            return
        request = await self.app.push_screen_wait(
            FreezeDialog(self.config.clusters, cluster, set(freezes))
        )
        if request is not None:
            self._act(lambda: self._freeze(request))

    async def _freeze(self, request: FreezeRequest) -> str:
        freeze = await self.control.queue.freeze(request.cluster, self.actor, request.reason)
        return f"{freeze.cluster} frozen: its queued deploys wait."

    async def _unfreeze(self, cluster: str) -> str:
        await self.control.queue.unfreeze(cluster, self.actor)
        return f"{cluster} unfrozen: its queued deploys may start."

    @work(exclusive=True, group="queue-dialog")
    async def action_lock(self) -> None:
        entry = self.selected_entry
        record = entry.record if entry is not None else None
        scopes = lock_scopes(
            record.project if record else None,
            record.cluster if record else None,
            self.config.cluster_names,
        )
        request = await self.app.push_screen_wait(LockDialog(scopes, self.clock))
        if request is not None:
            self._act(lambda: self._lock(request))

    async def _lock(self, request: LockRequest) -> str:
        lock = await self.control.queue.lock(
            owner=self.actor,
            reason=request.reason,
            project=request.scope.project,
            cluster=request.scope.cluster,
            expires_at=request.expires_at,
            warning=request.warning,
        )
        return f"lock #{lock.id}: {lock.describe()}"

    @work(exclusive=True, group="queue-dialog")
    async def action_unlock(self) -> None:
        holds = hold_lines(self.view) if self.view else []
        if not holds:
            return
        picked = await self.app.push_screen_wait(HoldsDialog(holds))
        if picked is None:
            return
        label = dict(holds)[picked]
        kind, _, name = picked.partition(":")
        verb = "Unfreeze" if kind == "freeze" else "Remove the lock"
        question = Content.assemble((f"{verb}?", "bold"), "\n\n", label)
        if not await self.app.push_screen_wait(ConfirmDialog("remove", question, verb, "Keep it")):
            return
        if kind == "freeze":
            self._act(lambda: self._unfreeze(name))
        else:
            self._act(lambda: self._unlock(int(name)))

    async def _unlock(self, lock_id: int) -> str:
        lock = await self.control.queue.unlock(lock_id, self.actor)
        return f"lock #{lock.id} removed ({lock.scope}, {lock.owner}: {lock.reason})."

    @work(group="queue-action", exit_on_error=False)
    async def _act(self, action: Callable[[], Awaitable[str]]) -> None:
        try:
            done = await action()
        except Exception as error:
            self.post_message(QueueActed(error=error_text(error)))
        else:
            self.post_message(QueueActed(done))

    def on_queue_acted(self, message: QueueActed) -> None:
        if message.error is not None:
            self.notify(message.error, title="Queue", severity="error")
        elif message.done:
            self.notify(message.done, title="Queue")
        self.control.wake()
        self.poll_now()
