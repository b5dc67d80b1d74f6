"""The project screen's stacks at 80x24, through Pilot with the real engine and a world of its
own: each stacked pair's state, p opens the plan in the deploy dialog's style, its confirm
applies it (followed like a deploy), and the state then says in sync; a protected cluster's
plan wants its typed name.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Button, Input, Static

from console.config import Config, load_config
from console.deploy.services import deploy_services
from console.model import DeployState
from console.queue.release_queue import DeployQueue
from console.queue.runner import Runner
from screens.app import DeployConsoleApp, build_app
from screens.deploy.screen import DeployScreen
from screens.deploy.support import EngineDeploys
from screens.messages import ProjectChosen
from screens.project.screen import ProjectScreen
from screens.project.stack import StackPlanDialog, StackStates
from tests.deploy_world import client, quick_seed, world_process
from tests.screens.cli.test_cli_stack_apply import stacked
from tests.screens.ui import wait_for

SMALL = (80, 24)
TIMEOUT = 120.0


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Config, Path]]:
    workdir = tmp_path_factory.mktemp("ui-stack-world")
    with world_process(quick_seed(workdir, 1), workdir) as config:
        yield config, workdir / "world.toml"


@asynccontextmanager
async def console(
    config: Config, store: Path
) -> AsyncIterator[tuple[DeployConsoleApp, Pilot[None]]]:
    async with deploy_services(config, store) as services:
        runner = Runner(services.engine, DeployQueue(services.store, config), poll_seconds=0.2)
        deploys = EngineDeploys(services.engine, services.fleet.gateway, "tester", runner=runner)
        app = build_app(config, services.fleet, auto_refresh=False, deploys=deploys)
        running = asyncio.create_task(runner.run_forever())
        try:
            async with app.run_test(size=SMALL) as pilot:
                await wait_for(pilot, lambda: app.refresh_count >= 1, "the first refresh", 30)
                yield app, pilot
        finally:
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running


def text_of(app: DeployConsoleApp, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).render())


async def open_project(app: DeployConsoleApp, pilot: Pilot[None], cluster: str) -> None:
    app.post_message(ProjectChosen("storefront", cluster))
    await wait_for(pilot, lambda: isinstance(app.screen, ProjectScreen), "the project screen")


async def test_p_plans_the_stack_and_its_confirm_applies_it(
    world: tuple[Config, Path], tmp_path: Path
) -> None:
    config = load_config(stacked(world[1], tmp_path / "stacked.toml"))
    async with console(config, tmp_path / "store.db") as (app, pilot):
        await open_project(app, pilot, "staging")
        states = app.screen.query_one(StackStates)
        await wait_for(pilot, lambda: "staging" in states.states, "the stack states", TIMEOUT)
        shown = text_of(app, "#stack-states")
        assert "staging: CREATE_COMPLETE · 1 change pending" in shown, shown
        assert "1 change pending" in shown
        await pilot.press("p")
        await wait_for(pilot, lambda: isinstance(app.screen, StackPlanDialog), "the plan dialog")
        dialog = app.screen
        assert isinstance(dialog, StackPlanDialog)
        await wait_for(pilot, lambda: dialog.planned is not None, "the plan", TIMEOUT)
        plan = text_of(app, "#stack-plan")
        assert "~ modify TargetGroup (ElasticLoadBalancingV2::TargetGroup)" in plan, plan
        assert "deregistration_delay.timeout_seconds: 1 -> 30" in plan, plan
        # At 80x24 the Apply button is on screen, enabled.
        apply = dialog.query_one("#confirm", Button)
        assert not apply.disabled and apply.region.bottom <= SMALL[1]
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, DeployScreen), "the stack's screen")
        screen = app.screen
        assert isinstance(screen, DeployScreen)
        await wait_for(pilot, lambda: screen.tracked.finished, "the change's end", TIMEOUT)
        assert screen.tracked.state is DeployState.SUCCEEDED
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, ProjectScreen), "the project again")
        states = app.screen.query_one(StackStates)
        await wait_for(
            pilot, lambda: "in sync" in text_of(app, "#stack-states"), "in sync", TIMEOUT
        )
        shown = text_of(app, "#stack-states")
        assert re.search(r"staging: UPDATE_COMPLETE · s-\S+ applied \S+ ago · in sync", shown), (
            shown
        )
    stack = client(world[0], "staging", "cloudformation").describe_stacks(
        StackName="dc-storefront-staging"
    )["Stacks"][0]
    assert stack["StackStatus"] == "UPDATE_COMPLETE"


async def test_a_protected_plan_wants_the_typed_name(
    world: tuple[Config, Path], tmp_path: Path
) -> None:
    config = load_config(stacked(world[1], tmp_path / "stacked.toml"))
    async with console(config, tmp_path / "store.db") as (app, pilot):
        await open_project(app, pilot, "prod1")
        await pilot.press("p")
        await wait_for(pilot, lambda: isinstance(app.screen, StackPlanDialog), "the plan dialog")
        dialog = app.screen
        assert isinstance(dialog, StackPlanDialog)
        await wait_for(pilot, lambda: dialog.planned is not None, "the plan", TIMEOUT)
        assert dialog.query_one("#confirm", Button).disabled
        assert "prod1 is protected." in text_of(app, "#protect-hint")
        await pilot.press("ctrl+s")  # not confirmed: the dialog stays
        assert app.screen is dialog
        dialog.query_one("#confirm-name", Input).value = "prod1"
        await pilot.pause()
        assert not dialog.query_one("#confirm", Button).disabled
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, ProjectScreen), "the project again")
