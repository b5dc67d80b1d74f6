"""A [keymap] mistake stops the SSH and web doors before they serve: one line, exit 2 (their
fork server checks the config as each session's console would)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import asyncssh
import pytest
import tomli_w

from console.config import read_toml
from tests.conftest import DEMO_CONFIG, ROOT


@pytest.mark.parametrize("door", ["sshd", "web"])
def test_a_door_refuses_to_serve_a_bad_keymap(tmp_path: Path, door: str) -> None:
    data = read_toml(DEMO_CONFIG)
    key = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
    data["sshd"] = {"keys": [{"user": "alice", "key": key}]}
    data["keymap"] = {"dashboard.refrsh": "f5"}
    config = tmp_path / "console.toml"
    config.write_bytes(tomli_w.dumps(data).encode())
    line = next(n for n, text in enumerate(config.read_text().splitlines(), 1) if "refrsh" in text)
    env = dict(os.environ, DEPLOY_CONSOLE_DATA_DIR=str(tmp_path / "data"), PYTHONPATH=str(ROOT))
    argv = ["--config", str(config), "--store", str(tmp_path / "store.db"), "--port", "0"]
    result = subprocess.run(
        [sys.executable, "-m", "screens.main", door, *argv],
        cwd=ROOT, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""  # no "listening" banner: it never served
    assert result.stderr == (
        f"deploy-console: error: {config}:{line}: keymap.dashboard.refrsh: "
        "unknown key binding (did you mean dashboard.refresh?)\n"
    )
