"""The world's stacks: an opted-in pair's load balancer, groups and record, by CloudFormation."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from console.config import ClusterConfig, Config, ProjectConfig, WorldEnv
from console.errors import WorldError
from console.stacks.refs import StackRefs, zone_for
from console.stacks.template import build_template, render, stack_name, stack_tags
from console.world.network import Network


@dataclass(frozen=True)
class SeededStack:
    """What the seed needs of a stack it made: where to register the instances."""

    load_balancer: str  # the classic ELB's name, or the target group's ARN
    classic: bool
    port: int


def newest_running_version(env: WorldEnv | None, versions: tuple[str, ...]) -> str | None:
    """The version the pair's newest running instance will run once seeded (the seed launches
    the older batch first and stops the newest): what the console reads as the image a
    launch template starts from (console/stacks/refs.py)."""
    if env is None or env.instances - env.stopped <= 0:
        return None
    newest = env.instances - env.stopped - 1  # by launch order
    if newest >= env.older:
        return env.version
    return versions[max(0, versions.index(env.version) - 1)]


def world_refs(
    config: Config,
    project: ProjectConfig,
    cluster: ClusterConfig,
    network: Network,
    zones: dict[str, str],
    image_id: str | None,
) -> StackRefs:
    """The refs the console would read for this pair from what the world seeded."""
    settings = project.clusters[cluster.name]
    pair = f"{project.name} in {cluster.name}"
    if settings.launch is None or settings.stack is None:
        raise WorldError(f"{pair}: a stack needs the pair's launch settings")
    launch = settings.launch
    names = settings.stack.subnets or tuple(sorted(network.subnet_ids))
    missing = [n for n in (*names, launch.subnet) if n not in network.subnet_ids]
    missing += [g for g in launch.security_groups if g not in network.security_groups]
    if missing:
        raise WorldError(f"{pair}: the world's {cluster.name} network has no {missing[0]!r}")
    zone_id = None
    if settings.dns:
        zone_id = zone_for(settings.dns, zones)
        if zone_id is None:
            raise WorldError(f"{pair}: no world zone ({', '.join(zones)}) holds {settings.dns}")
    return StackRefs(
        vpc_id=network.vpc_id,
        subnet_ids=tuple(network.subnet_ids[name] for name in names),
        instance_subnet_id=network.subnet_ids[launch.subnet],
        security_group_ids=tuple(network.security_groups[g] for g in launch.security_groups),
        hosted_zone_id=zone_id,
        image_id=image_id,
    )


def seed_stack(
    client: Callable[[str, str], Any],
    config: Config,
    project: ProjectConfig,
    cluster: ClusterConfig,
    refs: StackRefs,
) -> SeededStack:
    """Create the pair's stack from the template the console builds (two calls)."""
    name = stack_name(project.name, cluster.name)
    cloudformation = client("cloudformation", cluster.region)
    template = build_template(config, project.name, cluster.name, refs)
    cloudformation.create_stack(
        StackName=name,
        TemplateBody=render(template),
        Tags=stack_tags(config, project.name, cluster.name),
    )
    stack = cloudformation.describe_stacks(StackName=name)["Stacks"][0]
    if stack["StackStatus"] != "CREATE_COMPLETE":
        raise WorldError(f"stack {name}: {stack['StackStatus']}")
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    port = (
        template["Resources"]["TargetGroup"]["Properties"]["Port"]
        if "TargetGroupArn" in outputs
        else 0
    )
    if "TargetGroupArn" in outputs:
        return SeededStack(outputs["TargetGroupArn"], classic=False, port=port)
    return SeededStack(outputs["LoadBalancerName"], classic=True, port=port)


def register(
    client: Callable[[str, str], Any], region: str, seeded: SeededStack, instance_ids: list[str]
) -> None:
    """The seeded instances in the stack's load balancer, as a deploy registers them."""
    if not instance_ids:
        return
    if seeded.classic:
        client("elb", region).register_instances_with_load_balancer(
            LoadBalancerName=seeded.load_balancer,
            Instances=[{"InstanceId": i} for i in instance_ids],
        )
    else:
        client("elbv2", region).register_targets(
            TargetGroupArn=seeded.load_balancer,
            Targets=[{"Id": i, "Port": seeded.port} for i in instance_ids],
        )
