"""`notify status` and `notify test CHANNEL` from the command line: what a person sees, exit
codes 0 / 1 / 2, and no webhook token anywhere in it."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from console.config import load_config
from console.notify.delivery import Notifier
from console.store import Store
from tests.console.notify.receiver import Receiver
from tests.console.notify.support import CLUSTERS, deploy_that_ends, settle
from tests.deploy_world import ROOT

TOKEN = "/hooks/T0K3N-never-shown?secret=Qs3cret"


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = await Receiver().start()
    yield server
    await server.stop()


def write_config(tmp_path: Path, receiver: Receiver) -> Path:
    path = tmp_path / "notify.toml"
    path.write_text(
        CLUSTERS.format(attempts=2)
        + f'[notify.channels.ops]\ntype = "webhook"\nurl = "{receiver.url}{TOKEN}"\n\n'
        + '[[notify.routes]]\nchannels = ["ops"]\nevents = ["failed"]\n'
    )
    return path


async def cli(*args: str, config: Path, store: Path) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "screens.main", *args, "--config", str(config),
            "--store", str(store)]  # fmt: skip
    return await asyncio.to_thread(
        subprocess.run, argv, cwd=ROOT, stdin=subprocess.DEVNULL, capture_output=True,
        text=True, timeout=60,
    )  # fmt: skip


async def test_status_lists_failed_deliveries_with_their_error(
    tmp_path: Path, receiver: Receiver
) -> None:
    config, store = write_config(tmp_path, receiver), tmp_path / "store.db"
    receiver.down = True
    async with await Store.open(store) as opened:
        record = await deploy_that_ends(opened, "failed")
        notifier = Notifier(opened.outbox, load_config(config).notify, holder="test")
        await settle(notifier)
    result = await cli("notify", "status", config=config, store=store)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "notifications: 0 pending, 1 failed, 0 delivered, 0 not routed yet"
    assert lines[1].startswith(
        f"#1 failed ops ({receiver.url}/…): failed deploy {record.id} ticket CHG-7 · 2 attempts"
    )
    assert lines[2] == "    last error: HTTP 500 Internal Server Error: receiver says no"
    as_json = await cli("notify", "status", "--json", config=config, store=store)
    data = json.loads(as_json.stdout)
    assert data["counts"]["failed"] == 1
    (row,) = data["deliveries"]
    assert row["deploy_id"] == record.id and row["ticket"] == "CHG-7" and row["attempts"] == 2
    for output in (result.stdout, as_json.stdout):
        assert "T0K3N" not in output and "Qs3cret" not in output


async def test_status_says_pending_and_the_next_retry(tmp_path: Path, receiver: Receiver) -> None:
    config, store = write_config(tmp_path, receiver), tmp_path / "store.db"
    receiver.down = True
    async with await Store.open(store) as opened:
        await deploy_that_ends(opened, "failed")
        notifier = Notifier(opened.outbox, load_config(config).notify, holder="test")
        await notifier.once()
        await notifier.settle()
    data = json.loads((await cli("notify", "status", "--json", config=config, store=store)).stdout)
    (row,) = data["deliveries"]
    assert row["state"] == "pending" and row["attempts"] == 1 and row["next_retry"]


async def test_notify_test_sends_one_message_and_says_so(
    tmp_path: Path, receiver: Receiver
) -> None:
    config, store = write_config(tmp_path, receiver), tmp_path / "store.db"
    result = await cli("notify", "test", "ops", config=config, store=store)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"sent a test message to ops ({receiver.url}/…)\n"
    (request,) = receiver.requests
    assert request.body["event"] == "test" and request.headers["Idempotency-Key"].startswith(
        "test-"
    )
    assert not store.exists()  # a test message touches no store


async def test_notify_test_fails_with_the_error_and_exit_1(
    tmp_path: Path, receiver: Receiver
) -> None:
    config, store = write_config(tmp_path, receiver), tmp_path / "store.db"
    receiver.down = True
    result = await cli("notify", "test", "ops", config=config, store=store)
    assert result.returncode == 1
    assert result.stderr == (
        "deploy-console: error: notify test ops: HTTP 500 Internal Server Error: receiver says no\n"
    )
    await receiver.stop()
    result = await cli("notify", "test", "ops", config=config, store=store)
    assert result.returncode == 1 and "ClientConnectorError" in result.stderr
    assert "T0K3N" not in result.stderr and "Qs3cret" not in result.stderr


async def test_an_unknown_channel_is_one_line_and_exit_2(
    tmp_path: Path, receiver: Receiver
) -> None:
    config, store = write_config(tmp_path, receiver), tmp_path / "store.db"
    result = await cli("notify", "test", "slack", config=config, store=store)
    assert result.returncode == 2
    assert result.stderr == "deploy-console: error: unknown channel 'slack' (channels: ops)\n"
    assert receiver.requests == []
