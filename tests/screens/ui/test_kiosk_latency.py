"""A change reaches the kiosk within one poll interval (plus the poll itself): in AWS (a
version, through the fleet poll) whether another process polls or the kiosk does, and in the
store (a freeze, through the deploy board). Real parts: the embedded world, a store file, the
real SharedFleet; a short interval so the test is quick."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

from console.config import Config
from console.fleet.inventory import Fleet
from console.fleet.share import FOLLOW_SECONDS, SharedFleet
from console.model import DeployRequest, FleetSnapshot
from console.queue.board import DeployBoard, read_board
from console.queue.release_queue import DeployQueue
from console.queue.wall import PairNotes, read_pair_notes
from console.store import Store
from screens.kiosk.screen import BOARD_SECONDS, KioskApp, build_kiosk
from tests.bench.bench_kiosk_latency import PAIR, retag, until_shown

INTERVAL = 3.0
# The frame and the event loop's turn on a loaded machine (2 cores, other tests beside).
MARGIN = 1.5


class TimedFleet(Fleet):
    """A Fleet that remembers how long its polls took."""

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.took: list[float] = []

    async def refresh(self) -> FleetSnapshot:
        started = time.monotonic()
        try:
            return await super().refresh()
        finally:
            self.took.append(time.monotonic() - started)


@asynccontextmanager
async def kiosk_on(
    config: Config, store_file: Path, fleet: SharedFleet
) -> AsyncIterator[tuple[KioskApp, Store]]:
    async with await Store.open(store_file) as store:
        pairs = [(p.name, c) for p in config.projects for c in p.clusters]

        async def board() -> DeployBoard:
            return await read_board(store, DeployQueue(store, config))

        async def notes() -> PairNotes:
            return await read_pair_notes(DeployQueue(store, config), pairs)

        app = build_kiosk(config, fleet, board, notes=notes)
        async with app.run_test(size=(80, 24)):
            await until_shown(app, *PAIR, "healthy")
            yield app, store


def worst_case(poll: float) -> float:
    """The longest a change can wait for the wall when polls take `poll` seconds: it lands
    just after a poll read it, the next poll starts one interval after that one started and
    takes `poll`. On a machine so loaded that a poll overruns the interval, the next starts
    at the first tick after it ended: a poll, an interval, a poll."""
    return INTERVAL + poll if poll < INTERVAL else INTERVAL + 2 * poll


async def changes_reach_the_wall(app: KioskApp, config: Config, polls: list[float]) -> None:
    """Three retags back to back: each just after a poll read AWS, the worst phase (the
    change waits for the next poll). Each shows within an interval, a poll and a margin."""
    original = "2.15.0"
    try:
        for n in range(3):
            started = time.monotonic()
            await asyncio.to_thread(retag, config, *PAIR, f"9.8.{n}")
            await until_shown(app, *PAIR, f"9.8.{n}")
            took = time.monotonic() - started
            bound = worst_case(max(polls)) + FOLLOW_SECONDS + MARGIN
            assert took <= bound, f"change {n} took {took:.2f} s (bound {bound:.2f} s)"
    finally:
        await asyncio.to_thread(retag, config, *PAIR, original)


async def test_a_change_reaches_the_wall_within_an_interval_while_a_server_polls(
    world_config: Config, tmp_path: Path
) -> None:
    config = replace(world_config, refresh_seconds=INTERVAL)
    store_file = tmp_path / "store.db"
    polled = TimedFleet(config)
    server = SharedFleet(config, store_file, name="sshd", poller=lambda: polled)
    kiosk_fleets: list[Fleet] = []

    def kiosk_poller() -> Fleet:
        kiosk_fleets.append(Fleet(config))
        return kiosk_fleets[-1]

    kiosk = SharedFleet(config, store_file, name="kiosk", poller=kiosk_poller)
    try:
        assert await server.hold()
        server.start_polling()
        async with kiosk_on(config, store_file, kiosk) as (app, _):
            reads = app.refresh_count
            await changes_reach_the_wall(app, config, polled.took)
            # It looked at the store every FOLLOW_SECONDS, never polled AWS (the server did).
            assert app.refresh_count - reads >= 6
            assert kiosk.polls == 0 and not kiosk_fleets
    finally:
        await kiosk.aclose()
        await server.aclose()


async def test_a_change_reaches_the_wall_within_an_interval_when_the_kiosk_polls(
    world_config: Config, tmp_path: Path
) -> None:
    config = replace(world_config, refresh_seconds=INTERVAL)
    polled: list[TimedFleet] = []

    def poller() -> Fleet:
        polled.append(TimedFleet(config))
        return polled[-1]

    kiosk = SharedFleet(config, tmp_path / "store.db", name="kiosk", poller=poller)
    try:
        async with kiosk_on(config, tmp_path / "store.db", kiosk) as (app, _):
            await changes_reach_the_wall(app, config, polled[0].took)
            # Polls start every INTERVAL (from one start to the next), not INTERVAL after each.
            assert kiosk.polls >= 3
    finally:
        await kiosk.aclose()


async def test_a_freeze_reaches_the_wall_within_the_board_read(
    world_config: Config, tmp_path: Path
) -> None:
    config = replace(world_config, refresh_seconds=INTERVAL)
    kiosk = SharedFleet(config, tmp_path / "store.db", name="kiosk", poller=lambda: Fleet(config))
    try:
        async with kiosk_on(config, tmp_path / "store.db", kiosk) as (app, store):
            queue = DeployQueue(store, config)
            project, cluster = PAIR
            started = time.monotonic()
            await queue.freeze(cluster, "ops", "release day")
            await until_shown(app, project, cluster, "❄ frozen")
            assert time.monotonic() - started <= BOARD_SECONDS + MARGIN
            await queue.unfreeze(cluster, "ops")
            started = time.monotonic()
            request = DeployRequest(project, cluster, "2.15.0", "ops")
            await queue.enqueue(request, "d-20261204-220000-0c0ffe")
            await until_shown(app, project, cluster, "◷ queued")
            assert time.monotonic() - started <= BOARD_SECONDS + MARGIN
    finally:
        await kiosk.aclose()
