"""A small lab for stack tests in the session world: its own region (ap-southeast-2, which the
demo fleet never uses) and hosted zone, so that the stacks made here touch no demo pair."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from console.config import Config, load_config
from console.world.server import World

REGION = "ap-southeast-2"
ZONE = "planlab.test"
CLUSTER = "planlab"
PROJECT = "probe"  # a pair with a stack
FRESH = "fresh"  # a pair with a stack not made yet
BARE = "bare"  # a pair without one (its infrastructure is someone else's)
STACK = "dc-probe-planlab"

CONFIG = """\
[[clusters]]
name = "planlab"
region = "ap-southeast-2"
endpoint_url = "{endpoint}"

[[projects]]
name = "probe"
repository = "https://example.com/probe"
dns = "{{project}}.{{cluster}}.planlab.test"

[projects.clusters.planlab]
target_groups = ["probe-planlab"]
stack = {{ health_path = "/health", deregistration_delay = "30s" }}

[projects.clusters.planlab.launch]
instance_type = "t3.small"
subnet = "planlab-app-a"
security_groups = ["planlab-web"]

[[projects]]
name = "fresh"
repository = "https://example.com/fresh"

[projects.clusters.planlab]
target_groups = ["fresh-planlab"]
stack = true

[projects.clusters.planlab.launch]
instance_type = "t3.small"
subnet = "planlab-app-a"

[[projects]]
name = "bare"
repository = "https://example.com/bare"

[projects.clusters.planlab]
target_groups = ["bare-planlab"]
"""


def seed_lab(world: World) -> None:
    """The lab's VPC, subnets, security group and hosted zone (once per process)."""
    ec2 = world.client("ec2", REGION)
    named = ec2.describe_vpcs(Filters=[{"Name": "tag:Name", "Values": ["planlab"]}])["Vpcs"]
    if named:
        return
    vpc = ec2.create_vpc(CidrBlock="10.77.0.0/16")["Vpc"]["VpcId"]
    ec2.create_tags(Resources=[vpc], Tags=[{"Key": "Name", "Value": "planlab"}])
    for index, zone in enumerate(("a", "b")):
        subnet = ec2.create_subnet(
            VpcId=vpc, CidrBlock=f"10.77.{index}.0/24", AvailabilityZone=f"{REGION}{zone}"
        )["Subnet"]["SubnetId"]
        ec2.create_tags(Resources=[subnet], Tags=[{"Key": "Name", "Value": f"planlab-app-{zone}"}])
    ec2.create_security_group(GroupName="planlab-web", Description="web", VpcId=vpc)
    world.client("route53", "us-east-1").create_hosted_zone(
        Name=f"{ZONE}.", CallerReference="deploy-console-planlab"
    )


def lab_path(world: World, folder: Path, name: str = "planlab", **replaced: str) -> Path:
    """The lab's config file (`replaced`: old text -> new text, e.g. a health path)."""
    seed_lab(world)
    text = CONFIG.format(endpoint=world.endpoint_url)
    for old, new in replaced.items():
        assert old in text, old
        text = text.replace(old, new)
    path = folder / f"{name}.toml"
    path.write_text(text)
    return path


def lab_config(world: World, folder: Path) -> Config:
    return load_config(lab_path(world, folder))


def ensure_stack(world: World, config: Config) -> None:
    """The lab pair's stack exists, created from the config as `stack apply` would."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from console.aws.gateway import AwsGateway
    from console.stacks.plan import plan_stack

    cloudformation = world.client("cloudformation", REGION)
    stacks = cloudformation.describe_stacks()["Stacks"]
    if any(s["StackName"] == STACK and s["StackStatus"] != "REVIEW_IN_PROGRESS" for s in stacks):
        return

    async def plan() -> str | None:
        with ThreadPoolExecutor(max_workers=2) as executor:
            gateway = AwsGateway(config.cluster(CLUSTER), executor)
            return (await plan_stack(gateway, config, PROJECT, CLUSTER)).change_set_id

    cloudformation.execute_change_set(ChangeSetName=asyncio.run(plan()))


def changed_pair(config: Config, **changes: Any) -> Config:
    """The config with the lab pair's stack settings changed (e.g. health_path="/healthz"),
    or with target_groups=(...) its load balancer renamed."""
    project = config.project(PROJECT)
    pair = project.clusters[CLUSTER]
    groups = changes.pop("target_groups", pair.target_groups)
    assert pair.stack is not None
    stack = dataclasses.replace(pair.stack, **changes)
    pair = dataclasses.replace(pair, stack=stack, target_groups=groups)
    project = dataclasses.replace(project, clusters={**project.clusters, CLUSTER: pair})
    projects = tuple(project if p.name == PROJECT else p for p in config.projects)
    return dataclasses.replace(config, projects=projects)
