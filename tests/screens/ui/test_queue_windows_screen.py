"""The queue screen at 80x24 says until when a deploy waits for its cluster's deploy window,
and that it starts next once the window opened."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

from console.config import Config, load_config
from console.config.windows import parse_window
from console.store import Store
from tests.conftest import DEMO_CONFIG
from tests.screens.ui import FROZEN_NOW, SteppingClock, stub_app, wait_for
from tests.screens.ui.test_queue_screen import (
    QueueDeploys,
    open_queue,
    request,
    rows,
    runner_for,
)

DEPLOY_ID = "d-20261126-115500-0c0ffe"
# FROZEN_NOW is Thursday 13:00 in Berlin: after the morning window.
FRIDAY_OPENS = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)


def windowed() -> Config:
    demo = load_config(DEMO_CONFIG)
    window = parse_window("Mon-Fri 09:00-12:00 Europe/Berlin")
    clusters = tuple(
        dataclasses.replace(c, windows=(window,)) if c.name == "prod1" else c for c in demo.clusters
    )
    return dataclasses.replace(demo, clusters=clusters)


async def test_the_queue_screen_says_until_when_and_then_starts_next(tmp_path: Path) -> None:
    config = windowed()
    clock = SteppingClock(FROZEN_NOW)
    async with await Store.open(tmp_path / "console.db", clock=clock) as store:
        runner = runner_for(store, config, clock)
        await runner.queue.enqueue(request("storefront", "prod1", "2.15.0", "alice"), DEPLOY_ID)
        app = stub_app(config, clock=clock, deploys=QueueDeploys(runner), history=store)
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await open_queue(pilot)
            (row,) = rows(screen)
            assert row[-1] == (
                "outside deploy windows of prod1 until Fri 09:00 Europe/Berlin (08:00 UTC)"
            )
            clock.now = FRIDAY_OPENS
            await wait_for(pilot, lambda: rows(screen)[0][-1] == "starts next", "the window")
