"""Snapshots (SVG) of each screen at 120x40 on the demo world, with a frozen clock.

Update after a deliberate change with `pytest tests/screens/ui/test_snapshots.py --snapshot-update`,
then look at the SVGs (or the report pytest-textual-snapshot writes) before committing them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator

import pytest
from textual.pilot import Pilot
from textual.widgets import Input

from console.config import Config
from console.fleet.inventory import Fleet
from console.model import Step
from screens.app import DeployConsoleApp, build_app
from screens.deploy.dialog import DeployDialog
from screens.deploy.screen import DeployScreen
from screens.help import HelpScreen
from screens.messages import ProjectChosen
from screens.project.cluster_panel import ClusterPanel
from screens.project.screen import ProjectScreen
from tests.screens.ui import SIZE, frozen_clock, wait_for
from tests.screens.ui.deploy_fakes import ScriptedDeploys, held_deploy, open_dialog

SnapCompare = Callable[..., bool]


@pytest.fixture
def make_app(
    world_config: Config, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., DeployConsoleApp]]:
    """make(config=None, deploys=None): the console on the world (or `config`), with no deploys
    (or `deploys`, whose dialog plans at once)."""
    monkeypatch.setattr(DeployDialog, "PLAN_DELAY", 0.0)
    fleets: list[Fleet] = []

    def make(
        config: Config | None = None, deploys: ScriptedDeploys | None = None
    ) -> DeployConsoleApp:
        config = config or world_config
        fleet = Fleet(config, clock=frozen_clock)
        fleets.append(fleet)
        return build_app(config, fleet, clock=frozen_clock, auto_refresh=False, deploys=deploys)

    yield make
    for fleet in fleets:
        fleet.close()


async def first_refresh(pilot: Pilot[None]) -> DeployConsoleApp:
    """Wait for the console's first fleet read to be shown; the console."""
    app = pilot.app
    assert isinstance(app, DeployConsoleApp)
    await wait_for(pilot, lambda: app.refresh_count >= 1, "the first refresh")
    await pilot.pause()
    return app


def open_project(project: str, cluster: str | None) -> Callable[[Pilot[None]], object]:
    async def run_before(pilot: Pilot[None]) -> None:
        await first_refresh(pilot)
        app = pilot.app
        app.post_message(ProjectChosen(project, cluster))
        await wait_for(pilot, lambda: isinstance(app.screen, ProjectScreen), "the screen")
        await wait_for(
            pilot,
            lambda: all(panel.settings is not None for panel in app.screen.query(ClusterPanel)),
            "load balancer settings",
        )
        await pilot.pause()

    return run_before


def test_dashboard(snap_compare: SnapCompare, make_app) -> None:
    assert snap_compare(make_app(), terminal_size=SIZE, run_before=first_refresh)


def test_dashboard_with_an_unreachable_cluster(
    snap_compare: SnapCompare, make_app, world_config: Config
) -> None:
    clusters = tuple(
        dataclasses.replace(cluster, endpoint_url="http://127.0.0.1:9")
        if cluster.name == "prod2"
        else cluster
        for cluster in world_config.clusters
    )
    app = make_app(dataclasses.replace(world_config, clusters=clusters))
    assert snap_compare(app, terminal_size=SIZE, run_before=first_refresh)


def test_dashboard_filtered(snap_compare: SnapCompare, make_app) -> None:
    assert snap_compare(
        make_app(), terminal_size=SIZE, run_before=first_refresh, press=["slash", *"work"]
    )


def test_project_media_service(snap_compare: SnapCompare, make_app) -> None:
    """media-service from its prod1 cell: one instance fails its health check."""
    assert snap_compare(
        make_app(), terminal_size=SIZE, run_before=open_project("media-service", "prod1")
    )


def test_project_storefront(snap_compare: SnapCompare, make_app) -> None:
    """storefront in four clusters: a stopped instance in prod2 (below the fold)."""
    assert snap_compare(
        make_app(), terminal_size=SIZE, run_before=open_project("storefront", "staging")
    )


def test_project_at_80x24(snap_compare: SnapCompare, make_app) -> None:
    """A failing instance's reason and the footer's keys on a standard terminal."""
    assert snap_compare(
        make_app(), terminal_size=(80, 24), run_before=open_project("media-service", "prod1")
    )


def test_help(snap_compare: SnapCompare, make_app) -> None:
    async def run_before(pilot: Pilot[None]) -> None:
        await first_refresh(pilot)
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, HelpScreen), "the help")

    assert snap_compare(make_app(), terminal_size=SIZE, run_before=run_before)


async def deploy_held(
    pilot: Pilot[None], deploys: ScriptedDeploys, *pair_release: str
) -> tuple[DeployConsoleApp, DeployScreen]:
    """After the first refresh, alice's deploy of (project, cluster, release) held at its step;
    the console and the deploy's screen."""
    app = await first_refresh(pilot)
    deploys.snapshot = app.snapshot
    return app, await held_deploy(app, pilot, deploys, *pair_release)


def test_deploy_dialog_protected(snap_compare: SnapCompare, make_app) -> None:
    """storefront in prod1: the plan of 2.15.0, Deploy disabled until "prod1" is typed."""
    deploys = ScriptedDeploys()

    async def run_before(pilot: Pilot[None]) -> None:
        deploys.snapshot = (await first_refresh(pilot)).snapshot
        dialog = await open_dialog(pilot, 3)
        for field in dialog.query(Input):  # a blinking cursor is drawn or not by timing
            field.cursor_blink = False
        await pilot.pause()

    assert snap_compare(make_app(deploys=deploys), terminal_size=SIZE, run_before=run_before)


def test_deploy_screen_running(snap_compare: SnapCompare, make_app) -> None:
    """A deploy held in its configure step: steps, progress, the log so far."""
    deploys = ScriptedDeploys(hold_at=Step.CONFIGURE)

    async def run_before(pilot: Pilot[None]) -> None:
        await deploy_held(pilot, deploys, "storefront", "prod1", "2.15.0")
        await pilot.pause()

    assert snap_compare(make_app(deploys=deploys), terminal_size=SIZE, run_before=run_before)


def test_deploy_screen_cancelled(snap_compare: SnapCompare, make_app) -> None:
    """Cancelled during the health gate: rolled back, the steps after it skipped."""
    deploys = ScriptedDeploys(hold_at=Step.HEALTH_GATE)

    async def run_before(pilot: Pilot[None]) -> None:
        app, screen = await deploy_held(pilot, deploys, "storefront", "staging", "2.14.1")
        tracked = screen.tracked
        await pilot.press("c", "y")
        await wait_for(pilot, lambda: tracked.finished, "the rollback")
        await wait_for(pilot, lambda: not app.refreshing, "the refresh after it")
        app.clear_notifications()  # toasts time out: keep them out of the picture
        await pilot.pause()

    assert snap_compare(make_app(deploys=deploys), terminal_size=SIZE, run_before=run_before)
