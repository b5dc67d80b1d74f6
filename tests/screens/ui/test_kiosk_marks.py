"""The kiosk's tiles carry the dashboard's marks (deploying, queued, frozen, locked, failed,
rolled back) and each pair's last deploy (who, when, outcome), in words that read without
colour; each cluster's name in its configured colour, a protected one a bar with the lock,
on the wall and in the dashboard's column headers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from rich.style import Style
from textual.content import Content
from textual.pilot import Pilot
from textual.widgets import Static

from console.config import Config, load_config
from console.model import DeployState
from console.queue.board import DeployBoard, read_board
from console.queue.marks import Mark, PairMark
from console.queue.release_queue import DeployQueue
from console.queue.wall import PairNotes, read_pair_notes
from console.store import DeployRecord, Store
from screens.dashboard.fleet_matrix import FleetMatrix
from screens.kiosk.screen import KioskApp, KioskTile, build_kiosk
from screens.widgets.cluster_look import SHADES
from tests.conftest import DEMO_CONFIG
from tests.screens.ui import (
    FROZEN_NOW,
    SteppingClock,
    StubFleet,
    large_config,
    stub_app,
    synthetic_snapshot,
    text_of,
    wait_for,
)
from tests.screens.ui.test_kiosk import CET, fleet_snapshot
from tests.screens.ui.test_queue_screen import fill

SnapCompare = Callable[..., bool]
FAILED, SUCCEEDED = DeployState.FAILED, DeployState.SUCCEEDED
SIZES = [(80, 24), (160, 48)]


def size_id(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


@pytest.fixture(scope="module")
def config() -> Config:
    return load_config(DEMO_CONFIG)


async def seed(store: Store, config: Config, clock: SteppingClock) -> None:
    """The queue screen's fill (running, queued, frozen prod1, locked qaprod1), then
    admin-portal's deploy to staging failed an hour ago and marketing-site's to staging
    succeeded 25 minutes ago."""
    await fill(DeployQueue(store, config), clock)
    finished = [
        ("d-20261126-110000-ba0bab", "admin-portal", "3.9.0", "carol", 60, FAILED),
        ("d-20261126-113500-c0ffee", "marketing-site", "24.11.2", "alice", 25, SUCCEEDED),
    ]  # fmt: skip
    for deploy_id, project, release, actor, minutes_ago, state in finished:
        clock.now = FROZEN_NOW - timedelta(minutes=minutes_ago)
        await store.create_deploy(
            DeployRecord(
                id=deploy_id, project=project, cluster="staging", release=release, actor=actor,
                state=DeployState.RUNNING.value, created_at=clock.now,
            )
        )  # fmt: skip
        await store.set_deploy_state(deploy_id, state.value, reason="health gate: 0/1 healthy")
    clock.now = FROZEN_NOW


def pairs_of(config: Config) -> list[tuple[str, str]]:
    return [(p.name, cluster) for p in config.projects for cluster in p.clusters]


@asynccontextmanager
async def wall(
    tmp_path: Path, config: Config, size: tuple[int, int]
) -> AsyncIterator[tuple[KioskApp, Pilot[None]]]:
    """The kiosk on a real store file with the seed above, its deploys and marks read."""
    clock = SteppingClock()
    async with await Store.open(tmp_path / "deploys.db", clock=clock) as store:
        await seed(store, config, clock)

        async def board() -> DeployBoard:
            return await read_board(store, DeployQueue(store, config))

        async def notes() -> PairNotes:
            return await read_pair_notes(DeployQueue(store, config), pairs_of(config))

        app = build_kiosk(
            config,
            StubFleet(config, [fleet_snapshot(config)]),
            board,
            notes=notes,
            clock=lambda: FROZEN_NOW,
            local_zone=CET,
            auto_refresh=False,
        )
        async with app.run_test(size=size) as pilot:
            await wait_for(pilot, lambda: app.refresh_count and app.board_count, "the data")
            await pilot.pause()
            yield app, pilot


def tiles(app: KioskApp) -> dict[str, str]:
    """Each visible tile's text by "project/cluster", one line."""
    shown = {}
    for tile in app.screen.query(KioskTile):
        if tile.display:
            lines = text_of(tile).split("\n")
            shown[f"{tile.border_title}/{lines[0].split()[0]}"] = " | ".join(lines)
    return shown


async def page_with(app: KioskApp, pilot: Pilot[None], pair: str) -> dict[str, str]:
    """Turn the pages until `pair`'s tile shows; the tiles then."""
    for _ in range(app.page_count):
        shown = tiles(app)
        if pair in shown:
            return shown
        app.action_next_page()
        await pilot.pause()
    raise AssertionError(f"{pair} is on no page: {sorted(tiles(app))}")


def static(app: KioskApp, widget_id: str) -> str:
    return text_of(app.screen.query_one(f"#{widget_id}", Static))


@pytest.mark.parametrize("size", SIZES, ids=size_id)
async def test_tiles_show_marks_and_the_last_deploy_in_words(
    tmp_path: Path, config: Config, size: tuple[int, int]
) -> None:
    async with wall(tmp_path, config, size) as (app, pilot):
        shown = tiles(app)
        if size == (80, 24):  # page 1 of 3: storefront and checkout-api, search-api staging
            assert app.page_count == 3 and len(shown) == 9
        else:
            assert app.page_count == 1 and len(shown) == 27
        # What the dashboard's cells say, the same glyph and word: frozen, locked, queued.
        assert shown["storefront/prod1"] == " prod1 🔒   2/2 | ● healthy | 2.15.0 | ❄ frozen"
        assert shown["storefront/qaprod1"] == "qaprod1  2/2 | ● healthy | 2.15.0 | ⊘ locked"
        assert shown["checkout-api/prod1"].endswith("5.2.3 → 5.2.3 | ◷ queued")
        assert shown["storefront/staging"].endswith("2.15.0 → 2.15.0 | ⟳ 0/9 +1")
        summary = static(app, "kiosk-summary")
        assert "● 24 healthy" in summary and "⟳ 1 deploying" in summary
        if size == (80, 24):
            app.action_next_page()
            await pilot.pause()
            shown = tiles(app)
        # A failed last deploy: the mark, then who and when (and how, when the tile is wide
        # enough: 22 cells of text at 80x24 are not).
        how = "✖ carol 1h ago" if size == (80, 24) else "✖ failed by carol 1h ago"
        assert shown["admin-portal/staging"] == (
            f"staging  2/2 | ● healthy | 3.9.0 | ✗ failed 3.9.0 | {how}"
        )
        if size == (80, 24):
            app.action_next_page()
            await pilot.pause()
            shown = tiles(app)
        # A good one: no mark, the last deploy only.
        how = "✔ alice 25m ago" if size == (80, 24) else "✔ succeeded by alice 25m ago"
        assert shown["marketing-site/staging"] == f"staging  2/2 | ● healthy | 24.11.2 | {how}"
        if size == (160, 48):
            for kind in ("◷ 3 queued", "❄ 8 frozen", "⊘ 4 locked", "✗ 1 failed"):
                assert kind in summary


async def test_a_short_tile_drops_the_last_deploy_first(tmp_path: Path, config: Config) -> None:
    # 15 rows: tiles of four lines inside their border; the mark stays, the last deploy goes.
    async with wall(tmp_path, config, (160, 15)) as (app, pilot):
        shown = await page_with(app, pilot, "admin-portal/staging")
        assert shown["admin-portal/staging"] == (
            "staging  2/2 | ● healthy | 3.9.0 | ✗ failed 3.9.0"
        )


def _style_of(content: Content, text: str) -> str:
    """The style of the span that covers `text` in `content`."""
    start = content.plain.index(text)
    styles = [str(span.style) for span in content.spans if span.start <= start < span.end]
    return " ".join(styles)


@pytest.mark.parametrize("size", SIZES, ids=size_id)
async def test_each_cluster_in_its_colour_and_production_a_red_bar(
    tmp_path: Path, config: Config, size: tuple[int, int]
) -> None:
    async with wall(tmp_path, config, size) as (app, _):
        titles = {}
        for tile in app.screen.query(KioskTile):
            if tile.display and tile.border_title == "storefront":
                visual = tile.visual
                assert isinstance(visual, Content)
                cluster = visual.plain.split()[0]
                titles[cluster] = _style_of(visual, cluster)
        # demo.toml: staging cyan, qaprod1 yellow, prod1 and prod2 no colour (protected: red).
        assert titles["staging"] == f"bold {SHADES['cyan']}"
        assert titles["qaprod1"] == f"bold {SHADES['yellow']}"
        assert titles["prod1"] == titles["prod2"] == f"bold #ffffff on {SHADES['red']}"


async def test_dense_tiles_keep_the_mark_and_the_colour() -> None:
    big = large_config(200)
    clusters = tuple(replace(c, colour="green") if c.name == "staging" else c for c in big.clusters)
    big = replace(big, clusters=clusters)

    async def board() -> DeployBoard:
        return DeployBoard({}, ())

    async def notes() -> PairNotes:
        frozen = PairMark(Mark.FROZEN, None, "frozen by dave")
        return PairNotes({("project-000", "prod1"): frozen})

    fleet = StubFleet(big, [synthetic_snapshot(big, FROZEN_NOW, "1.0.0")])
    app = build_kiosk(big, fleet, board, notes=notes, auto_refresh=False, clock=lambda: FROZEN_NOW)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_for(pilot, lambda: app.refresh_count and app.board_count, "the data")
        await pilot.pause()
        shown = [tile for tile in app.screen.query(KioskTile) if tile.display]
        assert app.page_shape.dense
        assert text_of(shown[2]) == "● project-000 prod1🔒 1.0.0 ❄ frozen"
        visual = shown[0].visual
        assert isinstance(visual, Content)
        assert _style_of(visual, "staging") == f"bold {SHADES['green']}"


@pytest.mark.parametrize("size", SIZES, ids=size_id)
async def test_the_dashboard_headers_wear_the_cluster_colours(
    config: Config, size: tuple[int, int]
) -> None:
    app = stub_app(config)
    async with app.run_test(size=size) as pilot:
        await wait_for(pilot, lambda: app.refresh_count >= 1, "the first refresh")
        await pilot.pause()
        matrix = app.screen.query_one(FleetMatrix)
        labels = {str(key.value): column.label for key, column in matrix.columns.items()}
        assert labels["staging"].style == Style.parse(f"bold {SHADES['cyan']}")
        assert labels["qaprod1"].style == Style.parse(f"bold {SHADES['yellow']}")
        # A protected cluster: a red bar, the lock in it (no colour needed).
        prod1 = labels["prod1"]
        assert prod1.style == Style.parse(f"bold #ffffff on {SHADES['red']}")
        assert prod1.plain == "prod1 🔒"


# -- snapshots: the marks and colours on the wall at a terminal's size and a wall's ---------


@pytest.fixture
def read(tmp_path: Path, config: Config) -> tuple[DeployBoard, PairNotes]:
    clock = SteppingClock()

    async def both() -> tuple[DeployBoard, PairNotes]:
        async with await Store.open(tmp_path / "deploys.db", clock=clock) as store:
            await seed(store, config, clock)
            queue = DeployQueue(store, config)
            return await read_board(store, queue), await read_pair_notes(queue, pairs_of(config))

    return asyncio.run(both())


@pytest.mark.parametrize("size", SIZES, ids=size_id)
def test_snapshot_marks(
    snap_compare: SnapCompare,
    config: Config,
    read: tuple[DeployBoard, PairNotes],
    size: tuple[int, int],
) -> None:
    board, notes = read

    async def read_board_() -> DeployBoard:
        return board

    async def read_notes() -> PairNotes:
        return notes

    app = build_kiosk(
        config,
        StubFleet(config, [fleet_snapshot(config)]),
        read_board_,
        notes=read_notes,
        clock=lambda: FROZEN_NOW,
        local_zone=CET,
        auto_refresh=False,
    )

    async def ready(pilot: Pilot[None]) -> None:
        await wait_for(pilot, lambda: app.refresh_count and app.board_count, "the data")
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=ready)
