"""One fleet poller per host: the lease, the stored snapshot, readers, take-over and failures."""

from __future__ import annotations

import asyncio
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path

import pytest

from console.config import Config
from console.errors import AwsError, StoreError
from console.fleet.inventory import Fleet
from console.fleet.share import (
    FleetShareError,
    SharedFleet,
    decode_snapshot,
    encode_snapshot,
)
from console.model import FleetSnapshot, LoadBalancerSettings
from console.store import Store
from tests.conftest import ROOT

DEADLINE = 20.0


async def _until(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


class Counted:
    """Fleets that poll the world, every AWS call counted (by operation) across them all."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.calls: Counter[str] = Counter()
        self.made: list[Fleet] = []

    def __call__(self) -> Fleet:
        fleet = Fleet(self.config, on_call=lambda name: self.calls.update([name]))
        self.made.append(fleet)
        return fleet


@pytest.fixture
async def shared(world_config: Config, tmp_path: Path) -> AsyncIterator[Callable[..., SharedFleet]]:
    made: list[SharedFleet] = []

    def make(
        name: str, poller: Callable[[], Fleet] | None = None, **options: object
    ) -> SharedFleet:
        fleet = SharedFleet(
            world_config, tmp_path / "store.db", name=name, poller=poller, **options
        )  # type: ignore[arg-type]
        made.append(fleet)
        return fleet

    yield make
    for fleet in made:
        await fleet.aclose()


async def test_a_stored_snapshot_reads_back_equal_to_what_was_polled(world_config: Config) -> None:
    fleet = Fleet(world_config)
    try:
        snapshot = await fleet.refresh()
    finally:
        fleet.close()
    assert snapshot.envs and any(env.instances for env in snapshot.envs.values())
    assert decode_snapshot(encode_snapshot(snapshot)) == snapshot
    with pytest.raises(StoreError, match="unreadable"):
        decode_snapshot(b"not zlib")


async def test_one_console_polls_the_others_read_its_snapshot(
    world_config: Config, shared: Callable[..., SharedFleet]
) -> None:
    counted = Counted(world_config)
    first = shared("console-1", counted)
    second = shared("console-2", counted)
    readers = [shared(f"session-{n}") for n in range(5)]
    polled = await first.refresh()
    calls_of_one_poll = sum(counted.calls.values())
    assert calls_of_one_poll > 0
    for reader in [second, *readers]:
        assert await reader.refresh() == polled
    # Another round: still only the holder polls; the readers get its new snapshot.
    again = await first.refresh()
    for reader in [second, *readers]:
        assert await reader.refresh() == again
    assert (first.polls, second.polls) == (2, 0)
    # (dns) The first poll lists the hosted zones too; the second finds them cached.
    assert sum(counted.calls.values()) == 2 * calls_of_one_poll - 1
    assert len(counted.made) == 1  # the readers never even made a fleet (nor loaded boto3)
    # A round without a new snapshot is not decoded again.
    reads = readers[0].reads
    await readers[0].refresh()
    assert readers[0].reads == reads


async def test_the_lease_passes_on_when_its_holder_closes_or_goes_silent(
    world_config: Config, shared: Callable[..., SharedFleet]
) -> None:
    counted = Counted(world_config)
    first = shared("console-1", counted, stale_after=1.0)
    second = shared("console-2", counted, stale_after=1.0)
    await first.refresh()
    await second.refresh()
    assert second.polls == 0
    await first.aclose()  # released: the next look takes it at once
    await second.refresh()
    assert second.polls == 1
    # The new holder goes silent (it stops refreshing): after stale_after another takes over.
    third = shared("console-3", counted, stale_after=1.0)
    await third.refresh()
    assert third.polls == 0

    async def taken_over() -> bool:
        await third.refresh()
        return third.polls == 1

    await _until(taken_over, "console-3 to take the silent holder's lease")
    lease = await third._store.poller_lease()  # type: ignore[union-attr]
    assert lease is not None and lease.holder == "console-3"


async def test_a_reader_says_when_no_poller_wrote_or_the_poller_stopped(
    world_config: Config, shared: Callable[..., SharedFleet], tmp_path: Path
) -> None:
    missing = shared("session", create_store=False)
    with pytest.raises(FleetShareError, match=r"no fleet snapshot yet: .* does not exist"):
        await missing.refresh()
    assert not (tmp_path / "store.db").exists()  # a reader never creates the store
    async with await Store.open(tmp_path / "store.db"):
        pass
    reader = shared("session-2", stale_after=1.0)
    with pytest.raises(FleetShareError, match="waiting for the first fleet snapshot"):
        await reader.refresh()
    poller = shared("sshd", Counted(world_config), stale_after=1.0)
    assert await poller.poll_if_holder()
    polled = poller.last_snapshot
    assert await reader.refresh() == polled

    async def stale() -> bool:
        try:
            await reader.refresh()
        except FleetShareError as error:
            return "the fleet poller (sshd) stopped: no snapshot since" in error.message
        return False

    await _until(stale, "the reader to call the silent poller stopped")


class Failing:
    """A poller's fleet whose AWS is unreachable (pure logic: the error path only)."""

    async def refresh(self) -> FleetSnapshot:
        raise AwsError("ec2 us-east-1: could not connect to the endpoint")

    async def load_balancer_settings(
        self, project: str, cluster: str
    ) -> tuple[LoadBalancerSettings, ...]:
        return ()


async def test_the_pollers_failure_reaches_every_reader_over_the_last_snapshot(
    world_config: Config, shared: Callable[..., SharedFleet]
) -> None:
    counted = Counted(world_config)
    good = shared("console-1", counted)
    await good.refresh()
    await good.aclose()
    failing = shared("console-2", Failing)
    with pytest.raises(AwsError, match="could not connect"):
        await failing.refresh()
    reader = shared("session")
    with pytest.raises(FleetShareError, match=r"fleet poller \(console-2\): ec2 us-east-1"):
        await reader.refresh()
    assert reader.last_snapshot is not None  # the last good snapshot is still there to show


async def test_a_console_without_a_store_file_polls_on_its_own(
    world_config: Config, shared: Callable[..., SharedFleet], tmp_path: Path
) -> None:
    counted = Counted(world_config)
    kiosk = shared("kiosk", counted, create_store=False)
    snapshot = await kiosk.refresh()
    assert snapshot.envs and kiosk.polls == 0 and counted.calls
    assert not (tmp_path / "store.db").exists()


async def test_a_server_keeps_polling_and_many_readers_cost_no_aws_calls(
    world_config: Config, shared: Callable[..., SharedFleet]
) -> None:
    config = replace(world_config, refresh_seconds=0.2)
    counted = Counted(config)
    server = SharedFleet(config, shared("x").store_path, name="sshd", poller=counted)
    readers = [shared(f"session-{n}") for n in range(20)]
    server.start_polling()
    try:

        async def rounds() -> bool:
            return server.polls >= 3

        await _until(rounds, "three polls by the server")
        snapshots = await asyncio.gather(*(reader.refresh() for reader in readers))
        assert all(snapshot.envs for snapshot in snapshots)
        assert len(counted.made) == 1 and all(reader.polls == 0 for reader in readers)
    finally:
        await server.aclose()


SESSION_SCRIPT = """
import os, sys
os.environ["DEPLOY_CONSOLE_FLEET_FROM_STORE"] = "1"
from screens import app as app_module
from screens.main import run

mounted = app_module.DeployConsoleApp.on_mount
run_async = app_module.DeployConsoleApp.run_async
seen = []

def on_mount(self):
    mounted(self)
    def check():
        if self.refresh_count:
            seen.append(self.snapshot is not None and bool(self.snapshot.envs))
            self.exit()
    self.set_interval(0.05, check)

async def headless(self, **options):
    return await run_async(self, headless=True, size=(160, 48))

app_module.DeployConsoleApp.on_mount = on_mount
app_module.DeployConsoleApp.run_async = headless
code = run(sys.argv[1:])
loaded = sorted(m for m in ("boto3", "botocore", "asyncssh") if m in sys.modules)
print(code, seen, ",".join(loaded) or "-")
"""


async def test_a_session_console_shows_the_stored_fleet_without_loading_boto3_or_asyncssh(
    world_config: Config, world_config_path: Path, tmp_path: Path
) -> None:
    store = tmp_path / "store.db"
    poller = SharedFleet(world_config, store, name="sshd", poller=Counted(world_config))
    try:
        assert await poller.poll_if_holder()
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", SESSION_SCRIPT, "--config", str(world_config_path),
            "--store", str(store), cwd=ROOT, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(process.communicate(), 120)
    finally:
        await poller.aclose()
    assert out.decode().strip().splitlines()[-1] == "0 [True] -", err.decode()[-2000:]
