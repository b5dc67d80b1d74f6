"""`scale` on a shared host: the runner service checks and queues it for whom the door says
asks (its audit names them); a cluster's release gate is not asked of a scale."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from console.config import Config
from console.deploy.services import deploy_services
from console.queue.release_queue import DeployQueue
from console.queue.runner import Runner
from console.servers.runner_door import RunnerDoor
from console.store import Store
from tests.conftest import DEMO_CONFIG, ROOT
from tests.deploy_world import world_process

DEADLINE = 120.0


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Config]:
    with world_process(DEMO_CONFIG, tmp_path_factory.mktemp("door-scale-world")) as config:
        yield config


@pytest.fixture
async def door(world: Config, tmp_path: Path) -> AsyncIterator[tuple[Path, Path]]:
    """A runner service's door on the world (its runner runs nothing: a scale stays queued);
    the config a user's command line reaches it with; its store."""
    store, socket = tmp_path / "store.db", tmp_path / "run" / "runner.sock"
    async with deploy_services(world, store) as services:
        runner = Runner(services.engine, DeployQueue(services.store, world), executes=False)
        served = RunnerDoor(runner, socket)
        await served.start()
        config = tmp_path / "host.toml"
        config.write_text(world.source.read_text() + f'\n[runner]\nsocket = "{socket}"\n')
        try:
            yield config, store
        finally:
            await served.close()


async def scale(config: Path, *args: str) -> tuple[int | None, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "screens.main", "scale", *args, "--config", str(config),
        cwd=ROOT, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), DEADLINE)
    return process.returncode, out.decode(), err.decode()


async def test_the_service_queues_a_scale_with_its_reason(door: tuple[Path, Path]) -> None:
    config, store = door
    code, out, err = await scale(config, "storefront", "prod2", "4", "--yes", "--reason", "sale")
    assert code == 0, err
    assert "scale to 4" in out
    async with await Store.open(store, create=False, read_only=True) as opened:
        (record,) = await opened.deploys()
        assert (record.kind, record.release, record.state) == ("scale", "4", "queued")
        rows = await opened.audit_rows(deploy_id=record.id)
    requested = [row for row in rows if row.action == "scale.requested"]
    assert [(row.outcome, row.reason) for row in requested] == [("4", "sale")]
    assert not [row for row in rows if row.action == "gate.refused"]
