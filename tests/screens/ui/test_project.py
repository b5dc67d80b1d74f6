"""The project screen driven through Pilot against the demo world (and stand-in fleets)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from textual.pilot import Pilot
from textual.widgets import Static

from console.config import Config
from console.errors import AwsError
from console.fleet.inventory import Fleet
from console.model import FleetSnapshot, LoadBalancerSettings
from screens.app import DeployConsoleApp, build_app
from screens.dashboard.fleet_matrix import FleetMatrix
from screens.dashboard.screen import DashboardScreen
from screens.messages import ProjectChosen
from screens.project.cluster_panel import ClusterPanel, InstanceTable
from screens.project.screen import ProjectScreen
from tests.screens.ui import (
    FROZEN_NOW,
    SIZE,
    SteppingClock,
    StubFleet,
    frozen_clock,
    open_help,
    running_console,
    text_of,
    unreachable,
    wait_for,
    with_cluster_down,
)


@asynccontextmanager
async def project_screen(
    config: Config,
    project: str,
    cluster: str | None = None,
    fleet: Fleet | StubFleet | None = None,
    clock=frozen_clock,
    settled: bool = True,
) -> AsyncIterator[tuple[DeployConsoleApp, Pilot[None], ProjectScreen]]:
    """The app with `project` open (as Enter on the dashboard opens it)."""
    async with running_console(config, fleet, clock) as (app, pilot):
        app.post_message(ProjectChosen(project, cluster))
        await wait_for(pilot, lambda: isinstance(app.screen, ProjectScreen), "the screen")
        screen = app.screen
        assert isinstance(screen, ProjectScreen)
        if settled:
            await wait_for(
                pilot,
                lambda: all(panel.settings is not None for panel in panels(screen)),
                "load balancer settings",
            )
        await pilot.pause()
        yield app, pilot, screen


def panels(screen: ProjectScreen) -> list[ClusterPanel]:
    return list(screen.query(ClusterPanel))


def part(panel: ClusterPanel, name: str) -> str:
    return text_of(panel.query_one(f".{name}", Static))


def lb_cell(panel: ClusterPanel, instance_id: str) -> str:
    return panel.query_one(InstanceTable).get_cell(instance_id, "load_balancers").plain


async def test_media_service_shows_instances_health_and_settings(world_config: Config) -> None:
    async with project_screen(world_config, "media-service", "prod1") as (_app, _pilot, screen):
        assert [panel.cluster.name for panel in panels(screen)] == ["staging", "qaprod1", "prod1"]
        prod1 = screen.panel("prod1")
        assert prod1.has_class("-selected") and prod1.has_class("-protected")
        assert prod1.border_title == "prod1 🔒 protected"
        summary = part(prod1, "panel-summary")
        assert "◐ degraded · 1/2 serving · version 1.5.0" in summary
        table = prod1.query_one(InstanceTable)
        assert table.has_focus
        rows = [row.value for row in table.rows]
        assert len(rows) == 2
        first, second = rows
        assert table.get_cell(first, "instance").plain.startswith(first)
        assert "ami-" in table.get_cell(first, "instance").plain
        assert table.get_cell(first, "state").plain == "running"
        assert table.get_cell(first, "version").plain == "1.5.0"
        assert table.get_cell(first, "launched").plain == "2026-11-14 09:37"
        assert table.get_cell(first, "address").plain == "10.12.0.12"
        assert lb_cell(prod1, first) == "media-service-prod1: InService"
        assert lb_cell(prod1, second).startswith(
            "media-service-prod1: OutOfService (Instance has failed at least"
        )
        # The table cuts the reason; the note under it gives it whole.
        notes = part(prod1, "panel-notes")
        assert f"✖ {second} not serving" in notes
        assert "the UnhealthyThreshold number of health checks consecutively." in notes
        settings = part(prod1, "panel-lbs")
        assert "media-service-prod1 (classic ELB)  health check HTTP:80/health every 5s" in settings
        assert "timeout 4s" in settings
        assert "healthy after 2 checks, unhealthy after 2" in settings
        assert "connection draining 5s" in settings
        assert "time to healthy 15s" in settings
        staging = part(screen.panel("staging"), "panel-lbs")
        assert "connection draining 5s · time to healthy 15s" in staging


async def test_two_load_balancers_and_target_group_settings(world_config: Config) -> None:
    async with project_screen(world_config, "partner-gateway") as (_app, _pilot, screen):
        prod1 = screen.panel("prod1")
        assert not prod1.has_class("-selected")
        for instance_id in [row.value for row in prod1.query_one(InstanceTable).rows]:
            assert lb_cell(prod1, instance_id or "") == (
                "partner-gateway-legacy: InService\npartner-gateway-prod1: healthy"
            )
        settings = part(prod1, "panel-lbs")
        assert "partner-gateway-legacy (classic ELB)" in settings
        assert (
            "partner-gateway-prod1 (target group)  health check HTTP:traffic-port/health"
            in settings
        )
        assert "deregistration delay 5s · time to healthy 15s" in settings


async def test_empty_and_worker_states_read_as_sentences(world_config: Config) -> None:
    async with project_screen(world_config, "search-api") as (_app, _pilot, screen):
        staging = screen.panel("staging")
        assert "○ no instances" in part(staging, "panel-summary")
        assert part(staging, "panel-empty") == "no instances"
        assert not staging.query_one(InstanceTable).display
    async with project_screen(world_config, "notifications-worker") as (_app, _pilot, screen):
        prod2 = screen.panel("prod2")
        assert part(prod2, "panel-lbs") == "no load balancer in this cluster"
        (instance_id,) = [row.value for row in prod2.query_one(InstanceTable).rows]
        assert lb_cell(prod2, instance_id or "") == "no load balancer"
        assert "load balancers: none" in part(prod2, "panel-summary")


class GatedFleet(StubFleet):
    """Load balancer settings arrive only when the test opens the gate."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.gate = asyncio.Event()
        self.asked: list[tuple[str, str]] = []

    async def load_balancer_settings(
        self, project: str, cluster: str
    ) -> tuple[LoadBalancerSettings, ...]:
        self.asked.append((project, cluster))
        await self.gate.wait()
        return await super().load_balancer_settings(project, cluster)


async def test_settings_show_loading_then_an_error_line(
    world_config: Config, demo_snapshot: FleetSnapshot
) -> None:
    fleet = GatedFleet(
        world_config,
        [demo_snapshot],
        settings={("storefront", "prod2"): AwsError("cannot reach https://elb.example")},
    )
    async with project_screen(world_config, "storefront", fleet=fleet, settled=False) as (
        _app,
        pilot,
        screen,
    ):
        await wait_for(pilot, lambda: len(fleet.asked) == 4, "the settings requests")
        for panel in panels(screen):
            assert part(panel, "panel-lbs") == "load balancer settings: loading…"
        fleet.gate.set()
        await wait_for(
            pilot,
            lambda: all(panel.settings is not None for panel in panels(screen)),
            "settings",
        )
        await pilot.pause()
        assert part(screen.panel("prod2"), "panel-lbs") == (
            "✖ could not read load balancer settings: cannot reach https://elb.example"
        )
        # The stand-in has no settings for the others: an empty answer reads as such.
        assert part(screen.panel("prod1"), "panel-lbs") == "no load balancer in this cluster"
    assert sorted(fleet.asked) == sorted(
        ("storefront", cluster) for cluster in ("staging", "qaprod1", "prod1", "prod2")
    )


async def test_project_screen_follows_new_snapshots(
    world_config: Config, demo_snapshot: FleetSnapshot
) -> None:
    later = FROZEN_NOW + timedelta(seconds=45)
    stale = with_cluster_down(demo_snapshot, "prod1", "cannot reach https://ec2.example", later)
    clock = SteppingClock()
    fleet = StubFleet(world_config, [demo_snapshot, stale])
    async with project_screen(world_config, "storefront", fleet=fleet, clock=clock) as (
        app,
        pilot,
        screen,
    ):
        prod1 = screen.panel("prod1")
        assert "● healthy · 3/3 serving" in part(prod1, "panel-summary")
        assert not prod1.query_one(".panel-problem").display
        clock.now = later
        await pilot.press("r")
        await wait_for(pilot, lambda: app.refresh_count >= 2, "the second refresh")
        await pilot.pause()
        assert "? unknown · 3/3 serving · version 2.14.1" in part(prod1, "panel-summary")
        problem = part(prod1, "panel-problem")
        assert problem == (
            "✖ cluster unreachable: cannot reach https://ec2.example  (showing data from 45s ago)"
        )
        assert prod1.query_one(".panel-problem").display
        # The instances read last time are still listed.
        assert prod1.query_one(InstanceTable).row_count == 3
        assert "refreshed 0s ago" in text_of(screen.query_one("#title", Static))


async def test_unreachable_cluster_on_the_project_screen(world_config: Config) -> None:
    config = unreachable(world_config, "prod2")
    async with project_screen(config, "checkout-api", "prod2") as (_app, _pilot, screen):
        prod2 = screen.panel("prod2")
        assert part(prod2, "panel-problem") == (
            "✖ cluster unreachable: cannot reach http://127.0.0.1:9/  (no data yet)"
        )
        assert part(prod2, "panel-empty") == "instances unknown: no data read yet"
        assert part(prod2, "panel-lbs").startswith("✖ could not read load balancer settings:")
        assert "● healthy · 2/2 serving" in part(screen.panel("prod1"), "panel-summary")


async def test_escape_returns_to_the_dashboard_with_its_filter_and_cursor(
    world_config: Config,
) -> None:
    fleet = Fleet(world_config, clock=frozen_clock)
    app = build_app(world_config, fleet, clock=frozen_clock, auto_refresh=False)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: app.refresh_count >= 1, "the first refresh")
            await pilot.press("slash", "w", "o", "r", "k", "enter", "down", "right", "enter")
            await wait_for(pilot, lambda: isinstance(app.screen, ProjectScreen), "the screen")
            screen = app.screen
            assert isinstance(screen, ProjectScreen)
            assert screen.project.name == "billing-worker"
            assert screen.selected_cluster is None  # not configured in staging
            await pilot.press("escape")
            await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen), "dashboard")
            dashboard = app.dashboard
            matrix = dashboard.query_one(FleetMatrix)
            assert dashboard.filter_input.value == "work"
            assert matrix.visible_projects == ["notifications-worker", "billing-worker"]
            assert (matrix.cursor_project, matrix.cursor_cluster) == ("billing-worker", "staging")
    finally:
        fleet.close()


async def test_help_on_the_project_screen_and_ctrl_q_from_it(
    world_config: Config, demo_snapshot: FleetSnapshot
) -> None:
    fleet = StubFleet(world_config, [demo_snapshot])
    async with project_screen(world_config, "storefront", "prod1", fleet=fleet) as (
        app,
        pilot,
        _screen,
    ):
        help_screen = await open_help(pilot)
        assert help_screen.title_text == "keys: project"
        rows = help_screen.rows
        assert ("project", "esc", "Back", "project.back") in rows
        assert ("project", "r", "Refresh", "project.refresh") in rows
        assert ("table", "↓", "Move down", "table.down") in rows  # the instances table
        assert ("app", "^q", "Quit", "app.quit") in rows
        await pilot.press("ctrl+q")  # quits from a modal too
        await wait_for(pilot, lambda: app.return_code is not None, "the app to exit")
    assert app.return_code == 0
