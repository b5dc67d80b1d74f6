"""A hook is a real command: the deploy on stdin as JSON and as DEPLOY_* variables, nothing of
the console's own environment, killed at its timeout, its output masked."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from console.config import Config, HookSettings, load_config
from console.gates.hooks import run_hook
from console.store import DeployRecord
from tests.conftest import DEMO_CONFIG
from tests.waiting import wait_until

RECORD = DeployRecord(
    id="d-20261205-010000-abcdef",
    project="storefront",
    cluster="prod1",
    release="2.15.0",
    actor="alice",
    image_id="ami-0123",
    state="succeeded",
    created_at=datetime(2026, 12, 5, 1, 0, tzinfo=UTC),
    reason="2.15.0 serves on i-1",
    ticket="CHG-42",
)
# The child prints what it got: stdin's JSON and its whole environment.
ECHO = """
import json, os, sys
deploy = json.load(sys.stdin)
print(json.dumps({"stdin": deploy, "env": dict(os.environ)}))
"""


@pytest.fixture(scope="module")
def config() -> Config:
    return load_config(DEMO_CONFIG)


def hook(folder: Path, script: str, timeout: float = 10.0) -> HookSettings:
    """A hook running `script` (a file: its braces are no template's)."""
    path = folder / "hook.py"
    path.write_text(script)
    command = (sys.executable, str(path))
    return HookSettings(name="probe", on=("post-deploy",), command=command, timeout=timeout)


async def test_a_hook_gets_the_deploy_as_json_and_deploy_variables_and_nothing_else(
    config: Config, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI-console-own-secret")
    monkeypatch.setenv("SOME_SETTING", "console-only")
    run = await run_hook(hook(tmp_path, ECHO), "succeeded", RECORD, config)
    assert run.passed, run.lines
    seen = json.loads(run.lines[0])
    assert seen["stdin"]["id"] == RECORD.id
    assert seen["stdin"]["event"] == "succeeded"
    assert seen["stdin"]["ticket"] == "CHG-42"
    assert seen["stdin"]["image_id"] == "ami-0123"
    env = seen["env"]
    assert {
        "DEPLOY_ID": RECORD.id,
        "DEPLOY_PROJECT": "storefront",
        "DEPLOY_CLUSTER": "prod1",
        "DEPLOY_RELEASE": "2.15.0",
        "DEPLOY_IMAGE_ID": "ami-0123",
        "DEPLOY_ACTOR": "alice",
        "DEPLOY_TICKET": "CHG-42",
        "DEPLOY_STATE": "succeeded",
        "DEPLOY_EVENT": "succeeded",
    }.items() <= env.items()
    # A clean environment: the console's own variables never reach a hook.
    leaked = {name for name in env if not name.startswith("DEPLOY_")} - {"PATH", "LANG", "LC_ALL"}
    assert not leaked - {"PWD", "SHLVL", "_"}, leaked
    assert "AWS_SECRET_ACCESS_KEY" not in env and "SOME_SETTING" not in env


async def test_a_hook_output_is_masked_and_made_harmless(
    config: Config, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DEPLOY_BOT_TOKEN", "xoxb-console-token-123")
    script = "print('posted with xoxb-console-token-123 \\x1b[2J done'); raise SystemExit(4)"
    run = await run_hook(hook(tmp_path, script), "failed", RECORD, config)
    assert not run.passed
    assert run.lines == ("posted with ******** \\x1b[2J done",)
    assert run.summary() == "failed hook probe: exit 4: posted with ******** \\x1b[2J done"


async def test_a_hook_past_its_timeout_is_killed_with_its_children(
    config: Config, tmp_path: Path
) -> None:
    pid_file = tmp_path / "grandchild.pid"
    script = f"""
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
open({str(pid_file)!r}, "w").write(str(child.pid))
print("started", flush=True)
time.sleep(120)
"""
    started = time.monotonic()
    run = await run_hook(hook(tmp_path, script, timeout=1.0), "succeeded", RECORD, config)
    assert time.monotonic() - started < 15
    assert not run.passed
    assert run.summary() == "succeeded hook probe: timed out after 1 s (killed): started"
    grandchild = int(pid_file.read_text())
    wait_until(lambda: not alive(grandchild), "the hook's whole process group to be killed")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (killed, its parent gone before reaping it) is no longer running.
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    return False
