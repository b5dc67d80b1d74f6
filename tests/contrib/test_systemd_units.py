"""The systemd units in contrib/systemd/: `systemd-analyze verify` finds nothing to say about
them, and the runner's stop timeout outlasts its stop grace."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from console.config import Config
from tests.conftest import need_tool
from tests.deploy_world import ROOT

UNITS = ROOT / "contrib" / "systemd"
NAMES = (
    "deploy-console-runner.service",
    "deploy-console-sshd.service",
    "deploy-console-web.service",
)
INSTALLED = "/usr/local/bin/deploy-console"
SPANS = {"ms": 0.001, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600}


def unit_seconds(text: str) -> float:
    """A systemd time span ("15min", "900", "1h 30min") in seconds."""
    total = 0.0
    for amount, unit in re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", text):
        total += float(amount) * SPANS[unit or "s"]
    return total


def setting(unit: Path, key: str) -> str:
    (value,) = re.findall(rf"^{key}=(.*)$", unit.read_text(), re.MULTILINE)
    return value


@pytest.mark.parametrize("name", NAMES)
def test_each_unit_verifies_without_a_warning(name: str, tmp_path: Path) -> None:
    need_tool("systemd-analyze")
    # verify checks that ExecStart's program exists and is executable: the units name the
    # installed /usr/local/bin/deploy-console, which this machine need not have, so each copy
    # runs this venv's real one instead (the same console script a wheel installs). All three
    # go in one folder: the sshd and web units' Wants= name the runner's.
    console = Path(sys.executable).with_name("deploy-console")
    assert console.is_file(), console
    for other in NAMES:
        text = (UNITS / other).read_text()
        assert INSTALLED in text, other
        (tmp_path / other).write_text(text.replace(INSTALLED, str(console)))
    result = subprocess.run(
        ["systemd-analyze", "verify", str(tmp_path / name)],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_the_runner_is_given_longer_to_stop_than_its_stop_grace() -> None:
    grace = Config.runner_stop_grace
    for name in NAMES:
        timeout = unit_seconds(setting(UNITS / name, "TimeoutStopSec"))
        assert timeout > grace, (name, timeout, grace)
    runner = UNITS / NAMES[0]
    assert setting(runner, "KillMode") == "mixed"  # SIGTERM to the runner, not its hooks
    assert "--config /etc/deploy-console/config.toml" in setting(runner, "ExecStart")
    assert setting(runner, "Restart") == "on-failure"


def test_the_web_and_sshd_units_start_after_the_runner() -> None:
    for name in NAMES[1:]:
        for key in ("After", "Wants"):
            assert NAMES[0] in setting(UNITS / name, key).split(), (name, key)
