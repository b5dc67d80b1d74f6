"""Scaling a pair backed by an Auto Scaling group: the serving group's capacity, not launches.

Scaling out sets the group's size (min = max = desired, as a group deploy makes it) and waits
for its new instances, which the engine then configures and gates like any; a failure detaches
them from the group (decrementing it) before they are terminated, so nothing replaces them.
Scaling in lowers the group's minimum, drains the chosen instances and terminates them
through the group (decrementing it), then lowers its maximum. A pair of bare instances (one no
group deploy has taken over yet) scales as bare instances do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from console.config import Config
from console.deploy.deployment import Deployment
from console.deploy.groups import _balancer_refs, _wait_in_service, pair_groups
from console.deploy.launch import wait_running
from console.deploy.source import Source

if TYPE_CHECKING:
    from console.aws.gateway import AwsGateway


async def serving_group(
    gateway: AwsGateway, config: Config, deployment: Deployment, source: Source
) -> dict[str, Any] | None:
    """The one group attached to the pair's load balancers (None: bare instances, or more
    than one group serving, which a finished group deploy never leaves)."""
    request = deployment.request
    async with deployment.io():
        groups = await pair_groups(gateway, config, request.project, request.cluster)
    serving = groups.serving(*_balancer_refs(source))
    return serving[0] if len(serving) == 1 else None


async def grow(
    deployment: Deployment,
    gateway: AwsGateway,
    config: Config,
    group: dict[str, Any],
    target: int,
) -> None:
    """The group at `target` instances; deployment.new_ids: the ones it added, running with
    passing status checks."""
    name = str(group["AutoScalingGroupName"])
    before = {i["InstanceId"] for i in group.get("Instances", [])}
    deployment.group_name = name
    deployment.note(f"{name}: {len(before)} -> {target} instances")
    async with deployment.io():
        await _size(gateway, name, target, target, target)
    await _wait_in_service(deployment, gateway, name, target, config)
    deployment.new_ids = [i for i in deployment.new_ids if i not in before]
    engine = config.engine
    await wait_running(
        deployment, gateway, engine.instance_ready_timeout_seconds, engine.poll_seconds
    )


async def let_go(deployment: Deployment, gateway: AwsGateway, current: int) -> None:
    """A failed scale-out: its new instances out of the group (which shrinks back to
    `current`), for the rollback to terminate."""
    name = deployment.group_name
    if not name or not deployment.new_ids:
        return
    async with deployment.io():
        await gateway.call(
            "autoscaling",
            "detach_instances",
            AutoScalingGroupName=name,
            InstanceIds=deployment.new_ids,
            ShouldDecrementDesiredCapacity=True,
        )
        await _size(gateway, name, current, current, current)
    deployment.note(f"{name}: {', '.join(deployment.new_ids)} detached; back to {current}")


async def lower_minimum(gateway: AwsGateway, group: dict[str, Any], target: int) -> None:
    """Before a scale-in drains: the group may go down to `target`."""
    await gateway.call(
        "autoscaling",
        "update_auto_scaling_group",
        AutoScalingGroupName=group["AutoScalingGroupName"],
        MinSize=target,
    )


async def shrink(
    deployment: Deployment, gateway: AwsGateway, group: dict[str, Any], removing: list[str]
) -> None:
    """The drained instances terminated through the group (it shrinks with each), then its
    size set to what is left."""
    name = str(group["AutoScalingGroupName"])
    for instance_id in removing:
        async with deployment.io():
            await gateway.call(
                "autoscaling",
                "terminate_instance_in_auto_scaling_group",
                InstanceId=instance_id,
                ShouldDecrementDesiredCapacity=True,
            )
    left = len(group.get("Instances", [])) - len(removing)
    async with deployment.io():
        await _size(gateway, name, left, left, left)
    deployment.note(f"{name}: {left} instances")


async def _size(gateway: AwsGateway, name: str, low: int, high: int, desired: int) -> None:
    await gateway.call(
        "autoscaling",
        "update_auto_scaling_group",
        AutoScalingGroupName=name,
        MinSize=low,
        MaxSize=high,
        DesiredCapacity=desired,
    )
