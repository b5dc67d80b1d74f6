"""The deploy screen of a baking deploy at 80x24: its countdown, what it watches, and the keys
that end the bake early (confirmed) or roll back now (one key).

The deploys object is scripted (deploy_fakes.ScriptedDeploys, with a bake step); the engine's
bake and decisions are tested against the world in tests/console/deploy/test_bake.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from textual.pilot import Pilot
from textual.widgets import Static

from console import events
from console.config import Config
from console.errors import ConsoleError
from console.model import DEPLOY_STEPS, DeployRequest, DeployState, FleetSnapshot, Step, StepState
from screens.app import DeployConsoleApp
from screens.deploy.screen import DeployScreen
from tests.screens.ui import FROZEN_NOW, SteppingClock, confirm, stub_app, wait_for
from tests.screens.ui.deploy_fakes import ScriptedDeploys

SMALL = (80, 24)
WATCHES = "alarms checkout-5xx, web-*; unhealthy > 0 or 5xx > 10 rolls back"


class BakingDeploys(ScriptedDeploys):
    """Every step succeeds, then a 10 minute bake runs until a decision is asked."""

    def __init__(self, snapshot: FleetSnapshot, refuse: str | None = None) -> None:
        super().__init__(snapshot)
        self.decisions: list[tuple[str, str, str]] = []
        self.refuse = refuse
        self.decided = asyncio.Event()

    async def decide_bake(self, deploy_id: str, decision: str) -> None:
        if self.refuse:
            raise ConsoleError(self.refuse)
        self.decisions.append((deploy_id, self.actor, decision))
        self.decided.set()

    async def run(self, request: DeployRequest) -> AsyncIterator[events.DeployEvent]:
        deploy_id = "d-20261126-120000-bake"
        for step in DEPLOY_STEPS:
            yield events.StepStarted(deploy_id, step, FROZEN_NOW, "")
            yield events.StepFinished(deploy_id, step, StepState.SUCCEEDED, 1.0)
        yield events.StepStarted(deploy_id, Step.BAKE, FROZEN_NOW, f"600 s; {WATCHES}")
        await self.decided.wait()
        decision = self.decisions[-1][2]
        yield events.StepFinished(deploy_id, Step.BAKE, StepState.SUCCEEDED, 42.0, decision)
        if decision == "rollback":
            reason = "roll back asked by alice during the bake; rolled back: started i-old"
            yield events.DeployFinished(deploy_id, DeployState.ROLLED_BACK, reason, 60.0, 1.0)
        else:
            reason = "2.14.1 serves; bake ended early by alice"
            yield events.DeployFinished(deploy_id, DeployState.SUCCEEDED, reason, 60.0, 1.0)


@asynccontextmanager
async def baking(
    config: Config, snapshot: FleetSnapshot, refuse: str | None = None
) -> AsyncIterator[tuple[DeployConsoleApp, Pilot[None], BakingDeploys, SteppingClock]]:
    deploys = BakingDeploys(snapshot, refuse)
    clock = SteppingClock()
    app = stub_app(config, snapshot, clock, deploys=deploys)
    async with app.run_test(size=SMALL) as pilot:
        await wait_for(pilot, lambda: app.refresh_count >= 1, "the first refresh")
        app.start_deploy(DeployRequest("storefront", "staging", "2.14.1", "alice"))
        await wait_for(pilot, lambda: isinstance(app.screen, DeployScreen), "the deploy screen")
        screen = app.screen
        assert isinstance(screen, DeployScreen)
        await wait_for(pilot, lambda: screen.tracked.baking, "the bake")
        await pilot.pause()
        yield app, pilot, deploys, clock


def title(app: DeployConsoleApp) -> str:
    return str(app.screen.query_one("#deploy-title", Static).visual)


def keys_shown(app: DeployConsoleApp) -> dict[str, bool]:
    """The footer's keys of the screen: action -> enabled."""
    return {
        binding.action: enabled
        for _, binding, enabled, _ in app.active_bindings.values()
        if binding.show
    }


async def test_a_baking_deploy_shows_its_countdown_and_watches_at_80x24(
    world_config: Config, demo_snapshot: FleetSnapshot
) -> None:
    async with baking(world_config, demo_snapshot) as (app, pilot, _deploys, clock):
        text = title(app)
        assert "baking: 10m left · alarms checkout-5xx, web-*; unhealthy > 0" in text, text
        title_box = app.screen.query_one("#deploy-title").region
        assert title_box.right <= 80 and title_box.bottom <= 24
        clock.advance(150)
        await wait_for(pilot, lambda: "7m30s left" in title(app), "the countdown to tick")
        shown = keys_shown(app)
        assert shown["end_bake"] and shown["rollback_now"] and shown["cancel_deploy"]
        assert "baking: the new instances serve" in str(
            app.screen.query_one("#outcome", Static).visual
        )


async def test_r_rolls_back_now_with_one_key(
    world_config: Config, demo_snapshot: FleetSnapshot
) -> None:
    async with baking(world_config, demo_snapshot) as (app, pilot, deploys, _clock):
        screen = app.screen
        assert isinstance(screen, DeployScreen)
        await pilot.press("r")
        await wait_for(pilot, lambda: screen.tracked.finished, "the rollback")
        assert deploys.decisions == [("d-20261126-120000-bake", "alice", "rollback")]
        assert screen.tracked.state is DeployState.ROLLED_BACK
        assert "roll back asked by alice during the bake" in screen.tracked.reason
        assert not keys_shown(app).get("rollback_now")


async def test_e_ends_the_bake_early_once_confirmed(
    world_config: Config, demo_snapshot: FleetSnapshot
) -> None:
    async with baking(world_config, demo_snapshot) as (app, pilot, deploys, _clock):
        screen = app.screen
        assert isinstance(screen, DeployScreen)
        await pilot.press("e")
        question = await confirm(pilot, "n")
        assert "End the bake of storefront 2.14.1 in staging now?" in question
        assert deploys.decisions == [] and screen.tracked.baking
        await pilot.press("e")
        await confirm(pilot, "y")
        await wait_for(pilot, lambda: screen.tracked.finished, "the end of the deploy")
        assert deploys.decisions == [("d-20261126-120000-bake", "alice", "end")]
        assert screen.tracked.state is DeployState.SUCCEEDED
        assert "bake ended early by alice" in screen.tracked.reason


async def test_a_refused_decision_is_said_and_the_bake_goes_on(
    world_config: Config, demo_snapshot: FleetSnapshot
) -> None:
    refusal = "bob is a deployer in staging: may not end or roll back a bake (needs admin)"
    async with baking(world_config, demo_snapshot, refuse=refusal) as (app, pilot, _, _clock):
        screen = app.screen
        assert isinstance(screen, DeployScreen)
        await pilot.press("r")
        await wait_for(
            pilot,
            lambda: any(refusal in str(n.message) for n in app._notifications),
            "the refusal",
        )
        assert screen.tracked.baking and screen.tracked.bake_asked is None
        assert keys_shown(app)["rollback_now"]


def test_a_rollback_plan_within_keep_old_says_it_starts_the_kept_instances() -> None:
    from datetime import timedelta

    from console.model import DeployPlan, LoadBalancerKind, PlannedLoadBalancer, Release
    from screens.deploy.dialog import plan_content

    plan = DeployPlan(
        project="storefront",
        cluster="prod2",
        protected=True,
        release=Release("2.14.1", "ami-0123", FROZEN_NOW - timedelta(days=3)),
        current_versions=("2.15.0",),
        old_instances=("i-0new1",),
        instance_type="t3.small",
        count=1,
        load_balancers=(
            PlannedLoadBalancer("storefront-prod2", LoadBalancerKind.TARGET_GROUP, (), 15, 5),
        ),
        reuses=("i-0kept1", "i-0kept2"),
    )
    text = plan_content(plan).plain
    assert "start kept     i-0kept1, i-0kept2 (stopped, kept: no launch)" in text
    assert "launch " not in text
