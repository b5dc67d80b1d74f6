"""`deploy-console demo` as a newcomer meets it: commands in a second terminal reach the running
demo, and the demo keeps a store of its own that starts with its world each run."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.console.servers.test_deploy_outlives_session import Tmux, _from_root
from tests.waiting import wait_until

START_TIMEOUT = 120.0  # the world seeds its fleet first: ~10 s alone, more on a busy machine

pytestmark = pytest.mark.tools("tmux")


@dataclass
class Home:
    """A user's folders, empty: no config of their own, no store."""

    folder: Path
    env: dict[str, str]

    @property
    def data(self) -> Path:
        return self.folder / "data"

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The command line in a second terminal: no --config, the same user."""
        return subprocess.run(
            [sys.executable, "-m", "screens.main", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def start_demo(self) -> Tmux:
        tmux = Tmux(self.folder, "demo", _from_root([sys.executable, "-m", "screens.main", "demo"]),
                    dict(self.env, TERM="xterm-256color"))  # fmt: skip
        wait_until(lambda: (self.data / "demo.pid").exists(), "the demo to start", START_TIMEOUT)
        tmux.wait_for("refreshed", what="the dashboard", timeout=START_TIMEOUT)
        return tmux

    def stop_demo(self, tmux: Tmux) -> None:
        tmux.keys("C-q")
        wait_until(lambda: not (self.data / "demo.pid").exists(), "the demo to stop", 60)
        tmux.kill_server()


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Home]:
    inherited = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    env = dict(
        inherited,
        DEPLOY_CONSOLE_DATA_DIR=str(tmp_path / "data"),
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        PYTHONPATH=str(Path(__file__).resolve().parents[3]),
    )
    env.pop("DEPLOY_CONSOLE_CONFIG", None)
    yield Home(tmp_path, env)


def test_a_second_terminal_reaches_the_running_demo_and_each_demo_has_a_fresh_store(
    home: Home,
) -> None:
    # One test for both (a demo start seeds a world: the slowest step): the second run's demo
    # is the one the second terminal reaches.
    before = home.cli("status")
    assert before.returncode == 2
    assert before.stderr.count("\n") == 1
    assert "start `deploy-console demo`" in before.stderr

    home.stop_demo(home.start_demo())
    # What an earlier run left in the demo's store (its audit, its anchors) ...
    with sqlite3.connect(home.data / "demo.db") as db:
        db.execute("CREATE TABLE left_by_the_last_run (x)")
    tmux = home.start_demo()
    try:
        # ... is gone: the new world starts empty, and so does the store beside it.
        with sqlite3.connect(home.data / "demo.db") as db:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
        assert "left_by_the_last_run" not in tables
        assert "deploys" in tables
        assert "anchor" not in tmux.screen()
        status = home.cli("status")
        assert status.returncode == 0, status.stderr
        assert "storefront" in status.stdout and "prod1" in status.stdout
        assert "using the running demo's" in status.stderr
        second = home.cli("demo")
        assert second.returncode == 2
        assert second.stderr.startswith("deploy-console: error: a demo is already running")
    finally:
        home.stop_demo(tmux)
    # The demo's store is its own: the user's default store was never made.
    assert (home.data / "demo.db").exists()
    assert not (home.data / "deploy-console.db").exists()
    after = home.cli("status")
    assert after.returncode == 2 and "no config found" in after.stderr
