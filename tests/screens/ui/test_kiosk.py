"""The kiosk (`deploy-console kiosk`) through Pilot: a snapshot built here, a real store file
seeded with a running deploy and finished ones. What a person across the room sees."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Static

from console.config import Config, load_config
from console.model import DeployRequest, FleetSnapshot, Health
from console.queue.board import DeployBoard, read_board
from console.queue.release_queue import DeployQueue
from console.store import DeployRecord, Store
from screens.kiosk.screen import KioskApp, KioskTile, build_kiosk, check_quit_key, page_layout
from tests.conftest import DEMO_CONFIG
from tests.screens.ui import (
    FROZEN_NOW,
    SteppingClock,
    StubFleet,
    large_config,
    synthetic_snapshot,
    text_of,
    wait_for,
)

SnapCompare = Callable[..., bool]
CET = timezone(timedelta(hours=1), "CET")
RUNNING_ID = "d-20261126-115800-a1b2c3"
VERSIONS = {
    "storefront": "2.15.0",
    "checkout-api": "5.2.3",
    "search-api": "b7e0d13",
    "admin-portal": "3.9.0",
    "media-service": "1.6.0",
    "partner-gateway": "1.0.1",
    "marketing-site": "24.11.2",
    "notifications-worker": "7.1.1",
    "billing-worker": "2024.11",
}


@pytest.fixture(scope="module")
def config() -> Config:
    return load_config(DEMO_CONFIG)


def fleet_snapshot(config: Config, now: datetime = FROZEN_NOW) -> FleetSnapshot:
    """Every pair healthy on its project's version, but for a degraded, a down and an empty one."""
    base = synthetic_snapshot(config, now, "0")
    envs = {}
    for (project, cluster), env in base.envs.items():
        instances = tuple(replace(i, version=VERSIONS[project]) for i in env.instances)
        env = replace(env, instances=instances)
        if (project, cluster) == ("media-service", "prod1"):
            sick = replace(
                instances[1], targets=(replace(instances[1].targets[0], state="unhealthy"),)
            )
            env = replace(env, health=Health.DEGRADED, instances=(instances[0], sick))
        if (project, cluster) == ("checkout-api", "prod2"):
            down = tuple(replace(i, state="stopped", targets=()) for i in instances)
            env = replace(env, health=Health.DOWN, instances=down)
        if (project, cluster) == ("search-api", "staging"):
            env = replace(env, health=Health.EMPTY, instances=())
        envs[(project, cluster)] = env
    return replace(base, envs=envs)


async def seed(store: Store, config: Config, clock: SteppingClock) -> None:
    """Three finished deploys, then storefront → staging 2.16.0 running its configure step."""
    finished = [
        ("d-20261126-110000-000001", "checkout-api", "prod1", "5.2.3", "succeeded"),
        ("d-20261126-112000-000002", "media-service", "prod1", "1.6.0", "rolled_back"),
        ("d-20261126-114000-000003", "admin-portal", "staging", "3.9.0", "succeeded"),
    ]
    for deploy_id, project, cluster, release, state in finished:
        await store.create_deploy(
            DeployRecord(
                id=deploy_id, project=project, cluster=cluster, release=release, actor="alice",
                state=state, created_at=clock(), started_at=clock(),
                finished_at=clock() + timedelta(minutes=2),
            )
        )  # fmt: skip
        clock.advance(600)
    queue = DeployQueue(store, config)
    request = DeployRequest("storefront", "staging", "2.16.0", "bob")
    await queue.enqueue(request, RUNNING_ID)
    await queue.claim("ops-host:1:ab")
    for step in ("lock", "resolve", "launch"):
        await store.step_started(RUNNING_ID, step)
        await store.step_finished(RUNNING_ID, step, "succeeded")
    await store.step_started(RUNNING_ID, "configure")
    await queue.enqueue(replace(request, release="2.16.1"), "d-20261126-115900-a1b2c4")


@pytest.fixture
async def store(tmp_path: Path, config: Config) -> AsyncIterator[Store]:
    clock = SteppingClock(FROZEN_NOW - timedelta(hours=1))
    async with await Store.open(tmp_path / "deploys.db", clock=clock) as opened:
        await seed(opened, config, clock)
        yield opened


@asynccontextmanager
async def kiosk(
    config: Config,
    fleet: StubFleet,
    store: Store | None,
    size: tuple[int, int] = (160, 48),
    clock: Callable[[], datetime] = lambda: FROZEN_NOW,
) -> AsyncIterator[tuple[KioskApp, Pilot[None]]]:
    async def board() -> DeployBoard:
        assert store is not None
        return await read_board(store, DeployQueue(store, config))

    app = build_kiosk(
        config, fleet, board if store else None, clock=clock, local_zone=CET, auto_refresh=False
    )
    async with app.run_test(size=size) as pilot:
        await wait_for(pilot, lambda: app.refresh_count >= 1, "the first refresh")
        if store is not None:
            await wait_for(pilot, lambda: app.board_count >= 1, "the first read of the deploys")
        await pilot.pause()
        yield app, pilot


def tiles(app: KioskApp) -> dict[str, str]:
    """Each visible tile's text by "project/cluster", as a person reads it (one line)."""
    shown = {}
    for tile in app.screen.query(KioskTile):
        if tile.display:
            lines = text_of(tile).split("\n")
            cluster = lines[0].split()[0]
            shown[f"{tile.border_title}/{cluster}"] = " | ".join(lines)
    return shown


async def tiles_after_refresh(app: KioskApp, pilot: Pilot[None]) -> dict[str, str]:
    """Refresh now and wait for it to end; the tiles then."""
    count = app.refresh_count
    app.refresh_fleet()
    await wait_for(pilot, lambda: app.refresh_count > count, "the refresh")
    await pilot.pause()
    return tiles(app)


def static(app: KioskApp, widget_id: str) -> str:
    return text_of(app.screen.query_one(f"#{widget_id}", Static))


async def test_tiles_show_health_versions_and_the_deploy_in_flight(
    config: Config, store: Store
) -> None:
    async with kiosk(config, StubFleet(config, [fleet_snapshot(config)]), store) as (app, _):
        assert app.page_count == 1
        shown = tiles(app)
        assert len(shown) == len(app.pairs) == 27
        assert shown["storefront/prod1"] == " prod1 🔒   2/2 | ● healthy | 2.15.0"
        assert shown["media-service/prod1"] == " prod1 🔒   1/2 | ◐ degraded | 1.6.0"
        assert shown["checkout-api/prod2"] == " prod2 🔒   0/2 | ✖ down | 5.2.3"
        assert shown["search-api/staging"] == "staging | ○ no instances | "
        # The running deploy: its release, steps done of all, the step running; one behind it.
        assert shown["storefront/staging"] == (
            "staging  2/2 | ● healthy | 2.15.0 → 2.16.0 | ⟳ 3/9 configure +1"
        )
        summary = static(app, "kiosk-summary")
        assert "● 24 healthy" in summary and "◐ 1 degraded" in summary
        assert "✖ 1 down" in summary and "○ 1 no instances" in summary
        assert static(app, "kiosk-clock") == "12:00:00 UTC  13:00:00 CET"
        assert static(app, "kiosk-age") == "data 0s old"
        assert static(app, "kiosk-page") == ""  # everything fits: no pages
        ticker = static(app, "kiosk-ticker")
        assert ticker.startswith("latest   ✔ admin-portal → staging 3.9.0 succeeded 38m ago")
        assert "↩ media-service → prod1 1.6.0 rolled back 48m ago" in ticker
        assert "✔ checkout-api → prod1 5.2.3 succeeded 58m ago" in ticker


async def test_data_age_and_clock_follow_the_clock(config: Config) -> None:
    clock = SteppingClock()
    async with kiosk(config, StubFleet(config, [fleet_snapshot(config)]), None, clock=clock) as (
        app,
        pilot,
    ):
        assert static(app, "kiosk-ticker") == "no deploys recorded yet"
        clock.advance(4)
        await wait_for(pilot, lambda: static(app, "kiosk-age") == "data 4s old", "the age")
        assert static(app, "kiosk-clock") == "12:00:04 UTC  13:00:04 CET"


async def test_pages_rotate_when_the_fleet_does_not_fit(config: Config, store: Store) -> None:
    fleet = StubFleet(config, [fleet_snapshot(config)])
    async with kiosk(config, fleet, store, size=(80, 24)) as (app, pilot):
        assert app.page_count == 3
        assert static(app, "kiosk-page") == "page 1/3"
        first = tiles(app)
        assert len(first) == 9 and "storefront/staging" in first
        app.action_next_page()
        await pilot.pause()
        assert static(app, "kiosk-page") == "page 2/3"
        second = tiles(app)
        assert len(second) == 9 and not set(first) & set(second)
        app.action_next_page()
        await pilot.pause()
        assert static(app, "kiosk-page") == "page 3/3"
        third = tiles(app)
        assert set(first) | set(second) | set(third) == {
            f"{project}/{cluster}" for project, cluster, _ in app.pairs
        }
        app.action_next_page()
        await pilot.pause()
        assert static(app, "kiosk-page") == "page 1/3"


async def test_pages_turn_by_themselves_every_rotate_seconds(config: Config) -> None:
    fleet = StubFleet(config, [fleet_snapshot(config)])
    app = build_kiosk(config, fleet, rotate_seconds=0.2, auto_refresh=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.refresh_count >= 1, "the first refresh")
        await wait_for(pilot, lambda: static(app, "kiosk-page") == "page 2/3", "page 2", 5)
        await wait_for(pilot, lambda: static(app, "kiosk-page") == "page 3/3", "page 3", 5)


async def test_a_failed_refresh_keeps_the_tiles_dimmed_and_stale(config: Config) -> None:
    clock = SteppingClock()
    good = fleet_snapshot(config)
    fleet = StubFleet(config, [good, RuntimeError("cannot reach https://ec2.example")])
    async with kiosk(config, fleet, None, clock=clock) as (app, pilot):
        assert not app.screen.query(".-stale")
        clock.advance(95)
        shown = await tiles_after_refresh(app, pilot)
        assert shown["storefront/prod1"] == (
            " prod1 🔒   2/2 | ● healthy | 2.15.0 | stale since 13:00:00"
        )
        assert len(app.screen.query(".-stale")) == 27
        age = static(app, "kiosk-age")
        assert age.startswith("data 1m 35s old")
        assert "✖ AWS unreachable: RuntimeError: cannot reach https://ec2.example" in age


async def test_a_cluster_that_cannot_be_read_goes_stale_alone(config: Config) -> None:
    from tests.screens.ui import with_cluster_down

    good = fleet_snapshot(config)
    later = FROZEN_NOW + timedelta(seconds=30)
    stale = with_cluster_down(good, "prod2", "cannot reach http://127.0.0.1:9/", later)
    async with kiosk(config, StubFleet(config, [good, stale]), None) as (app, pilot):
        shown = await tiles_after_refresh(app, pilot)
        assert shown["checkout-api/prod2"] == (
            " prod2 🔒   0/2 | ✖ down | 5.2.3 | stale since 13:00:00"
        )
        assert "stale" not in shown["checkout-api/prod1"]
        assert {tile.border_title for tile in app.screen.query(".-stale")} == {
            project for project, cluster, _ in app.pairs if cluster == "prod2"
        }
        assert "✖ prod2: cannot reach http://127.0.0.1:9/" in static(app, "kiosk-age")


async def test_no_key_but_the_quit_key_does_anything(config: Config) -> None:
    fleet = StubFleet(config, [fleet_snapshot(config)])
    async with kiosk(config, fleet, None) as (app, pilot):
        before = tiles(app)
        screen = app.screen
        await pilot.press(
            "ctrl+p", "r", "d", "q", "D", "h", "enter", "escape", "tab", "question_mark",
            "ctrl+c", "down", "right", "slash", "f1",
        )  # fmt: skip
        await pilot.click(KioskTile)
        await pilot.pause()
        assert app.is_running and app.screen is screen and len(app.screen_stack) == 1
        assert tiles(app) == before
        assert app.focused is None
        assert fleet.refreshes == 1  # not even a refresh
        # Decided in one place: whatever asks (a key, a link, a widget), only quit may run.
        for action in ("command_palette", "toggle_dark", "focus_next", "help_quit", "next_page"):
            assert not app.check_action(action, ())
        await pilot.press("ctrl+q")
        await wait_for(pilot, lambda: not app.is_running, "the kiosk to quit")


async def test_a_configured_quit_key(config: Config) -> None:
    fleet = StubFleet(config, [fleet_snapshot(config)])
    app = build_kiosk(
        config, fleet, quit_key="f10", auto_refresh=False, local_zone=UTC, clock=lambda: FROZEN_NOW
    )
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.refresh_count >= 1, "the first refresh")
        await pilot.pause()
        assert static(app, "kiosk-clock") == "12:00:00 UTC (local time too)"
        await pilot.press("ctrl+q", "q")
        await pilot.pause()
        assert app.is_running
        await pilot.press("f10")
        await wait_for(pilot, lambda: not app.is_running, "the kiosk to quit")


async def test_a_large_fleet_gets_a_dense_grid(config: Config) -> None:
    big = large_config(200)
    fleet = StubFleet(big, [synthetic_snapshot(big, FROZEN_NOW, "1.0.0")])
    app = build_kiosk(big, fleet, auto_refresh=False, clock=lambda: FROZEN_NOW)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_for(pilot, lambda: app.refresh_count >= 1, "the first refresh")
        await pilot.pause()
        shown = [text_of(tile) for tile in app.screen.query(KioskTile) if tile.display]
        assert app.page_shape.dense and len(shown) == app.page_shape.per_page == 4 * 45
        assert app.page_count == 5 and static(app, "kiosk-page") == "page 1/5"
        assert shown[0] == "● project-000 staging 1.0.0"
        assert shown[2] == "● project-000 prod1🔒 1.0.0"


def test_quit_keys_and_layouts() -> None:
    assert check_quit_key("ctrl+q") == "ctrl+q"
    assert check_quit_key("question_mark") == "question_mark"
    for bad in ("ctrl+", "cmd+q", "nokey", ""):
        with pytest.raises(ValueError, match="not a key"):
            check_quit_key(bad)
    assert page_layout(22, 80, 21).per_page == 9
    assert page_layout(22, 160, 45).per_page >= 22
    assert page_layout(22, 240, 64).per_page >= 22


# -- snapshots: what the wall shows at three sizes --------------------------------------------


@pytest.fixture
def board(tmp_path: Path, config: Config) -> DeployBoard:
    clock = SteppingClock(FROZEN_NOW - timedelta(hours=1))

    async def read() -> DeployBoard:
        async with await Store.open(tmp_path / "deploys.db", clock=clock) as opened:
            await seed(opened, config, clock)
            return await read_board(opened, DeployQueue(opened, config))

    return asyncio.run(read())


def snapshot_kiosk(config: Config, board: DeployBoard, *, stale: bool = False) -> KioskApp:
    async def read() -> DeployBoard:
        return board

    good = fleet_snapshot(config, FROZEN_NOW - timedelta(seconds=4))
    snapshots: list[FleetSnapshot | Exception] = [good]
    if stale:
        from tests.screens.ui import with_cluster_down

        snapshots = [
            good,
            with_cluster_down(good, "prod2", "cannot reach http://127.0.0.1:9/", FROZEN_NOW),
        ]
    return build_kiosk(
        config,
        StubFleet(config, snapshots),
        read,
        clock=lambda: FROZEN_NOW,
        local_zone=CET,
        auto_refresh=False,
    )


async def _ready(pilot: Pilot[None]) -> None:
    app = pilot.app
    assert isinstance(app, KioskApp)
    await wait_for(pilot, lambda: app.refresh_count >= 1 and app.board_count >= 1, "the data")
    await pilot.pause()


@pytest.mark.parametrize("size", [(80, 24), (160, 48), (240, 67)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_snapshot(snap_compare: SnapCompare, config: Config, board: DeployBoard, size) -> None:
    assert snap_compare(snapshot_kiosk(config, board), terminal_size=size, run_before=_ready)


def test_snapshot_stale_cluster(
    snap_compare: SnapCompare, config: Config, board: DeployBoard
) -> None:
    """prod2 read well once, then not: its tiles keep that read, dimmed, and say since when."""

    async def run_before(pilot: Pilot[None]) -> None:
        await _ready(pilot)
        app = pilot.app
        assert isinstance(app, KioskApp)
        app.refresh_fleet()
        await wait_for(pilot, lambda: app.refresh_count >= 2, "the second refresh")
        await pilot.pause()

    app = snapshot_kiosk(config, board, stale=True)
    assert snap_compare(app, terminal_size=(160, 48), run_before=run_before)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ("--rotate 0", "--rotate must be a number of seconds above 0, not 0.0"),
        ("--rotate nan", "--rotate must be a number of seconds above 0, not nan"),
        ("--rotate soon", "argument --rotate: invalid float value: 'soon'"),
        ("--quit-key cmd+q", "--quit-key 'cmd+q': not a key"),
    ],
)
def test_bad_kiosk_options_are_one_line_and_exit_2(
    options: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from screens.main import run

    assert run(["kiosk", "--config", str(DEMO_CONFIG), *options.split()]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("deploy-console: error: ")
    assert message in err
