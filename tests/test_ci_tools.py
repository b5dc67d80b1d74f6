"""In CI (CI=true) a test that drives OpenSSH, tmux, sqlite3 or Chromium fails when the tool
is missing; elsewhere it is skipped (or, for sqlite3, falls back to Python's module)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

# One test per tool family, each of which checks for its tool today.
TESTS = [
    # ssh, tmux
    "tests/console/servers/test_sshd.py::test_openssh_commands_and_passwords_are_refused",
    # chromium
    "tests/console/servers/test_web.py::test_headless_chromium_shows_the_kiosk_tiles",
    # sqlite3
    "tests/screens/cli/test_cli_audit.py::test_verify_names_the_first_tampered_row[changed]",
]
TIMEOUT = 300.0


def _pytest(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess[str]:
    """Those tests run by pytest with no tool on PATH."""
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "PYTEST_XDIST_WORKER")}
    if ci is not None:
        env["CI"] = ci
    nothing = tmp_path / "empty-path"
    nothing.mkdir(exist_ok=True)
    env["PATH"] = str(nothing)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider", *TESTS],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    return result


def test_a_missing_tool_fails_its_tests_in_ci_and_skips_them_elsewhere(tmp_path: Path) -> None:
    in_ci = _pytest(tmp_path, "true")
    # Failed before the fixtures start (no world, server or browser): pytest says "error".
    assert in_ci.returncode == 1, in_ci.stdout
    assert in_ci.stdout.splitlines()[-1].startswith("1 failed, 2 errors"), in_ci.stdout
    for tools in ("ssh, tmux", "chromium", "sqlite3"):
        assert f"needs {tools} on PATH (.ci/run installs it); CI=true" in in_ci.stdout
    elsewhere = _pytest(tmp_path, None)
    assert elsewhere.returncode == 0, elsewhere.stdout
    assert elsewhere.stdout.splitlines()[-1].startswith("1 passed, 2 skipped"), elsewhere.stdout
