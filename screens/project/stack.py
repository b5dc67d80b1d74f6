"""The project screen's stacks: each pair's stack state (status, last change, in sync or the
changes pending), and the stack plan dialog whose confirm queues the apply."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static

from console.config import ClusterConfig, Config, ProjectConfig
from console.identity import person
from console.model import DeployRequest
from console.stacks.apply import PlannedChange
from console.store.records import utc_now
from screens.keys import KEYMAP
from screens.messages import error_text
from screens.widgets.format import LOCK, age_between


@dataclass(frozen=True)
class StackState:
    """What the project screen says of a pair's stack."""

    cluster: str
    status: str  # the stack's status (dc-PROJECT-CLUSTER), or "no stack yet"
    last: str  # the last change: "s-... applied", or ""
    last_at: datetime | None
    pending: int | None  # resources the config would change (None: not read)
    error: str = ""

    def line(self, now: datetime) -> Content:
        head = (f"{self.cluster}: ", "bold")
        if self.error:
            return Content.assemble(head, (self.error, "$text-error"))
        parts: list[str | tuple[str, str]] = [head, self.status]
        if self.last:
            when = f" {age_between(now, self.last_at)} ago" if self.last_at else ""
            parts.append((f" · {self.last}{when}", "$text-muted"))
        if self.pending == 0:
            parts.append((" · in sync", "$text-success"))
        elif self.pending:
            noun = "change" if self.pending == 1 else "changes"
            parts.append((f" · {self.pending} {noun} pending", "$text-warning"))
        return Content.assemble(*parts)


class StackSide:
    """What the screen asks of stacks, over this console's engine and runner."""

    def __init__(self, engine: Any, actor: str) -> None:
        self.engine = engine
        self.actor = actor

    @classmethod
    def of(cls, deploys: object) -> StackSide | None:
        """Over an app's deploys (EngineDeploys); None when the console runs none."""
        engine = getattr(deploys, "engine", None)
        actor = getattr(deploys, "actor", None)
        return None if engine is None or actor is None else cls(engine, str(actor))

    @property
    def config(self) -> Config:
        config: Config = self.engine.config
        return config

    async def _gateway(self, cluster: str) -> Any:
        return await asyncio.to_thread(self.engine._gateway, cluster, person(self.actor))

    async def state(self, project: str, cluster: str) -> StackState:
        from console.stacks.diff import diff_templates
        from console.stacks.plan import (
            current_stack,
            current_template,
            desired_template,
            keep_image,
        )
        from console.stacks.template import stack_name
        from console.store import Store
        from console.store.adoptions import adoptions_of

        gateway = await self._gateway(cluster)
        name = stack_name(project, cluster)
        stack = await current_stack(gateway, name)
        status = "no stack yet" if stack is None else str(stack.get("StackStatus"))  # of `name`
        old = None if stack is None else await current_template(gateway, name)
        store = self.engine.store
        known = adoptions_of(store) if isinstance(store, Store) else None
        adoption = await known.get(project, cluster) if known is not None else None
        desired = await desired_template(gateway, self.config, project, cluster, adoption)
        pending = len(diff_templates(old, keep_image(desired, old)))
        changes = await self.engine.store.stack_changes.of_pair(project, cluster, 1)
        last = changes[0] if changes else None
        return StackState(
            cluster,
            status,
            f"{last.id} {last.state}" if last else "",
            (last.finished_at or last.created_at) if last else None,
            pending,
        )

    async def plan(self, project: str, cluster: str) -> PlannedChange:
        from console.stacks.apply import plan_change

        gateway = await self._gateway(cluster)
        store = self.engine.store
        return await plan_change(gateway, self.config, project, cluster, store=store)

    async def planned(self, project: str, cluster: str, planned: PlannedChange) -> DeployRequest:
        """The plan on record (stack.planned), and the queue entry that applies it."""
        change = await self.engine.store.stack_changes.plan(
            project,
            cluster,
            planned.stack_name,
            template=planned.template,
            summary=planned.summary,
            actor=self.actor,
            change_set=planned.change_set,
        )
        return DeployRequest(project, cluster, change.id, self.actor, kind="stack")


class StackStates(Static):
    """One line per pair of the project whose stack the console owns."""

    DEFAULT_CSS = """
    StackStates { height: auto; max-height: 5; padding: 0 1; }
    """

    def __init__(self, side: StackSide | None, project: ProjectConfig, clusters: list[str]) -> None:
        super().__init__("stacks: reading…", id="stack-states")
        self.side = side
        self.project = project
        self.clusters = clusters
        self.states: dict[str, StackState] = {}

    def on_mount(self) -> None:
        self.border_title = "stacks"
        self.read()

    @work(exclusive=True, group="stack-states", exit_on_error=False)
    async def read(self) -> None:
        if self.side is None:
            self.update(Content.styled("stacks: this console runs no deploys", "$text-muted"))
            return
        side = self.side

        async def one(cluster: str) -> StackState:
            try:
                return await side.state(self.project.name, cluster)
            except Exception as error:
                return StackState(cluster, "", "", None, None, error_text(error))

        found = await asyncio.gather(*(one(cluster) for cluster in self.clusters))
        self.states = {state.cluster: state for state in found}
        self.show()

    def show(self) -> None:
        now = getattr(self.app, "clock", utc_now)()
        lines = [self.states[c].line(now) for c in self.clusters if c in self.states]
        self.update(Content("\n").join(lines))


class StackPlanDialog(ModalScreen[PlannedChange | None]):
    """The pair's stack plan, in the deploy dialog's style: confirm applies it (typing the
    cluster's name on a protected cluster)."""

    BINDINGS = KEYMAP["stack dialog"]
    DEFAULT_CSS = """
    StackPlanDialog { align: center middle; }
    StackPlanDialog #stack-box {
        width: 110; max-width: 100%; height: auto; max-height: 100%;
        border: round $accent; border-title-color: $text-accent;
        background: $surface; padding: 0 1;
    }
    StackPlanDialog #stack-box.-protected { border: heavy $error; border-title-color: $text-error; }
    StackPlanDialog #stack-plan-area { height: auto; max-height: 14; scrollbar-size-vertical: 1; }
    StackPlanDialog #stack-plan { height: auto; }
    StackPlanDialog #protect-hint { margin-top: 1; }
    StackPlanDialog #confirm-name { width: 1fr; border: tall $error; }
    StackPlanDialog #buttons { height: auto; align-horizontal: right; margin-top: 1; }
    StackPlanDialog #buttons Button { margin-left: 2; }
    """

    def __init__(self, side: StackSide, project: ProjectConfig, cluster: ClusterConfig) -> None:
        super().__init__()
        self.side = side
        self.project = project
        self.cluster = cluster
        self.planned: PlannedChange | None = None

    def compose(self) -> ComposeResult:
        lock = f" {LOCK}" if self.cluster.protected else ""
        classes = "-protected" if self.cluster.protected else ""
        with Vertical(id="stack-box", classes=classes) as box:
            box.border_title = f"stack plan {self.project.name} → {self.cluster.name}{lock}"
            with VerticalScroll(id="stack-plan-area", can_focus=False):
                yield Static("planning (a change set is being made)…", id="stack-plan")
            if self.cluster.protected:
                yield Static(
                    Content.assemble(
                        (f"{self.cluster.name} is protected.", "bold $text-error"),
                        " Type its name to confirm:",
                    ),
                    id="protect-hint",
                )
            with Horizontal(id="buttons"):
                if self.cluster.protected:
                    yield Input(placeholder=self.cluster.name, id="confirm-name")
                yield Button("Apply", id="confirm", variant="primary", disabled=True)
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.load_plan()

    @work(exclusive=True, exit_on_error=False)
    async def load_plan(self) -> None:
        try:
            planned = await self.side.plan(self.project.name, self.cluster.name)
        except Exception as error:
            self.query_one("#stack-plan", Static).update(
                Content.styled(f"no plan: {error_text(error)}", "$text-error")
            )
            return
        self.planned = planned
        lines = [Content.styled(f"stack {planned.stack_name}", "bold")]
        lines += [Content(line) for line in planned.summary.splitlines()]
        self.query_one("#stack-plan", Static).update(Content("\n").join(lines))
        self._update_confirm()
        if self.cluster.protected and planned.changes:
            self.query_one("#confirm-name", Input).focus()

    @property
    def can_confirm(self) -> bool:
        if self.planned is None or not self.planned.changes:
            return False
        if self.cluster.protected:
            return self.query_one("#confirm-name", Input).value.strip() == self.cluster.name
        return True

    def _update_confirm(self) -> None:
        self.query_one("#confirm", Button).disabled = not self.can_confirm

    @on(Input.Changed, "#confirm-name")
    def _name_typed(self) -> None:
        self._update_confirm()

    @on(Input.Submitted, "#confirm-name")
    def _name_submitted(self) -> None:
        self.action_confirm()

    @on(Button.Pressed, "#confirm")
    def action_confirm(self) -> None:
        if self.can_confirm:
            self.dismiss(self.planned)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


def stack_refusal(app: Any, project: ProjectConfig, cluster: str | None) -> str:
    """Why p may not plan the pair's stack here ("" if it may; the core checks again)."""
    from console.access import Action

    if cluster is None:
        return "put the cursor on a cluster first (Tab to a cluster)"
    settings = project.clusters.get(cluster)
    if settings is None or settings.stack is None:
        return f"{project.name} in {cluster} has no stack of the console's (stack = true)"
    if StackSide.of(getattr(app, "deploys", None)) is None:
        return "this console runs no deploys"
    refusal: str = app.refusal(Action.DEPLOY, cluster, project.name)
    return refusal


def open_stack_plan(screen: Any, project: ProjectConfig, cluster: str) -> None:
    """The plan dialog; its confirm records the plan and queues the apply, which the console
    follows like a deploy (its screen, the queue, history)."""
    app = screen.app
    side = StackSide.of(app.deploys)
    assert side is not None

    def confirmed(planned: PlannedChange | None) -> None:
        if planned is not None:
            screen.run_worker(
                _queue(app, side, project.name, cluster, planned), exit_on_error=False
            )

    app.push_screen(StackPlanDialog(side, project, app.config.cluster(cluster)), confirmed)


async def _queue(
    app: Any, side: StackSide, project: str, cluster: str, planned: PlannedChange
) -> None:
    try:
        request = await side.planned(project, cluster, planned)
    except Exception as error:
        app.notify(error_text(error), title="Stack change not queued", severity="warning")
        return
    app.start_deploy(request)


def reread(screen: Any) -> None:
    """The stack states read again (the screen shown again, r pressed)."""
    for states in screen.query(StackStates):
        states.read()
