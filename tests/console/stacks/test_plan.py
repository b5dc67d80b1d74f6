"""Stack plans through boto3 on moto's CloudFormation: a new stack, none, a change, a rename."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from console.aws.gateway import AwsGateway
from console.config import Config
from console.stacks.diff import Action, Replacement
from console.stacks.live import differences, read_live
from console.stacks.plan import StackPlan, current_template, plan_stack, stack_state
from console.world.server import World
from tests.stack_lab import BARE, CLUSTER, FRESH, PROJECT, REGION, changed_pair, lab_config


@pytest.fixture(scope="module")
def lab(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Config]:
    """The lab config, its pair's stack created from its first plan (then the stack's)."""
    config = lab_config(world, tmp_path_factory.mktemp("planlab"))
    yield config


@pytest.fixture
async def gateway(lab: Config) -> AsyncIterator[AwsGateway]:
    executor = ThreadPoolExecutor(max_workers=4)
    yield AwsGateway(lab.cluster(CLUSTER), executor)
    executor.shutdown(wait=False)


def by_id(plan: StackPlan) -> dict[str, object]:
    return {r.change.logical_id: r for r in plan.resources}


async def made(gateway: AwsGateway, config: Config, world: World) -> StackPlan:
    """The pair's stack exists (created from a CREATE plan, executed as `stack apply` would)."""
    cloudformation = world.client("cloudformation", REGION)
    stacks = cloudformation.describe_stacks()["Stacks"]
    if any(
        s["StackName"] == "dc-probe-planlab" and s["StackStatus"] != "REVIEW_IN_PROGRESS"
        for s in stacks
    ):
        return await plan_stack(gateway, config, PROJECT, CLUSTER)
    plan = await plan_stack(gateway, config, PROJECT, CLUSTER)
    assert plan.change_set_type == "CREATE" and plan.stack_status is None
    assert {r.action for r in plan.resources} == {Action.ADD}
    assert [r.change.logical_id for r in plan.resources] == [
        "SecurityGroup", "LoadBalancer", "TargetGroup", "Listener", "LaunchTemplate", "DnsRecord",
    ]  # fmt: skip
    cloudformation.execute_change_set(ChangeSetName=plan.change_set_id)
    return plan


async def test_a_new_stack_adds_everything_then_an_unchanged_pair_changes_nothing(
    lab: Config, gateway: AwsGateway, world: World
) -> None:
    await made(gateway, lab, world)
    plan = await plan_stack(gateway, lab, PROJECT, CLUSTER)
    assert plan.change_set_type == "UPDATE" and plan.stack_status == "CREATE_COMPLETE"
    assert plan.unchanged and plan.change_set_id is None
    assert plan.as_json()["counts"] == {"add": 0, "modify": 0, "replace": 0, "remove": 0}


async def test_a_health_change_modifies_the_target_group_in_place(
    lab: Config, gateway: AwsGateway, world: World
) -> None:
    await made(gateway, lab, world)
    config = changed_pair(lab, health_path="/healthz", deregistration_delay_seconds=60.0)
    plan = await plan_stack(gateway, config, PROJECT, CLUSTER)
    assert [r.change.logical_id for r in plan.resources] == ["TargetGroup"]
    group = plan.resources[0]
    assert group.action is Action.MODIFY and group.change.replacement is Replacement.NO
    assert group.physical_id is not None and ":targetgroup/probe-planlab/" in group.physical_id
    assert [p.describe() for p in group.change.properties] == [
        "HealthCheckPath: /health -> /healthz",
        "TargetGroupAttributes.deregistration_delay.timeout_seconds: 30 -> 60",
    ]
    assert plan.change_set_id is not None and plan.change_set_name is not None


async def test_a_rename_replaces_the_load_balancer_and_moves_the_dns_record(
    lab: Config, gateway: AwsGateway, world: World
) -> None:
    await made(gateway, lab, world)
    config = changed_pair(lab, target_groups=("probe-planlab-2",))
    plan = await plan_stack(gateway, config, PROJECT, CLUSTER)
    actions = {r.change.logical_id: r.action for r in plan.resources}
    assert actions == {
        "LoadBalancer": Action.REPLACE, "TargetGroup": Action.REPLACE,
        "Listener": Action.REPLACE, "DnsRecord": Action.MODIFY,
    }  # fmt: skip
    assert "LoadBalancer's DNS name now: probe-planlab-" in " ".join(
        n for r in plan.resources for n in r.change.notes
    )
    assert plan.dns_moves() == [
        "DNS moves: probe.planlab.planlab.test. will point at the new LoadBalancer's DNS name"
    ]


async def test_a_change_made_outside_the_console_is_a_difference(
    lab: Config, gateway: AwsGateway, world: World
) -> None:
    await made(gateway, lab, world)
    template = await current_template(gateway, "dc-probe-planlab")
    live = await read_live(gateway, "dc-probe-planlab", template)
    assert {r.logical_id for r in live if r.properties is not None} >= {
        "LoadBalancer", "TargetGroup", "SecurityGroup", "LaunchTemplate", "DnsRecord",
    }  # fmt: skip
    group = next(r for r in live if r.logical_id == "TargetGroup")
    elbv2 = world.client("elbv2", REGION)
    elbv2.modify_target_group(TargetGroupArn=group.physical_id, HealthCheckPath="/by-hand")
    try:
        live = await read_live(gateway, "dc-probe-planlab", template)
        found = [d.describe() for d in differences(template, live)]
        assert "HealthCheckPath: template /health, running /by-hand" in found
    finally:
        elbv2.modify_target_group(TargetGroupArn=group.physical_id, HealthCheckPath="/health")
    live = await read_live(gateway, "dc-probe-planlab", template)
    assert not [d for d in differences(template, live) if d.path == "HealthCheckPath"]


async def test_stack_states(lab: Config, gateway: AwsGateway, world: World) -> None:
    await made(gateway, lab, world)
    probe = await stack_state(gateway, lab, PROJECT, CLUSTER)
    assert (probe.managed, probe.status, probe.changes, probe.in_sync) == (
        True, "CREATE_COMPLETE", 0, True,
    )  # fmt: skip
    fresh = await stack_state(gateway, lab, FRESH, CLUSTER)
    assert (fresh.managed, fresh.status, fresh.in_sync) == (True, None, False)
    assert fresh.changes == 5  # everything to add (no DNS name: no record)
    bare = await stack_state(gateway, lab, BARE, CLUSTER)
    assert (bare.managed, bare.in_sync, bare.as_json()["stack"]) == (False, True, None)
