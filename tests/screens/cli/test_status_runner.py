"""Plain `status` answers from a running runner's snapshot (with its age, without AWS);
`--fresh`, or no runner answering, polls AWS as before; both print the same fleet."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
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


@pytest.fixture(scope="module")
def runner(world_config_path: Path) -> Iterator[tuple[Path, Path]]:
    """`deploy-console runner` serving its door on the embedded world; (config, socket). One
    for the module: the tests only ask it (a snapshot of any age is said with its age)."""
    open_dir = Path(tempfile.mkdtemp(prefix="dc-status-runner-"))
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
        shutil.rmtree(open_dir, ignore_errors=True)


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


def entry(*argv: str, importtime: bool = False) -> subprocess.CompletedProcess[str]:
    """The console script's own entry (screens.entry, as pyproject names it) in a process."""
    flags = ["-X", "importtime"] if importtime else []
    script = (
        f"import sys; sys.argv = ['deploy-console', *{list(argv)!r}]\n"
        "from screens.entry import main\nmain()\n"
    )
    return subprocess.run(
        [sys.executable, *flags, "-c", script],
        cwd=ROOT, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip


def test_the_console_script_answers_from_the_runner_before_the_command_line_loads(
    runner: tuple[Path, Path],
) -> None:
    import tomllib

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["deploy-console"] == "screens.entry:main"
    config, _socket = runner
    done = entry("status", "--json", "--config", str(config), importtime=True)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["schema"] == "deploy-console.status/1"
    loaded = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if "|" in line}
    assert "console.fleet.wire" in loaded
    # Neither the command line, nor the config's schema, nor AWS, nor Textual: a start-up of
    # a few imports, so a script's most frequent call costs little more than Python itself.
    assert not loaded & {"screens.main", "argparse", "console.config", "botocore", "textual"}
    assert "from the runner" in done.stderr
    done = entry("status", "--config", str(config), importtime=True)  # the table, for a person
    assert done.returncode == 0, done.stderr
    assert "from the runner" in done.stdout.splitlines()[0]
    loaded = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if "|" in line}
    assert "rich.table" in loaded or "rich.console" in loaded
    assert not loaded & {"screens.main", "console.config", "console.queue.release_queue", "aiohttp"}
    # Anything the fast path does not answer exactly as the command line would, it hands over.
    done = entry("status", "--json", "--project", "nope", "--config", str(config))
    assert done.returncode == 2
    assert done.stderr.strip().startswith("deploy-console: error: unknown project 'nope'")
    done = entry("status", "--json", "--cluster=staging", "--config", str(config))
    assert done.returncode == 0, done.stderr
    assert [c["name"] for c in json.loads(done.stdout)["clusters"]] == ["staging"]


@pytest.mark.parametrize(
    ("argv", "answered"),
    [
        (["status"], True),
        (["status", "--json", "--project", "a", "--cluster=b", "--config", "c.toml"], True),
        (["status", "--fresh"], False),
        (["status", "--store", "x.db"], False),
        (["status", "--help"], False),
        (["status", "--project"], False),
        (["status", "--log-level", "debug"], False),
        (["deploy", "a", "b", "1.0"], False),
        ([], False),
    ],
)
def test_the_fast_path_takes_plain_status_only(argv: list[str], answered: bool) -> None:
    from screens.entry import _parse

    assert (_parse(argv) is not None) == answered


def test_the_fast_path_finds_the_config_the_command_line_finds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from console.config.paths import config_candidates
    from screens.entry import _config_file

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("DEPLOY_CONSOLE_CONFIG", raising=False)
    assert _config_file("given.toml") == config_candidates("given.toml")[0][1]
    monkeypatch.setenv("DEPLOY_CONSOLE_CONFIG", str(tmp_path / "env.toml"))
    assert _config_file(None) == config_candidates(None)[0][1]
    monkeypatch.delenv("DEPLOY_CONSOLE_CONFIG")
    user = config_candidates(None)[0][1]
    assert _config_file(None) is None  # no user config yet: the command line says so
    user.parent.mkdir(parents=True)
    user.write_text("")
    assert _config_file(None) == user
