"""Notifications in the demo, from the command line: a `deploy` with no runner serving its store
delivers its events (to the world's loopback inbox, routed per cluster), `notify inbox` shows
them, and a delivery that fails is left to a runner the command starts."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from console.config import Config, read_toml
from console.config.notify import INBOX_PREFIX
from console.servers.runner_service import runner_serves
from tests.conftest import DEMO_CONFIG, EXAMPLE_CONFIG, ROOT
from tests.console.notify.receiver import Receiver
from tests.deploy_world import quick_seed, world_process
from tests.waiting import await_until, wait_until

COMMAND_TIMEOUT = 120.0
# A delivery or a runner's start: seconds, a minute and more on a loaded 2-core host (each inbox
# read is a command's start-up).
DELIVERY_TIMEOUT = 90.0


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Config]:
    # The demo's notify settings; registration and drains of 1 s (deploys quick), no bake.
    workdir = tmp_path_factory.mktemp("cli-notify-world")
    with world_process(quick_seed(workdir, 1), workdir) as config:
        yield config


def cli(*args: str, config: Path, store: Path | None = None) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "screens.main", *args, "--config", str(config)]
    argv += ["--store", str(store)] if store is not None else []
    return subprocess.run(
        argv, cwd=ROOT, stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=COMMAND_TIMEOUT,
    )  # fmt: skip


def inbox(config: Path) -> list[dict[str, Any]]:
    result = cli("notify", "inbox", "--json", "--last", "200", config=config)
    assert result.returncode == 0, result.stderr
    messages: list[dict[str, Any]] = json.loads(result.stdout)["messages"]
    return messages


def about(messages: list[dict[str, Any]], deploy_id: str) -> list[tuple[str, str]]:
    """(channel, event) of each message about one deploy, in the order received."""
    found = []
    for message in messages:
        body = message["body"]
        if deploy_id in json.dumps(body):
            event = body.get("event") or body["text"].split(": ", 1)[1].split(" ", 1)[0]
            found.append((message["channel"], event))
    return found


def test_the_demo_config_points_its_webhooks_at_the_world(world: Config) -> None:
    for channel in world.notify.channels.values():
        url = getattr(channel, "url", "")
        assert url.startswith(f"{world.clusters[0].endpoint_url}{INBOX_PREFIX}/"), url


def test_a_deploy_with_no_runner_delivers_its_notifications(world: Config, tmp_path: Path) -> None:
    store = tmp_path / "store.db"
    result = cli(
        "deploy", "storefront", "staging", "2.14.1", "--json", "--anyway",
        config=world.source, store=store,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "notify" not in result.stderr
    deploy_id = json.loads(result.stdout.splitlines()[0])["deploy_id"]
    assert not runner_serves(store)
    # Everything on staging goes to team-chat, in the Slack-style text form.
    events = wait_until(
        lambda: (
            (found := about(inbox(world.source), deploy_id))
            and ("team-chat", "succeeded") in found
            and found
        ),
        "the deploy's notifications in the world's inbox",
        timeout=DELIVERY_TIMEOUT,
    )
    # Sent concurrently: in any order, each once.
    assert sorted(events) == sorted(
        [("team-chat", "queued"), ("team-chat", "started"), ("team-chat", "succeeded")]
    )
    shown = cli("notify", "inbox", config=world.source)
    assert shown.returncode == 0, shown.stderr
    line = next(line for line in shown.stdout.splitlines() if "succeeded" in line)
    assert f"team-chat  deploy {deploy_id} storefront → staging 2.14.1: succeeded" in line
    status = cli("notify", "status", config=world.source, store=store)
    assert status.stdout.startswith("notifications: 0 pending, 0 failed, "), status.stdout


def test_a_prod_rollback_goes_to_oncall_alone(world: Config, tmp_path: Path) -> None:
    failed = cli(
        "deploy", "storefront", "prod1", "2.16.0", "--json", "--yes", "--anyway",
        config=world.source, store=tmp_path / "store.db",
    )  # fmt: skip
    assert failed.returncode == 1, failed.stdout + failed.stderr
    deploy_id = json.loads(failed.stdout.splitlines()[0])["deploy_id"]
    events = wait_until(
        lambda: about(inbox(world.source), deploy_id),
        "the failed deploy's notification",
        timeout=DELIVERY_TIMEOUT,
    )
    # prod1 routes failures only, to oncall: not its queued and started, not to team-chat.
    assert events == [("oncall", "rolled-back")]
    (message,) = [m for m in inbox(world.source) if deploy_id in json.dumps(m["body"])]
    assert message["body"]["schema"] == "deploy-console.notification/1"
    assert message["idempotency_key"] == message["body"]["idempotency_key"]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = await Receiver(fail=1).start()
    yield server
    await server.stop()


async def test_a_failed_delivery_is_left_to_a_runner_the_deploy_starts(
    world: Config, tmp_path: Path, receiver: Receiver
) -> None:
    data = read_toml(world.source)
    data["notify"] = {
        "retry_seconds": 0.5,
        "channels": {"ops": {"type": "webhook", "url": f"{receiver.url}/hooks/ops"}},
        "routes": [{"channels": ["ops"], "events": ["succeeded"]}],
    }
    config, store = tmp_path / "ops.toml", tmp_path / "store.db"
    config.write_bytes(tomli_w.dumps(data).encode())
    result = await asyncio.to_thread(
        cli, "deploy", "checkout-api", "staging", "5.2.0", "--json", "--anyway",
        config=config, store=store,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    deploy_id = json.loads(result.stdout.splitlines()[0])["deploy_id"]
    assert receiver.requests[0].headers["X-Answered"] == "500"  # its own attempt
    # The command left the retry to a runner it started (no other starts one on this store).
    await await_until(
        lambda: runner_serves(store), "the runner the deploy started", timeout=DELIVERY_TIMEOUT
    )
    await await_until(lambda: receiver.delivered, "the retry, by the runner", DELIVERY_TIMEOUT)
    (delivered,) = receiver.delivered
    assert delivered.body["deploy_id"] == deploy_id and delivered.body["event"] == "succeeded"
    assert delivered.headers["Idempotency-Key"] == receiver.requests[0].headers["Idempotency-Key"]


def test_notify_inbox_says_why_it_shows_nothing() -> None:
    down = cli("notify", "inbox", config=DEMO_CONFIG)  # no world: the URL's port 9 refuses
    assert down.returncode == 1 and down.stdout == ""
    assert down.stderr == (
        "deploy-console: error: notify inbox: http://127.0.0.1:9/_deploy-console/inbox does not "
        "answer ([Errno 111] Connection refused): is the demo running?\n"
    )
    none = cli("notify", "inbox", config=EXAMPLE_CONFIG)
    assert none.returncode == 2
    assert none.stderr.startswith("deploy-console: error: no channel of this config posts to")
    assert len(none.stderr.splitlines()) == 1
    bad = cli("notify", "inbox", "--last", "0", config=DEMO_CONFIG)
    assert (bad.returncode, bad.stderr.splitlines()) == (
        2,
        ["deploy-console: error: --last must be 1 or more, not 0"],
    )
