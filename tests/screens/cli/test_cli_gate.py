"""Pipeline gates as CI runs them: `check`, `wait` and `deploy --fail-if-blocked`, each exit
code through the real command against the embedded world and a real store."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from console.config import Config, load_config
from console.model import DeployRequest
from console.queue.release_queue import DeployQueue
from console.store import Store
from tests.conftest import DEMO_CONFIG
from tests.deploy_world import ROOT, world_process
from tests.screens.cli.test_cli_deploy import cli, command, one_line_error

ERROR = "deploy-console: error: "


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Config]:
    with world_process(DEMO_CONFIG, tmp_path_factory.mktemp("cli-gate-world")) as config:
        yield config


async def _seed(
    store: Path, config: Config, *requests: tuple[str, str, str, str], lock_by: str = ""
) -> None:
    async with await Store.open(store) as opened:
        queue = DeployQueue(opened, config)
        if lock_by:
            await queue.lock(owner=lock_by, reason="db migration", project="storefront")
        for number, (project, cluster, release, actor) in enumerate(requests, 1):
            await queue.enqueue(DeployRequest(project, cluster, release, actor), f"d-{number}")


def seed(
    store: Path, config: Config, *requests: tuple[str, str, str, str], lock_by: str = ""
) -> None:
    asyncio.run(_seed(store, config, *requests, lock_by=lock_by))


async def _deploy_ids(store: Path) -> list[str]:
    async with await Store.open(store, create=False) as opened:
        return [record.id for record in await opened.deploys(limit=100)]


# -- check ------------------------------------------------------------------------------------


def test_check_passes_a_healthy_idle_pair_and_creates_no_store(
    world: Config, tmp_path: Path
) -> None:
    store = tmp_path / "store.db"
    result = cli("check", "storefront", "staging", config=world.source, store=store)
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert result.stdout.startswith("storefront in staging: ok (healthy, ")
    as_json = cli("check", "storefront", "staging", "--json", config=world.source, store=store)
    assert as_json.returncode == 0, as_json.stderr
    data = json.loads(as_json.stdout)
    assert (data["ok"], data["reasons"], data["health"]) == (True, [], "healthy")
    assert data["version"]
    assert not store.exists()


def test_check_fails_a_pair_outside_its_deploy_windows(world: Config, tmp_path: Path) -> None:
    """A window that never includes now (it closed a minute ago, a week from its opening)."""
    now = datetime.now(UTC)
    day = f"{now - timedelta(minutes=2):%a}"
    start, end = now - timedelta(minutes=3), now - timedelta(minutes=1)
    if start.date() != end.date():  # around midnight: a window of yesterday's noon
        day, span = f"{now - timedelta(days=1):%a}", "12:00-13:00"
    else:
        span = f"{start:%H:%M}-{end:%H:%M}"
    config = tmp_path / "windows.toml"
    config.write_text(
        world.source.read_text().replace(
            'name = "staging"\n', f'name = "staging"\nwindows = ["{day} {span} UTC"]\n', 1
        )
    )
    result = cli("check", "storefront", "staging", config=config, store=tmp_path / "s.db")
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert result.stdout.startswith(
        "storefront in staging: outside deploy windows of staging until "
    ), result.stdout


def test_check_says_every_reason_one_line_each(world: Config, tmp_path: Path) -> None:
    store = tmp_path / "store.db"
    # dave's lock holds everyone else's deploys (as in the queue, not dave's own).
    seed(store, world, ("storefront", "staging", "2.15.0", "alice"), lock_by="dave")
    assert cli("freeze", "staging", "--reason", "sale", config=world.source,
               store=store).returncode == 0  # fmt: skip
    result = cli("check", "storefront", "staging", config=world.source, store=store)
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = result.stdout.splitlines()
    assert len(lines) == 3, lines
    assert lines[0].startswith("storefront in staging: frozen by ") and lines[0].endswith(": sale")
    assert lines[1] == (
        "storefront in staging: locked on project storefront by dave: db migration (no expiry)"
    )
    assert lines[2] == "storefront in staging: deploy d-1 queued"
    data = json.loads(
        cli("check", "storefront", "staging", "--json", config=world.source, store=store).stdout
    )
    assert data["ok"] is False and len(data["reasons"]) == 3
    # Another project in the same cluster is held by the freeze only.
    other = cli("check", "checkout-api", "staging", config=world.source, store=store)
    assert other.returncode == 1
    assert other.stdout.count("\n") == 1 and "frozen by" in other.stdout


def test_a_warning_lock_does_not_block_the_gate(world: Config, tmp_path: Path) -> None:
    store = tmp_path / "store.db"
    warned = cli("lock", "add", "--cluster", "staging", "--warning", "--reason", "careful",
                 config=world.source, store=store)  # fmt: skip
    assert warned.returncode == 0, warned.stderr
    result = cli("check", "storefront", "staging", config=world.source, store=store)
    assert result.returncode == 0, result.stdout


def test_check_fails_a_degraded_pair(world: Config, tmp_path: Path) -> None:
    # The demo world stops one of storefront's three instances in prod2.
    result = cli("check", "storefront", "prod2", "--json", config=world.source,
                 store=tmp_path / "store.db")  # fmt: skip
    assert result.returncode == 1, (result.stdout, result.stderr)
    data = json.loads(result.stdout)
    assert data["ok"] is False and data["health"] != "healthy"
    assert data["reasons"][0].startswith(f"{data['health']} (")


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ("shop staging", "unknown project 'shop'"),
        ("storefront prod3", "unknown cluster 'prod3'"),
        ("search-api qaprod1", "project search-api is not configured in cluster qaprod1"),
    ],
)
def test_check_bad_input_is_exit_2(
    world: Config, tmp_path: Path, arguments: str, expected: str
) -> None:
    store = tmp_path / "store.db"
    result = cli("check", *arguments.split(), config=world.source, store=store)
    assert (result.returncode, result.stdout) == (2, "")
    assert one_line_error(result).startswith(ERROR + expected)
    assert not store.exists()


def test_check_with_an_unreachable_endpoint_or_a_bad_config_is_exit_2(tmp_path: Path) -> None:
    text = DEMO_CONFIG.read_text()
    for region in ("us-west-2", "us-east-1"):
        text = text.replace(
            f'region = "{region}"', f'region = "{region}"\nendpoint_url = "http://127.0.0.1:9"'
        )
    down = tmp_path / "down.toml"
    down.write_text(text)
    result = cli("check", "storefront", "staging", config=down, store=tmp_path / "s.db")
    assert (result.returncode, result.stdout) == (2, "")
    assert "cannot reach http://127.0.0.1:9" in one_line_error(result)
    bad = tmp_path / "bad.toml"
    bad.write_text('[[clusters]]\nname = "staging"\nregion = \n')
    result = cli("check", "storefront", "staging", config=bad, store=tmp_path / "s.db")
    assert (result.returncode, result.stdout) == (2, "")
    assert one_line_error(result).startswith(ERROR + str(bad))


# -- wait -------------------------------------------------------------------------------------


def test_wait_follows_a_queued_deploy_to_its_end(tmp_path: Path) -> None:
    store = tmp_path / "store.db"
    config = load_config(DEMO_CONFIG)
    seed(store, config, ("storefront", "staging", "2.15.0", "alice"))
    waiting = subprocess.Popen(
        command("wait", "d-1", "--json", config=DEMO_CONFIG, store=store),
        cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        cancelled = cli("queue", "cancel", "d-1", "--reason", "not today", config=DEMO_CONFIG,
                        store=store)  # fmt: skip
        assert cancelled.returncode == 0, cancelled.stderr
        out, err = waiting.communicate(timeout=60)
    finally:
        if waiting.poll() is None:
            waiting.kill()
            waiting.wait()
    assert waiting.returncode == 1, err
    record = json.loads(out)
    history = cli("history", "d-1", "--json", config=DEMO_CONFIG, store=store)
    expected = json.loads(history.stdout)
    del expected["steps"]
    assert (record.pop("schema"), expected.pop("schema")) == (
        "deploy-console.wait/1",
        "deploy-console.history-deploy/1",
    )
    assert record == expected
    assert (record["state"], record["reason"]) == ("cancelled", "not today")


def test_wait_on_a_finished_deploy_exits_with_its_outcome(tmp_path: Path) -> None:
    store = tmp_path / "store.db"
    config = load_config(DEMO_CONFIG)
    seed(store, config, ("storefront", "staging", "2.15.0", "alice"))
    assert cli("queue", "cancel", "d-1", config=DEMO_CONFIG, store=store).returncode == 0
    result = cli("wait", "d-1", config=DEMO_CONFIG, store=store)
    assert result.returncode == 1
    assert result.stdout.startswith("deploy d-1 cancelled")


def test_wait_times_out_with_exit_4_and_the_deploy_stays(tmp_path: Path) -> None:
    store = tmp_path / "store.db"
    seed(store, load_config(DEMO_CONFIG), ("storefront", "staging", "2.15.0", "alice"))
    result = cli("wait", "d-1", "--timeout", "0.5", config=DEMO_CONFIG, store=store)
    assert (result.returncode, result.stdout) == (4, "")
    (line,) = result.stderr.splitlines()
    assert line.startswith("deploy-console: deploy d-1 still queued after ")
    assert asyncio.run(_deploy_ids(store)) == ["d-1"]


def test_wait_on_an_unknown_deploy_is_exit_2_and_creates_nothing(tmp_path: Path) -> None:
    store = tmp_path / "store.db"
    result = cli("wait", "d-9", config=DEMO_CONFIG, store=store)
    assert result.returncode == 2
    assert one_line_error(result).startswith(ERROR + "unknown deploy 'd-9'")
    assert not store.exists()
    seed(store, load_config(DEMO_CONFIG))
    result = cli("wait", "d-9", config=DEMO_CONFIG, store=store)
    assert result.returncode == 2
    assert one_line_error(result) == f"{ERROR}unknown deploy 'd-9' in {store}"
    bad = cli("wait", "d-1", "--timeout", "-1", config=DEMO_CONFIG, store=store)
    assert bad.returncode == 2 and "--timeout" in one_line_error(bad)


# -- deploy --fail-if-blocked -----------------------------------------------------------------


def test_fail_if_blocked_exits_3_with_why_and_queues_nothing(world: Config, tmp_path: Path) -> None:
    store = tmp_path / "store.db"
    seed(store, world, ("storefront", "staging", "2.15.0", "alice"))
    argv = ("deploy", "storefront", "staging", "2.15.0", "--anyway", "--fail-if-blocked")
    behind = cli(*argv, config=world.source, store=store)
    assert (behind.returncode, behind.stdout) == (3, ""), behind.stderr
    assert one_line_error(behind) == (
        "deploy-console: refused: blocked: behind d-1 (queued) on storefront in staging"
    )
    assert cli("freeze", "staging", "--reason", "sale", config=world.source,
               store=store).returncode == 0  # fmt: skip
    frozen = cli(*argv, config=world.source, store=store)
    assert frozen.returncode == 3
    assert "refused: blocked: staging frozen by " in one_line_error(frozen)
    assert asyncio.run(_deploy_ids(store)) == ["d-1"]  # nothing more was queued
