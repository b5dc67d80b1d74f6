"""Putting things back: a failed deploy's rollback, and a dead console's deploy put right."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from console.deploy import retention, traffic
from console.deploy.balancers import health_of
from console.deploy.deployment import Deployment, message
from console.deploy.source import Source
from console.deploy.steps import recorded
from console.errors import AwsError, DeployError
from console.model import Step, StepState
from console.store import Store

if TYPE_CHECKING:
    from console.aws.gateway import AwsGateway


async def roll_back(
    store: Store,
    deployment: Deployment,
    gateway: AwsGateway,
    source: Source | None,
    *,
    timeout: float,
    poll_seconds: float,
) -> tuple[bool, str]:
    """Puts things back as they were: old serving (checked first), then the new removed.
    Whether it did, and what it did or why not."""
    new_ids = await new_instances(deployment, gateway)
    try:
        async with recorded(store, deployment, Step.ROLLBACK) as closing:
            async with asyncio.timeout(timeout):
                if source is not None and deployment.registered:
                    trouble = await _old_serve_again(deployment, source, timeout, poll_seconds)
                    if trouble:
                        closing.append(trouble)
                        return False, trouble
                reused = [i for i in new_ids if i in deployment.reused]
                new_ids = [i for i in new_ids if i not in deployment.reused]
                if new_ids:
                    async with deployment.io():
                        await gateway.call("ec2", "terminate_instances", InstanceIds=new_ids)
                if reused:  # kept instances a rollback started: kept again, not terminated
                    async with deployment.io():
                        await gateway.call("ec2", "stop_instances", InstanceIds=reused)
                    new_ids.append(f"stopped kept {', '.join(reused)}")
                closing.append(f"terminated {', '.join(new_ids) or 'nothing'}")
                return True, f"terminated {', '.join(new_ids) or 'nothing'}; old instances serve"
    except TimeoutError:
        return False, f"rollback did not finish in {timeout:.0f} s"
    except Exception as error:
        return False, f"rollback failed: {message(error)}"


async def _old_serve_again(
    deployment: Deployment, source: Source, timeout: float, poll_seconds: float
) -> str | None:
    """Enable before disable: the old instances serve again (and are healthy) before the new
    leave every load balancer; what went wrong if the old do not become healthy."""
    serving = list(source.serving)
    for balancer in source.balancers:
        back = sorted(i for i in serving if i not in balancer.old_members)
        if back:
            async with deployment.io():
                await balancer.register(back)
    if serving:
        try:
            await traffic.wait_healthy(
                deployment, source.balancers, serving, timeout, poll_seconds, cancellable=False
            )
        except DeployError as error:
            return f"old instances not healthy ({error.message}); new instances left in service"
    registered: dict[str, set[str]] = {}
    for key, instance_id in deployment.registered:
        registered.setdefault(key, set()).add(instance_id)
    await traffic.drain(deployment, source.balancers, registered, poll_seconds)
    return None


async def put_right(
    deployment: Deployment,
    gateway: AwsGateway,
    source: Source,
    steps: dict[str, str],
    poll_seconds: float,
) -> tuple[str, list[str]]:
    """A deploy whose console stopped mid-way, from what its steps say (step -> state) and
    what AWS shows: finished forward if it had begun taking the old instances out and its new
    ones serve, else rolled back. A summary, and the instances terminated."""
    new_ids = await new_instances(deployment, gateway)
    balancers = source.balancers
    if balancers:
        serving_new = [i for i in new_ids if i in source.serving]
    else:
        passed = steps.get(Step.HEALTH_GATE.value) == StepState.SUCCEEDED.value
        serving_new = [i for i in new_ids if i in source.serving] if passed else []
    health = await health_of(balancers)
    forward = Step.DEREGISTER.value in steps and bool(serving_new)
    if forward:
        old = [raw["InstanceId"] for raw in source.instances if raw["InstanceId"] not in new_ids]
        gone, kept = old, [i for i in new_ids if i not in old]
    else:
        gone, kept = new_ids, []
    leaving = traffic.members(balancers, health, gone)
    if any(leaving.values()):
        await traffic.drain(deployment, balancers, leaving, poll_seconds)
    if gone:
        await gateway.call("ec2", "terminate_instances", InstanceIds=gone)
    terminated = ", ".join(gone) or "nothing"
    if forward:
        return f"finished forward: {', '.join(kept)} serve; terminated old {terminated}", gone
    return f"rolled back: terminated {terminated}; the old instances serve", gone


async def new_instances(deployment: Deployment, gateway: AwsGateway) -> list[str]:
    """The instances this deploy launched, even if run_instances' answer was lost."""
    try:
        async with deployment.io():
            found = await gateway.describe_instances(
                [
                    {"Name": "tag:DeployId", "Values": [deployment.deploy_id]},
                    {
                        "Name": "instance-state-name",
                        "Values": ["pending", "running", "stopping", "stopped"],
                    },
                ]
            )
    except AwsError:
        found = []
    return sorted(set(deployment.new_ids) | {raw["InstanceId"] for raw in found})


async def bring_back_kept(
    store: Store,
    deployment: Deployment,
    gateway: AwsGateway,
    source: Source,
    *,
    timeout: float,
    poll_seconds: float,
) -> tuple[bool, str]:
    """After the switch (a bake that went wrong): the kept old instances started, registered
    in every load balancer they served in and healthy there, and only then the new drained
    and terminated (enable before disable). Whether it did, and what it did or why not."""
    old = [raw["InstanceId"] for raw in source.instances]
    try:
        async with recorded(store, deployment, Step.ROLLBACK) as closing:
            async with asyncio.timeout(timeout):
                if old:
                    await retention.start(deployment, gateway, old, timeout, poll_seconds)
                for balancer in source.balancers:
                    back = sorted(balancer.old_members)
                    if back:
                        async with deployment.io():
                            await balancer.register(back)
                        deployment.note(f"registered {', '.join(back)} in {balancer.label} again")
                serving = sorted(set().union(*(b.old_members for b in source.balancers)))
                if serving:
                    try:
                        await traffic.wait_healthy(
                            deployment,
                            source.balancers,
                            serving,
                            timeout,
                            poll_seconds,
                            cancellable=False,
                        )
                    except DeployError as error:
                        trouble = (
                            f"old instances not healthy ({error.message}); "
                            f"new instances left in service"
                        )
                        closing.append(trouble)
                        return False, trouble
                    deployment.note(f"old instances serve again: {', '.join(serving)}")
                new_members = {b.key: set(deployment.new_ids) for b in source.balancers}
                await traffic.drain(deployment, source.balancers, new_members, poll_seconds)
                new_ids = list(deployment.new_ids)
                if new_ids:
                    async with deployment.io():
                        await gateway.call("ec2", "terminate_instances", InstanceIds=new_ids)
                async with deployment.io():
                    await retention.forget(gateway, old)
                done = (
                    f"started {', '.join(old) or 'nothing'} (kept), serving again; "
                    f"terminated {', '.join(new_ids) or 'nothing'}"
                )
                closing.append(done)
                return True, done
    except TimeoutError:
        return False, f"rollback did not finish in {timeout:.0f} s"
    except Exception as error:
        return False, f"rollback failed: {message(error)}"
