"""Launching a deploy's new instances: run_instances as configured, until they run and pass."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from console.config import ClusterConfig, Config, LaunchSettings, ProjectConfig
from console.deploy.deployment import Cadence, Deployment
from console.deploy.source import Source
from console.errors import AwsNoAnswer, DeployError
from console.model import Release

if TYPE_CHECKING:
    from console.aws.gateway import AwsGateway

MANAGED_BY = "deploy-console"


async def launch(
    deployment: Deployment,
    gateway: AwsGateway,
    config: Config,
    pair: tuple[ProjectConfig, ClusterConfig],
    release: Release,
    source: Source,
) -> None:
    """As many new instances as serve now (at least one), tagged with the deploy; returns
    when they all run with passing status checks."""
    project, cluster = pair
    tags = config.tags
    count = max(1, len(source.serving))
    async with deployment.io():  # it may look subnets and security groups up in AWS
        arguments = await _arguments(gateway, project, cluster, source)
    tag_list = [
        {"Key": tags.project, "Value": project.name},
        {"Key": tags.environment, "Value": cluster.name},
        {"Key": tags.version, "Value": release.version},
        {"Key": "DeployId", "Value": deployment.deploy_id},
        {"Key": "ManagedBy", "Value": MANAGED_BY},
        {"Key": "Name", "Value": f"{project.name}-{cluster.name}"},
    ]
    deployment.note(f"launching {count} x {arguments['InstanceType']} from {release.image_id}")
    async with deployment.io():
        response = await gateway.call(
            "ec2",
            "run_instances",
            ImageId=release.image_id,
            MinCount=count,
            MaxCount=count,
            ClientToken=deployment.deploy_id,
            TagSpecifications=[{"ResourceType": "instance", "Tags": tag_list}],
            **arguments,
        )
    deployment.new_ids = [raw["InstanceId"] for raw in response["Instances"]]
    deployment.note(f"launched {', '.join(deployment.new_ids)}; waiting for running")
    engine = config.engine
    await _wait_running(
        deployment, gateway, engine.instance_ready_timeout_seconds, engine.poll_seconds
    )


async def _wait_running(
    deployment: Deployment, gateway: AwsGateway, timeout: float, poll_seconds: float
) -> None:
    """Until every new instance runs with passing status checks, or the timeout ends."""
    cadence = Cadence(poll_seconds)
    pending = f"{', '.join(deployment.new_ids)} running with passing status checks"
    silent = ""
    async with deployment.waiting_for(timeout, pending) as wait:
        while True:
            try:
                async with deployment.io(), wait.asking():
                    statuses = await gateway.call(
                        "ec2",
                        "describe_instance_status",
                        InstanceIds=deployment.new_ids,
                        IncludeAllInstances=True,
                    )
            except AwsNoAnswer as error:
                # The first word of a silence says most (a timeout, a refused connection).
                silent = silent or f"; AWS did not answer ({error.message})"
            else:
                silent = ""
                found = {s["InstanceId"]: s for s in statuses.get("InstanceStatuses", [])}
                states = {i: _instance_status(found.get(i)) for i in deployment.new_ids}
                if all(state == "ready" for state in states.values()):
                    deployment.note("all new instances running, status checks passed")
                    return
                wait.waiting_for = "; ".join(
                    f"{i} running with passing status checks: {state}"
                    for i, state in states.items()
                    if state != "ready"
                )
            if wait.expired:
                raise DeployError(
                    f"new instances not running with passing status checks after "
                    f"{timeout:.0f} s{silent}"
                )
            await deployment.pause(min(cadence.delay(), wait.left()))


async def _arguments(
    gateway: AwsGateway, project: ProjectConfig, cluster: ClusterConfig, source: Source
) -> dict[str, Any]:
    """run_instances' arguments: the configured launch settings, else the newest instance's."""
    launch = project.clusters[cluster.name].launch
    if launch is not None:
        return await _configured(gateway, cluster, launch)
    if not source.instances:
        raise DeployError(
            f"{project.name} in {cluster.name}: no launch settings and no instance "
            f"to copy them from"
        )
    model = source.instances[-1]
    arguments: dict[str, Any] = {
        "InstanceType": model["InstanceType"],
        "SubnetId": model["SubnetId"],
        "SecurityGroupIds": [g["GroupId"] for g in model.get("SecurityGroups", [])],
    }
    if model.get("KeyName"):
        arguments["KeyName"] = model["KeyName"]
    if model.get("IamInstanceProfile", {}).get("Arn"):
        arguments["IamInstanceProfile"] = {"Arn": model["IamInstanceProfile"]["Arn"]}
    return arguments


async def _configured(
    gateway: AwsGateway, cluster: ClusterConfig, launch: LaunchSettings
) -> dict[str, Any]:
    """The launch settings, with subnet and security group names looked up in AWS."""
    subnet = launch.subnet
    if not subnet.startswith("subnet-"):
        found = await gateway.call(
            "ec2", "describe_subnets", Filters=[{"Name": "tag:Name", "Values": [subnet]}]
        )
        if not found.get("Subnets"):
            raise DeployError(f"subnet {subnet!r} not found in {cluster.name}")
        subnet = found["Subnets"][0]["SubnetId"]
    groups = [g for g in launch.security_groups if g.startswith("sg-")]
    names = [g for g in launch.security_groups if not g.startswith("sg-")]
    if names:
        found = await gateway.call(
            "ec2",
            "describe_security_groups",
            Filters=[{"Name": "group-name", "Values": names}],
        )
        by_name = {g["GroupName"]: g["GroupId"] for g in found.get("SecurityGroups", [])}
        missing = [n for n in names if n not in by_name]
        if missing:
            raise DeployError(f"security group {missing[0]!r} not found in {cluster.name}")
        groups += [by_name[n] for n in names]
    arguments: dict[str, Any] = {"InstanceType": launch.instance_type, "SubnetId": subnet}
    if groups:
        arguments["SecurityGroupIds"] = groups
    if launch.key_name:
        arguments["KeyName"] = launch.key_name
    if launch.instance_profile:
        arguments["IamInstanceProfile"] = {"Name": launch.instance_profile}
    return arguments


def _instance_status(status: dict[str, Any] | None) -> str:
    """An instance's readiness: "ready" (running, status checks passed), else what it is."""
    if status is None:
        return "not listed yet"
    state = status.get("InstanceState", {}).get("Name", "unknown")
    checks = [
        status.get(kind, {}).get("Status", "unknown") for kind in ("InstanceStatus", "SystemStatus")
    ]
    if state == "running" and all(check in ("ok", "not-applicable") for check in checks):
        return "ready"
    return state if state != "running" else f"status checks {'/'.join(checks)}"


# Shared with red/black between Auto Scaling groups (console/deploy/groups.py).
launch_arguments = _arguments
wait_running = _wait_running
