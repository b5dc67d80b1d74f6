"""`deploy-console web` as a service: SIGHUP takes the config's new [web] tokens (a token
removed is refused from then on); a config that does not read keeps the tokens it had."""

from __future__ import annotations

import signal
import urllib.error
import urllib.request
from pathlib import Path

import tomli_w

from console.config import read_toml
from console.config.web import new_token, token_hash
from tests.console.servers.test_runner_signals import Stderr
from tests.console.servers.test_web import DEADLINE, _web


def status(port: int, token: str) -> int:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/", headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=DEADLINE) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


def test_sighup_reloads_the_tokens_and_a_broken_config_keeps_the_old_ones(
    world_config_path: Path, tmp_path: Path
) -> None:
    first, second = new_token(), new_token()
    data = read_toml(world_config_path)
    data["web"] = {"auth": "tokens", "tokens": [{"user": "alice", "sha256": token_hash(first)}]}
    config = tmp_path / "config.toml"
    config.write_text(tomli_w.dumps(data))
    with _web(config, "--kiosk") as (server, port):
        stderr = Stderr(server)
        assert (status(port, first), status(port, second)) == (200, 401)

        data["web"]["tokens"] = [{"user": "bob", "sha256": token_hash(second)}]
        good = tomli_w.dumps(data)
        config.write_text(good)
        server.send_signal(signal.SIGHUP)
        assert "auth tokens, 1 token(s)" in stderr.wait_for("web: reloaded", DEADLINE)
        assert (status(port, first), status(port, second)) == (401, 200)

        config.write_text(good + "[web\n")  # no longer TOML: bob's token stays
        server.send_signal(signal.SIGHUP)
        refused = stderr.wait_for("web: reload refused", DEADLINE)
        assert f"{config}:" in refused and "kept the settings it had" in refused, refused
        assert (status(port, first), status(port, second)) == (401, 200)
        assert server.poll() is None  # served all along
    assert server.returncode == 0, stderr.all()
    assert first not in stderr.all() and second not in stderr.all()  # never a secret in logs
