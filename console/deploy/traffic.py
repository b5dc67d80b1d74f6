"""Moving traffic: registering in every load balancer, waiting for health, draining out."""

from __future__ import annotations

from collections.abc import Sequence

from console.aws.waits import Wait
from console.deploy.balancers import GONE_STATES, Balancer, health_of
from console.deploy.deployment import Cadence, Deployment
from console.errors import AwsNoAnswer, DeployError
from console.model import SERVING_STATES

Health = dict[str, dict[str, str]]  # balancer key -> instance id -> state


async def register(deployment: Deployment, balancers: Sequence[Balancer]) -> None:
    """Puts the new instances in every balancer, remembering each registration."""
    instances = deployment.new_ids
    for balancer in balancers:
        async with deployment.io():
            await balancer.register(instances)
        deployment.registered.update((balancer.key, i) for i in instances)
        deployment.note(f"registered {', '.join(instances)} in {balancer.label}")


async def health_in(
    deployment: Deployment, wait: Wait, balancers: Sequence[Balancer], silent: str
) -> tuple[Health | None, str]:
    """One health read within a wait: (the states, "") or, when AWS did not answer, (None,
    what the silence says: its first word says most, a timeout or a refused connection)."""
    try:
        async with deployment.io(), wait.asking():
            return await health_of(balancers), ""
    except AwsNoAnswer as error:
        return None, silent or f"; AWS did not answer ({error.message})"


async def wait_healthy(
    deployment: Deployment,
    balancers: Sequence[Balancer],
    instances: Sequence[str],
    timeout: float,
    poll_seconds: float,
    *,
    cancellable: bool = True,
) -> None:
    """Until every instance is healthy in every balancer; missing counts as not healthy.

    Ends at its deadline whatever AWS does: each call gets the time left."""
    cadence = Cadence(poll_seconds)
    last = silent = ""
    unknown = [(i, b.label, "no answer yet") for b in balancers for i in instances]
    waiting = [f"{i} is not known yet in {label}" for i, label, _ in unknown]
    pending = "; ".join(f"{i} healthy in {label}: {state}" for i, label, state in unknown)
    async with deployment.waiting_for(timeout, pending) as wait:
        while True:
            health, silent = await health_in(deployment, wait, balancers, silent)
            if health is not None:
                states = [
                    (i, b.label, health[b.key].get(i, "not registered"))
                    for b in balancers
                    for i in instances
                    if health[b.key].get(i) not in SERVING_STATES
                ]
                if not states:
                    return
                waiting = [f"{i} is {state} in {label}" for i, label, state in states]
                wait.waiting_for = "; ".join(
                    f"{i} healthy in {label}: {state}" for i, label, state in states
                )
                summary = "; ".join(waiting)
                if summary != last:
                    deployment.note(f"waiting: {summary}")
                    last = summary
            if wait.expired:
                raise DeployError(f"not healthy after {timeout:.0f} s: {waiting[0]}{silent}")
            if cancellable:
                await deployment.pause(min(cadence.delay(), wait.left()))
            else:
                async with deployment.io():
                    await wait.sleep(cadence.delay())


async def traffic_guard(deployment: Deployment, balancers: Sequence[Balancer]) -> None:
    """Refuses to go on unless every balancer keeps healthy new instances once the old leave."""
    health = await health_of(balancers)
    for balancer in balancers:
        remaining = {
            i
            for i, state in health[balancer.key].items()
            if state in SERVING_STATES and i not in balancer.old_members
        }
        if not remaining or not set(deployment.new_ids) <= remaining:
            raise DeployError(
                f"traffic guard: {balancer.label} would have no healthy new instance "
                f"once the old ones leave"
            )
    deployment.note("traffic guard passed: every load balancer keeps healthy new instances")


async def drain(
    deployment: Deployment,
    balancers: Sequence[Balancer],
    members: dict[str, set[str]],
    poll_seconds: float,
) -> str:
    """Takes instances out of balancers (per balancer key) and waits for their draining to
    end; says how it ended."""
    for balancer in balancers:
        leaving = sorted(members.get(balancer.key, ()))
        if not leaving:
            continue
        async with deployment.io():
            await balancer.deregister(leaving)
        deployment.note(
            f"deregistered {', '.join(leaving)} from {balancer.label}; "
            f"draining up to {balancer.drain_seconds} s"
        )
    longest = max((b.drain_seconds for b in balancers if members.get(b.key)), default=0)
    timeout = longest + poll_seconds * 2 + 5
    cadence = Cadence(poll_seconds)
    departing = [(i, b.label) for b in balancers for i in sorted(members.get(b.key, ()))]
    still = [f"{i} in {label}" for i, label in departing]
    pending = "; ".join(f"{i} to leave {label}" for i, label in departing)
    silent = ""
    async with deployment.waiting_for(timeout, pending) as wait:
        while True:
            health, silent = await health_in(deployment, wait, balancers, silent)
            if health is not None:
                states = [
                    (i, b.label, health[b.key][i])
                    for b in balancers
                    for i in sorted(members.get(b.key, ()))
                    if health[b.key].get(i, "gone") not in GONE_STATES
                ]
                if not states:
                    return f"drained in every load balancer (delay up to {longest} s)"
                still = [f"{i} {state} in {label}" for i, label, state in states]
                wait.waiting_for = "; ".join(
                    f"{i} to leave {label} (now {state})" for i, label, state in states
                )
            if wait.expired:
                return f"deregistration delay of {longest} s passed ({still[0]}{silent})"
            async with deployment.io():
                await wait.sleep(cadence.delay())


def members(
    balancers: Sequence[Balancer], health: Health, ids: Sequence[str]
) -> dict[str, set[str]]:
    """Per balancer key, which of `ids` are in it (not yet gone)."""
    return {
        b.key: {i for i in ids if health[b.key].get(i, "gone") not in GONE_STATES}
        for b in balancers
    }
