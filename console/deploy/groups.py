"""Red/black between Auto Scaling groups (Spinnaker's server groups) for a group-backed pair.

A pair whose `stack` says `group = true` runs its instances in Auto Scaling groups named
PROJECT-CLUSTER-vNNN, one per deploy, each on a launch template of its own (the release's image
with the pair's launch settings). A deploy makes the next group beside the serving one, with
the serving group's capacity and no load balancer, configures its instances like any deploy,
registers them and attaches the group once they are healthy; the old group is detached (its
instances drain) and deleted. Before the switch a failure suspends the new group's launches
(so that nothing replaces what the rollback terminates) and deletes it: the old group never
left. The engine runs the same steps either way; this module does what differs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from console.config import ClusterConfig, Config, ProjectConfig
from console.deploy.deployment import Cadence, Deployment
from console.deploy.launch import MANAGED_BY, launch_arguments, wait_running
from console.deploy.source import Source
from console.errors import AwsError, DeployError
from console.model import Release

if TYPE_CHECKING:
    from console.aws.gateway import AwsGateway

GROUP_VERSION = re.compile(r"-v(\d{3,})$")
# What a group of a pair is called: the pair and a sequence number, as Spinnaker names them.
GROUP_NAME = "{project}-{cluster}-v{number:03d}"
# Processes suspended on a group being taken down: nothing launches or replaces instances.
FROZEN = ["Launch", "ReplaceUnhealthy", "HealthCheck", "AZRebalance"]


def is_group_pair(project: ProjectConfig, cluster: ClusterConfig) -> bool:
    settings = project.clusters.get(cluster.name)
    return settings is not None and settings.stack is not None and settings.stack.group


@dataclass
class PairGroups:
    """A pair's Auto Scaling groups as AWS describes them, and which serve (are attached)."""

    groups: list[dict[str, Any]] = field(default_factory=list)

    def serving(self, target_group_arns: set[str], elb_names: set[str]) -> list[dict[str, Any]]:
        return [
            group
            for group in self.groups
            if set(group.get("TargetGroupARNs", ())) & target_group_arns
            or set(group.get("LoadBalancerNames", ())) & elb_names
        ]

    def next_name(self, project: str, cluster: str) -> str:
        numbers = [
            int(match.group(1))
            for group in self.groups
            if (match := GROUP_VERSION.search(group["AutoScalingGroupName"]))
        ]
        number = max(numbers, default=-1) + 1
        return GROUP_NAME.format(project=project, cluster=cluster, number=number)

    def capacity(self, serving: list[dict[str, Any]], fallback: int) -> int:
        """The new group's size: the serving groups' desired capacity, at least one."""
        wanted = sum(int(group.get("DesiredCapacity", 0)) for group in serving)
        return max(1, wanted or fallback)


async def pair_groups(
    gateway: AwsGateway, config: Config, project: str, cluster: str
) -> PairGroups:
    """The pair's groups (by their Project and Environment tags), oldest first."""
    found = await gateway.paginate(
        "autoscaling", "describe_auto_scaling_groups", "AutoScalingGroups", 100
    )
    tags = config.tags
    mine = []
    for group in found:
        values = {tag["Key"]: tag.get("Value") for tag in group.get("Tags", [])}
        if values.get(tags.project) == project and values.get(tags.environment) == cluster:
            mine.append(group)
    mine.sort(key=lambda group: str(group.get("CreatedTime", "")))
    return PairGroups(mine)


def _balancer_refs(source: Source) -> tuple[set[str], set[str]]:
    """The pair's target group ARNs and classic ELB names (what a group attaches to)."""
    arns = {b.key for b in source.balancers if b.key.startswith("arn:")}
    names = {b.key for b in source.balancers if not b.key.startswith("arn:")}
    return arns, names


async def plan_group(
    gateway: AwsGateway,
    config: Config,
    pair: tuple[ProjectConfig, ClusterConfig],
    source: Source,
) -> tuple[str, int, tuple[str, ...]]:
    """What a deploy would do to a group-backed pair: the group it makes, its size, and the
    serving groups it replaces (read only)."""
    project, cluster = pair
    groups = await pair_groups(gateway, config, project.name, cluster.name)
    serving = groups.serving(*_balancer_refs(source))
    return (
        groups.next_name(project.name, cluster.name),
        groups.capacity(serving, len(source.serving)),
        tuple(group["AutoScalingGroupName"] for group in serving),
    )


def bare(source: Source, new_ids: list[str]) -> list[str]:
    """The pair's old instances that no group owns (a pair made of bare instances before)."""
    return [
        raw["InstanceId"]
        for raw in source.instances
        if raw["InstanceId"] not in new_ids
        and not any(tag["Key"] == "aws:autoscaling:groupName" for tag in raw.get("Tags", []))
    ]


async def launch_group(
    deployment: Deployment,
    gateway: AwsGateway,
    config: Config,
    pair: tuple[ProjectConfig, ClusterConfig],
    release: Release,
    source: Source,
) -> None:
    """The deploy's group beside the serving one, unattached; returns when its instances
    run with passing status checks (deployment.new_ids)."""
    project, cluster = pair
    async with deployment.io():
        groups = await pair_groups(gateway, config, project.name, cluster.name)
        arguments = await launch_arguments(gateway, project, cluster, source)
    serving = groups.serving(*_balancer_refs(source))
    count = groups.capacity(serving, len(source.serving))
    name = groups.next_name(project.name, cluster.name)
    deployment.group_name = name
    data: dict[str, Any] = {
        "ImageId": release.image_id,
        "InstanceType": arguments["InstanceType"],
        "SecurityGroupIds": arguments.get("SecurityGroupIds", []),
    }
    for key in ("KeyName", "IamInstanceProfile"):
        if key in arguments:
            data[key] = arguments[key]
    tags = config.tags
    tag_values = {
        tags.project: project.name,
        tags.environment: cluster.name,
        tags.version: release.version,
        "DeployId": deployment.deploy_id,
        "ManagedBy": MANAGED_BY,
        "Name": f"{project.name}-{cluster.name}",
    }
    deployment.note(
        f"group {name}: {count} x {data['InstanceType']} from {release.image_id}"
        f"{' beside ' + ', '.join(g['AutoScalingGroupName'] for g in serving) if serving else ''}"
    )
    async with deployment.io():
        await gateway.call(
            "ec2",
            "create_launch_template",
            LaunchTemplateName=name,
            LaunchTemplateData=data,
            TagSpecifications=[
                {
                    "ResourceType": "launch-template",
                    "Tags": [{"Key": "DeployId", "Value": deployment.deploy_id}],
                }
            ],
        )
        await gateway.call(
            "autoscaling",
            "create_auto_scaling_group",
            AutoScalingGroupName=name,
            LaunchTemplate={"LaunchTemplateName": name, "Version": "$Latest"},
            MinSize=count,
            MaxSize=count,
            DesiredCapacity=count,
            VPCZoneIdentifier=arguments["SubnetId"],
            Tags=[
                {"Key": key, "Value": value, "PropagateAtLaunch": True}
                for key, value in tag_values.items()
            ],
        )
    await _wait_in_service(deployment, gateway, name, count, config)
    deployment.note(f"{name} runs {', '.join(deployment.new_ids)}; waiting for status checks")
    engine = config.engine
    await wait_running(
        deployment, gateway, engine.instance_ready_timeout_seconds, engine.poll_seconds
    )


async def _wait_in_service(
    deployment: Deployment, gateway: AwsGateway, name: str, count: int, config: Config
) -> None:
    """Until the group has `count` instances in service; their ids become the new ones."""
    engine = config.engine
    cadence = Cadence(engine.poll_seconds)
    pending = f"{name} to have {count} instances in service"
    async with deployment.waiting_for(engine.instance_ready_timeout_seconds, pending) as wait:
        while True:
            async with deployment.io(), wait.asking():
                answer = await gateway.call(
                    "autoscaling", "describe_auto_scaling_groups", AutoScalingGroupNames=[name]
                )
            groups = answer.get("AutoScalingGroups", [])
            instances = groups[0].get("Instances", []) if groups else []
            ids = sorted(i["InstanceId"] for i in instances)
            deployment.new_ids = ids
            if sum(1 for i in instances if i.get("LifecycleState") == "InService") >= count:
                return
            if wait.expired:
                raise DeployError(f"{name} did not have {count} instances in service in time")
            await deployment.pause(min(cadence.delay(), wait.left()))


async def attach(deployment: Deployment, gateway: AwsGateway, source: Source) -> None:
    """The deploy's group attached to the pair's load balancers (its instances are registered
    already): from now the group keeps them in, replacements included."""
    name = deployment.group_name
    if not name:
        return
    arns, names = _balancer_refs(source)
    async with deployment.io():
        if arns:
            await gateway.call(
                "autoscaling",
                "attach_load_balancer_target_groups",
                AutoScalingGroupName=name,
                TargetGroupARNs=sorted(arns),
            )
        if names:
            await gateway.call(
                "autoscaling",
                "attach_load_balancers",
                AutoScalingGroupName=name,
                LoadBalancerNames=sorted(names),
            )
    deployment.note(f"attached {name} to the load balancers")


async def detach_old(
    deployment: Deployment, gateway: AwsGateway, config: Config, source: Source
) -> list[str]:
    """The serving groups other than the deploy's detached from the load balancers (so that
    they do not put their instances back while those drain); their names."""
    request = deployment.request
    async with deployment.io():
        groups = await pair_groups(gateway, config, request.project, request.cluster)
    arns, names = _balancer_refs(source)
    mine = deployment.group_name
    old = [g for g in groups.serving(arns, names) if g["AutoScalingGroupName"] != mine]
    for group in old:
        name = group["AutoScalingGroupName"]
        async with deployment.io():
            attached = sorted(set(group.get("TargetGroupARNs", ())) & arns)
            if attached:
                await gateway.call(
                    "autoscaling",
                    "detach_load_balancer_target_groups",
                    AutoScalingGroupName=name,
                    TargetGroupARNs=attached,
                )
            classic = sorted(set(group.get("LoadBalancerNames", ())) & names)
            if classic:
                await gateway.call(
                    "autoscaling",
                    "detach_load_balancers",
                    AutoScalingGroupName=name,
                    LoadBalancerNames=classic,
                )
        deployment.note(f"detached {name} from the load balancers")
    return [g["AutoScalingGroupName"] for g in old]


async def delete_groups(
    deployment: Deployment, gateway: AwsGateway, config: Config, keep: str | None
) -> list[str]:
    """Every group of the pair but `keep` deleted with its instances (and the launch
    template a deploy made for it); their names."""
    request = deployment.request
    async with deployment.io():
        groups = await pair_groups(gateway, config, request.project, request.cluster)
    gone = [g["AutoScalingGroupName"] for g in groups.groups if g["AutoScalingGroupName"] != keep]
    for name in gone:
        await remove_group(deployment, gateway, name)
    return gone


async def remove_group(deployment: Deployment, gateway: AwsGateway, name: str) -> None:
    """One group frozen, deleted with its instances, and its launch template removed."""
    async with deployment.io():
        try:
            await gateway.call(
                "autoscaling",
                "suspend_processes",
                AutoScalingGroupName=name,
                ScalingProcesses=FROZEN,
            )
            await gateway.call(
                "autoscaling",
                "delete_auto_scaling_group",
                AutoScalingGroupName=name,
                ForceDelete=True,
            )
        except AwsError as error:
            if "not found" not in error.message.lower():
                raise
        try:
            await gateway.call("ec2", "delete_launch_template", LaunchTemplateName=name)
        except AwsError as error:  # a group made by hand has no template of ours
            deployment.note(f"{name}: launch template left ({error.message})")
    deployment.note(f"deleted group {name}")


async def freeze(deployment: Deployment, gateway: AwsGateway) -> None:
    """Before a rollback terminates the new instances: the new group replaces none."""
    name = deployment.group_name
    if not name:
        return
    async with deployment.io():
        await gateway.call(
            "autoscaling", "suspend_processes", AutoScalingGroupName=name, ScalingProcesses=FROZEN
        )


async def resume(deployment: Deployment, gateway: AwsGateway) -> None:
    """A frozen group that turned out to be the one serving: it manages its instances again."""
    name = deployment.group_name
    if name:
        async with deployment.io():
            await gateway.call(
                "autoscaling",
                "resume_processes",
                AutoScalingGroupName=name,
                ScalingProcesses=FROZEN,
            )


async def deploy_group(gateway: AwsGateway, config: Config, deployment: Deployment) -> str | None:
    """The group this deploy made (by its DeployId tag), if any: a restarted console finds it."""
    request = deployment.request
    groups = await pair_groups(gateway, config, request.project, request.cluster)
    for group in groups.groups:
        values = {tag["Key"]: tag.get("Value") for tag in group.get("Tags", [])}
        if values.get("DeployId") == deployment.deploy_id:
            return str(group["AutoScalingGroupName"])
    return None
