"""`deploy --at` and `--outside-window` as CI runs them: each mistake one line with exit 2, a
non-admin's override exit 3 (on the audit), `queue override`, and a scheduled deploy outside
its window started on time by a real runner against the embedded world."""

from __future__ import annotations

import asyncio
import json
import os
import pwd
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import tomli_w

from console.config import Config, load_config, read_toml
from console.model import DeployRequest
from console.queue.release_queue import DeployQueue
from console.servers.runner_service import runner_serves
from console.store import DeployRecord, Store
from tests.conftest import DEMO_CONFIG
from tests.deploy_world import running_versions, world_process
from tests.screens.cli.test_cli_deploy import cli, one_line_error
from tests.waiting import wait_until

ERROR = "deploy-console: error: "
ME = pwd.getpwuid(os.getuid()).pw_name
# A window two days from now (UTC): closed whenever this runs.
DAY = f"{datetime.now(UTC) + timedelta(days=2):%a}"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Config]:
    with world_process(DEMO_CONFIG, tmp_path_factory.mktemp("cli-schedule-world")) as config:
        yield config


def team(source: Path, destination: Path, *, admin: bool = True) -> Path:
    """`source` with a closed window on staging; with admin=False everyone is a deployer."""
    data = read_toml(source)
    (staging,) = [cluster for cluster in data["clusters"] if cluster["name"] == "staging"]
    staging["windows"] = [f"{DAY} 09:00-10:00 UTC"]
    if not admin:
        data["access"] = {"admins": ["carol"], "deployers": ["*"]}
    with destination.open("wb") as output:
        tomli_w.dump(data, output)
    return destination


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--at", "tomorrow"], "--at 'tomorrow': an ISO 8601 time with an offset"),
        (["--at", "2020-01-01T10:00Z"], "--at '2020-01-01T10:00Z' is already past (2020-01-01 "),
        (["--at", "2030-01-01T10:00"], "--at '2030-01-01T10:00' names no zone: add its offset"),
        (["--at", "+1h", "--fail-if-blocked"], "--at with --fail-if-blocked: a scheduled deploy"),
        (["--outside-window", "hotfix"], "qaprod1 has no deploy windows: --outside-window has "),
        (["--outside-window", " "], "--outside-window takes a reason: one line of plain text"),
    ],
)
def test_bad_schedule_input_is_one_line_exit_2_and_creates_nothing(
    tmp_path: Path, extra: list[str], expected: str
) -> None:
    store = tmp_path / "store.db"
    argv = ["deploy", "storefront", "qaprod1", "2.15.0", *extra]
    result = cli(*argv, config=DEMO_CONFIG, store=store)
    assert (result.returncode, result.stdout) == (2, ""), result.stderr
    assert one_line_error(result).startswith(ERROR + expected)
    assert not store.exists()


async def _audit(store: Path) -> list[tuple[str, str, str]]:
    async with await Store.open(store, create=False) as opened:
        return [(row.action, row.outcome or "", row.reason) for row in await opened.audit_rows()]


def test_a_non_admin_asking_to_deploy_outside_the_window_is_refused_exit_3(
    tmp_path: Path,
) -> None:
    config = team(DEMO_CONFIG, tmp_path / "team.toml", admin=False)
    store = tmp_path / "store.db"
    argv = ("deploy", "storefront", "staging", "2.15.0", "--outside-window", "in a hurry")
    result = cli(*argv, config=config, store=store)
    assert (result.returncode, result.stdout) == (3, ""), result.stderr
    refusal = f"{ME} is a deployer in staging: may not deploy outside its window (needs admin)"
    assert one_line_error(result) == f"deploy-console: refused: {refusal}"
    (row,) = asyncio.run(_audit(store))
    assert row == ("denied", "refused", refusal)


async def _seed(store: Path, config: Path) -> None:
    async with await Store.open(store) as opened:
        queue = DeployQueue(opened, load_config(config))
        await queue.enqueue(DeployRequest("storefront", "staging", "2.15.0", "alice"), "d-1")


def test_queue_override_lets_a_waiting_deploy_go_admins_only(tmp_path: Path) -> None:
    store = tmp_path / "store.db"
    admins = team(DEMO_CONFIG, tmp_path / "admins.toml")
    deployers = team(DEMO_CONFIG, tmp_path / "deployers.toml", admin=False)
    asyncio.run(_seed(store, admins))
    waiting = json.loads(cli("queue", "--json", config=admins, store=store).stdout)["deploys"]
    assert waiting[0]["waiting"].startswith(f"outside deploy windows of staging until {DAY} ")

    refused = cli("queue", "override", "d-1", "--reason", "go", config=deployers, store=store)
    assert refused.returncode == 3, refused.stderr
    assert one_line_error(refused).startswith(f"deploy-console: refused: {ME} is a deployer")

    done = cli("queue", "override", "d-1", "--reason", "the sale", config=admins, store=store)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "d-1 (storefront → staging) may start outside its window\n"
    (entry,) = json.loads(cli("queue", "--json", config=admins, store=store).stdout)["deploys"]
    assert (entry["waiting"], entry["outside_window"]) == (None, "the sale")
    assert ("window-override", "overridden", "the sale") in asyncio.run(_audit(store))

    again = cli("queue", "override", "d-1", "--reason", "x", config=admins, store=store)
    assert again.returncode == 2
    assert "may already start outside its window" in one_line_error(again)


async def _record(store: Path, deploy_id: str) -> DeployRecord:
    async with await Store.open(store, create=False, read_only=True) as opened:
        record = await opened.deploy(deploy_id)
    assert record is not None
    return record


def test_a_scheduled_deploy_outside_its_window_starts_on_time(
    world: Config, tmp_path: Path
) -> None:
    """`--at +5s --outside-window`: queued at once (exit 0, its id); the detached runner the
    command started runs it within a couple of seconds of its time; `wait` follows it."""
    config = team(world.source, tmp_path / "team.toml")
    store = tmp_path / "store.db"
    argv = ("deploy", "storefront", "staging", "2.15.0", "--anyway", "--json")
    queued = cli(*argv, "--at", "+5s", "--outside-window", "hotfix", config=config, store=store)
    assert queued.returncode == 0, queued.stderr
    events = [json.loads(line) for line in queued.stdout.splitlines()]
    assert [event["event"] for event in events] == ["DeployQueued", "DeployScheduled"]
    deploy_id = events[0]["deploy_id"]
    not_before = datetime.fromisoformat(events[1]["not_before"])

    listed = json.loads(cli("queue", "--json", config=config, store=store).stdout)["deploys"]
    (entry,) = [e for e in listed if e["id"] == deploy_id]
    if entry["state"] == "queued":  # (a slow machine: it may have started already)
        assert entry["waiting"].startswith("scheduled for "), entry

    waited = cli("wait", deploy_id, "--json", config=config, store=store)
    assert waited.returncode == 0, (waited.stdout, waited.stderr)
    assert json.loads(waited.stdout)["state"] == "succeeded"
    record = asyncio.run(_record(store, deploy_id))
    assert record.started_at is not None
    late = (record.started_at - not_before).total_seconds()
    assert 0 <= late < 2.0, late
    assert (record.window_override, record.window_override_by) == ("hotfix", ME)
    assert running_versions(world, "storefront", "staging") == {"2.15.0"}

    shown = cli("history", deploy_id, config=config, store=store).stdout
    assert f"  scheduled: not before {not_before:%Y-%m-%d %H:%M:%S} UTC\n" in shown
    assert f"  outside its window by {ME}: hotfix\n" in shown
    # The runner the command started leaves once nothing is queued or running.
    wait_until(lambda: not runner_serves(store), "the detached runner to leave", timeout=60)


def test_fail_if_blocked_with_an_override_still_stops_at_a_freeze(tmp_path: Path) -> None:
    """The window alone blocks a plain deploy; the override lets it past the window, but a
    freeze still holds it (exit 3 either way, nothing queued)."""
    config = team(DEMO_CONFIG, tmp_path / "team.toml")
    store = tmp_path / "store.db"
    argv = ("deploy", "storefront", "staging", "2.15.0", "--fail-if-blocked")
    # (a store must exist: without one, --fail-if-blocked reads no queue and asks AWS)
    locked = ("lock", "add", "--project", "checkout-api", "--reason", "elsewhere")
    assert cli(*locked, config=config, store=store).returncode == 0
    plain = cli(*argv, config=config, store=store)
    assert plain.returncode == 3, plain.stderr
    assert one_line_error(plain).startswith(
        "deploy-console: refused: blocked: outside deploy windows of staging until "
    )
    assert cli("freeze", "staging", "--reason", "sale", config=config, store=store).returncode == 0
    overridden = cli(*argv, "--outside-window", "hotfix", config=config, store=store)
    assert overridden.returncode == 3, overridden.stderr
    line = one_line_error(overridden)
    assert (
        line.startswith("deploy-console: refused: blocked: staging frozen by ") and "sale" in line
    )
    assert not any(row[0] == "queue.enqueue" for row in asyncio.run(_audit(store)))
