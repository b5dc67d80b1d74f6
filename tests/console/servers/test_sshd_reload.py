"""`deploy-console sshd` as a service: SIGHUP reloads the config and the authorized keys (new
logins use them); a config that does not read keeps the keys it had."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import asyncssh
import tomli_w

from console.config import read_toml
from tests.conftest import ROOT
from tests.console.servers.test_runner_signals import Stderr
from tests.console.servers.test_sshd import DEADLINE, keys, listening

__all__ = ["keys"]  # alice's, bob's and mallory's keys (module-scoped)


def key_line(user: str, key: Path) -> str:
    public = key.with_suffix(".pub").read_text().strip()
    return f'environment="DEPLOY_CONSOLE_USER={user}" {public}\n'


async def logs_in(port: int, key: Path) -> bool:
    try:
        async with asyncssh.connect(
            "127.0.0.1", port, username="whoever", client_keys=[str(key)],
            known_hosts=None, agent_path=None, connect_timeout=DEADLINE,
        ):  # fmt: skip
            return True
    except asyncssh.PermissionDenied:
        return False


async def test_sighup_reloads_the_keys_and_a_broken_config_keeps_the_old_ones(
    world_config_path: Path, keys: dict[str, Path], tmp_path: Path
) -> None:
    authorized = tmp_path / "authorized_keys"
    authorized.write_text(key_line("alice", keys["alice"]))
    data = read_toml(world_config_path)
    data["sshd"] = {"authorized_keys": str(authorized)}
    config = tmp_path / "config.toml"
    good = tomli_w.dumps(data)
    config.write_text(good)
    env = dict(os.environ, DEPLOY_CONSOLE_DATA_DIR=str(tmp_path / "data"), PYTHONPATH=str(ROOT))
    argv = [sys.executable, "-m", "screens.main", "sshd", "--kiosk", "--config", str(config),
            "--store", str(tmp_path / "store.db"), "--port", "0"]  # fmt: skip
    process = subprocess.Popen(
        argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    stderr = Stderr(process)
    try:
        port, _ = listening(process)
        assert await logs_in(port, keys["alice"])
        assert not await logs_in(port, keys["bob"])

        authorized.write_text(key_line("bob", keys["bob"]))  # only bob now
        process.send_signal(signal.SIGHUP)
        reloaded = stderr.wait_for("sshd: reloaded", DEADLINE)
        assert "1 key(s) may log in" in reloaded, reloaded
        assert not await logs_in(port, keys["alice"])
        assert await logs_in(port, keys["bob"])

        config.write_text(good + "[sshd\n")  # no longer TOML: bob's key stays
        process.send_signal(signal.SIGHUP)
        refused = stderr.wait_for("sshd: reload refused", DEADLINE)
        assert f"{config}:" in refused and "kept the keys it had" in refused, refused
        assert await logs_in(port, keys["bob"])
        assert not await logs_in(port, keys["mallory"])
        assert process.poll() is None  # served all along
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=DEADLINE) == 0, stderr.all()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
