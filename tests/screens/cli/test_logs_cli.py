"""Logs through the real command line: --log-level filters, --log-format json parses, a deploy's
lines carry its id, and a deploy run at debug logs no secret of the config (a child process each).
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from console.config import Config, read_toml
from tests.conftest import ROOT
from tests.deploy_world import client, quick_seed, running_versions, world_process

TIMEOUT = 180.0
ISO = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Config]:
    """A world of its own whose instances register and drain in 1 s: a deploy is quick."""
    workdir = tmp_path_factory.mktemp("logs-world")
    with world_process(quick_seed(workdir, 1), workdir) as config:
        yield config


def cli(*args: str, config: Path, store: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "screens.main", "--config", str(config), "--store", str(store),
         *args],
        cwd=ROOT, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=TIMEOUT,
    )  # fmt: skip


def queued(world: Config, project: str, cluster: str, config: Path, store: Path) -> str:
    """Queue a redeploy of what runs on the pair; its deploy id."""
    (version,) = running_versions(world, project, cluster)
    result = cli(
        "deploy", project, cluster, version, "--no-wait", "--anyway", config=config, store=store
    )
    assert result.returncode == 0, result.stderr
    match = re.search(r"queued (d-\S+):", result.stdout)
    assert match, result.stdout
    return match.group(1)


def test_a_bad_log_level_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = cli("--log-level", "loud", "status", config=tmp_path / "none.toml", store=tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "deploy-console: error: argument --log-level: invalid choice: 'loud' (choose from "
        "'debug', 'info', 'warning', 'error') (see deploy-console --help)"
    ]


def _free_port() -> int:
    """A loopback port nothing listens on (deliveries to it fail: their errors get logged)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def secret_config(world: Config, folder: Path) -> tuple[Path, list[str]]:
    """The world's config with a webhook whose URL holds a token, an SMTP channel with a
    password, web tokens, and a configure step that prints the app's secrets."""
    webhook_token = "whk-9c1f0d7e5b3a4c2e8f6a"
    smtp_password = "smtp-Pa55w0rd-4e1b7c9d"
    web_token = "webtok-3f8a2d6c1e9b7a5d"
    password_file = folder / "smtp.secret"
    password_file.write_text(smtp_password + "\n")
    password_file.chmod(0o600)
    port = _free_port()
    data: dict[str, Any] = read_toml(world.source)
    notify = data.setdefault("notify", {})
    notify["max_attempts"] = 1
    notify.setdefault("channels", {})["hook"] = {
        "type": "webhook",
        "url": f"http://127.0.0.1:{port}/hooks/{webhook_token}",
    }
    notify["channels"]["mail"] = {
        "type": "email", "host": "127.0.0.1", "port": port, "starttls": False,
        "username": "deploy-console", "password_file": str(password_file),
        "from": "deploy-console@example.com", "to": ["oncall@example.com"],
    }  # fmt: skip
    notify.setdefault("routes", []).append({"channels": ["hook", "mail"]})
    digest = hashlib.sha256(web_token.encode()).hexdigest()
    data["web"] = {"auth": "tokens", "tokens": [{"user": "alice", "sha256": digest}]}
    for entry in data["projects"]:
        if entry["name"] == "storefront":
            entry["deploy"]["configure"] = "cat app.env; sh app/bin/configure"
    path = folder / "secrets.toml"
    with path.open("wb") as output:
        tomli_w.dump(data, output)
    ssm = client(world, "staging", "ssm")
    db_password = ssm.get_parameter(Name="/storefront/db-password", WithDecryption=True)
    secrets = [webhook_token, smtp_password, web_token, digest, db_password["Parameter"]["Value"]]
    return path, secrets


@dataclass(frozen=True)
class Run:
    """A runner (`runner --exit-when-idle` and options) that ran one queued deploy."""

    deploy_id: str
    result: subprocess.CompletedProcess[str]
    secrets: list[str]


@pytest.fixture(scope="module")
def runs(world: Config, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    """Three runners side by side, each on a store and a pair of its own (a deploy is mostly
    waiting): at the runner's default level, at --log-level error, and at debug in JSON
    with a config full of secrets."""
    folder = tmp_path_factory.mktemp("logs-runs")
    config, secrets = secret_config(world, folder)
    plans = {
        "info": ("media-service", world.source, ()),
        "error": ("checkout-api", world.source, ("--log-level", "error")),
        "debug-json": ("storefront", config, ("--log-level", "debug", "--log-format", "json")),
    }
    ids = {
        name: queued(world, project, "staging", source, folder / f"{name}.db")
        for name, (project, source, _) in plans.items()
    }
    with ThreadPoolExecutor(max_workers=len(plans)) as pool:
        results = {
            name: pool.submit(
                cli,
                "runner",
                "--exit-when-idle",
                *options,
                config=source,
                store=folder / f"{name}.db",
            )
            for name, (_, source, options) in plans.items()
        }
        return {
            name: Run(ids[name], done.result(), secrets if name == "debug-json" else [])
            for name, done in results.items()
        }


def test_the_runner_logs_a_deploy_at_info_each_line_with_its_id(runs: dict[str, Run]) -> None:
    deploy_id, result = runs["info"].deploy_id, runs["info"].result
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if " console." in line]
    started = next(line for line in lines if "deploy started" in line)
    assert re.fullmatch(
        rf"{ISO} INFO console\.deploy\.deployment: deploy started: media-service -> staging "
        rf"\S+ by \S+ deploy={deploy_id} project=media-service cluster=staging",
        started,
    ), started
    succeeded = "INFO console.deploy.deployment: deploy succeeded: "
    assert any(succeeded in line and f"deploy={deploy_id}" in line for line in lines), lines
    assert not any(" DEBUG " in line for line in lines)  # info is the runner's default


def test_log_level_error_keeps_the_info_lines_out(runs: dict[str, Run]) -> None:
    result = runs["error"].result
    assert result.returncode == 0, result.stderr
    assert not re.search(r" (INFO|DEBUG|WARNING) \S+: ", result.stderr), result.stderr


def test_a_deploy_logged_at_debug_in_json_logs_no_secret(runs: dict[str, Run]) -> None:
    deploy_id, result = runs["debug-json"].deploy_id, runs["debug-json"].result
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    mine = [r for r in records if r.get("deploy_id") == deploy_id]
    assert {"ts", "level", "logger", "msg", "deploy_id"} <= set(mine[0])
    assert any(r["level"] == "debug" and "DB_PASSWORD=********" in r["msg"] for r in mine)
    assert any(r["msg"].startswith("deploy succeeded") for r in mine)
    # The notifications failed (nothing listens): said, and masked.
    said = [r["msg"] for r in records if r["logger"] == "console.notify.delivery"]
    assert said, result.stderr
    assert runs["debug-json"].secrets
    for secret in runs["debug-json"].secrets:
        assert secret not in result.stderr and secret not in result.stdout, secret
