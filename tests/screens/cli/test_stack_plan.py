"""`deploy-console stack plan|status|diff` on the lab pair in the session world."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from console.config import load_config
from console.world.server import World
from screens.main import run
from tests.stack_lab import STACK, ensure_stack, lab_path


@pytest.fixture(scope="module")
def lab(world: World, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = lab_path(world, tmp_path_factory.mktemp("planlab-cli"))
    ensure_stack(world, load_config(path))
    return path


def test_plan_of_a_changed_health_check(
    world: World, lab: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    changed = lab_path(world, tmp_path, **{'health_path = "/health"': 'health_path = "/healthz"'})
    assert run(["stack", "plan", "probe", "planlab", "--config", str(changed)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{STACK}: CREATE_COMPLETE, updated ")
    assert "1 to modify" in out
    assert "  modify   TargetGroup  ElasticLoadBalancingV2::TargetGroup  replacement no" in out
    assert "           HealthCheckPath: /health -> /healthz" in out
    assert "apply it: deploy-console stack apply probe planlab" in out


def test_plan_of_a_rename_says_the_dns_record_moves(
    world: World, lab: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    changed = lab_path(world, tmp_path, **{'"probe-planlab"': '"probe-planlab-2"'})
    assert run(["stack", "plan", "probe", "planlab", "--json", "--config", str(changed)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["schema"] == "deploy-console.stack-plan/1"
    assert set(data) == {
        "schema", "project", "cluster", "stack", "stack_status", "last_updated",
        "change_set_type", "change_set", "change_set_id", "unchanged", "counts", "dns_moves",
        "resources",
    }  # fmt: skip
    assert data["counts"] == {"add": 0, "modify": 1, "replace": 3, "remove": 0}
    balancer = next(r for r in data["resources"] if r["logical_id"] == "LoadBalancer")
    assert set(balancer) == {
        "action", "logical_id", "type", "physical_id", "replacement", "properties", "notes",
    }  # fmt: skip
    assert balancer["replacement"] == "yes"
    assert balancer["properties"][0] == {
        "property": "Name", "old": "probe-planlab", "new": "probe-planlab-2",
        "replacement": "yes", "because": None,
    }  # fmt: skip
    assert data["dns_moves"] == [
        "DNS moves: probe.planlab.planlab.test. will point at the new LoadBalancer's DNS name"
    ]


def test_status_and_diff(
    world: World, lab: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["stack", "status", "--config", str(lab)]) == 1  # fresh has no stack yet
    out = capsys.readouterr().out
    assert "in sync" in out and "not managed" in out and "no stack yet" in out
    assert run(["stack", "status", "probe", "planlab", "--config", str(lab)]) == 0
    capsys.readouterr()
    assert run(["stack", "plan", "probe", "planlab", "--config", str(lab)]) == 0
    assert capsys.readouterr().out.splitlines()[1] == (
        "no changes: the stack is what the config asks for"
    )
    changed = lab_path(world, tmp_path, **{'health_path = "/health"': 'health_path = "/healthz"'})
    assert run(["stack", "status", "probe", "--json", "--config", str(changed)]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["schema"] == "deploy-console.stack-status/1"
    assert [(p["project"], p["in_sync"], p["changes"]) for p in data["pairs"]] == [
        ("probe", False, 1)
    ]
    assert run(["stack", "diff", "probe", "planlab", "--config", str(changed)]) == 1
    out = capsys.readouterr().out
    assert "HealthCheckPath" in out and "/healthz" in out


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["plan", "nope", "planlab"], "unknown project 'nope'"),
        (["diff", "probe", "nowhere"], "unknown cluster 'nowhere' (known: planlab)"),
        (["plan", "bare", "planlab"], "bare in planlab has no stack: "),
        (["status", "probe", "nowhere"], "unknown cluster 'nowhere' (known: planlab)"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    lab: Path, capsys: pytest.CaptureFixture[str], argv: list[str], expected: str
) -> None:
    assert run(["stack", *argv, "--config", str(lab)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"deploy-console: error: {expected}")
    assert captured.err.count("\n") == 1


def test_an_unreachable_endpoint_is_one_line_and_exit_2(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    down = lab_path(world, tmp_path, **{world.endpoint_url: "http://127.0.0.1:9"})
    assert run(["stack", "plan", "probe", "planlab", "--config", str(down)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("deploy-console: error: ") and "cannot reach http://127.0.0.1:9" in err
    assert err.count("\n") == 1
