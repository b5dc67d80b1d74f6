"""On a shared host the runner service checks a release's warnings (already running, a
downgrade, failed lately) as a deploy on one's own does: nothing is queued until the asker
confirms, with --anyway or by typing yes."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from console.config import Config, load_config
from console.deploy.services import deploy_services
from console.errors import DeployError, ReleaseWarned
from console.queue.release_queue import DeployQueue
from console.queue.runner import Runner
from console.servers.runner_door import DoorClient, RunnerDoor
from console.store import Store
from tests.conftest import DEMO_CONFIG, ROOT
from tests.deploy_world import world_process

WARNED = "release 5.2.3 already runs in staging (a redeploy: new instances)"
DEADLINE = 120.0


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Config]:
    with world_process(DEMO_CONFIG, tmp_path_factory.mktemp("door-warnings-world")) as config:
        yield config


@pytest.fixture
async def door(world: Config, tmp_path: Path) -> AsyncIterator[tuple[Config, Path, Path]]:
    """A runner service's door on the world (its runner does not run deploys: what it
    queued stays queued); the config a user's command line reaches it with; its store. Its
    qaprod1 asks every deploy for a change ticket."""
    store, socket = tmp_path / "store.db", tmp_path / "run" / "runner.sock"
    ticketed = tmp_path / "world.toml"
    ticketed.write_text(
        world.source.read_text().replace(
            'name = "qaprod1"\n', 'name = "qaprod1"\nticket = { required = true }\n', 1
        )
    )
    world = load_config(ticketed)
    async with deploy_services(world, store) as services:
        runner = Runner(services.engine, DeployQueue(services.store, world), executes=False)
        served = RunnerDoor(runner, socket)
        await served.start()
        config = tmp_path / "host.toml"
        config.write_text(ticketed.read_text() + f'\n[runner]\nsocket = "{socket}"\n')
        try:
            yield load_config(config), config, store
        finally:
            await served.close()


async def queued(store: Path) -> list[str]:
    async with await Store.open(store, create=False, read_only=True) as opened:
        return [record.release for record in await opened.deploys()]


async def test_the_service_refuses_a_warned_release_until_asked_anyway(
    door: tuple[Config, Path, Path],
) -> None:
    config, _, store = door
    assert config.runner_socket is not None
    client = DoorClient(config.runner_socket)
    pair = {"project": "checkout-api", "cluster": "staging", "release": "5.2.3"}
    with pytest.raises(ReleaseWarned) as warned:
        await client.call("deploy", **pair, follow=False)
    assert warned.value.message == WARNED
    assert await queued(store) == [], "nothing queued before it is confirmed"
    record = await client.call("deploy", **pair, follow=False, anyway=True)
    assert (record.release, record.state) == ("5.2.3", "queued")
    assert await queued(store) == ["5.2.3"]


async def test_the_command_line_says_the_warning_in_one_line_without_a_terminal(
    door: tuple[Config, Path, Path],
) -> None:
    _, config, store = door
    command = [sys.executable, "-m", "screens.main", "deploy", "checkout-api", "staging",
               "5.2.3", "--no-wait", "--config", str(config)]  # fmt: skip
    process = await asyncio.create_subprocess_exec(
        *command, cwd=ROOT, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), DEADLINE)
    assert process.returncode == 2, err
    assert err.decode() == f"deploy-console: error: {WARNED}: pass --anyway to deploy it\n"
    assert out == b""
    assert await queued(store) == []
    anyway = await asyncio.create_subprocess_exec(
        *command, "--anyway", cwd=ROOT, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(anyway.communicate(), DEADLINE)
    assert anyway.returncode == 0, err
    assert await queued(store) == ["5.2.3"]


async def test_the_service_holds_a_clusters_ticket_rule_and_stores_the_ticket(
    door: tuple[Config, Path, Path],
) -> None:
    """A caller that skips its own check (any program on the socket) is refused the same."""
    config, _, store = door
    assert config.runner_socket is not None
    client = DoorClient(config.runner_socket)
    pair = {"project": "checkout-api", "cluster": "qaprod1", "release": "5.2.0"}
    with pytest.raises(DeployError) as refused:
        await client.call("deploy", **pair, follow=False, anyway=True)
    assert refused.value.message == "cluster qaprod1 needs a change ticket: nothing deployed"
    assert await queued(store) == []
    record = await client.call("deploy", **pair, follow=False, anyway=True, ticket="CHG-7")
    assert (record.release, record.ticket) == ("5.2.0", "CHG-7")
