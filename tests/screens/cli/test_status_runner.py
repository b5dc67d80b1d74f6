"""Plain `status` answers from a running runner's snapshot (with its age, without AWS);
`--fresh`, or no runner answering, polls AWS as before; both print the same fleet."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from console.config import Config
from console.fleet.keeper import SnapshotKeeper
from console.fleet.wire import ask_runner
from console.model import FleetSnapshot
from screens.cli.status import age
from tests.conftest import ROOT, run_python
from tests.waiting import await_until, wait_until

RUNNER_READY = 120.0


def served_config(world_config_path: Path, directory: Path) -> tuple[Path, Path]:
    """A copy of the world's config whose [runner] socket is in `directory`; (config, socket)."""
    socket = directory / "runner.sock"
    config = directory / "host.toml"
    config.write_text(world_config_path.read_text() + f'\n[runner]\nsocket = "{socket}"\n')
    return config, socket


@pytest.fixture
def runner(world_config_path: Path, open_dir: Path) -> Iterator[tuple[Path, Path]]:
    """`deploy-console runner` serving its door on the embedded world; (config, socket)."""
    config, socket = served_config(world_config_path, open_dir)
    env = {**os.environ, "DEPLOY_CONSOLE_DATA_DIR": str(open_dir / "data")}
    process = subprocess.Popen(
        [sys.executable, "-m", "screens.main", "runner", "--config", str(config),
         "--store", str(open_dir / "store.db")],
        cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        wait_until(socket.is_socket, "the runner's door", timeout=RUNNER_READY)
        yield config, socket
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def status(config: Path, *options: str) -> tuple[int, str, str, bool]:
    """`status` in a fresh interpreter: (exit code, stdout, stderr, whether botocore was
    imported, i.e. whether this process could have called AWS)."""
    argv = ["status", *options, "--config", str(config)]
    script = (
        "import sys\n"
        "from screens.main import run\n"
        f"code = run({argv!r})\n"
        "sys.stdout.flush()\n"
        "print('BOTOCORE', 'botocore' in sys.modules, file=sys.stderr)\n"
        "sys.exit(code)\n"
    )
    done = run_python(script, timeout=180)
    err, _, last = done.stderr.rstrip("\n").rpartition("\n")
    if not last.startswith("BOTOCORE"):
        err, last = done.stderr, ""
    return done.returncode, done.stdout, err, last == "BOTOCORE True"


def without_times(data: Any) -> Any:
    """The fleet's facts: the same whoever polled, whenever."""
    if isinstance(data, dict):
        return {
            key: without_times(value)
            for key, value in data.items()
            if key not in ("generated_at", "age_seconds", "fetched_at")
        }
    if isinstance(data, list):
        return [without_times(item) for item in data]
    return data


def test_plain_status_reads_the_runner_snapshot(runner: tuple[Path, Path]) -> None:
    config, _socket = runner
    code, out, err, polled = status(config, "--json")
    assert code == 0, err
    assert "from the runner" in err and err.startswith("as of ")
    assert not polled  # no boto3/botocore in this process: AWS was not asked
    from_runner = json.loads(out)

    code, out, err, polled = status(config, "--json", "--fresh")
    assert code == 0, err
    assert "from the runner" not in err and polled
    assert without_times(json.loads(out)) == without_times(from_runner)


def test_plain_status_table_says_how_old_the_data_is(
    runner: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    config, _socket = runner
    monkeypatch.setenv("COLUMNS", "160")
    code, out, err, polled = status(config)
    assert code == 0, err
    first, _, table = out.partition("\n")
    assert first.startswith("as of ") and first.endswith(" ago, from the runner")
    assert "prod1 (protected)" in table and "degraded 1.5.0 1/2" in table
    assert not polled


def test_status_without_a_runner_polls_as_before(world_config_path: Path, open_dir: Path) -> None:
    config, socket = served_config(world_config_path, open_dir)
    assert ask_runner(socket) is None  # nobody serves it
    code, out, err, polled = status(config, "--json")
    assert code == 0, err
    assert err == "" and polled
    assert len(json.loads(out)["projects"]) == 9


def test_age_is_said_for_a_person() -> None:
    now = datetime(2026, 12, 5, 3, 0, tzinfo=UTC)
    assert age(now - timedelta(seconds=12), now) == "12 s ago"
    assert age(now - timedelta(minutes=5), now) == "5 min ago"
    assert age(now - timedelta(hours=3), now) == "3 h ago"
    assert age(now + timedelta(seconds=2), now) == "0 s ago"  # a clock a little ahead


async def test_the_runner_refreshes_while_asked_and_stops_when_not(world_config: Config) -> None:
    keeper = SnapshotKeeper(replace(world_config, refresh_seconds=1.0), "r1", idle_stop=5.0)
    try:
        first = await keeper.latest()
        assert keeper.polling

        async def newer_than_first() -> FleetSnapshot | None:
            latest = await keeper.latest()
            return latest if latest.generated_at > first.generated_at else None

        newer = await await_until(newer_than_first, "a second refresh", timeout=60)
        assert newer.generated_at > first.generated_at
        await await_until(lambda: not keeper.polling, "the keeper to stop", timeout=60)
        again = await keeper.latest()  # asked again: polls again, and answers a new one
        assert again.generated_at > newer.generated_at and keeper.polling
        answer = await keeper.answer()
        assert answer["runner"] == "r1" and answer["format"] == 1
    finally:
        await keeper.aclose()
