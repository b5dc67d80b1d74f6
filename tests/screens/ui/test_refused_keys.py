"""A key the screen refuses (not allowed, nothing to act on, already done) says why in one
line, where the person looks, instead of doing nothing."""

from __future__ import annotations

from pathlib import Path

from console.config import Config, load_config
from console.model import DeployRequest, FleetSnapshot
from screens.app import DeployConsoleApp
from screens.deploy.screen import DeployScreen
from tests.conftest import DEMO_CONFIG
from tests.screens.ui import SIZE, stub_app, wait_for
from tests.screens.ui.deploy_fakes import ScriptedDeploys
from tests.screens.ui.test_queue_screen import BEHIND_ID, NEXT_ID, RUNNING_ID, queue_screen, select


def said(app: DeployConsoleApp) -> list[tuple[str, str]]:
    return [(n.title, n.message) for n in app._notifications]


async def test_d_in_a_console_that_runs_no_deploys_says_so() -> None:
    app = stub_app(load_config(DEMO_CONFIG))  # no deploys: a console that only looks
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.refresh_count >= 1, "the first refresh")
        await pilot.press("right", "d")
        await wait_for(pilot, lambda: said(app), "a word on the refused key")
        assert said(app) == [("Deploy: not now", "this console runs no deploys")]
        assert app.screen is app.dashboard


async def test_the_queue_says_why_a_key_does_nothing_for_the_row(tmp_path: Path) -> None:
    async with queue_screen(tmp_path, load_config(DEMO_CONFIG)) as (app, pilot, screen, _):
        await select(pilot, screen, RUNNING_ID)
        await pilot.press("n")  # move later: a running deploy does not move
        await wait_for(pilot, lambda: said(app), "a word on the refused move")
        assert said(app)[-1][1] == f"{RUNNING_ID} is running: only a queued deploy moves."
        await select(pilot, screen, BEHIND_ID)
        await pilot.press("n")  # the last queued deploy of its pair moves no later
        await wait_for(pilot, lambda: len(said(app)) == 2, "a word on the second move")
        assert said(app)[-1][1] == f"{BEHIND_ID} is already at that end of its pair's queue."
        await select(pilot, screen, NEXT_ID)
        assert screen.table.selected_id == NEXT_ID  # a key the row allows says nothing
        assert len(said(app)) == 2


async def test_c_on_an_ended_deploy_says_it_has_ended(
    world_config: Config, demo_snapshot: FleetSnapshot
) -> None:
    deploys = ScriptedDeploys(demo_snapshot)
    app = stub_app(world_config, demo_snapshot, deploys=deploys)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.refresh_count >= 1, "the first refresh")
        app.start_deploy(DeployRequest("storefront", "staging", "2.15.0", "alice"))
        await wait_for(pilot, lambda: isinstance(app.screen, DeployScreen), "the deploy screen")
        screen = app.screen
        assert isinstance(screen, DeployScreen)
        await wait_for(pilot, lambda: screen.tracked.finished, "the deploy to end")
        await pilot.press("c")
        await wait_for(pilot, lambda: said(app), "a word on the refused cancel")
        assert said(app)[-1] == (
            "Cancel deploy: not now",
            "The deploy has ended (succeeded): nothing to cancel.",
        )
