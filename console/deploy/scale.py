"""Scaling a pair (a queue entry of kind "scale"): more instances at the running release, or
fewer (drained first), through the deploy's own steps; the new desired count on record.

Scaling out launches the missing instances at the release the pair's serving instances run,
with the pair's launch settings and tags (DeployId = this entry), configures them over SSH as
a deploy does, and registers them only once launched and configured; they count once healthy
in every load balancer. Scaling in takes the unhealthy instances first, then the oldest, out
of every load balancer (waiting for the deregistration delay) and only then terminates them;
it never leaves a pair without a healthy target. Every step is on record before it acts
(console/deploy/steps.py): a scale whose console died is put right like a deploy (its new
instances, found by their DeployId tag, removed).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from console.config import ClusterConfig, Config, ProjectConfig
from console.config.provisioning import MAX_DESIRED
from console.deploy import group_scale, traffic
from console.deploy.balancers import health_of
from console.deploy.configure import OpenHost, configure
from console.deploy.deployment import DeployCancelled, Deployment, message
from console.deploy.entry import KIND_SCALE, entry_text
from console.deploy.launch import launch
from console.deploy.planner import Gateways
from console.deploy.releases import resolve_release
from console.deploy.rollback import put_right as deploy_put_right
from console.deploy.rollback import roll_back
from console.deploy.source import Source
from console.errors import DeployError
from console.events import DeployStarted
from console.identity import person
from console.model import DeployRequest, DeployState, Release, Step
from console.store.desired import config_count, desired_count, record_scale

if TYPE_CHECKING:
    from console.aws.gateway import AwsGateway
    from console.store import StepRecord, Store

KIND = KIND_SCALE


class DeployEngine(Protocol):
    """What a scale uses of console.deploy.engine.DeployEngine (its own steps and reads)."""

    config: Config
    store: Store
    _gateway: Gateways
    _open_host: OpenHost

    def now(self) -> datetime: ...

    def _pair(self, request: DeployRequest) -> tuple[ProjectConfig, ClusterConfig]: ...

    def _deploy_gateway(self, cluster_name: str, user: str) -> AwsGateway: ...

    async def _read_source(
        self, gateway: AwsGateway, project: ProjectConfig, cluster: ClusterConfig
    ) -> Source: ...

    def _step(
        self, deployment: Deployment, step: Step, detail: str = ""
    ) -> AbstractAsyncContextManager[list[str]]: ...


__all__ = [
    "KIND",
    "MAX_DESIRED",
    "ScalePlan",
    "ScaleRefused",
    "desired_count",
    "entry_text",
    "parse_count",
    "plan_scale",
    "put_right",
    "scale",
]


class ScaleRefused(DeployError):
    """The scale may not run as the pair is now (it would leave no healthy target, there is
    no release to copy): nothing changed. A refusal, not bad input."""


def instances(count: int) -> str:
    return f"{count} instance{'s' if count != 1 else ''}"


def parse_count(text: str) -> int:
    """N as typed: a whole number from 1 to MAX_DESIRED; DeployError (bad input) otherwise.
    Zero is refused: a pair keeps at least one healthy target (remove the pair instead)."""
    try:
        count = int(text.strip())
    except ValueError:
        raise DeployError(f"the count must be a whole number, not {text!r}") from None
    if count < 1:
        raise DeployError(
            f"a pair keeps at least one instance: cannot scale to {count} "
            "(remove the pair from the config instead)"
        )
    if count > MAX_DESIRED:
        raise DeployError(f"{count} instances is above the most a pair may run ({MAX_DESIRED})")
    return count


def is_group(config: Config, project: str, cluster: str) -> bool:
    """Whether the pair is backed by an Auto Scaling group (its stack's `group = true`)."""
    settings = config.project(project).clusters[cluster]
    return settings.stack is not None and settings.stack.group


@dataclass(frozen=True)
class ScalePlan:
    """What scaling a pair to `target` would do, read from AWS (nothing changed)."""

    project: str
    cluster: str
    protected: bool
    target: int
    current: int  # pending or running instances now
    serving: tuple[str, ...]  # healthy in every load balancer
    version: str | None  # the release the serving instances run (new ones get it)
    removing: tuple[str, ...]  # scaling in: unhealthy first, then the oldest
    desired: int | None  # the desired count before the scale
    refusal: str | None  # why it may not run (nothing would be changed)

    @property
    def adding(self) -> int:
        return max(0, self.target - self.current)

    def text(self) -> str:
        """One line: what the scale does."""
        head = f"scale {self.project} in {self.cluster}: {self.current} -> {self.target}"
        if self.refusal:
            return f"{head}: refused: {self.refusal}"
        if self.adding:
            return f"{head}: launch {self.adding} at {self.version}, registered once healthy"
        if self.removing:
            return f"{head}: drain then terminate {', '.join(self.removing)}"
        return f"{head}: already {self.target}; the desired count is recorded"


def _version(config: Config, raw: dict[str, Any]) -> str | None:
    for tag in raw.get("Tags") or ():
        if tag.get("Key") == config.tags.version:
            return str(tag.get("Value"))
    return None


def running_version(config: Config, source: Source) -> str | None:
    """The release most serving instances run (else most running ones run)."""
    serving = set(source.serving)
    chosen = [raw for raw in source.instances if raw["InstanceId"] in serving] or source.instances
    counts: dict[str, int] = {}
    for raw in chosen:
        version = _version(config, raw)
        if version:
            counts[version] = counts.get(version, 0) + 1
    return max(sorted(counts), key=lambda v: counts[v]) if counts else None


def leaving(source: Source, count: int) -> list[str]:
    """The `count` instances a scale-in removes: unhealthy ones first, then the oldest."""
    serving = set(source.serving)
    ordered = sorted(
        source.instances,
        key=lambda raw: (raw["InstanceId"] in serving, str(raw.get("LaunchTime", ""))),
    )
    return [raw["InstanceId"] for raw in ordered[:count]]


def refusal(source: Source, target: int, version: str | None) -> str | None:
    """Why scaling `source` to `target` may not run, if it may not."""
    current = len(source.instances)
    if target > current and not source.instances:
        return "no instance runs to copy the release from: deploy a release first"
    if target > current and version is None:
        return "the running instances carry no version tag: deploy a release first"
    if target < current:
        remaining = set(source.serving) - set(leaving(source, current - target))
        if not remaining:
            return (
                f"no healthy target would remain ({len(source.serving)} of {current} "
                "healthy now): a pair keeps at least one healthy target"
            )
    return None


async def plan_scale(engine: DeployEngine, request: DeployRequest) -> ScalePlan:
    """What scaling to `request.release` would do, read from AWS as the request's actor."""
    project, cluster = engine._pair(request)
    target = parse_count(request.release)
    gateway = await asyncio.to_thread(engine._gateway, cluster.name, person(request.actor))
    source = await engine._read_source(gateway, project, cluster)
    return _plan(engine, project, cluster, target, source, await _desired(engine, request))


async def _desired(engine: DeployEngine, request: DeployRequest) -> int | None:
    return await desired_count(engine.store, engine.config, request.project, request.cluster)


def _plan(
    engine: DeployEngine,
    project: ProjectConfig,
    cluster: ClusterConfig,
    target: int,
    source: Source,
    desired: int | None,
) -> ScalePlan:
    current = len(source.instances)
    version = running_version(engine.config, source)
    return ScalePlan(
        project=project.name,
        cluster=cluster.name,
        protected=cluster.protected,
        target=target,
        current=current,
        serving=tuple(source.serving),
        version=version,
        removing=tuple(leaving(source, current - target)) if target < current else (),
        desired=desired,
        refusal=refusal(source, target, version),
    )


# -- the engine's operation --------------------------------------------------------------------


async def scale(
    engine: DeployEngine,
    deployment: Deployment,
    project: ProjectConfig,
    cluster: ClusterConfig,
) -> tuple[DeployState, str]:
    """The queue entry of kind "scale": the pair to `request.release` instances (see the
    module docstring); its end state and reason, as DeployEngine._operation returns them."""
    request = deployment.request
    target = parse_count(request.release)
    gateway = await asyncio.to_thread(engine._deploy_gateway, cluster.name, person(request.actor))
    async with engine._step(deployment, Step.LOCK, f"held by {request.actor}"):
        pass
    async with engine._step(deployment, Step.RESOLVE, f"scale to {target}") as closing:
        async with deployment.io():
            source = await engine._read_source(gateway, project, cluster)
        plan = _plan(engine, project, cluster, target, source, await _desired(engine, request))
        if plan.refusal:
            raise ScaleRefused(f"refused: {plan.refusal}: nothing changed")
        release = await _release(engine, gateway, plan) if plan.adding else None
        deployment.emit(
            DeployStarted(
                deployment.deploy_id,
                project.name,
                cluster.name,
                f"scale to {target}",
                release.image_id if release is not None else "",
                request.actor,
                engine.now(),
            )
        )
        closing.append(f"{instances(plan.current)}, {len(plan.serving)} healthy: {plan.text()}")
    if plan.adding:
        assert release is not None
        outcome = await _scale_out(engine, deployment, gateway, (project, cluster), release, source)
    elif plan.removing:
        outcome = await _scale_in(
            engine, deployment, gateway, (project, cluster), source, list(plan.removing)
        )
    else:
        outcome = (DeployState.SUCCEEDED, f"{instances(target)} already run")
    if outcome[0] is DeployState.SUCCEEDED:
        await _record(engine, deployment, plan, outcome[1])
    return outcome


async def _release(engine: DeployEngine, gateway: AwsGateway, plan: ScalePlan) -> Release:
    assert plan.version is not None
    return await resolve_release(engine.config, gateway, plan.project, plan.cluster, plan.version)


async def _scale_out(
    engine: DeployEngine,
    deployment: Deployment,
    gateway: AwsGateway,
    pair: tuple[ProjectConfig, ClusterConfig],
    release: Release,
    source: Source,
) -> tuple[DeployState, str]:
    """Launch, configure, register and wait healthy; anything that fails (or a cancel) takes
    the new instances out and terminates them (the old never left)."""
    project, cluster = pair
    settings = engine.config.engine
    adding = int(deployment.request.release) - len(source.instances)
    # launch() launches as many as its source serves: a source serving `adding` placeholders.
    wanted = Source(source.instances, [f"(new {n})" for n in range(adding)], source.balancers)
    group = None
    if is_group(engine.config, project.name, cluster.name):
        group = await group_scale.serving_group(gateway, engine.config, deployment, source)
    try:
        async with engine._step(deployment, Step.LAUNCH, f"{adding} at {release.version}") as c:
            if group is not None:  # the group launches them, from its own launch template
                target = len(source.instances) + adding
                await deployment.cancellable(
                    group_scale.grow(deployment, gateway, engine.config, group, target)
                )
            else:
                await deployment.cancellable(
                    launch(deployment, gateway, engine.config, pair, release, wanted)
                )
            c.append(", ".join(deployment.new_ids))
        async with engine._step(deployment, Step.CONFIGURE):
            await deployment.cancellable(
                configure(deployment, gateway, project, cluster, engine._open_host)
            )
        async with engine._step(deployment, Step.REGISTER) as c:
            await deployment.cancellable(traffic.register(deployment, source.balancers))
            c.append(", ".join(b.label for b in source.balancers) or "no load balancer")
        gate = max((b.time_to_healthy for b in source.balancers), default=0)
        timeout = gate + settings.health_gate_margin_seconds
        async with engine._step(deployment, Step.HEALTH_GATE, f"up to {timeout:.0f} s"):
            if source.balancers:
                await traffic.wait_healthy(
                    deployment, source.balancers, deployment.new_ids, timeout,
                    settings.poll_seconds,
                )  # fmt: skip
    except Exception as error:
        why = message(error)
        if group is not None:  # out of the group first: it replaces nothing it no longer has
            await group_scale.let_go(deployment, gateway, len(source.instances))
        back, how = await roll_back(
            engine.store, deployment, gateway, source,
            timeout=settings.rollback_timeout_seconds, poll_seconds=settings.poll_seconds,
        )  # fmt: skip
        if not back:
            return DeployState.FAILED, f"{why}; {how}"
        state = DeployState.CANCELLED if isinstance(error, DeployCancelled) else DeployState.FAILED
        return state, f"{why}; the new instances removed: {how}"
    total = len(source.instances) + len(deployment.new_ids)
    return (
        DeployState.SUCCEEDED,
        f"{instances(total)}: {', '.join(deployment.new_ids)} at {release.version} serve "
        f"beside {len(source.instances)}",
    )


async def _scale_in(
    engine: DeployEngine,
    deployment: Deployment,
    gateway: AwsGateway,
    pair: tuple[ProjectConfig, ClusterConfig],
    source: Source,
    removing: list[str],
) -> tuple[DeployState, str]:
    """Out of every load balancer (drained), then terminated (through its group, for a
    group-backed pair). A cancel before the drain changes nothing; once drained, the instances
    are terminated."""
    if deployment.cancelled.is_set():
        return DeployState.CANCELLED, f"{deployment.cancel_reason}: nothing changed"
    group = None
    if is_group(engine.config, pair[0].name, pair[1].name):
        group = await group_scale.serving_group(gateway, engine.config, deployment, source)
    if group is not None:
        async with deployment.io():
            await group_scale.lower_minimum(gateway, group, len(source.instances) - len(removing))
    poll = engine.config.engine.poll_seconds
    leaving = ", ".join(removing)  # in both steps' records: a reconcile reads them there
    async with engine._step(deployment, Step.DEREGISTER, leaving) as closing:
        members = {b.key: b.old_members & set(removing) for b in source.balancers}
        drained = await traffic.drain(deployment, source.balancers, members, poll)
        closing.append(f"{leaving}: {drained}")
    async with engine._step(deployment, Step.TERMINATE, leaving) as closing:
        if group is not None:
            await group_scale.shrink(deployment, gateway, group, removing)
        else:
            async with deployment.io():
                await gateway.call("ec2", "terminate_instances", InstanceIds=removing)
        closing.append(", ".join(removing))
    left = len(source.instances) - len(removing)
    return DeployState.SUCCEEDED, f"{instances(left)}: drained and terminated {', '.join(removing)}"


async def _record(
    engine: DeployEngine, deployment: Deployment, plan: ScalePlan, summary: str
) -> None:
    """The pair's new desired count, with its audit row (one transaction)."""
    request = deployment.request
    before = "no desired count" if plan.desired is None else f"desired {plan.desired}"
    async with engine.store.transaction() as tx:
        await record_scale(
            tx,
            project=plan.project,
            cluster=plan.cluster,
            count=plan.target,
            config_value=config_count(engine.config, plan.project, plan.cluster),
            actor=request.actor,
            deploy_id=deployment.deploy_id,
            reason=deployment.masker.mask(f"{before} -> {plan.target}; {summary}"),
        )
    deployment.note(f"desired count of {plan.project} in {plan.cluster}: {plan.target}")


# -- after a console died ----------------------------------------------------------------------

INSTANCE_ID = re.compile(r"\bi-[0-9a-f]{8,17}\b")


async def put_right(
    engine: DeployEngine,
    deployment: Deployment,
    gateway: AwsGateway,
    source: Source,
    steps: Sequence[StepRecord],
) -> tuple[str, list[str]]:
    """A scale whose console stopped mid-way (DeployEngine.reconcile, holding the pair's
    lock): a summary and the instances terminated.

    A scale-out (no deregister step on record) is put right as a deploy is: its new
    instances, found by their DeployId tag, drained and terminated. A scale-in had named the
    instances it removes in its deregister and terminate steps: it is finished forward (those
    still alive drained and terminated) while another healthy target remains; if none would,
    they are put back in every load balancer instead."""
    poll = engine.config.engine.poll_seconds
    records = {step.step: step for step in steps}
    if Step.DEREGISTER.value not in records:
        states = {name: step.state for name, step in records.items()}
        return await deploy_put_right(deployment, gateway, source, states, poll)
    named = " ".join(records[s].detail for s in (Step.DEREGISTER.value, Step.TERMINATE.value)
                     if s in records)  # fmt: skip
    leaving = set(INSTANCE_ID.findall(named))
    alive = [raw["InstanceId"] for raw in source.instances if raw["InstanceId"] in leaving]
    if not alive:
        return "finished forward: the instances it removed are gone", []
    if not set(source.serving) - leaving:  # the last healthy targets: back in service
        for balancer in source.balancers:
            await balancer.register(alive)
        return f"rolled back: {', '.join(alive)} registered again (no other healthy target)", []
    health = await health_of(source.balancers)
    members = traffic.members(source.balancers, health, alive)
    if any(members.values()):
        await traffic.drain(deployment, source.balancers, members, poll)
    await gateway.call("ec2", "terminate_instances", InstanceIds=alive)
    return f"finished forward: drained and terminated {', '.join(alive)}", alive
