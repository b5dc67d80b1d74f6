"""The demo's bake on prod2, the world's alarms it watches, and `world alarm NAME STATE`."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

from console.config import Config, load_config
from console.config.bake import BakeSettings
from console.world.alarms import wanted_alarms
from console.world.server import World
from tests.conftest import DEMO_CONFIG, ROOT
from tests.deploy_world import without_bake

PROD2_PROJECTS = (
    "billing-worker",
    "checkout-api",
    "notifications-worker",
    "search-api",
    "storefront",
)


def cli(*args: str, config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "screens.main", *args, "--config", str(config)],
        cwd=ROOT, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def alarm_states(world: World, region: str) -> dict[str, str]:
    alarms = world.client("cloudwatch", region).describe_alarms()["MetricAlarms"]
    return {a["AlarmName"]: a["StateValue"] for a in alarms}


def load_config_text(text: str) -> Config:
    import tomllib

    from console.config.parse import parse_config

    return parse_config(tomllib.loads(text), DEMO_CONFIG)


def test_the_demo_bakes_prod2_only() -> None:
    demo = load_config(DEMO_CONFIG)
    assert demo.cluster("prod2").bake == BakeSettings(45, ("*-5xx",), 1800)
    for name in ("staging", "qaprod1", "prod1"):
        assert demo.cluster(name).bake == BakeSettings()
    # The tests that deploy through the demo without testing the bake take it away in one place.
    assert load_config_text(without_bake(DEMO_CONFIG.read_text())).cluster("prod2").bake == (
        BakeSettings()
    )


def test_the_world_seeds_an_ok_5xx_alarm_per_project_where_a_bake_watches(world: World) -> None:
    demo = load_config(DEMO_CONFIG)
    assert wanted_alarms(demo) == [("us-west-2", f"{p}-5xx") for p in PROD2_PROJECTS]
    assert world.report.alarms == len(PROD2_PROJECTS)
    assert alarm_states(world, "us-west-2") == {f"{p}-5xx": "OK" for p in PROD2_PROJECTS}
    assert alarm_states(world, "us-east-1") == {}  # no bake there: no alarm


def test_world_alarm_sets_a_state_and_refuses_an_unknown_alarm_in_one_line(
    world: World, world_config: Config
) -> None:
    path = world_config.source
    fired = cli("world", "alarm", "billing-worker-5xx", "alarm", "--reason", "test", config=path)
    assert (fired.returncode, fired.stdout) == (
        0,
        "alarm billing-worker-5xx is ALARM in us-west-2\n",
    )
    assert alarm_states(world, "us-west-2")["billing-worker-5xx"] == "ALARM"
    calmed = cli("world", "alarm", "billing-worker-5xx", "OK", config=path)
    assert calmed.returncode == 0, calmed.stderr
    assert alarm_states(world, "us-west-2")["billing-worker-5xx"] == "OK"

    unknown = cli("world", "alarm", "nope-5xx", "ALARM", config=path)
    assert unknown.returncode == 2
    assert unknown.stderr == (
        "deploy-console: error: the world has no alarm 'nope-5xx' (its alarms: "
        f"{', '.join(f'{p}-5xx' for p in PROD2_PROJECTS)})\n"
    )
    bad_state = cli("world", "alarm", "checkout-api-5xx", "FIRING", config=path)
    assert bad_state.returncode == 2 and len(bad_state.stderr.splitlines()) == 1
    assert "invalid choice: 'FIRING'" in bad_state.stderr
    # A config on AWS itself (no endpoint_url): never touches a real account's alarms.
    real = cli("world", "alarm", "checkout-api-5xx", "ALARM", config=DEMO_CONFIG)
    assert real.returncode == 2
    assert real.stderr.startswith(
        "deploy-console: error: cluster staging is not on the embedded world"
    )


def test_a_whole_alarm_name_is_seeded_as_given_and_a_pattern_per_project() -> None:
    demo = load_config(DEMO_CONFIG)
    clusters = tuple(
        dataclasses.replace(c, bake=BakeSettings(60, ("orders-latency", "storefront-*")))
        if c.name == "prod1"
        else c
        for c in demo.clusters
    )
    wanted = wanted_alarms(dataclasses.replace(demo, clusters=clusters))
    east = [name for region, name in wanted if region == "us-east-1"]
    assert east == ["orders-latency", "storefront-5xx"]  # checkout-api-5xx: not its pattern
