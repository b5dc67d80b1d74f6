"""Red/black between Auto Scaling groups: a group-backed pair (`stack = { group = true }`).

A small world of its own: one project whose staging pair starts as bare instances. The first
deploy takes it over into a group (PROJECT-CLUSTER-v000); the next makes v001 beside v000,
attaches it once healthy and deletes v000; a bad release's group is deleted and the old one
keeps serving. Everything through boto3 against the world's moto (Auto Scaling included).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from console.config import Config
from console.deploy.services import deploy_services
from console.model import DeployRequest, DeployState, Step, StepState
from console.store import DeployRecord, Store
from screens.deploy.dialog import plan_content
from tests.console.deploy.test_engine import config_head, deploy, finished, steps, world_fixture
from tests.console.queue.test_queue_crash import start, stop, store_until, until_event
from tests.deploy_world import client, live, running_versions, serving_in

CONFIG = (
    config_head(3)
    + """
[[projects]]
name = "ledger"
repository = "https://github.com/example-shop/ledger"

[projects.clusters.staging]
target_groups = ["ledger-staging"]
stack = { group = true }
[projects.clusters.staging.launch]
instance_type = "t3.small"
subnet = "staging-app-a"
security_groups = ["staging-web"]

[projects.deploy]
configure = "sh app/bin/configure"
start = "sh app/bin/start"
health = "sh app/bin/healthcheck"
env_file = "app.env"
startup_timeout_seconds = 12
health_interval_seconds = 0.5

[world]
seed = 12
registration_seconds = 1
health_check_interval_seconds = 5
healthy_threshold = 2
deregistration_delay_seconds = 1

[world.projects.ledger]
versions = ["1.0.0", "1.1.0", "1.2.0"]
broken = ["1.2.0"]
[world.projects.ledger.clusters.staging]
instances = 2
version = "1.0.0"
"""
)

ledger_world = world_fixture("ledger", CONFIG)


def groups(config: Config) -> dict[str, dict[str, Any]]:
    found = client(config, "staging", "autoscaling").describe_auto_scaling_groups()
    return {g["AutoScalingGroupName"]: g for g in found["AutoScalingGroups"]}


def members(group: dict[str, Any]) -> set[str]:
    return {i["InstanceId"] for i in group["Instances"]}


async def test_group_deploys_make_the_next_group_and_delete_the_old(
    ledger_world: Config, tmp_path: Path
) -> None:
    config = ledger_world
    store = tmp_path / "store.db"
    bare = live(config, "ledger", "staging")
    assert len(bare) == 2 and groups(config) == {}

    # The first deploy takes the bare pair over: a group of as many as served.
    first = finished(await deploy(config, store, "ledger", "staging", "1.1.0"))
    assert first.state is DeployState.SUCCEEDED, first.reason
    made = groups(config)
    assert set(made) == {"ledger-staging-v000"}
    v000 = made["ledger-staging-v000"]
    assert v000["DesiredCapacity"] == 2 and len(members(v000)) == 2
    assert v000["TargetGroupARNs"], "the group is attached to the pair's target group"
    assert serving_in(config, "ledger", "staging") == {"ledger-staging": members(v000)}
    assert live(config, "ledger", "staging") == members(v000)  # the bare ones terminated

    # The next: v001 beside v000, then v000 detached, drained and deleted.
    events = await deploy(config, store, "ledger", "staging", "1.0.0")
    second = finished(events)
    assert second.state is DeployState.SUCCEEDED, second.reason
    assert set(steps(events).values()) == {StepState.SUCCEEDED}
    made = groups(config)
    assert set(made) == {"ledger-staging-v001"}
    v001 = made["ledger-staging-v001"]
    assert not members(v001) & members(v000)
    assert serving_in(config, "ledger", "staging") == {"ledger-staging": members(v001)}
    templates = client(config, "staging", "ec2").describe_launch_templates()["LaunchTemplates"]
    assert {t["LaunchTemplateName"] for t in templates} >= {"ledger-staging-v001"}
    assert "ledger-staging-v000" not in {t["LaunchTemplateName"] for t in templates}


async def test_a_bad_release_group_is_deleted_and_the_old_group_serves(
    ledger_world: Config, tmp_path: Path
) -> None:
    config = ledger_world
    store = tmp_path / "store.db"
    if not groups(config):  # run alone: make the pair a group first
        first = finished(await deploy(config, store, "ledger", "staging", "1.1.0"))
        assert first.state is DeployState.SUCCEEDED, first.reason
    (before,) = groups(config).values()
    serving = members(before)

    events = await deploy(config, store, "ledger", "staging", "1.2.0")
    outcome = finished(events)
    assert outcome.state is DeployState.ROLLED_BACK, outcome.reason
    assert StepState.FAILED in steps(events).values()  # its health command fails
    assert "deleted group ledger-staging-v" in outcome.reason
    # Only the old group is left, attached and serving as before.
    assert set(groups(config)) == {before["AutoScalingGroupName"]}
    assert serving_in(config, "ledger", "staging") == {"ledger-staging": serving}


@pytest.mark.parametrize("step", [Step.HEALTH_GATE, Step.TERMINATE], ids=["gate", "terminate"])
async def test_a_group_deploy_killed_mid_way_is_put_right_by_the_next_runner(
    ledger_world: Config, tmp_path: Path, step: Step
) -> None:
    """Killed before the switch: its group is deleted and the old serves; killed while the old
    group goes: finished forward, only the deploy's group is left."""
    config = ledger_world
    text = re.sub(r"lock_stale_seconds = \d+", "lock_stale_seconds = 2", config.source.read_text())
    source = tmp_path / "fast.toml"
    source.write_text(text)
    store = tmp_path / "store.db"
    if not groups(config):
        first = finished(await deploy(config, store, "ledger", "staging", "1.1.0"))
        assert first.state is DeployState.SUCCEEDED, first.reason
    (before,) = groups(config)
    (current,) = running_versions(config, "ledger", "staging")
    release = "1.0.0" if current != "1.0.0" else "1.1.0"
    killed = start(
        "deploy", "ledger", "staging", release, "--json", "--anyway", config=source, store=store
    )
    try:
        started = until_event(
            killed, lambda e: e["event"] == "StepStarted" and e["step"] == step.value
        )
    finally:
        killed.kill()
        killed.wait()
    deploy_id = started["deploy_id"]
    restarted = start("runner", config=source, store=store)
    try:

        async def reconciled(opened: Store) -> DeployRecord | None:
            record = await opened.deploy(deploy_id)
            return record if record and record.reconciled_at else None

        record = await store_until(store, reconciled, f"{deploy_id} reconciled")
    finally:
        stop(restarted)
    assert record.state == "interrupted"
    (left,) = groups(config).values()
    if step is Step.HEALTH_GATE:
        assert left["AutoScalingGroupName"] == before
        assert running_versions(config, "ledger", "staging") == {current}
    else:
        assert left["AutoScalingGroupName"] != before
        assert running_versions(config, "ledger", "staging") == {release}
    assert serving_in(config, "ledger", "staging") == {"ledger-staging": members(left)}
    assert live(config, "ledger", "staging") == members(left)


async def test_the_plan_names_the_group_a_deploy_makes(
    ledger_world: Config, tmp_path: Path
) -> None:
    config = ledger_world
    async with deploy_services(config, tmp_path / "store.db") as services:
        plan = await services.engine.plan(DeployRequest("ledger", "staging", "1.0.0", "tester"))
    serving = [name for name, g in groups(config).items() if g["TargetGroupARNs"]]
    assert plan.replaces_groups == tuple(serving)
    assert plan.group.startswith("ledger-staging-v") and plan.group not in serving
    assert plan.count == max(1, sum(groups(config)[name]["DesiredCapacity"] for name in serving))
    text = plan_content(plan).plain
    assert f"new group      {plan.group}: {plan.count} x t3.small" in text


async def scaled(config: Config, store: Path, count: int) -> list[Any]:
    events: list[Any] = []
    request = DeployRequest("ledger", "staging", str(count), "tester", kind="scale")
    async with deploy_services(config, store) as services:
        async for event in services.engine.run(request):
            events.append(event)
    return events


async def test_scale_sets_the_serving_groups_capacity(ledger_world: Config, tmp_path: Path) -> None:
    """Out: the group grows, its new instances are configured and gated; in: drained, then
    terminated through the group, which shrinks with them."""
    config = ledger_world
    store = tmp_path / "store.db"
    if not groups(config):
        first = finished(await deploy(config, store, "ledger", "staging", "1.1.0"))
        assert first.state is DeployState.SUCCEEDED, first.reason
    (name,) = groups(config)
    before = members(groups(config)[name])

    grown = finished(await scaled(config, store, len(before) + 1))
    assert grown.state is DeployState.SUCCEEDED, grown.reason
    group = groups(config)[name]
    assert (group["MinSize"], group["MaxSize"], group["DesiredCapacity"]) == (len(before) + 1,) * 3
    assert members(group) > before
    assert serving_in(config, "ledger", "staging") == {"ledger-staging": members(group)}

    shrunk = finished(await scaled(config, store, 1))
    assert shrunk.state is DeployState.SUCCEEDED, shrunk.reason
    group = groups(config)[name]
    assert (group["MinSize"], group["MaxSize"], group["DesiredCapacity"]) == (1, 1, 1)
    assert len(members(group)) == 1
    assert serving_in(config, "ledger", "staging") == {"ledger-staging": members(group)}
    assert live(config, "ledger", "staging") == members(group)
