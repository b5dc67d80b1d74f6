"""The deploy screen driven through Pilot with the real engine: moto, loopback SSH, SQLite
(one world for the module: each test deploys a pair of its own)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Static

from console.config import Config
from console.deploy.services import deploy_services
from console.model import DeployRequest, DeployState, Step, StepState
from console.queue.release_queue import DeployQueue
from console.queue.runner import Runner
from console.store import Store
from screens.app import DeployConsoleApp, build_app
from screens.deploy.screen import DeployScreen
from screens.deploy.support import EngineDeploys
from tests.conftest import DEMO_CONFIG
from tests.console.deploy.test_deploy_output import CONFIGURE, HEALTH
from tests.deploy_world import ServingWatcher, client, faster, live, world_process
from tests.screens.ui import SIZE, confirm, wait_for
from tests.screens.ui.test_deploy import cell, deploy_screen, log_text, states

# A real deploy on the world: its launch waits on EC2 states, slow on a loaded 2-core machine
# (90 s once ran out before configure began in a fresh-clone CI run that took 9 minutes).
DEPLOY_TIMEOUT = 180.0


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Config]:
    with world_process(DEMO_CONFIG, tmp_path_factory.mktemp("ui-deploy-world")) as config:
        yield config


@asynccontextmanager
async def console(
    config: Config, store: Path
) -> AsyncIterator[tuple[DeployConsoleApp, Pilot[None]]]:
    """The console as `deploy-console` runs it, with an in-process fleet."""
    async with deploy_services(config, store) as services:
        # As main runs it: the console's runner claims what the dialog queues.
        runner = Runner(services.engine, DeployQueue(services.store, config))
        deploys = EngineDeploys(services.engine, services.fleet.gateway, "tester", runner=runner)
        app = build_app(config, services.fleet, auto_refresh=False, deploys=deploys)
        running = asyncio.create_task(runner.run_forever())
        try:
            async with app.run_test(size=SIZE) as pilot:
                await wait_for(
                    pilot, lambda: app.refresh_count >= 1, "the first refresh", timeout=30
                )
                yield app, pilot
        finally:
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running


async def start(
    app: DeployConsoleApp, pilot: Pilot[None], project: str, cluster: str, release: str
) -> DeployScreen:
    """Start a deploy from the console; its screen, once shown."""
    app.start_deploy(DeployRequest(project, cluster, release, "tester"))
    await wait_for(pilot, lambda: isinstance(app.screen, DeployScreen), "the deploy screen")
    return deploy_screen(app)


async def test_a_real_deploy_on_screen_never_shows_the_secret(
    world: Config, tmp_path: Path
) -> None:
    ssm = client(world, "staging", "ssm")
    canary = ssm.get_parameter(Name="/checkout-api/payment-api-key", WithDecryption=True)[
        "Parameter"
    ]["Value"]
    assert len(canary) >= 8
    # The instance prints its environment: the screen must show the secret masked.
    config = faster(world, "checkout-api", configure="cat app.env; sh app/bin/configure")
    old = live(world, "checkout-api", "staging")
    async with (
        ServingWatcher(world, "checkout-api", "staging"),
        console(config, tmp_path / "store.db") as (app, pilot),
    ):
        screen = await start(app, pilot, "checkout-api", "staging", "5.2.0")
        await wait_for(
            pilot, lambda: states(screen)["configure"] is not None, "configure", DEPLOY_TIMEOUT
        )
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is app.dashboard, "the dashboard")
        assert cell(app, "checkout-api", "staging").startswith("⟳ deploying 5.2.0 ")
        during = app.export_screenshot()
        app.open_deploy(screen.tracked.key)
        await wait_for(pilot, lambda: isinstance(app.screen, DeployScreen), "the deploy again")
        screen = deploy_screen(app)
        await wait_for(pilot, lambda: screen.tracked.finished, "the deploy's end", DEPLOY_TIMEOUT)
        await pilot.pause()
        assert screen.tracked.state is DeployState.SUCCEEDED
        assert set(states(screen).values()) == {StepState.SUCCEEDED}
        log = log_text(screen)
        assert "PAYMENT_API_KEY=********" in log, "the instance printed app.env, masked"
        shown = [during, app.export_screenshot(), log]
        shown += [n.message for n in app._notifications]
        assert all(canary not in text for text in shown)
    assert live(world, "checkout-api", "staging").isdisjoint(old)


async def test_cancel_on_the_deploy_screen_rolls_back(world: Config, tmp_path: Path) -> None:
    old = live(world, "admin-portal", "staging")
    # A configure step that takes its time: the cancel lands in it even on a loaded machine.
    slow = faster(world, "admin-portal", configure="sleep 30; sh app/bin/configure")
    async with (
        ServingWatcher(world, "admin-portal", "staging"),
        console(slow, tmp_path / "store.db") as (app, pilot),
    ):
        screen = await start(app, pilot, "admin-portal", "staging", "3.8.0")
        await wait_for(
            pilot,
            lambda: states(screen)[str(Step.CONFIGURE)] is StepState.RUNNING,
            "configure",
            DEPLOY_TIMEOUT,
        )
        await pilot.press("c")
        await confirm(pilot, "y")
        await wait_for(pilot, lambda: screen.tracked.finished, "the rollback", DEPLOY_TIMEOUT)
        await pilot.pause()
        assert screen.tracked.state is DeployState.CANCELLED
        assert states(screen)["rollback"] is StepState.SUCCEEDED
        assert "rollback succeeded" in log_text(screen)
    assert live(world, "admin-portal", "staging") == old


# The live log with the real engine: what an instance prints to take over the operator's
# terminal (OSC 52, title, cursor moves, C1, overprints) is shown as text.
async def test_the_deploy_log_shows_escape_sequences_as_text(world: Config, tmp_path: Path) -> None:
    config = faster(world, "marketing-site", configure=CONFIGURE, health=HEALTH)
    old = live(world, "marketing-site", "staging")
    async with console(config, tmp_path / "store.db") as (app, pilot):
        screen = await start(app, pilot, "marketing-site", "staging", "24.11.0")
        await wait_for(pilot, lambda: screen.tracked.finished, "the deploy's end", DEPLOY_TIMEOUT)
        await pilot.pause()
        assert screen.tracked.state is DeployState.SUCCEEDED
        shown = [strip.text for strip in screen.log_widget.lines]
        shown.append(app.export_screenshot())
    joined = "".join("".join(shown).split())
    assert r"\x1b]52;c;ZWNobyBwd25lZA==\x07\x1b]0;owned\x07" in joined
    assert r"\x1b]0;health-title\x07" in joined
    assert all("\x1b" not in text and "\x07" not in text and "\x9b" not in text for text in shown)
    assert live(world, "marketing-site", "staging").isdisjoint(old)


# At 80x24: a deploy of storefront 2.16.0 (its build failed) to prod2 is refused by prod2's
# release gate, said on screen, and nothing is queued (nothing changes in the world).
async def test_the_console_says_the_release_gate_refused_a_failed_build(
    world: Config, tmp_path: Path
) -> None:
    store = tmp_path / "store.db"
    async with console(world, store) as (app, pilot):
        screen = await start(app, pilot, "storefront", "prod2", "2.16.0")
        await wait_for(pilot, lambda: bool(app._notifications), "the refusal", timeout=60)
        (note,) = list(app._notifications)
        assert note.severity == "error"
        assert note.message.startswith(
            "storefront → prod2 2.16.0: release gate of prod2 (storefront 2.16.0) said no: "
            "exit 1: storefront 2.16.0 (ami-"
        ), note.message
        assert note.message.endswith("build did not pass (BuildStatus=failed); nothing queued")
        # The deploy screen's title line says it failed at once, without a step run.
        title = str(screen.query_one("#deploy-title", Static).render())
        assert "failed" in title, title
    async with await Store.open(store, create=False, read_only=True) as opened:
        assert await opened.deploys() == []
        assert [r.action for r in await opened.audit_rows() if r.action == "gate.refused"] == [
            "gate.refused"
        ]
