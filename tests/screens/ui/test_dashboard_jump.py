"""The dashboard at 80x24 as a k9s user drives it: `:` jumps to a name, `s`/`S` sort the rows,
the header says the filter and the sort, and a strip says the highlighted cell's last deploy."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from textual.pilot import Pilot

from console import model
from console.config import Config, load_config
from console.model import DeployState
from console.store import DeployRecord, Store
from screens.app import DeployConsoleApp
from screens.dashboard.fleet_matrix import FleetMatrix
from screens.dashboard.jump_line import JumpLine
from screens.dashboard.screen import DashboardScreen
from tests.conftest import DEMO_CONFIG
from tests.screens.ui import (
    FROZEN_NOW,
    SteppingClock,
    stub_app,
    synthetic_snapshot,
    text_of,
    wait_for,
)
from tests.screens.ui.test_queue_screen import QueueDeploys, fill, runner_for

SMALL = (80, 24)
UNHEALTHY = model.TargetState("tg", model.LoadBalancerKind.TARGET_GROUP, "unhealthy")
SnapCompare = Callable[..., bool]


@pytest.fixture(scope="module")
def config() -> Config:
    return load_config(DEMO_CONFIG)


def varied_snapshot(config: Config) -> model.FleetSnapshot:
    """Every project healthy on 1.0.0, but in prod1: checkout-api down on 0.9.0, media-service
    degraded on 2.10.0, storefront on 2.9.0."""
    snapshot = synthetic_snapshot(config, FROZEN_NOW, "1.0.0")
    envs = dict(snapshot.envs)
    for project, health, version, serving in (
        ("checkout-api", model.Health.DOWN, "0.9.0", 0),
        ("media-service", model.Health.DEGRADED, "2.10.0", 1),
        ("storefront", model.Health.HEALTHY, "2.9.0", 2),
    ):
        env = envs[(project, "prod1")]
        instances = tuple(
            replace(i, version=version, targets=i.targets if n < serving else (UNHEALTHY,))
            for n, i in enumerate(env.instances)
        )
        envs[(project, "prod1")] = replace(env, health=health, instances=instances)
    return replace(snapshot, envs=envs)


@asynccontextmanager
async def dashboard(
    app: DeployConsoleApp,
) -> AsyncIterator[tuple[Pilot[None], DashboardScreen, FleetMatrix]]:
    async with app.run_test(size=SMALL) as pilot:
        await wait_for(pilot, lambda: app.refresh_count >= 1, "the first refresh")
        await pilot.pause()
        screen = app.dashboard
        yield pilot, screen, screen.matrix


def where(matrix: FleetMatrix) -> tuple[str | None, str | None]:
    return matrix.cursor_project, matrix.cursor_cluster


def header(screen: DashboardScreen) -> str:
    return " ".join(text_of(screen.header).split())


def strip(screen: DashboardScreen) -> str:
    return text_of(screen.query_one("#detail"))  # type: ignore[arg-type]


async def test_colon_jumps_to_a_project_and_a_cluster_by_a_fuzzy_name(config: Config) -> None:
    async with dashboard(stub_app(config)) as (pilot, screen, matrix):
        line = screen.query_one(JumpLine)
        await pilot.press("colon", *"med p1")
        assert line.is_open and line.input.value == "med p1"
        assert "→ media-service · prod1" in line.hint_text
        assert screen.jump_line.region.bottom <= SMALL[1]  # on screen at 80x24
        await pilot.press("enter")
        await wait_for(pilot, lambda: not line.is_open, "the jump line to close")
        assert where(matrix) == ("media-service", "prod1")
        assert screen.focused is matrix
        # A cluster alone: its column, in the same row; `/` between the two works too.
        await pilot.press("colon", *"stag", "enter")
        assert where(matrix) == ("media-service", "staging")
        await pilot.press("colon", *"nw/qa", "enter")
        assert where(matrix) == ("notifications-worker", "qaprod1")


async def test_escape_cancels_and_the_cursor_stays(config: Config) -> None:
    async with dashboard(stub_app(config)) as (pilot, screen, matrix):
        await pilot.press("down", "right")
        before = where(matrix)
        await pilot.press("colon", *"bill", "escape")
        assert not screen.jump_line.is_open
        assert where(matrix) == before
        assert screen.focused is matrix


async def test_no_match_says_so_with_the_closest_names_and_stays_open(config: Config) -> None:
    async with dashboard(stub_app(config)) as (pilot, screen, matrix):
        line = screen.jump_line
        await pilot.press("colon", *"zq")
        assert line.hint_text.startswith("nothing matches 'zq' · closest:")
        await pilot.press("enter")
        assert line.is_open and line.input.value == "zq"
        await pilot.press("backspace", "backspace", *"stroefront")
        assert line.hint_text.startswith("nothing matches 'stroefront' · closest: storefront")
        await pilot.press("escape")
        assert where(matrix) == ("storefront", None)


async def test_a_jump_to_a_row_the_filter_hides_clears_the_filter_and_says_so(
    config: Config,
) -> None:
    async with dashboard(stub_app(config)) as (pilot, screen, matrix):
        await pilot.press("slash", *"work", "enter")
        assert matrix.visible_projects == ["notifications-worker", "billing-worker"]
        assert "filter: work" in header(screen)
        await pilot.press("colon", *"store", "enter")
        assert where(matrix) == ("storefront", None)
        assert len(matrix.visible_projects) == len(config.projects)
        assert "filter:" not in header(screen)
        assert not screen.filter_input.display
        notices = [str(n.message) for n in pilot.app._notifications]
        assert "Filter 'work' cleared: it hid storefront." in notices
        # A row the filter shows keeps the filter.
        await pilot.press("slash", *"work", "enter", "colon", *"bill", "enter")
        assert where(matrix)[0] == "billing-worker" and "filter: work" in header(screen)


async def test_slash_is_typed_in_the_jump_line_and_colon_in_the_filter(config: Config) -> None:
    async with dashboard(stub_app(config)) as (pilot, screen, _matrix):
        await pilot.press("colon", *"web/prod1")
        assert screen.jump_line.input.value == "web/prod1"
        assert not screen.filter_input.display
        await pilot.press("escape", "slash", *"a:b")
        assert screen.filter_input.value == "a:b"
        assert not screen.jump_line.is_open


async def test_s_sorts_by_the_cursor_clusters_health_version_and_the_header_says_so(
    config: Config,
) -> None:
    async with dashboard(stub_app(config, varied_snapshot(config))) as (pilot, screen, matrix):
        assert "sort:" not in header(screen)  # the config's order, unsaid
        await pilot.press("colon", *"prod1", "enter", "s")
        assert "sort: name A→Z" in header(screen)
        assert matrix.visible_projects[:2] == ["admin-portal", "billing-worker"]
        await pilot.press("s")
        assert "sort: health in prod1, worst first" in header(screen)
        assert matrix.visible_projects[:2] == ["checkout-api", "media-service"]
        await pilot.press("S")
        assert "sort: health in prod1, best first" in header(screen)
        assert matrix.visible_projects[-2:] == ["media-service", "checkout-api"]
        await pilot.press("s")
        assert "sort: version in prod1, oldest first" in header(screen)
        assert matrix.visible_projects[:3] == ["checkout-api", "search-api", "admin-portal"]
        # The cursor stays on its project and column while the rows move under it.
        assert where(matrix) == ("storefront", "prod1")
        await pilot.press("slash", *"s", "enter")
        assert "filter: s · sort: version in prod1, oldest first" in header(screen)
        await pilot.press("s", "s")
        assert "sort:" not in header(screen)


async def test_the_strip_says_each_cells_last_deploy_and_rows_sort_by_its_age(
    tmp_path: Path, config: Config
) -> None:
    clock = SteppingClock()
    async with await Store.open(tmp_path / "console.db", clock=clock) as store:
        await finish(store, clock, "d-1", "storefront", "prod1", "2.16.0", 3, DeployState.SUCCEEDED)
        await finish(store, clock, "d-2", "admin-portal", "prod1", "3.9.0", 0.5, DeployState.FAILED)
        reason = "health gate: 0/1 healthy after 300s"
        await finish(
            store, clock, "d-3", "checkout-api", "prod1", "2.16.0", 26, DeployState.ROLLED_BACK
        )
        clock.now = FROZEN_NOW
        app = stub_app(config, clock=clock, deploys=QueueDeploys(runner_for(store, config, clock)))
        async with dashboard(app) as (pilot, screen, matrix):
            await wait_for(pilot, lambda: app.stored_marks, "the first read of the store")
            await pilot.pause()
            await pilot.press("colon", *"store/prod1", "enter")
            # (Its drift findings follow: the synthetic fleet's releases passed no stage.)
            assert strip(screen).startswith(
                "storefront · prod1  last deploy 2.16.0 by carol 3h 00m ago, succeeded"
            )
            await pilot.press("colon", *"admin", "enter")
            assert strip(screen).startswith(
                f"admin-portal · prod1  ✗ last deploy 3.9.0 by carol 30m 00s ago, failed: {reason}"
            )
            assert matrix.cell_plain("checkout-api", "prod1") == "↶ rolled… 2.16.0   ●"
            await pilot.press("colon", *"check", "enter")
            assert "by carol 1d 02h ago, rolled back" in strip(screen)
            await pilot.press("colon", *"admin/qa", "enter")
            assert strip(screen) == "admin-portal · qaprod1  admin-portal is not in qaprod1"
            await pilot.press("colon", *"prod1", "enter")
            await pilot.press("s", "s", "s", "s")
            assert "sort: last deploy in prod1, most recent first" in header(screen)
            assert matrix.visible_projects[:3] == ["admin-portal", "storefront", "checkout-api"]
            await pilot.press("S")
            assert matrix.visible_projects[:3] == ["checkout-api", "storefront", "admin-portal"]
            # On the project column: the project's newest deploy, wherever it went.
            await pilot.press("colon", *"store", "enter", "home")
            assert strip(screen) == (
                "storefront  last deploy 2.16.0 to prod1 by carol 3h 00m ago, succeeded"
            )


async def test_the_strip_says_why_a_cell_is_frozen_locked_queued_or_deploying(
    tmp_path: Path, config: Config
) -> None:
    clock = SteppingClock()
    async with await Store.open(tmp_path / "console.db", clock=clock) as store:
        runner = runner_for(store, config, clock)
        await fill(runner.queue, clock)
        app = stub_app(config, clock=clock, deploys=QueueDeploys(runner))
        async with dashboard(app) as (pilot, screen, _matrix):
            await wait_for(pilot, lambda: app.stored_marks, "the first read of the queue")
            await pilot.pause()

            async def at(typed: str) -> str:
                await pilot.press("colon", *typed, "enter")
                return strip(screen)

            assert (await at("store/prod1")).startswith(
                "storefront · prod1  ❄ prod1 frozen by dave since 2026-11-26 11:51 UTC: "
                "change freeze before the sale  ·  no last deploy known"
            )
            assert (await at("store/stag")).startswith(
                "storefront · staging  ⟳ deploying 2.15.0: d-"
            )
            assert "by alice" in strip(screen)
            queued = await at("check/prod1")
            assert queued.startswith("checkout-api · prod1  ◷ queued 5.2.3: d-")
            assert "by carol: " in queued
            assert (await at("check/qa")).startswith(
                "checkout-api · qaprod1  ⊘ locked on cluster qaprod1 by dave: AMI rebuild "
                "(no expiry)"
            )


async def finish(
    store: Store,
    clock: SteppingClock,
    id: str,
    project: str,
    cluster: str,
    release: str,
    hours_ago: float,
    state: DeployState,
) -> None:
    """A deploy by carol that ended `hours_ago` in `state`."""
    clock.now = FROZEN_NOW - timedelta(hours=hours_ago, minutes=10)
    record = DeployRecord(
        id=id,
        project=project,
        cluster=cluster,
        release=release,
        actor="carol",
        state=DeployState.RUNNING.value,
        created_at=clock.now,
        started_at=clock.now,
    )
    await store.create_deploy(record)
    clock.now += timedelta(minutes=10)
    reason = "health gate: 0/1 healthy after 300s" if state is not DeployState.SUCCEEDED else ""
    await store.set_deploy_state(id, state.value, reason=reason)


def test_snapshot_sorted_with_the_jump_line(snap_compare: SnapCompare, config: Config) -> None:
    async def run_before(pilot: Pilot[None]) -> None:
        app = pilot.app
        assert isinstance(app, DeployConsoleApp)
        await wait_for(pilot, lambda: app.refresh_count >= 1, "the first refresh")
        await pilot.press("right", "right", "right", "s", "s", "colon", *"med")
        await pilot.pause()

    app = stub_app(config, varied_snapshot(config))
    assert snap_compare(app, terminal_size=SMALL, run_before=run_before)
