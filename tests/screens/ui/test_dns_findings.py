"""Route 53 records gone astray in a world of its own (`world dns` changes three): the red
finding in `status --json`, under plain `status`, on the dashboard at 80x24 and on the project
screen; `world dns`'s bad input."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Static

from console.config import Config
from console.fleet.inventory import Fleet
from screens.app import build_app
from screens.dashboard.fleet_matrix import FleetMatrix
from screens.main import run
from screens.messages import ProjectChosen
from screens.project.cluster_panel import ClusterPanel
from screens.project.screen import ProjectScreen
from tests.conftest import DEMO_CONFIG
from tests.deploy_world import world_process
from tests.screens.ui import frozen_clock, text_of, wait_for

ELSEWHERE = "points at checkout-api in prod1 ("  # (and the load balancer's name)
GONE = "points at a load balancer that does not exist (gone-1.us-east-1.elb.amazonaws.com)"


@pytest.fixture(scope="module")
def astray(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Config, Path]]:
    """The demo world with storefront's prod1 record at checkout-api's load balancer, the
    checkout-api one at a load balancer that does not exist, admin-portal's deleted."""
    workdir = tmp_path_factory.mktemp("dns-world")
    with world_process(DEMO_CONFIG, workdir) as config:
        path = workdir / "world.toml"
        for change in (
            ["www.prod1.example.internal", "--points-to", "checkout-api-prod1"],
            ["api.prod1.example.internal", "--points-to", "gone-1.us-east-1.elb.amazonaws.com"],
            ["admin.prod1.example.internal", "--delete"],
        ):
            assert run(["--config", str(path), "world", "dns", *change]) == 0
        yield config, path


def status(capsys: pytest.CaptureFixture[str], path: Path, *argv: str) -> str:
    capsys.readouterr()
    assert run(["--config", str(path), "status", *argv]) == 0
    return capsys.readouterr().out


def test_status_says_which_records_point_elsewhere(
    astray: tuple[Config, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _config, path = astray
    data: dict[str, Any] = json.loads(status(capsys, path, "--json"))
    dns = {
        (project["name"], cluster): env["dns"]
        for project in data["projects"]
        for cluster, env in project["clusters"].items()
    }
    record = dict(dns[("storefront", "prod1")])
    [value] = record.pop("values")
    assert value.startswith("checkout-api-prod1") and value.endswith(".elb.amazonaws.com")
    assert record.pop("finding").startswith(ELSEWHERE)
    assert record == {
        "name": "www.prod1.example.internal",
        "type": "CNAME",
        "ttl": 60,
        "alias": False,
        "points_to_pair": False,
        "error": None,
    }
    assert dns[("checkout-api", "prod1")]["finding"] == GONE
    assert dns[("admin-portal", "prod1")]["type"] is None
    assert dns[("admin-portal", "prod1")]["finding"] == "no record in Route 53"
    # The others still point at their own.
    assert dns[("storefront", "prod2")]["points_to_pair"] is True
    findings = {pair for pair, record in dns.items() if record["finding"]}
    assert findings == {
        ("storefront", "prod1"),
        ("checkout-api", "prod1"),
        ("admin-portal", "prod1"),
    }
    plain = status(capsys, path)
    assert f"storefront prod1: DNS www.prod1.example.internal: {ELSEWHERE}" in plain
    assert "admin-portal prod1: DNS admin.prod1.example.internal: no record in Route 53" in plain


async def test_the_dashboard_marks_the_cell_and_says_why_at_80x24(
    astray: tuple[Config, Path],
) -> None:
    config, _path = astray
    fleet = Fleet(config, clock=frozen_clock)
    app = build_app(config, fleet, clock=frozen_clock, auto_refresh=False)
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: app.refresh_count >= 1, "the first refresh", timeout=60)
            matrix = app.dashboard.query_one(FleetMatrix)
            assert " ".join(matrix.cell_plain("storefront", "prod1").split()) == "● 2.14.1 DNS! 3/3"
            assert "DNS!" not in matrix.cell_plain("storefront", "prod2")
            matrix.move_to("storefront", "prod1")
            await pilot.pause()
            detail = app.dashboard.query_one("#detail", Static)
            assert text_of(detail).startswith("storefront · prod1  DNS! points at checkout-api")
            assert "DNS! record amiss" in text_of(app.dashboard.query_one("#legend", Static))
            app.post_message(ProjectChosen("storefront", "prod1"))
            await wait_for(pilot, lambda: isinstance(app.screen, ProjectScreen), "the project")
            panel = next(p for p in app.screen.query(ClusterPanel) if p.cluster.name == "prod1")
            line = text_of(panel.query_one(".panel-dns", Static))
            assert line.startswith("✖ DNS www.prod1.example.internal CNAME checkout-api-prod1")
            assert f".elb.amazonaws.com · TTL 60 · {ELSEWHERE}" in line
            other = next(p for p in app.screen.query(ClusterPanel) if p.cluster.name == "prod2")
            own = text_of(other.query_one(".panel-dns", Static))
            assert own.endswith("· TTL 60 · its load balancer")
    finally:
        fleet.close()


def test_world_dns_refuses_what_the_world_does_not_have(
    astray: tuple[Config, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _config, path = astray
    for change, error in (
        (["www.prod1.example.internal", "--points-to", "no-such-lb"],
         "the world has no load balancer or target group 'no-such-lb'"),
        (["www.example.org", "--delete"],
         "no hosted zone of the world holds www.example.org (its zones: example.internal)"),
        (["gone.prod1.example.internal", "--delete"],
         "the world has no record gone.prod1.example.internal"),
    ):  # fmt: skip
        capsys.readouterr()
        assert run(["--config", str(path), "world", "dns", *change]) == 2
        captured = capsys.readouterr()
        assert captured.err == f"deploy-console: error: {error}\n"
