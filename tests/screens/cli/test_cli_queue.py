"""`queue`, `lock`, `freeze` and `unfreeze` from the command line: what a script sees, and
bad input refused in one line with exit 2."""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import subprocess
import sys
from pathlib import Path

import pytest

from console.config import load_config
from console.model import DeployRequest
from console.queue.release_queue import DeployQueue
from console.store import Store
from tests.console.queue.test_queue import DEMO
from tests.deploy_world import ROOT

TIMEOUT = 60.0
# The local door acts as the OS account running the tests (root in CI).
ME = pwd.getpwuid(os.getuid()).pw_name


def cli(*args: str, store: Path, config: Path = DEMO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "screens.main", *args, "--config", str(config),
         "--store", str(store)],
        cwd=ROOT, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=TIMEOUT,
        env={"PATH": "/usr/bin:/bin"},
    )  # fmt: skip


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("deploy-console: error: ")
    return line


async def seed(store: Path) -> None:
    async with await Store.open(store) as opened:
        queue = DeployQueue(opened, load_config(DEMO))
        await queue.enqueue(DeployRequest("storefront", "prod1", "2.15.0", "alice"), "d-1")
        await queue.enqueue(DeployRequest("storefront", "prod1", "2.16.0", "bob"), "d-2")
        await queue.enqueue(DeployRequest("storefront", "prod1", "2.14.1", "bob"), "d-3")
        await queue.claim("host:1:ab")


def test_an_empty_queue_without_a_store_creates_nothing(tmp_path: Path) -> None:
    store = tmp_path / "none.db"
    listed = cli("queue", store=store)
    assert listed.returncode == 0 and "the queue is empty" in listed.stdout
    as_json = cli("queue", "--json", store=store)
    assert json.loads(as_json.stdout) == {
        "schema": "deploy-console.queue/1",
        "deploys": [],
        "freezes": [],
        "locks": [],
        "parallel": load_config(DEMO).queue.parallel,
    }
    assert json.loads(cli("lock", "list", "--json", store=store).stdout)["locks"] == []
    assert json.loads(cli("freeze", "list", "--json", store=store).stdout)["freezes"] == []
    assert "unknown deploy 'd-9'" in error_line(cli("queue", "cancel", "d-9", store=store))
    assert not store.exists()


def test_freeze_lock_and_the_queue_say_why_each_deploy_waits(tmp_path: Path) -> None:
    store = tmp_path / "console.db"
    asyncio.run(seed(store))
    frozen = cli("freeze", "prod1", "--reason", "Black Friday", store=store)
    assert frozen.returncode == 0, frozen.stderr
    assert f"prod1 frozen by {ME}" in frozen.stdout
    locked = cli("lock", "add", "--project", "storefront", "--reason", "db migration",
                 "--until", "2h", store=store)  # fmt: skip
    assert locked.returncode == 0, locked.stderr
    assert locked.stdout.startswith(f"lock #1: locked on project storefront by {ME}")

    data = json.loads(cli("queue", "--json", store=store).stdout)
    assert [(d["id"], d["state"]) for d in data["deploys"]] == [
        ("d-1", "running"),
        ("d-2", "queued"),
        ("d-3", "queued"),
    ]
    assert data["deploys"][0]["runner"] == "host:1:ab"
    # The freeze comes first: it holds the cluster whoever asks.
    assert data["deploys"][1]["waiting"].startswith(f"prod1 frozen by {ME} since ")
    assert data["freezes"][0]["reason"] == "Black Friday"
    assert data["locks"][0]["scope"] == "project storefront" and data["locks"][0]["until"]

    assert cli("unfreeze", "prod1", store=store).returncode == 0
    data = json.loads(cli("queue", "--json", store=store).stdout)
    assert data["deploys"][1]["waiting"].startswith(f"locked on project storefront by {ME}")
    assert cli("lock", "remove", "1", store=store).returncode == 0
    data = json.loads(cli("queue", "--json", store=store).stdout)
    assert data["deploys"][1]["waiting"] == "behind d-1 (running) on storefront in prod1"
    assert data["deploys"][2]["waiting"] == "behind d-2 (queued) on storefront in prod1"

    moved = cli("queue", "up", "d-3", store=store)
    assert moved.returncode == 0, moved.stderr
    table = cli("queue", store=store).stdout
    assert table.index("d-3") < table.index("d-2")
    assert "running on host:1:ab" in table
    cancelled = cli("queue", "cancel", "d-2", "--reason", "wrong build", store=store)
    assert cancelled.returncode == 0 and "cancelled d-2" in cancelled.stdout
    asked = cli("queue", "cancel", "d-1", store=store)
    assert asked.returncode == 0 and "asked d-1 to cancel" in asked.stdout

    async def audit() -> list[tuple[str, str]]:
        async with await Store.open(store) as opened:
            return [(row.action, row.actor) for row in await opened.audit_rows()]

    actions = asyncio.run(audit())
    for action in ("queue.freeze", "queue.unfreeze", "lock.add", "lock.remove", "queue.move",
                   "queue.cancel", "deploy.cancel_requested"):  # fmt: skip
        assert (action, ME) in actions, action


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["freeze", "prod9", "--reason", "x"], "unknown cluster 'prod9'"),
        (["freeze", "prod1"], "the following arguments are required: --reason"),
        (["freeze", "list", "--reason", "x"], "freeze list lists the freezes: it takes no"),
        (["freeze", "prod1", "--reason", "x", "--json"], "--json goes with `freeze list`"),
        (["freeze", "prod1", "--reason", " "], "a freeze needs a reason"),
        (["unfreeze", "prod1"], "prod1 is not frozen"),
        (["lock", "add", "--reason", "x", "--until", "soon"], "--until 'soon' is neither"),
        (["lock", "add", "--reason", "x", "--project", "nope"], "unknown project 'nope'"),
        (["lock", "add", "--reason", "x", "--until", "2020-01-01"], "expiry is already past"),
        (["lock", "remove", "7"], "no lock #7"),
        (["lock", "remove", "seven"], "invalid int value: 'seven'"),
        (["queue", "up", "d-1"], "only queued deploys move"),
        (["queue", "down", "d-3"], "already last of storefront in prod1"),
        (["queue", "cancel", "d-404"], "unknown deploy 'd-404'"),
        (["queue", "sideways", "d-1"], "invalid choice: 'sideways'"),
    ],
)
def test_bad_queue_input_is_one_line_exit_2(tmp_path: Path, argv: list[str], expected: str) -> None:
    store = tmp_path / "console.db"
    asyncio.run(seed(store))
    assert expected in error_line(cli(*argv, store=store))
