"""The dashboard driven through Pilot against the demo world (and stand-in fleets)."""

from __future__ import annotations

import dataclasses
import time
from datetime import timedelta

from textual import events

from console.config import Config
from console.fleet.inventory import Fleet
from console.model import FleetSnapshot
from screens.app import DeployConsoleApp, build_app
from screens.dashboard.fleet_matrix import FleetMatrix
from screens.dashboard.screen import DashboardScreen
from screens.project.screen import ProjectScreen
from tests.screens.ui import (
    FROZEN_NOW,
    SIZE,
    SteppingClock,
    StubFleet,
    frozen_clock,
    large_config,
    open_help,
    running_console,
    synthetic_snapshot,
    text_of,
    unreachable,
    wait_for,
    with_cluster_down,
)


def matrix(app: DeployConsoleApp) -> FleetMatrix:
    return app.dashboard.query_one(FleetMatrix)


def header(app: DeployConsoleApp) -> str:
    return text_of(app.dashboard.header)


async def test_matrix_shows_every_project_in_every_cluster(world_config: Config) -> None:
    async with running_console(world_config) as (app, _pilot):
        table = matrix(app)
        assert table.visible_projects == list(world_config.project_names)
        labels = [column.label.plain for column in table.ordered_columns]
        assert labels == ["project", "staging", "qaprod1", "prod1 🔒", "prod2 🔒"]

        def cell(project: str, cluster: str) -> str:
            return " ".join(table.cell_plain(project, cluster).split())

        assert cell("storefront", "prod1") == "● 2.14.1 3/3"
        assert cell("storefront", "prod2") == "◐ 2.14.1 2/3"  # one instance stopped
        assert cell("media-service", "prod1") == "◐ 1.5.0 1/2"  # one fails its health check
        assert cell("marketing-site", "prod1") == "● 24.11.0 +1 2/2"  # two versions, newest first
        assert cell("search-api", "prod1") == "● b7e0d13 2/2"
        assert cell("search-api", "staging") == "○ no instances"
        assert cell("admin-portal", "qaprod1") == "·"  # not configured there
        assert cell("notifications-worker", "staging") == "● 7.1.1 1/1"
        text = header(app)
        assert "refreshed 0s ago" in text
        assert "🔒 prod1 [protected]" in text and "🔒 prod2 [protected]" in text
        assert "staging ✔ live" in text
        assert "● 24 healthy" in text and "◐ 2 degraded" in text


async def test_arrows_move_enter_opens_the_project_escape_comes_back(
    world_config: Config,
) -> None:
    async with running_console(world_config) as (app, pilot):
        await pilot.press("down", "down", "down", "down", "right", "right", "right")
        table = matrix(app)
        assert (table.cursor_project, table.cursor_cluster) == ("media-service", "prod1")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ProjectScreen), "project screen")
        screen = app.screen
        assert isinstance(screen, ProjectScreen)
        assert screen.project.name == "media-service"
        assert screen.selected_cluster == "prod1"
        assert screen.panel("prod1").has_class("-selected")
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen), "dashboard")
        assert (table.cursor_project, table.cursor_cluster) == ("media-service", "prod1")


async def test_filter_narrows_rows_and_escape_restores_them(world_config: Config) -> None:
    async with running_console(world_config) as (app, pilot):
        refreshes = app.refresh_count
        await pilot.press("slash")
        filter_input = app.dashboard.filter_input
        assert filter_input.has_focus and filter_input.display
        await pilot.press("w", "o", "r", "k")
        table = matrix(app)
        await wait_for(pilot, lambda: len(table.visible_projects) == 2, "the filter")
        assert table.visible_projects == ["notifications-worker", "billing-worker"]
        assert app.refresh_count == refreshes  # the "r" went into the filter, not a refresh
        await pilot.press("escape")
        await wait_for(pilot, lambda: len(table.visible_projects) == 9, "all rows back")
        assert not filter_input.display
        assert filter_input.value == ""
        assert table.has_focus


async def test_keys_typed_at_once_after_slash_all_land_in_the_filter(
    demo_snapshot: FleetSnapshot, world_config: Config
) -> None:
    """A paste or a fast typist: the keys arrive together, before any of them is handled."""
    fleet = StubFleet(world_config, [demo_snapshot])
    async with running_console(world_config, fleet) as (app, pilot):
        refreshes = app.refresh_count
        driver = app._driver
        assert driver is not None
        for key in ("slash", "w", "o", "r", "k"):
            event = events.Key(key, "/" if key == "slash" else key)
            event.set_sender(app)
            driver.send_message(event)
        table = matrix(app)
        await wait_for(pilot, lambda: len(table.visible_projects) == 2, "the filter")
        assert app.dashboard.filter_input.value == "work"
        assert app.refresh_count == refreshes  # the "r" was typed, not a refresh


async def test_filter_that_matches_nothing_says_so(world_config: Config) -> None:
    async with running_console(world_config) as (app, pilot):
        await pilot.press("slash", "z", "z")
        no_match = app.dashboard.query_one("#no-match")
        await wait_for(pilot, lambda: no_match.display, "the no-match line")
        assert "No project matches 'zz'" in text_of(no_match)  # type: ignore[arg-type]


async def test_r_refreshes_and_the_age_moves_with_the_clock(world_config: Config) -> None:
    clock = SteppingClock()
    fleet = Fleet(world_config, clock=clock)
    try:
        async with running_console(world_config, fleet, clock) as (app, pilot):
            assert "refreshed 0s ago" in header(app)
            first = app.snapshot
            assert first is not None and first.generated_at == FROZEN_NOW
            calls = sum(fleet.call_count().values())
            clock.advance(7)
            # The header recomputes the age every second, without a refresh.
            await wait_for(pilot, lambda: "refreshed 7s ago" in header(app), "the age to tick")
            await pilot.press("r")
            await wait_for(pilot, lambda: app.refresh_count >= 2, "the second refresh")
            await pilot.pause()
            assert app.snapshot is not None
            assert app.snapshot.generated_at == FROZEN_NOW + timedelta(seconds=7)
            assert "refreshed 0s ago" in header(app)
            assert sum(fleet.call_count().values()) > calls
    finally:
        fleet.close()


async def test_ctrl_q_quits(world_config: Config) -> None:
    async with running_console(world_config) as (app, pilot):
        await pilot.press("ctrl+q")
        await wait_for(pilot, lambda: app.return_code is not None, "the app to exit")
        assert app.return_code == 0


async def test_help_lists_the_keys_of_the_screen_and_the_app(world_config: Config) -> None:
    async with running_console(world_config) as (app, pilot):
        screen = await open_help(pilot)
        rows = screen.rows
        assert ("dashboard", "r", "Refresh", "dashboard.refresh") in rows
        assert ("dashboard", "/", "Filter projects", "dashboard.filter") in rows
        assert ("dashboard", "⏎", "Open project", "dashboard.open_project") in rows
        assert ("table", "↓", "Move down", "table.down") in rows
        assert ("app", "^q", "Quit", "app.quit") in rows
        assert ("app", "?", "Help", "app.help") in rows
        assert any(row[2] == "Command palette" for row in rows)
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen), "the dashboard")


async def test_command_palette_runs_the_same_actions(world_config: Config) -> None:
    async with running_console(world_config) as (app, pilot):
        titles = [command.title for command in app.get_system_commands(app.screen)]
        for title in (
            "dashboard: refresh",
            "dashboard: filter projects",
            "project: open",
            "app: help",
            "app: quit",
        ):
            assert title in titles
        await pilot.press("ctrl+p", *"filter proj")
        await pilot.pause(0.3)
        await pilot.press("enter")
        filter_input = app.dashboard.filter_input
        await wait_for(pilot, lambda: filter_input.has_focus, "the filter from the palette")
        assert filter_input.display


async def test_unreachable_cluster_shows_its_error_while_others_stay_live(
    world_config: Config,
) -> None:
    config = unreachable(world_config, "prod2")
    async with running_console(config) as (app, _pilot):
        table = matrix(app)
        for project in ("storefront", "checkout-api", "search-api", "billing-worker"):
            assert table.cell_plain(project, "prod2").strip() == "? unknown"
        assert table.cell_plain("storefront", "prod1").startswith("● 2.14.1")
        text = header(app)
        assert "prod2 [protected] ✖ unreachable" in text
        assert "✖ prod2: cannot reach http://127.0.0.1:9" in text
        assert "(no data yet)" in text
        assert "prod1 [protected] ✔ live" in text


async def test_cluster_that_fails_later_keeps_its_last_data_marked_unknown(
    world_config: Config,
    demo_snapshot: FleetSnapshot,
) -> None:
    good = demo_snapshot
    clock = SteppingClock()
    later = FROZEN_NOW + timedelta(seconds=90)
    stale = with_cluster_down(good, "prod1", "cannot reach https://ec2.example", later)
    fleet = StubFleet(world_config, [good, stale])
    async with running_console(world_config, fleet, clock) as (app, pilot):
        clock.now = later
        await pilot.press("r")
        await wait_for(pilot, lambda: app.refresh_count >= 2, "the second refresh")
        await pilot.pause()
        table = matrix(app)
        assert " ".join(table.cell_plain("storefront", "prod1").split()) == "? 2.14.1 3/3"
        assert table.cell_plain("storefront", "staging").startswith("● 2.15.0")
        text = header(app)
        assert "✖ prod1: cannot reach https://ec2.example" in text
        assert "(showing data from 1m 30s ago)" in text


async def test_a_refresh_that_raises_is_shown_and_the_app_goes_on(
    world_config: Config, demo_snapshot: FleetSnapshot
) -> None:
    good = demo_snapshot
    fleet = StubFleet(world_config, [good, RuntimeError("boom"), good])
    async with running_console(world_config, fleet) as (app, pilot):
        await pilot.press("r")
        await wait_for(pilot, lambda: app.refresh_count >= 2, "the failing refresh")
        await pilot.pause()
        assert "✖ refresh failed: RuntimeError: boom" in header(app)
        # The last good data stays on screen.
        assert matrix(app).cell_plain("storefront", "prod1").startswith("● 2.14.1")
        await pilot.press("r")
        await wait_for(pilot, lambda: app.refresh_count >= 3, "the next refresh")
        await pilot.pause()
        assert "refresh failed" not in header(app)
        assert fleet.closed is False  # the caller owns the fleet


async def test_auto_refresh_rearms_only_after_a_refresh_finished(
    world_config: Config, demo_snapshot: FleetSnapshot
) -> None:
    good = demo_snapshot
    config = dataclasses.replace(world_config, refresh_seconds=0.05)
    # Each refresh takes longer than the interval: a free-running timer would overlap them.
    fleet = StubFleet(config, [good], delay=0.15)
    app = build_app(config, fleet, clock=frozen_clock)  # type: ignore[arg-type]
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: fleet.refreshes >= 4, "four timed refreshes")
        # "r" during a refresh joins it rather than starting a second one.
        await pilot.press("r")
        await wait_for(pilot, lambda: fleet.refreshes >= 6, "two more refreshes")
        await wait_for(pilot, lambda: app.snapshot is not None, "a snapshot on screen")
        assert "refreshed 0s ago" in header(app)
    assert fleet.most_at_once == 1


async def test_two_hundred_projects_update_in_place(world_config: Config) -> None:
    config = large_config(200)
    first = synthetic_snapshot(config, FROZEN_NOW, "1.0.0")
    second = synthetic_snapshot(config, FROZEN_NOW, "1.0.1")
    fleet = StubFleet(config, [first, second])
    async with running_console(config, fleet) as (app, pilot):
        table = matrix(app)
        assert table.row_count == 200
        assert table.cell_plain("project-199", "prod2").startswith("● 1.0.0")
        added: list[object] = []
        original_add_row = table.add_row

        def counting_add_row(*args: object, **kwargs: object) -> object:
            added.append(args)
            return original_add_row(*args, **kwargs)  # type: ignore[arg-type]

        table.add_row = counting_add_row  # type: ignore[method-assign]
        started = time.monotonic()
        await pilot.press("r")
        await wait_for(pilot, lambda: app.refresh_count >= 2, "the second refresh")
        await pilot.pause()
        elapsed = time.monotonic() - started
        assert table is matrix(app)
        assert added == []  # cells changed in place, no row was rebuilt
        assert table.cell_plain("project-000", "staging").startswith("● 1.0.1")
        assert table.cell_plain("project-199", "prod2").startswith("● 1.0.1")
        # 800 cells: well under a second in place; re-measuring widths would take many.
        assert elapsed < 5, elapsed


async def test_bindings_can_be_remapped_by_id(
    world_config: Config, demo_snapshot: FleetSnapshot
) -> None:
    fleet = StubFleet(world_config, [demo_snapshot])
    async with running_console(world_config, fleet) as (app, pilot):
        app.set_keymap({"dashboard.refresh": "f5", "dashboard.filter": "ctrl+f"})
        await pilot.press("r")
        await pilot.pause()
        assert fleet.refreshes == 1  # "r" no longer refreshes
        await pilot.press("f5")
        await wait_for(pilot, lambda: fleet.refreshes == 2, "a refresh from f5")
        await pilot.press("ctrl+f")
        assert app.dashboard.filter_input.has_focus
