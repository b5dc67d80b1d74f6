"""A scripted, in-memory stand-in for the deploy engine: fixed releases, plans and events;
and the Pilot steps that open its dialog or hold one of its deploys.

UI-only: the deploy screen's logic (steps, progress, log, cancel) does not depend on where the
events come from. Deploys against the world are tested with the real engine.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

from textual.pilot import Pilot

from console import events
from console.errors import ConsoleError
from console.model import (
    DEPLOY_STEPS,
    DeployPlan,
    DeployRequest,
    DeployState,
    FleetSnapshot,
    LoadBalancerKind,
    PlannedLoadBalancer,
    Release,
    Step,
    StepState,
)
from console.store import DeployRecord
from screens.app import DeployConsoleApp
from screens.deploy.dialog import DeployDialog
from screens.deploy.screen import DeployScreen
from tests.screens.ui import FROZEN_NOW, wait_for

VERSIONS = {
    "storefront": ("2.15.0", "2.14.1", "2.14.0", "2.13.0"),
    "checkout-api": ("5.2.3", "5.2.0", "5.1.0"),
}
INSTANCE_TYPES = {"staging": "t3.small", "qaprod1": "t3.medium"}
STEP_SECONDS = 1.5


def releases_of(project: str) -> list[Release]:
    return [
        Release(
            version,
            f"ami-0{index:02d}{len(project):02d}{'f' * 13}",
            FROZEN_NOW - timedelta(days=7 * (index + 1)),
            name=f"{project}-{version}",
        )
        for index, version in enumerate(VERSIONS.get(project, ("1.0.0",)))
    ]


def failed_deploy(
    project: str, cluster: str, version: str, *, days_ago: float = 1.0
) -> DeployRecord:
    """A deploy of the store that failed `days_ago` before FROZEN_NOW (the health gate)."""
    finished = FROZEN_NOW - timedelta(days=days_ago)
    return DeployRecord(
        id=f"d-failed-{cluster}",
        project=project,
        cluster=cluster,
        release=version,
        actor="bob",
        state=DeployState.FAILED.value,
        created_at=finished - timedelta(minutes=4),
        finished_at=finished,
        reason="health gate: 0/1 healthy in 45s; kept for a look",
    )


class Busy(ConsoleError):
    """Stands in for console.errors.LockBusy (a ConsoleError): the pair is being deployed."""


class ScriptedDeploys:
    """DeploySupport with a fixed script; `hold_at` stops a deploy at that step until resumed."""

    def __init__(
        self,
        snapshot: FleetSnapshot | None = None,
        *,
        hold_at: Step | None = None,
        busy: set[tuple[str, str]] | None = None,
        recent: list[DeployRecord] | None = None,
    ) -> None:
        self.snapshot = snapshot
        self.recent = recent or []
        self.hold_at = hold_at
        self.busy = busy or set()
        self.actor = "alice"
        self.planned: list[DeployRequest] = []
        self.started: list[DeployRequest] = []
        self.cancelled: list[tuple[str, str]] = []
        self.running: dict[str, asyncio.Event] = {}
        self.held: set[str] = set()
        self._resume = asyncio.Event()
        self._serial = 0

    async def releases(self, project: str, cluster: str) -> list[Release]:
        return releases_of(project)

    async def recent_deploys(self, project: str) -> list[DeployRecord]:
        return [record for record in self.recent if record.project == project]

    async def plan(self, request: DeployRequest) -> DeployPlan:
        self.planned.append(request)
        release = next(r for r in releases_of(request.project) if r.version == request.release)
        env = self.snapshot.env(request.project, request.cluster) if self.snapshot else None
        instances = tuple(i.id for i in env.instances) if env else ()
        serving = [i for i in env.instances if i.serving] if env else []
        return DeployPlan(
            project=request.project,
            cluster=request.cluster,
            protected=request.cluster.startswith("prod"),
            release=release,
            current_versions=env.versions if env else (),
            old_instances=instances,
            instance_type=INSTANCE_TYPES.get(request.cluster, "m5.large"),
            count=max(1, len(serving)),
            load_balancers=tuple(
                PlannedLoadBalancer(
                    name, LoadBalancerKind.TARGET_GROUP, tuple(sorted(instances)), 15, 5
                )
                for name in (env.load_balancers if env else ())
            ),
        )

    def resume(self) -> None:
        """Let held deploys go on to their end."""
        self._resume.set()

    def cancel(self, deploy_id: str, actor: str) -> bool:
        event = self.running.get(deploy_id)
        if event is None:
            return False
        self.cancelled.append((deploy_id, actor))
        event.set()
        return True

    async def run(self, request: DeployRequest) -> AsyncIterator[events.DeployEvent]:
        if (request.project, request.cluster) in self.busy:
            raise Busy(f"{request.project} in {request.cluster} is being deployed by bob")
        self.started.append(request)
        self._serial += 1
        deploy_id = f"d-20261126-120000-{self._serial:04x}"
        cancelled = self.running[deploy_id] = asyncio.Event()
        release = next(r for r in releases_of(request.project) if r.version == request.release)
        new_ids = [f"i-0new{self._serial:02d}{n}{'a' * 10}" for n in range(2)]
        try:
            for step in DEPLOY_STEPS:
                yield events.StepStarted(deploy_id, step, FROZEN_NOW, _detail(step))
                await asyncio.sleep(0)
                if step is Step.RESOLVE:
                    yield events.DeployStarted(
                        deploy_id,
                        request.project,
                        request.cluster,
                        release.version,
                        release.image_id,
                        request.actor,
                        FROZEN_NOW,
                    )
                for line in _lines(step, new_ids):
                    yield events.OutputLine(deploy_id, *line)
                if step is self.hold_at:
                    self.held.add(deploy_id)
                    await _first(cancelled, self._resume)
                    self.held.discard(deploy_id)
                if cancelled.is_set():
                    reason = f"cancelled by {self.actor}"
                    yield events.StepFinished(
                        deploy_id, step, StepState.FAILED, STEP_SECONDS, reason
                    )
                    yield events.StepStarted(deploy_id, Step.ROLLBACK, FROZEN_NOW)
                    yield events.OutputLine(
                        deploy_id, "console", f"terminating {', '.join(new_ids)}; old serve"
                    )
                    yield events.StepFinished(
                        deploy_id,
                        Step.ROLLBACK,
                        StepState.SUCCEEDED,
                        STEP_SECONDS,
                        f"terminated {', '.join(new_ids)}",
                    )
                    yield events.DeployFinished(
                        deploy_id,
                        DeployState.CANCELLED,
                        f"{reason}; rolled back: terminated {', '.join(new_ids)}; "
                        "old instances serve",
                        12.0,
                        0.05,
                    )
                    return
                yield events.StepFinished(deploy_id, step, StepState.SUCCEEDED, STEP_SECONDS)
                await asyncio.sleep(0)
            yield events.DeployFinished(
                deploy_id,
                DeployState.SUCCEEDED,
                f"{release.version} serves on {', '.join(new_ids)}",
                13.5,
                0.05,
            )
        finally:
            self.running.pop(deploy_id, None)


async def open_dialog(pilot: Pilot[None], rights: int) -> DeployDialog:
    """From storefront's row, `rights` columns to the right, press d; wait for the plan and
    the warnings."""
    await pilot.press(*["right"] * rights, "d")
    app = pilot.app
    await wait_for(pilot, lambda: isinstance(app.screen, DeployDialog), "the deploy dialog")
    dialog = app.screen
    assert isinstance(dialog, DeployDialog)
    await wait_for(pilot, lambda: dialog.plan is not None, "the plan")
    await wait_for(pilot, lambda: dialog.warnings is not None, "the release's warnings")
    await pilot.pause()
    return dialog


async def held_deploy(
    app: DeployConsoleApp, pilot: Pilot[None], deploys: ScriptedDeploys, *pair_release: str
) -> DeployScreen:
    """Start alice's deploy of (project, cluster, release); once the scripted deploy holds at
    its step, its screen."""
    app.start_deploy(DeployRequest(*pair_release, "alice"))
    await wait_for(pilot, lambda: deploys.held, f"the deploy to reach {deploys.hold_at}")
    await wait_for(pilot, lambda: isinstance(app.screen, DeployScreen), "the deploy screen")
    assert isinstance(app.screen, DeployScreen)
    return app.screen


async def _first(*flags: asyncio.Event) -> None:
    waiters = [asyncio.ensure_future(flag.wait()) for flag in flags]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


def _detail(step: Step) -> str:
    return {Step.LOCK: "held by alice", Step.HEALTH_GATE: "up to 45 s"}.get(step, "")


def _lines(step: Step, new_ids: list[str]) -> list[tuple[str, str, str]]:
    first = new_ids[0]
    if step is Step.LAUNCH:
        return [("console", f"launched {', '.join(new_ids)}", "stdout")]
    if step is Step.CONFIGURE:
        return [
            (first, "writing /etc/app.env (4 variables, 2 secrets)", "stdout"),
            (first, "migrate: 2 migrations applied", "stdout"),
            (first, "[warn] cache directory [var/cache] recreated", "stderr"),
            (first, "start: app started", "stdout"),
        ]
    if step is Step.HEALTH_GATE:
        return [("console", f"{first} initial in storefront-prod1", "stdout")]
    return []
