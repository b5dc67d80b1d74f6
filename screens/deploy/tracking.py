"""What the console knows of each deploy it started: steps, log lines, outcome (plain data)."""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from console.deploy.entry import entry_text
from console.events import (
    DeployEvent,
    DeployFinished,
    DeployStarted,
    DeployWaiting,
    StepFinished,
    StepStarted,
)
from console.model import DEPLOY_STEPS, DeployRequest, DeployState, Step, StepState
from screens.widgets.step_list import StepView

# Enough to scroll back through a long configure step; older events are dropped.
MAX_LINES = 5000
# The bake step's detail (console.deploy.engine): "600 s; what it watches".
BAKE_DETAIL = re.compile(r"^(\d+) s; (.*)$")


@dataclass
class TrackedDeploy:
    """One deploy this console started; `key` is local (the engine's id comes with its events)."""

    key: int
    request: DeployRequest
    deploy_id: str | None = None
    release: str = ""
    image_id: str = ""
    started_at: datetime | None = None
    state: DeployState = DeployState.QUEUED
    reason: str = ""
    seconds: float | None = None
    error: str | None = None
    """Why following the deploy failed (refused before it began, or the stream broke)."""
    cancel_requested: bool = False
    waiting: str = ""
    """Why it waits in the queue (the deploy ahead, a lock, a freeze...)."""
    bake_asked: str | None = None
    """A decision on its bake this console asked ("end" or "rollback"), on its way."""
    steps: dict[Step, StepView] = field(default_factory=dict)
    log: deque[DeployEvent] = field(default_factory=lambda: deque(maxlen=MAX_LINES))
    """Every event in order, for a deploy screen opened (again) mid-way."""

    def __post_init__(self) -> None:
        if not self.release:
            self.release = entry_text(self.request.kind, self.request.release)
        if not self.steps:
            # A scale or a stack change runs some of a deploy's steps: they join as they start.
            known = DEPLOY_STEPS if self.request.kind == "deploy" else (Step.LOCK,)
            self.steps = {step: StepView(step) for step in known}

    @property
    def pair(self) -> tuple[str, str]:
        return (self.request.project, self.request.cluster)

    @property
    def finished(self) -> bool:
        return self.error is not None or self.state.finished

    @property
    def rolling_back(self) -> bool:
        return Step.ROLLBACK in self.steps

    @property
    def total_steps(self) -> int:
        return len(self.steps)

    @property
    def steps_done(self) -> int:
        return sum(1 for view in self.steps.values() if view.finished)

    @property
    def current_step(self) -> Step | None:
        for view in self.steps.values():
            if view.state is StepState.RUNNING:
                return view.step
        return None

    @property
    def baking(self) -> bool:
        """Whether the bake step runs now (the new instances serve; alarms are watched)."""
        view = self.steps.get(Step.BAKE)
        return view is not None and view.state is StepState.RUNNING and not self.finished

    def bake_ends(self) -> tuple[datetime | None, str]:
        """When the running bake ends (None: unknown) and what it watches."""
        view = self.steps.get(Step.BAKE)
        match = BAKE_DETAIL.match(view.detail or "") if view is not None else None
        if view is None or match is None or view.started_at is None:
            return None, view.detail if view is not None else ""
        return view.started_at + timedelta(seconds=int(match[1])), match[2]

    @property
    def title(self) -> str:
        return f"{self.request.project} → {self.request.cluster} {self.release}"

    def apply(self, event: DeployEvent) -> None:
        """Fold one engine event into what the screens show."""
        self.deploy_id = self.deploy_id or event.deploy_id
        if isinstance(event, DeployWaiting):
            self.waiting = event.reason
            return
        self.waiting = ""
        self.log.append(event)
        if self.state is DeployState.QUEUED:
            self.state = DeployState.RUNNING
        if isinstance(event, StepStarted):
            if self.started_at is None:
                self.started_at = event.at
            view = self.steps.setdefault(event.step, StepView(event.step))
            view.state, view.started_at, view.detail = StepState.RUNNING, event.at, event.detail
        elif isinstance(event, StepFinished):
            view = self.steps.setdefault(event.step, StepView(event.step))
            view.state, view.seconds = event.state, event.seconds
            view.detail = event.detail or view.detail
        elif isinstance(event, DeployStarted):
            self.release, self.image_id = event.release, event.image_id
            self.started_at = self.started_at or event.at
        elif isinstance(event, DeployFinished):
            self.state, self.reason, self.seconds = event.state, event.reason, event.seconds
            # Steps that never ran will not: they count as done for the progress bar.
            for view in self.steps.values():
                if view.state is None:
                    view.state = StepState.SKIPPED

    def fail(self, error: str) -> None:
        """Following the deploy failed: before it began (refused) or mid-way."""
        self.error = error
        if not self.state.finished:
            self.state = DeployState.FAILED
        self.reason = self.reason or error
