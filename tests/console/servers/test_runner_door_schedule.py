"""On a shared host the runner service takes `deploy --at` and `--outside-window` from the
command line, and `queue override`: stored as the caller's, audited, held to the same checks."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from console.config import Config, load_config
from console.deploy.services import deploy_services
from console.queue.release_queue import DeployQueue, QueueError
from console.queue.runner import Runner
from console.servers.runner_door import DoorClient, RemoteQueue, RunnerDoor
from console.store import DeployRecord, Store
from tests.conftest import ROOT

DEADLINE = 120.0
DAY = f"{datetime.now(UTC) + timedelta(days=2):%a}"  # a window closed whenever this runs


@pytest.fixture
async def door(world_config: Config, tmp_path: Path) -> AsyncIterator[tuple[Config, Path, Path]]:
    """A runner service's door on the session's world (nothing here changes it), staging with
    a closed window (its runner does not run deploys); the config a user's command line
    reaches it with; its store."""
    world = world_config
    store, socket = tmp_path / "store.db", tmp_path / "run" / "runner.sock"
    windowed = tmp_path / "world.toml"
    windowed.write_text(
        world.source.read_text().replace(
            'name = "staging"\n', f'name = "staging"\nwindows = ["{DAY} 09:00-10:00 UTC"]\n', 1
        )
    )
    served_config = load_config(windowed)
    assert served_config.cluster("staging").windows
    async with deploy_services(served_config, store) as services:
        runner = Runner(services.engine, DeployQueue(services.store, served_config), executes=False)
        served = RunnerDoor(runner, socket)
        await served.start()
        config = tmp_path / "host.toml"
        config.write_text(windowed.read_text() + f'\n[runner]\nsocket = "{socket}"\n')
        try:
            yield load_config(config), config, store
        finally:
            await served.close()


async def stored(store: Path) -> list[DeployRecord]:
    async with await Store.open(store, create=False, read_only=True) as opened:
        return await opened.deploys()


async def run(*argv: str, config: Path) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "screens.main", *argv, "--config", str(config),
        cwd=ROOT, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), DEADLINE)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_deploy_at_outside_the_window_through_the_service(
    door: tuple[Config, Path, Path],
) -> None:
    _, config, store = door
    argv = ("deploy", "checkout-api", "staging", "5.2.0", "--anyway")
    code, out, err = await run(*argv, "--at", "+1h", "--outside-window", "INC-88", config=config)
    assert code == 0, err
    first, second = out.splitlines()
    assert first.startswith("queued d-") and second.startswith("scheduled for ")
    assert second.endswith("follows it")
    assert "(in 1h 00m)" in second or "(in 59m 5" in second, second
    (record,) = await stored(store)
    assert record.state == "queued" and record.not_before is not None
    assert 3500 < (record.not_before - record.created_at).total_seconds() <= 3600
    assert record.window_override == "INC-88"
    async with await Store.open(store, create=False, read_only=True) as opened:
        rows = [(r.action, r.reason) for r in await opened.audit_rows(deploy_id=record.id)]
    assert ("window-override", "INC-88") in rows


async def test_queue_override_through_the_service(door: tuple[Config, Path, Path]) -> None:
    served, config, store = door
    assert served.runner_socket is not None
    client = DoorClient(served.runner_socket)
    pair = {"project": "checkout-api", "cluster": "staging", "release": "5.2.0"}
    record = await client.call("deploy", **pair, follow=False, anyway=True)
    assert record.window_override is None
    code, out, err = await run(
        "queue", "override", record.id, "--reason", "the sale", config=config
    )
    assert code == 0, err
    assert out == f"{record.id} (checkout-api → staging) may start outside its window\n"
    (after,) = await stored(store)
    assert after.window_override == "the sale"
    with pytest.raises(QueueError, match="may already start outside its window"):
        await RemoteQueue(client).override_window(record.id, "ignored", "again")
