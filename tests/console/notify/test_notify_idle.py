"""A runner started with --exit-when-idle (as a console starts one) stays up while a delivery
is pending, past its idle time, and ends once the receiver took it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from console.servers.runner_service import IDLE_SECONDS
from console.store import Store
from tests.console.notify.receiver import Receiver
from tests.console.notify.support import CLUSTERS
from tests.console.queue.test_queue_crash import start
from tests.waiting import await_until


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = await Receiver(down=True).start()
    yield server
    await server.stop()


async def test_an_idle_runner_waits_for_its_pending_deliveries(
    tmp_path: Path, receiver: Receiver
) -> None:
    config, store = tmp_path / "notify.toml", tmp_path / "store.db"
    config.write_text(
        CLUSTERS.format(attempts=100).replace("max_retry_seconds = 0.2", "max_retry_seconds = 1")
        + f'[notify.channels.ops]\ntype = "webhook"\nurl = "{receiver.url}/x"\n\n'
        + '[[notify.routes]]\nchannels = ["ops"]\n'
    )
    async with await Store.open(store) as opened:
        await opened.audit("queue.freeze", actor="alice", cluster="prod1", reason="incident")
    runner = start("runner", "--exit-when-idle", config=config, store=store)
    try:
        # Failing attempts for longer than the runner's idle time: it is still up.
        await await_until(
            lambda: (
                receiver.requests
                and receiver.requests[-1].arrived - receiver.requests[0].arrived > IDLE_SECONDS + 1
            ),
            "attempts for longer than the idle time",
            timeout=90,
            every=0.2,
        )
        assert runner.poll() is None
        receiver.down = False
        await await_until(lambda: receiver.delivered, "the delivery", timeout=30, every=0.1)
        await await_until(lambda: runner.poll() is not None, "the runner to end", 60, 0.2)
    finally:
        if runner.poll() is None:
            runner.kill()
        await asyncio.to_thread(runner.wait)
    assert runner.returncode == 0
    assert runner.stderr is not None and "idle, exiting" in runner.stderr.read()
    assert [r.body["event"] for r in receiver.delivered] == ["freeze-set"]
