"""Deploy windows from the command line: `queue` says until when a deploy outside its
cluster's windows waits; a malformed window is one line with exit 2."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from console.config import load_config
from console.model import DeployRequest
from console.queue.release_queue import DeployQueue
from console.store import Store
from tests.console.queue.test_queue import DEMO
from tests.screens.cli.test_cli_queue import cli, error_line

PROD1 = 'name = "prod1"\n'


def with_window(tmp_path: Path, window: str) -> Path:
    """The demo config with `windows = [window]` on prod1."""
    source = tmp_path / "console.toml"
    text = DEMO.read_text()
    assert PROD1 in text
    source.write_text(text.replace(PROD1, f"{PROD1}windows = [{window!r}]\n".replace("'", '"')))
    return source


async def seed(store: Path, config: Path) -> None:
    async with await Store.open(store) as opened:
        queue = DeployQueue(opened, load_config(config))
        await queue.enqueue(DeployRequest("storefront", "prod1", "2.15.0", "alice"), "d-1")


def test_the_queue_says_until_when_a_deploy_waits_for_its_window(tmp_path: Path) -> None:
    # A window two days from now (UTC), so it is closed whenever this runs.
    day = (datetime.now(UTC) + timedelta(days=2)).strftime("%a")
    config = with_window(tmp_path, f"{day} 09:00-10:00 UTC")
    store = tmp_path / "console.db"
    asyncio.run(seed(store, config))

    listed = cli("queue", store=store, config=config)
    assert listed.returncode == 0, listed.stderr
    (row,) = [line for line in listed.stdout.splitlines() if line.startswith("d-1")]
    assert row.endswith(f"outside deploy windows of prod1 until {day} 09:00 UTC")


def test_a_malformed_window_is_one_line_exit_2(tmp_path: Path) -> None:
    config = with_window(tmp_path, "Mon-Fri 09:00-16:00 Berlin")
    line = error_line(cli("queue", store=tmp_path / "console.db", config=config))
    lines = config.read_text().splitlines()
    number = next(i for i, text in enumerate(lines, 1) if text.startswith("windows = "))
    assert line == (
        f"deploy-console: error: {config}:{number}: clusters[2].windows: "
        "'Mon-Fri 09:00-16:00 Berlin': "
        "unknown time zone 'Berlin' (a tz database name: UTC, Europe/Berlin, ...)"
    )


def test_fail_if_blocked_sees_a_closed_window_before_any_store_exists(tmp_path: Path) -> None:
    # A fresh host: no store yet, so nothing is queued, but prod1's window is still closed.
    day = (datetime.now(UTC) + timedelta(days=2)).strftime("%a")
    config = with_window(tmp_path, f"{day} 09:00-10:00 UTC")
    store = tmp_path / "console.db"
    argv = ("deploy", "storefront", "prod1", "2.15.0", "--yes", "--fail-if-blocked")
    refused = cli(*argv, store=store, config=config)
    assert refused.returncode == 3, refused.stderr
    assert f"outside deploy windows of prod1 until {day} 09:00 UTC" in refused.stderr
    assert not store.exists()  # refused before anything was queued
