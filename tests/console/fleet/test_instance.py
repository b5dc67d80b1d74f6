"""One instance read on demand from the embedded world: tags, health with AWS's reason, the
console output; and the console output's lines made harmless and cut to the last ones."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import pytest

from console.config import Config
from console.fleet.instance import (
    MAX_CONSOLE_LINES,
    InstanceReader,
    console_lines,
)
from console.fleet.inventory import Fleet
from console.model import FleetSnapshot, LoadBalancerKind


@pytest.fixture
async def reader(world_config: Config) -> AsyncIterator[InstanceReader]:
    made = InstanceReader(world_config)
    yield made
    made.close()


@pytest.fixture(scope="module")
def fleet_snapshot(world_config: Config) -> FleetSnapshot:
    import asyncio

    fleet = Fleet(world_config)
    try:
        return asyncio.run(fleet.refresh())
    finally:
        fleet.close()


async def test_a_failing_instance_reads_with_its_tags_console_and_the_elbs_reason(
    reader: InstanceReader, fleet_snapshot: FleetSnapshot
) -> None:
    env = fleet_snapshot.env("media-service", "prod1")
    failing = next(i for i in env.instances if not i.serving)
    details = await reader.read("media-service", "prod1", failing.id)
    assert details.error is None
    assert (details.state, details.image_id, details.private_address) == (
        failing.state,
        failing.image_id,
        failing.private_address,
    )
    assert details.version == failing.version
    assert [key for key, _ in details.tags] == sorted(key for key, _ in details.tags)
    assert ("Environment", "prod1") in details.tags
    assert ("Project", "media-service") in details.tags
    [health] = details.health
    assert (health.name, health.kind, health.state, health.reason) == (
        "media-service-prod1",
        LoadBalancerKind.CLASSIC,
        "OutOfService",
        "Instance",
    )
    assert health.description.startswith("Instance has failed at least the UnhealthyThreshold")
    console = details.console
    assert console.error is None and console.timestamp is not None
    assert console.lines[0].startswith("Linux version") and console.total_lines == len(
        console.lines
    )


async def test_an_instance_in_a_target_group_and_a_classic_elb_reads_both(
    reader: InstanceReader, fleet_snapshot: FleetSnapshot
) -> None:
    env = fleet_snapshot.env("partner-gateway", "prod1")
    details = await reader.read("partner-gateway", "prod1", env.instances[0].id)
    assert [(h.name, h.kind_word, h.state, h.serving) for h in details.health] == [
        ("partner-gateway-legacy", "classic ELB", "InService", True),
        ("partner-gateway-prod1", "target group", "healthy", True),
    ]
    # AWS's "N/A" is no reason.
    assert [(h.reason, h.description) for h in details.health] == [("", ""), ("", "")]


async def test_a_stopped_instance_out_of_its_target_group_says_why(
    reader: InstanceReader, fleet_snapshot: FleetSnapshot
) -> None:
    stopped = next(
        i for i in fleet_snapshot.env("storefront", "prod2").instances if i.state == "stopped"
    )
    details = await reader.read("storefront", "prod2", stopped.id)
    assert details.state == "stopped"
    [health] = details.health
    assert (health.state, health.reason) == ("unused", "Target.InvalidState")
    assert not health.serving


async def test_an_instance_that_is_gone_is_one_line_and_hides_nothing_else(
    reader: InstanceReader,
) -> None:
    details = await reader.read("media-service", "prod1", "i-0123456789abcdef0")
    assert details.error == "i-0123456789abcdef0 is not in prod1 any more (terminated?)"
    assert "\n" not in details.error
    [health] = details.health
    assert health.state == "OutOfService" and health.description == "not registered"


async def test_a_missing_target_group_and_an_unreachable_cluster_are_one_line_each(
    world_config: Config, fleet_snapshot: FleetSnapshot
) -> None:
    project = world_config.project("storefront")
    settings = dataclasses.replace(project.clusters["prod1"], target_groups=("no-such-group",))
    renamed = dataclasses.replace(project, clusters={**project.clusters, "prod1": settings})
    projects = tuple(renamed if p.name == "storefront" else p for p in world_config.projects)
    instance = fleet_snapshot.env("storefront", "prod1").instances[0]
    reader = InstanceReader(dataclasses.replace(world_config, projects=projects))
    try:
        details = await reader.read("storefront", "prod1", instance.id)
    finally:
        reader.close()
    [health] = details.health
    assert health.state == "unknown"
    assert health.description.startswith("TargetGroupNotFound:")
    clusters = tuple(
        dataclasses.replace(c, endpoint_url="http://127.0.0.1:9") for c in world_config.clusters
    )
    reader = InstanceReader(dataclasses.replace(world_config, clusters=clusters))
    try:
        details = await reader.read("storefront", "prod1", instance.id)
    finally:
        reader.close()
    assert details.error is not None and "\n" not in details.error
    assert details.console.error is not None and details.console.error.startswith(
        "cannot read the console output: "
    )


def test_console_lines_keep_the_last_ones_harmless() -> None:
    assert console_lines(None) == ((), 0)
    assert console_lines("") == ((), 0)
    text = "".join(f"line {n}\r\n" for n in range(MAX_CONSOLE_LINES + 20)) + "\n\n"
    lines, total = console_lines(text)
    assert total == MAX_CONSOLE_LINES + 20
    assert len(lines) == MAX_CONSOLE_LINES and lines[-1] == f"line {MAX_CONSOLE_LINES + 19}"
    assert console_lines("\x1b[31mred\x1b[0m \x1b]52;c;aGk=\x07 done") == (
        ("red \\x1b]52;c;aGk=\\x07 done",),
        1,
    )
