"""The scale dialog at 80x24: `n` on the project screen, N typed, the protected name, queued."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from textual.content import Content
from textual.pilot import Pilot
from textual.widgets import Button, Static

from console.config import Config
from console.model import DeployRequest, FleetSnapshot
from screens.app import DeployConsoleApp
from screens.messages import ProjectChosen
from screens.project.scale_dialog import ScaleDialog
from screens.project.screen import ProjectScreen
from tests.screens.ui import stub_app, wait_for
from tests.screens.ui.deploy_fakes import ScriptedDeploys

SMALL = (80, 24)


def said(dialog: ScaleDialog, selector: str) -> str:
    visual = dialog.query_one(selector, Static).visual
    return visual.plain if isinstance(visual, Content) else str(visual)


@asynccontextmanager
async def scale_dialog(
    config: Config, snapshot: FleetSnapshot, project: str, cluster: str
) -> AsyncIterator[tuple[DeployConsoleApp, Pilot[None], ScaleDialog, ScriptedDeploys]]:
    deploys = ScriptedDeploys(snapshot)
    app = stub_app(config, snapshot, deploys=deploys)
    async with app.run_test(size=SMALL) as pilot:
        await wait_for(pilot, lambda: app.refresh_count >= 1, "the first refresh")
        app.post_message(ProjectChosen(project, cluster))
        await wait_for(pilot, lambda: isinstance(app.screen, ProjectScreen), "the project")
        await pilot.pause()
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, ScaleDialog), "the scale dialog")
        dialog = app.screen
        assert isinstance(dialog, ScaleDialog)
        await wait_for(pilot, lambda: dialog.desired_read, "the desired count")
        yield app, pilot, dialog, deploys


async def test_scale_out_is_queued_from_the_dialog(
    world_config: Config, demo_snapshot: FleetSnapshot
) -> None:
    async with scale_dialog(world_config, demo_snapshot, "storefront", "staging") as (
        _,
        pilot,
        dialog,
        deploys,
    ):
        box = dialog.query_one("#scale-box")
        assert box.border_title == "scale storefront in staging"
        counts = said(dialog, "#scale-counts")
        assert "now      1 instance, 1 healthy (2.15.0)" in counts
        assert "desired  none set" in counts
        confirm = dialog.query_one("#confirm", Button)
        assert confirm.disabled
        await pilot.press("0")
        assert "at least one instance" in said(dialog, "#scale-says")
        assert confirm.disabled
        await pilot.press("backspace", "3")
        assert said(dialog, "#scale-says") == "launch 2 at 2.15.0; registered once healthy"
        assert not confirm.disabled
        # Everything fits at 80x24: the buttons are on screen.
        assert confirm.region.bottom <= SMALL[1] and confirm.region.right <= SMALL[0]
        await pilot.press("enter")
        await wait_for(pilot, lambda: bool(deploys.started), "the scale queued")
    assert deploys.started[0] == DeployRequest(
        "storefront", "staging", "3", deploys.actor, kind="scale"
    )


async def test_a_protected_cluster_needs_its_name_typed(
    world_config: Config, demo_snapshot: FleetSnapshot
) -> None:
    async with scale_dialog(world_config, demo_snapshot, "storefront", "prod1") as (
        app,
        pilot,
        dialog,
        deploys,
    ):
        assert "prod1 is protected" in said(dialog, "#protect-hint")
        await pilot.press("2")
        assert "drain then terminate 1" in said(dialog, "#scale-says")
        confirm = dialog.query_one("#confirm", Button)
        assert confirm.disabled
        await pilot.press("enter")  # refused: the name is not typed
        assert isinstance(app.screen, ScaleDialog)
        await pilot.press("tab", *"prod1")
        assert not confirm.disabled
        assert confirm.region.bottom <= SMALL[1]
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, ProjectScreen), "the dialog gone")
    assert deploys.started == []
