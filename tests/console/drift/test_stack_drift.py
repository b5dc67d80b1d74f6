"""Stack drift on moto's CloudFormation: a stack as its template says has no finding; a
property changed by hand through boto3 is one, naming the resource, the property, the
template's value and the running one. A lab pair of its own in the stack lab's region."""

from __future__ import annotations

from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from console.aws.gateway import AwsGateway
from console.config import Config, load_config
from console.drift.findings import STACK
from console.drift.stacks import stack_findings
from console.stacks.plan import plan_stack
from console.world.server import World
from tests.stack_lab import CLUSTER, REGION, seed_lab

PROJECT = "drifty"
CONFIG = """\
[[clusters]]
name = "planlab"
region = "ap-southeast-2"
endpoint_url = "{endpoint}"

[[projects]]
name = "drifty"
repository = "https://example.com/drifty"
dns = "{{project}}.{{cluster}}.planlab.test"

[projects.clusters.planlab]
target_groups = ["drifty-planlab"]
stack = {{ health_path = "/health" }}

[projects.clusters.planlab.launch]
instance_type = "t3.small"
subnet = "planlab-app-a"
security_groups = ["planlab-web"]
"""


@pytest.fixture
async def lab(world: World, tmp_path: Path) -> AsyncIterator[tuple[Config, AwsGateway]]:
    seed_lab(world)
    path = tmp_path / "drifty.toml"
    path.write_text(CONFIG.format(endpoint=world.endpoint_url))
    config = load_config(path)
    executor = ThreadPoolExecutor(max_workers=4)
    yield config, AwsGateway(config.cluster(CLUSTER), executor)
    executor.shutdown(wait=False)


async def test_a_property_changed_by_hand_is_a_stack_finding(
    lab: tuple[Config, AwsGateway], world: World
) -> None:
    config, gateway = lab
    assert await stack_findings(config, lambda _cluster: gateway) == []  # no stack yet
    plan = await plan_stack(gateway, config, PROJECT, CLUSTER)
    world.client("cloudformation", REGION).execute_change_set(ChangeSetName=plan.change_set_id)
    assert await stack_findings(config, lambda _cluster: gateway) == []  # as its template says

    elbv2 = world.client("elbv2", REGION)
    (group,) = elbv2.describe_target_groups(Names=["drifty-planlab"])["TargetGroups"]
    elbv2.modify_target_group(TargetGroupArn=group["TargetGroupArn"], HealthCheckPath="/by-hand")
    (finding,) = await stack_findings(config, lambda _cluster: gateway)
    assert (finding.kind, finding.project, finding.cluster) == (STACK, PROJECT, CLUSTER)
    assert finding.subject == "TargetGroup HealthCheckPath"
    assert finding.what == (
        "stack dc-drifty-planlab: TargetGroup (AWS::ElasticLoadBalancingV2::TargetGroup) changed "
        "outside the console: HealthCheckPath: template /health, running /by-hand"
    )
    assert finding.todo.startswith("set it back to /health")
