"""From the README to an instance's console output at 80x24, in `deploy-console demo` in tmux:
Enter on a project, Tab to its instances, Enter on one; c copies its id; s hands the terminal
to OpenSSH with the person's own keys, which the demo's jump host refuses in one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.console.servers.test_deploy_outlives_session import Tmux, _from_root
from tests.screens.cli.test_demo import START_TIMEOUT, Home, home  # noqa: F401 (the fixture)
from tests.waiting import wait_until

pytestmark = pytest.mark.tools("tmux", "ssh")


class SmallTmux(Tmux):
    """A tmux session of the test's own on a standard 80x24 terminal."""

    def __init__(self, folder: Path, name: str, command: str, env: dict[str, str]) -> None:
        self.base = ["tmux", "-S", str(folder / f"{name}.tmux"), "-f", "/dev/null"]
        self.name = name
        subprocess.run(
            [*self.base, "new-session", "-d", "-s", name, "-x", "80", "-y", "24", command],
            check=True,
            env=env,
        )


def open_first_instance(tmux: Tmux) -> None:
    """Enter on the instance under the cursor, again while the table is still taking focus
    (until then Enter says to put the cursor on an instance)."""

    def opened() -> bool:
        if "console output · " in tmux.screen():
            return True
        tmux.keys("Enter")
        return "console output · " in tmux.screen()

    wait_until(opened, "the instance screen", 60, every=1.0)
    tmux.wait_for("console output · 10 lines", what="the console output")


def test_an_instance_s_console_output_its_id_and_a_refused_shell_at_80x24(home: Home) -> None:  # noqa: F811
    argv = [sys.executable, "-m", "screens.main", "demo"]
    tmux = SmallTmux(home.folder, "demo", _from_root(argv), dict(home.env, TERM="xterm-256color"))
    try:
        wait_until(lambda: (home.data / "demo.pid").exists(), "the demo to start", START_TIMEOUT)
        tmux.wait_for("refreshed", what="the dashboard", timeout=START_TIMEOUT)
        tmux.keys("Right", "Enter")  # storefront in staging: its instances in focus
        tmux.wait_for("⏎ Open", what="the project screen")
        tmux.wait_for("running  2.", what="the instances")
        open_first_instance(tmux)
        screen = tmux.screen()
        assert "Linux version" in screen and "tags Environment=" in screen
        assert "storefront-staging (target group) healthy" in screen
        instance = screen.split()[0]
        assert instance.startswith("i-")
        tmux.keys("c")
        tmux.wait_for(f"copied {instance}", what="the copy's notice")
        tmux.keys("s")
        tmux.wait_for("Permission denied", what="ssh's refusal, back in the console")
        refused = " ".join(tmux.screen().replace("▌", " ").split())
        assert f"no shell on {instance}" in refused
        assert "(publickey)" in refused
        # Back where it was, and still answering keys.
        tmux.keys("Escape")
        tmux.wait_for("⏎ Open", what="the project screen again")
    finally:
        home.stop_demo(tmux)
