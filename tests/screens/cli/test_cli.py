"""The command line for scripts: status, world, and one-line errors with exit code 2."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from console.config import load_config
from screens.main import run
from tests.conftest import DEMO_CONFIG, ROOT


def test_status_json_has_the_documented_shape(
    world_config_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["status", "--json", "--config", str(world_config_path)]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    data = json.loads(captured.out)
    assert set(data) == {"schema", "generated_at", "clusters", "projects"}
    assert data["schema"] == "deploy-console.status/1"
    assert data["clusters"][2] == {"name": "prod1", "protected": True, "error": None}
    projects = {p["name"]: p for p in data["projects"]}
    assert list(projects) == [p.name for p in load_config(DEMO_CONFIG).projects]
    cell = projects["media-service"]["clusters"]["prod1"]
    assert set(cell) >= {"health", "versions", "instances", "error", "age_seconds"}
    assert cell["health"] == "degraded" and cell["versions"] == ["1.5.0"]
    instance = cell["instances"][0]
    assert set(instance) == {
        "id",
        "state",
        "image_id",
        "version",
        "launched_at",
        "private_address",
        "load_balancers",
    }
    assert instance["load_balancers"][0]["kind"] == "classic"
    assert set(instance["load_balancers"][0]) == {"name", "kind", "state", "reason"}
    assert "qaprod1" not in projects["admin-portal"]["clusters"]  # not deployed there
    reasons = [lb["reason"] for i in cell["instances"] for lb in i["load_balancers"]]
    assert any("UnhealthyThreshold" in reason for reason in reasons)


def test_status_table_for_people(
    world_config_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "160")
    assert run(["status", "--config", str(world_config_path)]) == 0
    out = capsys.readouterr().out
    assert "prod1 (protected)" in out
    assert "notifications-worker" in out
    assert "degraded 1.5.0 1/2" in out
    # One name for a cluster with no instances, as the dashboard says it.
    assert "no instances" in out and "empty" not in out


def test_status_filters_by_project_and_cluster(
    world_config_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run(
        [
            "status",
            "--json",
            "--config",
            str(world_config_path),
            "--project",
            "storefront",
            "--cluster",
            "prod2",
        ]
    )
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert [c["name"] for c in data["clusters"]] == ["prod2"]
    assert [p["name"] for p in data["projects"]] == ["storefront"]
    assert list(data["projects"][0]["clusters"]) == ["prod2"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--project", "shop"], "unknown project 'shop'"),
        (["--cluster", "prod3"], "unknown cluster 'prod3' (known: staging, qaprod1, prod1, prod2)"),
    ],
)
def test_status_unknown_names_are_one_line_errors(
    world_config_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], expected: str
) -> None:
    assert run(["status", "--config", str(world_config_path), *args]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"deploy-console: error: {expected}\n"


def test_status_with_an_unreachable_endpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = DEMO_CONFIG.read_text().replace(
        'region = "us-west-2"', 'region = "us-west-2"\nendpoint_url = "http://127.0.0.1:9"'
    )
    text = text.replace(
        'region = "us-east-1"', 'region = "us-east-1"\nendpoint_url = "http://127.0.0.1:9"'
    )
    path = tmp_path / "down.toml"
    path.write_text(text)
    assert run(["status", "--json", "--config", str(path)]) == 2
    captured = capsys.readouterr()
    data = json.loads(captured.out)  # still a complete document, with the errors in it
    assert all("cannot reach http://127.0.0.1:9" in c["error"] for c in data["clusters"])
    lines = captured.err.strip().splitlines()
    assert len(lines) == 4
    assert lines[0] == "deploy-console: error: cluster staging: cannot reach http://127.0.0.1:9/"


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["bogus"], "invalid choice: 'bogus'"),
        (["status", "--colour"], "unrecognized arguments: --colour"),
        (["world", "--port", "http"], "argument --port: invalid int value: 'http'"),
        (["world", "--port", "70000"], "--port must be between 0 and 65535, not 70000"),
        (["config"], "the following arguments are required"),
    ],
)
def test_usage_mistakes_are_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], expected: str
) -> None:
    assert run(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and expected in err


def test_world_command_serves_the_fleet_until_terminated(tmp_path: Path) -> None:
    written = tmp_path / "world.toml"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "screens.main", "world", "--write-config", str(written)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()  # blocks until seeded (or the process died)
        assert line.startswith("world ready: http://127.0.0.1:"), (
            process.stderr.read() if process.stderr else ""
        )
        endpoint = line.removeprefix("world ready: ")
        config = load_config(written)
        assert {c.endpoint_url for c in config.clusters} == {endpoint}
        status = subprocess.run(
            [sys.executable, "-m", "screens.main", "status", "--json", "--config", str(written)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert status.returncode == 0, status.stderr
        assert len(json.loads(status.stdout)["projects"]) == 9
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_world_refuses_a_port_in_use(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        started = time.perf_counter()
        code = run(["world", "--port", str(port), "--write-config", str(tmp_path / "w.toml")])
    assert code == 2
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port}" in err and len(err.strip().splitlines()) == 1
    assert time.perf_counter() - started < 30
    assert not (tmp_path / "w.toml").exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["--config", str(DEMO_CONFIG), "config", "check"],
        ["config", "check", "--config", str(DEMO_CONFIG)],
    ],
    ids=["before the command", "after the command"],
)
def test_config_is_read_wherever_it_is_given(
    argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DEPLOY_CONSOLE_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", "/nonexistent")
    assert run(argv) == 0
    assert f"{DEMO_CONFIG}: ok: 4 clusters" in capsys.readouterr().out
