"""Deploy windows in the queue on a real store: a deploy queued outside its cluster's windows
waits, saying until when, and the runner starts it once the store's clock reaches the window."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from console.config import Config, load_config
from console.config.windows import parse_window
from console.deploy.engine import DeployEngine
from console.model import DeployRequest
from console.queue.release_queue import DeployQueue
from console.queue.runner import Runner
from console.store import Store
from tests.console.queue.test_queue import DEMO
from tests.screens.ui import SteppingClock

# Thursday 2026-11-26 17:23 in Berlin (16:23 UTC): after the prod1 window closed.
EVENING = datetime(2026, 11, 26, 16, 23, tzinfo=UTC)
FRIDAY_OPENS = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
WAITS = "outside deploy windows of prod1 until Fri 09:00 Europe/Berlin (08:00 UTC)"


@pytest.fixture(scope="module")
def config() -> Config:
    demo = load_config(DEMO)
    window = parse_window("Mon-Fri 09:00-16:00 Europe/Berlin")
    clusters = tuple(
        dataclasses.replace(c, windows=(window,)) if c.name == "prod1" else c for c in demo.clusters
    )
    return dataclasses.replace(demo, clusters=clusters)


@pytest.fixture
async def queue(tmp_path: Path, config: Config) -> AsyncIterator[tuple[DeployQueue, SteppingClock]]:
    clock = SteppingClock(EVENING)
    async with await Store.open(tmp_path / "console.db", clock=clock) as store:
        yield DeployQueue(store, config), clock


def request(cluster: str) -> DeployRequest:
    return DeployRequest("storefront", cluster, "2.15.0", "alice")


async def reasons(queue: DeployQueue) -> dict[str, str]:
    return {entry.record.id: entry.status for entry in await queue.entries()}


async def test_a_deploy_outside_its_window_waits_until_it_opens(
    queue: tuple[DeployQueue, SteppingClock],
) -> None:
    deploys, clock = queue
    await deploys.enqueue(request("prod1"), "d-1")
    await deploys.enqueue(request("prod1"), "d-2")
    await deploys.enqueue(request("staging"), "d-3")  # staging has no windows

    assert await reasons(deploys) == {
        "d-1": WAITS,
        "d-2": WAITS,
        "d-3": "starts next",
    }
    claimed = await deploys.claim("runner-a")
    assert claimed is not None and claimed.id == "d-3"
    assert await deploys.claim("runner-a") is None

    clock.now = FRIDAY_OPENS - timedelta(seconds=1)
    assert await deploys.claim("runner-a") is None  # one second before the window opens
    clock.now = FRIDAY_OPENS
    assert (await reasons(deploys))["d-1"] == "starts next"
    assert (await reasons(deploys))["d-2"] == "behind d-1 (queued) on storefront in prod1"
    opened = await deploys.claim("runner-a")
    assert opened is not None and opened.id == "d-1" and opened.state == "running"


def _no_aws(_cluster: str) -> object:
    raise AssertionError("not reached in this test")


async def test_the_runner_starts_a_waiting_deploy_when_its_window_opens(
    queue: tuple[DeployQueue, SteppingClock], config: Config
) -> None:
    deploys, clock = queue
    engine = DeployEngine(config, _no_aws, deploys.store, _no_aws, clock=clock)  # type: ignore[arg-type]
    runner = Runner(engine, deploys, name="this-console", reconcile=False)
    await deploys.enqueue(request("prod1"), "d-1")
    try:
        await runner.tick()
        record = await deploys.store.deploy("d-1")
        assert record is not None and record.state == "queued"
        assert runner.running_here == []

        clock.now = FRIDAY_OPENS
        await runner.tick()
        started = await deploys.store.deploy("d-1")
        assert started is not None and started.state != "queued"
        assert started.runner == "this-console"
        rows = await deploys.store.audit_rows()
        assert ("queue.claim", "d-1") in [(row.action, row.deploy_id) for row in rows]
    finally:
        await runner.stop()
