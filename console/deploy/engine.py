"""The deploy engine: a red/black deploy of one project to one cluster, told as events.

The rules it keeps are DEPLOY_SEMANTICS.md's, step by step: the old instances serve until the
new ones are healthy in every load balancer, any failure or cancel before the switch puts
things back (enable before disable), and every step is written to the store before it acts.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import secrets as random_tokens
import shlex
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from console.access import Access, Action
from console.aws.waits import Wait
from console.config import ClusterConfig, Config, ProjectConfig, SshSettings
from console.deploy.releases import resolve_release
from console.errors import AwsError, AwsNoAnswer, ConsoleError, DeployError, StoreError
from console.events import (
    DeployEvent,
    DeployFinished,
    DeployStarted,
    DeployWaiting,
    OutputLine,
    StepFinished,
    StepStarted,
)
from console.identity import person
from console.model import (
    SERVING_STATES,
    DeployPlan,
    DeployRequest,
    DeployState,
    LoadBalancerKind,
    PlannedLoadBalancer,
    Release,
    Step,
    StepState,
)
from console.safe_text import SecretMasker
from console.store import DeployRecord, Store

if TYPE_CHECKING:
    # Only the type: boto3 loads with the first gateway (console/fleet/inventory.py).
    from console.aws.gateway import AwsGateway

T = TypeVar("T")

MANAGED_BY = "deploy-console"
# States a deregistered target passes through before it is gone.
GONE_STATES = frozenset({"unused", "OutOfService", "gone"})


class Gateways(Protocol):
    """A cluster's AWS gateway whose calls are made for `user` (Fleet.gateway): with a role,
    AWS records that user as the session's SourceIdentity."""

    def __call__(
        self, cluster_name: str, user: str | None = None, *, deploy: bool = False
    ) -> AwsGateway: ...


class RemoteHost(Protocol):
    async def run(
        self,
        command: str,
        *,
        stdin: str | None = None,
        on_line: Callable[[str, str], None] | None = None,
        timeout: float | None = None,
    ) -> int: ...


OpenHost = Callable[[SshSettings, str], AbstractAsyncContextManager[RemoteHost]]


class DeployCancelled(ConsoleError):
    """Someone cancelled the deploy."""


def new_deploy_id(now: datetime) -> str:
    return f"d-{now:%Y%m%d-%H%M%S}-{random_tokens.token_hex(3)}"


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Balancer:
    """One load balancer (classic ELB or target group) the project's instances serve in."""

    kind: LoadBalancerKind
    name: str
    arn: str  # the target group ARN; the name again for a classic ELB
    time_to_healthy: int
    drain_seconds: int
    old_members: set[str] = field(default_factory=set)

    @property
    def label(self) -> str:
        what = "classic ELB" if self.kind is LoadBalancerKind.CLASSIC else "target group"
        return f"{what} {self.name}"


@dataclass
class _Source:
    """The project's instances before the deploy, and the load balancers they serve in."""

    instances: list[dict[str, Any]]
    serving: list[str]
    balancers: list[_Balancer]


class Deployment:
    """One running deploy: its events, its cancel switch, and what it changed so far."""

    def __init__(self, deploy_id: str, request: DeployRequest) -> None:
        self.deploy_id = deploy_id
        self.request = request
        self.events: asyncio.Queue[DeployEvent] = asyncio.Queue()
        self.cancelled = asyncio.Event()
        self.cancel_reason = ""
        self.new_ids: list[str] = []
        self.registered: set[tuple[str, str]] = set()  # (balancer arn, instance id)
        self.claimed = False  # given by the queue: its record and lock exist already
        self.log: list[tuple[datetime, str, str, str]] = []  # output not yet stored
        # Every text of this deploy passes it before it is shown or stored: the secrets it
        # read from SSM, in every form, never leave the engine.
        self.masker = SecretMasker()
        self.started = time.perf_counter()
        self.waiting = 0.0
        self._io_depth = 0
        self._io_since = 0.0

    def cancel(self, reason: str = "cancelled") -> None:
        self.cancel_reason = reason
        self.cancelled.set()

    @contextlib.asynccontextmanager
    async def io(self) -> AsyncIterator[None]:
        """Marks time spent waiting on AWS, SSH or a timer (overlapping waits count once)."""
        if self._io_depth == 0:
            self._io_since = time.perf_counter()
        self._io_depth += 1
        try:
            yield
        finally:
            self._io_depth -= 1
            if self._io_depth == 0:
                self.waiting += time.perf_counter() - self._io_since


class Cadence:
    """Ticks every `period` seconds from its start, however long each round took.

    A loop that sleeps `period` after its work polls every period + work, and the work grows
    when many deploys share the loop and the endpoint: the polls drift. Here a round that
    overran its tick waits for the next one (no burst to catch up)."""

    def __init__(self, period: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.period = period
        self._clock = clock
        self._next = clock() + period

    def delay(self) -> float:
        """Seconds until the next tick (which it then consumes)."""
        now = self._clock()
        if now >= self._next:
            missed = int((now - self._next) // self.period) + 1
            self._next += missed * self.period
        delay = self._next - now
        self._next += self.period
        return delay


class DeployPlanner:
    """Says what a deploy would do, read from AWS alone: no store, no SSH, nothing changed.

    A command line plans first, so bad input is refused before the store is even created.
    """

    def __init__(self, config: Config, gateway: Gateways) -> None:
        self.config = config
        self._gateway = gateway

    # -- planning ------------------------------------------------------------------------

    def _pair(self, request: DeployRequest) -> tuple[ProjectConfig, ClusterConfig]:
        try:
            project = self.config.project(request.project)
            cluster = self.config.cluster(request.cluster)
        except ConsoleError as error:
            raise DeployError(error.message) from None
        if cluster.name not in project.clusters:
            raise DeployError(f"project {project.name} is not configured in cluster {cluster.name}")
        return project, cluster

    async def plan(self, request: DeployRequest) -> DeployPlan:
        """What deploying `request` would do, read from AWS; changes nothing."""
        project, cluster = self._pair(request)
        gateway = await asyncio.to_thread(self._gateway, cluster.name, person(request.actor))
        release = await resolve_release(
            self.config, gateway, project.name, cluster.name, request.release
        )
        source = await self._read_source(gateway, project, cluster)
        instance_type = await self._instance_type(project, cluster, source)
        return DeployPlan(
            project=project.name,
            cluster=cluster.name,
            protected=cluster.protected,
            release=release,
            current_versions=tuple(
                sorted({self._tag(i, self.config.tags.version) or "?" for i in source.instances})
            ),
            old_instances=tuple(i["InstanceId"] for i in source.instances),
            instance_type=instance_type,
            count=max(1, len(source.serving)),
            load_balancers=tuple(
                PlannedLoadBalancer(
                    name=b.name,
                    kind=b.kind,
                    removing=tuple(sorted(b.old_members)),
                    time_to_healthy_seconds=b.time_to_healthy,
                    drain_seconds=b.drain_seconds,
                )
                for b in source.balancers
            ),
        )

    async def _instance_type(
        self, project: ProjectConfig, cluster: ClusterConfig, source: _Source
    ) -> str:
        launch = project.clusters[cluster.name].launch
        if launch is not None:
            return launch.instance_type
        if source.instances:
            return str(source.instances[0].get("InstanceType", "?"))
        raise DeployError(
            f"{project.name} in {cluster.name}: no launch settings in the config and no "
            f"instance to copy them from"
        )

    def _main_version(self, source: _Source) -> str | None:
        """The release most of the old instances run (what a rollback would put back)."""
        counts: dict[str, int] = {}
        for raw in source.instances:
            version = self._tag(raw, self.config.tags.version)
            if version:
                counts[version] = counts.get(version, 0) + 1
        return max(sorted(counts), key=lambda v: counts[v]) if counts else None

    @staticmethod
    def _tag(raw: dict[str, Any], key: str) -> str | None:
        for tag in raw.get("Tags") or ():
            if tag.get("Key") == key:
                return str(tag.get("Value"))
        return None

    async def _read_source(
        self, gateway: AwsGateway, project: ProjectConfig, cluster: ClusterConfig
    ) -> _Source:
        tags = self.config.tags
        instances = await gateway.describe_instances(
            [
                {"Name": f"tag:{tags.project}", "Values": [project.name]},
                {"Name": f"tag:{tags.environment}", "Values": [cluster.name]},
                {"Name": "instance-state-name", "Values": ["pending", "running"]},
            ]
        )
        instances.sort(key=lambda raw: (str(raw.get("LaunchTime", "")), raw["InstanceId"]))
        settings = project.clusters[cluster.name]
        balancers: list[_Balancer] = []
        if settings.classic_elbs:
            response = await gateway.call(
                "elb", "describe_load_balancers", LoadBalancerNames=list(settings.classic_elbs)
            )
            for lb in response["LoadBalancerDescriptions"]:
                check = lb.get("HealthCheck", {})
                attributes = await gateway.classic_attributes(lb["LoadBalancerName"])
                draining = attributes.get("ConnectionDraining", {})
                balancers.append(
                    _Balancer(
                        LoadBalancerKind.CLASSIC,
                        lb["LoadBalancerName"],
                        lb["LoadBalancerName"],
                        _time_to_healthy(check.get("Interval"), check.get("HealthyThreshold")),
                        int(draining.get("Timeout", 0)) if draining.get("Enabled") else 0,
                    )
                )
        if settings.target_groups:
            response = await gateway.call(
                "elbv2", "describe_target_groups", Names=list(settings.target_groups)
            )
            for tg in response["TargetGroups"]:
                attributes = await gateway.target_group_attributes(tg["TargetGroupArn"])
                balancers.append(
                    _Balancer(
                        LoadBalancerKind.TARGET_GROUP,
                        tg["TargetGroupName"],
                        tg["TargetGroupArn"],
                        _time_to_healthy(
                            tg.get("HealthCheckIntervalSeconds"), tg.get("HealthyThresholdCount")
                        ),
                        int(attributes.get("deregistration_delay.timeout_seconds", 300)),
                    )
                )
        ids = [raw["InstanceId"] for raw in instances]
        health = await self._health(gateway, balancers)
        serving = set(ids)
        for balancer in balancers:
            states = health[balancer.arn]
            balancer.old_members = {i for i in ids if i in states and states[i] != "gone"}
            serving &= {i for i in ids if states.get(i) in SERVING_STATES}
        if not balancers:
            serving = {raw["InstanceId"] for raw in instances if _state(raw) == "running"}
        return _Source(instances, sorted(serving), balancers)

    async def _health(
        self, gateway: AwsGateway, balancers: Iterable[_Balancer]
    ) -> dict[str, dict[str, str]]:
        """Per balancer ARN: instance id -> state (only registered instances are listed)."""

        async def read(balancer: _Balancer) -> tuple[str, dict[str, str]]:
            if balancer.kind is LoadBalancerKind.CLASSIC:
                states = await gateway.classic_health(balancer.name)
                return balancer.arn, {s["InstanceId"]: s.get("State", "Unknown") for s in states}
            descriptions = await gateway.target_health(balancer.arn)
            return balancer.arn, {
                d["Target"]["Id"]: d.get("TargetHealth", {}).get("State", "unavailable")
                for d in descriptions
            }

        return dict(await asyncio.gather(*(read(b) for b in balancers)))


class DeployEngine(DeployPlanner):
    """Plans and runs deploys; several pairs may run at once, each its own Deployment."""

    def __init__(
        self,
        config: Config,
        gateway: Gateways,
        store: Store,
        open_host: OpenHost,
        *,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        super().__init__(config, gateway)
        self.store = store
        self._open_host = open_host
        self._clock = clock
        self.running: dict[str, Deployment] = {}

    def _deploy_gateway(self, cluster_name: str, user: str) -> AwsGateway:
        """The gateway a deploy changes the fleet with: the cluster's deploy role, if any."""
        return self._gateway(cluster_name, user, deploy=True)

    def now(self) -> datetime:
        return self._clock()

    async def rollback_request(self, deploy_id: str, actor: str) -> DeployRequest:
        """A finished deploy's rollback: a new deploy of the release it replaced."""
        record = await self.store.deploy(deploy_id)
        if record is None:
            raise DeployError(f"unknown deploy {deploy_id!r}")
        if record.state != DeployState.SUCCEEDED.value:
            raise DeployError(
                f"deploy {deploy_id} {record.state.replace('_', ' ')}: only a deploy that "
                f"succeeded is rolled back (the others never left the old release)"
            )
        if not record.previous_release:
            raise DeployError(f"deploy {deploy_id} replaced no release: nothing to roll back to")
        return DeployRequest(
            record.project, record.cluster, record.previous_release, actor, rollback_of=deploy_id
        )

    # -- running -------------------------------------------------------------------------

    async def run(
        self, request: DeployRequest, *, claimed: DeployRecord | None = None
    ) -> AsyncIterator[DeployEvent]:
        """Run one deploy to its end, yielding its events.

        `claimed`: a deploy the queue gave this console (its record is running and its
        pair's lock is held already). Without it the deploy bypasses the queue: raises
        LockBusy (from the store) before any event if the pair is being deployed.
        Closing the iterator early cancels the deploy, which then rolls back.
        """
        project, cluster = self._pair(request)
        if claimed is None:  # the queue checked a claimed deploy when it was queued
            Access(self.config).check(
                request.actor, Action.DEPLOY, cluster.name, project=project.name
            )
            deploy_id = new_deploy_id(self._clock())
            await self.store.acquire_lock(
                project.name,
                cluster.name,
                deploy_id,
                request.actor,
                stale_after=self.config.engine.lock_stale_seconds,
            )
        else:
            deploy_id = claimed.id
        deployment = Deployment(deploy_id, request)
        deployment.claimed = claimed is not None
        self.running[deploy_id] = deployment
        task = asyncio.create_task(self._execute(deployment, project, cluster))
        try:
            while True:
                getter = asyncio.ensure_future(deployment.events.get())
                done, _ = await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
                if getter in done:
                    event = getter.result()
                    yield event
                    if isinstance(event, DeployFinished):
                        break
                    continue
                getter.cancel()
                task.result()  # re-raises what broke the engine itself
                while not deployment.events.empty():
                    yield deployment.events.get_nowait()
                break
        finally:
            if not task.done():
                deployment.cancel("cancelled: the console stopped following the deploy")
                # Let the rollback finish even if our caller is being cancelled.
                await asyncio.shield(task)
            self.running.pop(deploy_id, None)

    def cancel(self, deploy_id: str, actor: str) -> bool:
        deployment = self.running.get(deploy_id)
        if deployment is None:
            return False
        deployment.cancel(f"cancelled by {actor}")
        return True

    async def _execute(
        self, deployment: Deployment, project: ProjectConfig, cluster: ClusterConfig
    ) -> None:
        request = deployment.request
        deploy_id = deployment.deploy_id
        state = DeployState.FAILED
        reason = ""
        heartbeat = asyncio.create_task(self._heartbeat(deployment))
        try:
            if not deployment.claimed:
                await self.store.create_deploy(
                    _record(deploy_id, request, self._clock(), DeployState.RUNNING)
                )
            state, reason = await self._red_black(deployment, project, cluster)
        except Exception as error:  # the engine must always finish what it started
            reason = _message(error)
            state = DeployState.FAILED
        finally:
            reason = deployment.masker.mask(reason)
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
            try:
                await self._flush_log(deployment)
            except StoreError as error:
                reason = f"{reason}; its output is not all recorded: {error.message}"
            try:
                # The outcome, its audit row and the pair's lock: one transaction.
                await self.store.set_deploy_state(
                    deploy_id,
                    state.value,
                    reason=reason,
                    release=(project.name, cluster.name),
                    audit={
                        "action": "deploy.finished",
                        "actor": request.actor,
                        "project": project.name,
                        "cluster": cluster.name,
                        "deploy_id": deploy_id,
                        "outcome": state.value,
                        "reason": reason,
                    },
                )
            except StoreError as error:
                # Said, not swallowed: the deploy's end is not on record, so its lease runs
                # out and the next runner reconciles it against AWS.
                reason = f"{reason}; not recorded: {error.message}"
            total = time.perf_counter() - deployment.started
            self._emit(
                deployment,
                DeployFinished(
                    deploy_id, state, reason, round(total, 3), round(total - deployment.waiting, 3)
                ),
            )

    async def _heartbeat(self, deployment: Deployment) -> None:
        """Keeps the pair's lock (the queue's lease) fresh, stores the output so far, and
        hears a cancel asked from another console (`queue cancel`)."""
        request = deployment.request
        period = max(0.5, self.config.engine.lock_stale_seconds / 3)
        tick = min(period, 1.0)
        beat = time.monotonic()
        while True:
            await asyncio.sleep(tick)
            if time.monotonic() - beat >= period:
                beat = time.monotonic()
                held = await self.store.heartbeat(
                    request.project, request.cluster, deployment.deploy_id
                )
                if not held:
                    deployment.cancel("cancelled: the deploy lost its lock (heartbeat went stale)")
                    return
            await self._flush_log(deployment)
            if not deployment.cancelled.is_set():
                asked = await self.store.cancel_requested(deployment.deploy_id)
                if asked:
                    deployment.cancel(f"cancelled by {asked}")

    async def _flush_log(self, deployment: Deployment) -> None:
        lines, deployment.log = deployment.log, []
        await self.store.append_log(deployment.deploy_id, lines)

    def _emit(self, deployment: Deployment, event: DeployEvent) -> None:
        event = _masked(event, deployment.masker)
        if isinstance(event, OutputLine):
            deployment.log.append((self._clock(), event.source, event.stream, event.text))
        deployment.events.put_nowait(event)

    def _note(self, deployment: Deployment, text: str) -> None:
        self._emit(deployment, OutputLine(deployment.deploy_id, "console", text))

    async def _health_in(
        self,
        deployment: Deployment,
        wait: Wait,
        gateway: AwsGateway,
        balancers: Iterable[_Balancer],
        silent: str,
    ) -> tuple[dict[str, dict[str, str]] | None, str]:
        """One health read within a wait: (the states, "") or, when AWS did not answer, (None,
        what the silence says: its first word says most, a timeout or a refused connection)."""
        try:
            async with deployment.io(), wait.asking():
                return await self._health(gateway, balancers), ""
        except AwsNoAnswer as error:
            return None, silent or f"; AWS did not answer ({error.message})"

    def _waiting(self, deployment: Deployment, timeout: float, waiting_for: str) -> Wait:
        """A wait that ends by `timeout` (its AWS calls too) and says what it waits for."""
        return Wait(timeout, lambda text: self._note(deployment, text), waiting_for)

    @contextlib.asynccontextmanager
    async def _step(
        self, deployment: Deployment, step: Step, detail: str = ""
    ) -> AsyncIterator[list[str]]:
        """Records a step before it acts; the body may append a closing detail."""
        request = deployment.request
        detail = deployment.masker.mask(detail)
        audit = {
            "action": "deploy.step",
            "actor": request.actor,
            "project": request.project,
            "cluster": request.cluster,
            "deploy_id": deployment.deploy_id,
            "step": step.value,
        }
        await self.store.step_started(
            deployment.deploy_id,
            step.value,
            detail=detail,
            audit={**audit, "outcome": "started", "reason": detail},
        )
        self._emit(deployment, StepStarted(deployment.deploy_id, step, self._clock(), detail))
        began = time.perf_counter()
        closing: list[str] = []
        outcome = StepState.FAILED
        try:
            yield closing
            outcome = StepState.SUCCEEDED
        except BaseException as error:
            closing.append(_message(error))
            raise
        finally:
            text = deployment.masker.mask("; ".join(closing))
            seconds = round(time.perf_counter() - began, 3)
            try:
                await self.store.step_finished(
                    deployment.deploy_id,
                    step.value,
                    outcome.value,
                    detail=text,
                    audit={
                        **audit,
                        "outcome": outcome.value,
                        "reason": text,
                        "instance_ids": tuple(deployment.new_ids),
                    },
                )
            except StoreError as error:
                note = f"the store did not record the end of {step.value}: {error.message}"
                self._emit(deployment, OutputLine(deployment.deploy_id, "console", note))
                if outcome is StepState.SUCCEEDED:
                    raise  # an unrecorded step must not let the deploy go on
            self._emit(deployment, StepFinished(deployment.deploy_id, step, outcome, seconds, text))

    async def _cancellable(self, deployment: Deployment, work: Awaitable[T]) -> T:
        """Runs `work` unless the deploy is cancelled first (then it is stopped)."""
        task = asyncio.ensure_future(work)
        waiter = asyncio.ensure_future(deployment.cancelled.wait())
        try:
            await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
            raise DeployCancelled(deployment.cancel_reason or "cancelled")
        return task.result()

    async def _pause(self, deployment: Deployment, seconds: float) -> None:
        async with deployment.io():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(deployment.cancelled.wait(), seconds)
        if deployment.cancelled.is_set():
            raise DeployCancelled(deployment.cancel_reason or "cancelled")

    async def _red_black(
        self, deployment: Deployment, project: ProjectConfig, cluster: ClusterConfig
    ) -> tuple[DeployState, str]:
        request = deployment.request
        engine = self.config.engine
        gateway = await asyncio.to_thread(self._deploy_gateway, cluster.name, person(request.actor))
        async with self._step(deployment, Step.LOCK, f"held by {request.actor}"):
            pass
        source: _Source | None = None
        try:
            async with self._step(deployment, Step.RESOLVE) as closing:
                async with deployment.io():
                    release = await resolve_release(
                        self.config, gateway, project.name, cluster.name, request.release
                    )
                    source = await self._read_source(gateway, project, cluster)
                await self.store.set_deploy_state(
                    deployment.deploy_id,
                    DeployState.RUNNING.value,
                    image_id=release.image_id,
                    previous_release=self._main_version(source),
                )
                self._emit(
                    deployment,
                    DeployStarted(
                        deployment.deploy_id,
                        project.name,
                        cluster.name,
                        release.version,
                        release.image_id,
                        request.actor,
                        self._clock(),
                    ),
                )
                closing.append(
                    f"{release.version} is {release.image_id}; "
                    f"{len(source.serving)} of {len(source.instances)} old instances in service"
                )
            async with self._step(deployment, Step.LAUNCH) as closing:
                await self._cancellable(
                    deployment, self._launch(deployment, gateway, project, cluster, release, source)
                )
                closing.append(", ".join(deployment.new_ids))
            async with self._step(deployment, Step.CONFIGURE) as closing:
                await self._cancellable(
                    deployment, self._configure(deployment, gateway, project, cluster)
                )
            async with self._step(deployment, Step.REGISTER) as closing:
                await self._cancellable(deployment, self._register(deployment, gateway, source))
                closing.append(", ".join(b.label for b in source.balancers) or "no load balancer")
            gate = max((b.time_to_healthy for b in source.balancers), default=0)
            timeout = gate + engine.health_gate_margin_seconds
            async with self._step(
                deployment, Step.HEALTH_GATE, f"up to {timeout:.0f} s"
            ) as closing:
                await self._health_gate(deployment, gateway, source, timeout)
            async with self._step(deployment, Step.TRAFFIC_GUARD), deployment.io():
                await self._traffic_guard(deployment, gateway, source)
        except Exception as error:
            cancelled = isinstance(error, DeployCancelled)
            why = _message(error)
            rolled_back, how = await self._rollback(deployment, gateway, source)
            if not rolled_back:
                return DeployState.FAILED, f"{why}; {how}"
            state = DeployState.CANCELLED if cancelled else DeployState.ROLLED_BACK
            return state, f"{why}; rolled back: {how}"
        # From here the new instances serve: a failure stops the deploy, it never undoes it.
        try:
            async with self._step(deployment, Step.DEREGISTER) as closing:
                drained = await self._deregister(
                    deployment,
                    gateway,
                    source.balancers,
                    {b.arn: b.old_members for b in source.balancers},
                )
                closing.append(drained)
            async with self._step(deployment, Step.TERMINATE) as closing:
                old = [raw["InstanceId"] for raw in source.instances]
                if old:
                    async with deployment.io():
                        await gateway.call("ec2", "terminate_instances", InstanceIds=old)
                closing.append(", ".join(old) or "no old instances")
        except Exception as error:
            return (
                DeployState.FAILED,
                f"{_message(error)} (the new instances serve; finish by hand)",
            )
        return DeployState.SUCCEEDED, f"{release.version} serves on {', '.join(deployment.new_ids)}"

    # -- the steps -----------------------------------------------------------------------

    async def _launch(
        self,
        deployment: Deployment,
        gateway: AwsGateway,
        project: ProjectConfig,
        cluster: ClusterConfig,
        release: Release,
        source: _Source,
    ) -> None:
        tags = self.config.tags
        count = max(1, len(source.serving))
        async with deployment.io():  # it may look subnets and security groups up in AWS
            arguments = await self._launch_arguments(gateway, project, cluster, source)
        tag_list = [
            {"Key": tags.project, "Value": project.name},
            {"Key": tags.environment, "Value": cluster.name},
            {"Key": tags.version, "Value": release.version},
            {"Key": "DeployId", "Value": deployment.deploy_id},
            {"Key": "ManagedBy", "Value": MANAGED_BY},
            {"Key": "Name", "Value": f"{project.name}-{cluster.name}"},
        ]
        self._note(
            deployment, f"launching {count} x {arguments['InstanceType']} from {release.image_id}"
        )
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
        self._note(deployment, f"launched {', '.join(deployment.new_ids)}; waiting for running")
        await self._wait_running(deployment, gateway)

    async def _wait_running(self, deployment: Deployment, gateway: AwsGateway) -> None:
        """Until every new instance runs with passing status checks, or the timeout ends."""
        timeout = self.config.engine.instance_ready_timeout_seconds
        cadence = Cadence(self.config.engine.poll_seconds)
        pending = f"{', '.join(deployment.new_ids)} running with passing status checks"
        silent = ""
        async with self._waiting(deployment, timeout, pending) as wait:
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
                        self._note(deployment, "all new instances running, status checks passed")
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
                await self._pause(deployment, min(cadence.delay(), wait.left()))

    async def _launch_arguments(
        self, gateway: AwsGateway, project: ProjectConfig, cluster: ClusterConfig, source: _Source
    ) -> dict[str, Any]:
        launch = project.clusters[cluster.name].launch
        if launch is None:
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
        arguments = {"InstanceType": launch.instance_type, "SubnetId": subnet}
        if groups:
            arguments["SecurityGroupIds"] = groups
        if launch.key_name:
            arguments["KeyName"] = launch.key_name
        if launch.instance_profile:
            arguments["IamInstanceProfile"] = {"Name": launch.instance_profile}
        return arguments

    async def _configure(
        self,
        deployment: Deployment,
        gateway: AwsGateway,
        project: ProjectConfig,
        cluster: ClusterConfig,
    ) -> None:
        settings = project.deploy
        if settings is None:
            raise DeployError(f"project {project.name} has no [projects.deploy] commands")
        if cluster.ssh is None:
            raise DeployError(f"cluster {cluster.name} has no [clusters.ssh] settings")
        plain, secret_names = project.deploy_env(cluster.name)
        async with deployment.io():
            secret_values = await self._secrets(gateway, secret_names)
            for value in secret_values.values():
                deployment.masker.add(value)
            described = await gateway.describe_instances(
                [{"Name": "instance-id", "Values": deployment.new_ids}]
            )
        addresses = {raw["InstanceId"]: raw.get("PrivateIpAddress", "") for raw in described}
        env_text = "".join(
            f"{name}={shlex.quote(value)}\n"
            for name, value in sorted({**plain, **secret_values}.items())
        )
        ssh = cluster.ssh

        def printer(instance_id: str) -> Callable[[str, str], None]:
            def on_line(stream: str, line: str) -> None:
                self._emit(deployment, OutputLine(deployment.deploy_id, instance_id, line, stream))

            return on_line

        async def run(
            host: RemoteHost,
            instance_id: str,
            what: str | None,
            command: str,
            timeout: float,
            stdin: str | None = None,
        ) -> int:
            if what is not None:
                self._note(deployment, f"{instance_id}: {what}")
            async with deployment.io():
                return await host.run(
                    command, stdin=stdin, on_line=printer(instance_id), timeout=timeout
                )

        async def must(
            host: RemoteHost, instance_id: str, what: str, command: str, stdin: str | None = None
        ) -> None:
            status = await run(
                host, instance_id, what, command, settings.startup_timeout_seconds, stdin
            )
            if status != 0:
                raise DeployError(f"{what} failed on {instance_id} (exit {status})")

        async with AsyncExitStack() as stack:

            async def connect(instance_id: str) -> tuple[str, RemoteHost]:
                address = addresses.get(instance_id)
                if not address:
                    raise DeployError(f"{instance_id} has no private address")
                async with deployment.io():
                    host = await stack.enter_async_context(self._open_host(ssh, address))
                return instance_id, host

            hosts = dict(await asyncio.gather(*(connect(i) for i in deployment.new_ids)))
            write = f"umask 077 && cat > {shlex.quote(settings.env_file)}"
            counts = f"{len(plain)} values, {len(secret_values)} from SSM"
            await asyncio.gather(
                *(
                    must(host, i, f"write {settings.env_file} ({counts})", write, env_text)
                    for i, host in hosts.items()
                )
            )
            if settings.configure:
                await asyncio.gather(
                    *(must(host, i, "configure", settings.configure) for i, host in hosts.items())
                )
            if settings.migrate:
                first = deployment.new_ids[0]
                await must(
                    hosts[first], first, "migrate (first new instance only)", settings.migrate
                )
            await asyncio.gather(
                *(must(host, i, "start", settings.start) for i, host in hosts.items())
            )

            async def healthy(instance_id: str, host: RemoteHost) -> None:
                deadline = time.monotonic() + settings.startup_timeout_seconds
                cadence = Cadence(settings.health_interval_seconds)
                attempt = 0
                while True:
                    attempt += 1
                    left = max(1.0, deadline - time.monotonic())
                    # A person needs the first attempt and a pulse, not every retry named.
                    what = (
                        "health check"
                        if attempt == 1
                        else f"health check #{attempt}, still failing"
                        if attempt % 5 == 0
                        else None
                    )
                    status = await run(host, instance_id, what, settings.health, left)
                    if status == 0:
                        return
                    if time.monotonic() >= deadline:
                        raise DeployError(
                            f"health command failed on {instance_id} for "
                            f"{settings.startup_timeout_seconds:.0f} s (last exit {status})"
                        )
                    await self._pause(deployment, cadence.delay())

            await asyncio.gather(*(healthy(i, host) for i, host in hosts.items()))

    async def _secrets(self, gateway: AwsGateway, names: dict[str, str]) -> dict[str, str]:
        if not names:
            return {}
        wanted = sorted(set(names.values()))
        values: dict[str, str] = {}
        for start in range(0, len(wanted), 10):  # GetParameters takes at most 10 names
            response = await gateway.call(
                "ssm", "get_parameters", Names=wanted[start : start + 10], WithDecryption=True
            )
            for parameter in response.get("Parameters", []):
                values[parameter["Name"]] = parameter["Value"]
            invalid = response.get("InvalidParameters", [])
            if invalid:
                raise DeployError(f"SSM parameter {invalid[0]} not found")
        return {env_name: values[parameter] for env_name, parameter in names.items()}

    async def _register(self, deployment: Deployment, gateway: AwsGateway, source: _Source) -> None:
        instances = deployment.new_ids
        async with deployment.io():
            for balancer in source.balancers:
                if balancer.kind is LoadBalancerKind.CLASSIC:
                    await gateway.call(
                        "elb",
                        "register_instances_with_load_balancer",
                        LoadBalancerName=balancer.name,
                        Instances=[{"InstanceId": i} for i in instances],
                    )
                else:
                    await gateway.call(
                        "elbv2",
                        "register_targets",
                        TargetGroupArn=balancer.arn,
                        Targets=[{"Id": i} for i in instances],
                    )
                deployment.registered.update((balancer.arn, i) for i in instances)
                self._note(deployment, f"registered {', '.join(instances)} in {balancer.label}")

    async def _wait_healthy(
        self,
        deployment: Deployment,
        gateway: AwsGateway,
        balancers: list[_Balancer],
        instances: list[str],
        timeout: float,
        *,
        cancellable: bool = True,
    ) -> None:
        """Until every instance is healthy in every balancer; missing counts as not healthy.

        Ends at its deadline whatever AWS does: each call gets the time left."""
        cadence = Cadence(self.config.engine.poll_seconds)
        last = silent = ""
        unknown = [(i, b.label, "no answer yet") for b in balancers for i in instances]
        waiting = [f"{i} is not known yet in {label}" for i, label, _ in unknown]
        pending = "; ".join(f"{i} healthy in {label}: {state}" for i, label, state in unknown)
        async with self._waiting(deployment, timeout, pending) as wait:
            while True:
                health, silent = await self._health_in(deployment, wait, gateway, balancers, silent)
                if health is not None:
                    states = [
                        (i, b.label, health[b.arn].get(i, "not registered"))
                        for b in balancers
                        for i in instances
                        if health[b.arn].get(i) not in SERVING_STATES
                    ]
                    if not states:
                        return
                    waiting = [f"{i} is {state} in {label}" for i, label, state in states]
                    wait.waiting_for = "; ".join(
                        f"{i} healthy in {label}: {state}" for i, label, state in states
                    )
                    summary = "; ".join(waiting)
                    if summary != last:
                        self._note(deployment, f"waiting: {summary}")
                        last = summary
                if wait.expired:
                    raise DeployError(f"not healthy after {timeout:.0f} s: {waiting[0]}{silent}")
                if cancellable:
                    await self._pause(deployment, min(cadence.delay(), wait.left()))
                else:
                    async with deployment.io():
                        await wait.sleep(cadence.delay())

    async def _health_gate(
        self, deployment: Deployment, gateway: AwsGateway, source: _Source, timeout: float
    ) -> None:
        if not source.balancers:
            self._note(deployment, "no load balancer: the health command was the gate")
            return
        await self._wait_healthy(deployment, gateway, source.balancers, deployment.new_ids, timeout)

    async def _traffic_guard(
        self, deployment: Deployment, gateway: AwsGateway, source: _Source
    ) -> None:
        health = await self._health(gateway, source.balancers)
        for balancer in source.balancers:
            remaining = {
                i
                for i, state in health[balancer.arn].items()
                if state in SERVING_STATES and i not in balancer.old_members
            }
            if not remaining or not set(deployment.new_ids) <= remaining:
                raise DeployError(
                    f"traffic guard: {balancer.label} would have no healthy new instance "
                    f"once the old ones leave"
                )
        self._note(
            deployment, "traffic guard passed: every load balancer keeps healthy new instances"
        )

    async def _deregister(
        self,
        deployment: Deployment,
        gateway: AwsGateway,
        balancers: list[_Balancer],
        members: dict[str, set[str]],
    ) -> str:
        """Takes instances out of balancers and waits for their draining to end."""
        for balancer in balancers:
            leaving = sorted(members.get(balancer.arn, ()))
            if not leaving:
                continue
            async with deployment.io():
                if balancer.kind is LoadBalancerKind.CLASSIC:
                    await gateway.call(
                        "elb",
                        "deregister_instances_from_load_balancer",
                        LoadBalancerName=balancer.name,
                        Instances=[{"InstanceId": i} for i in leaving],
                    )
                else:
                    await gateway.call(
                        "elbv2",
                        "deregister_targets",
                        TargetGroupArn=balancer.arn,
                        Targets=[{"Id": i} for i in leaving],
                    )
            self._note(
                deployment,
                f"deregistered {', '.join(leaving)} from {balancer.label}; "
                f"draining up to {balancer.drain_seconds} s",
            )
        longest = max((b.drain_seconds for b in balancers if members.get(b.arn)), default=0)
        timeout = longest + self.config.engine.poll_seconds * 2 + 5
        cadence = Cadence(self.config.engine.poll_seconds)
        departing = [(i, b.label) for b in balancers for i in sorted(members.get(b.arn, ()))]
        still = [f"{i} in {label}" for i, label in departing]
        pending = "; ".join(f"{i} to leave {label}" for i, label in departing)
        silent = ""
        async with self._waiting(deployment, timeout, pending) as wait:
            while True:
                health, silent = await self._health_in(deployment, wait, gateway, balancers, silent)
                if health is not None:
                    states = [
                        (i, b.label, health[b.arn][i])
                        for b in balancers
                        for i in sorted(members.get(b.arn, ()))
                        if health[b.arn].get(i, "gone") not in GONE_STATES
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

    async def _rollback(
        self,
        deployment: Deployment,
        gateway: AwsGateway,
        source: _Source | None,
    ) -> tuple[bool, str]:
        """Puts things back as they were: old serving (checked first), then the new removed."""
        timeout = self.config.engine.rollback_timeout_seconds
        new_ids = await self._new_instances(deployment, gateway)
        try:
            async with self._step(deployment, Step.ROLLBACK) as closing:
                async with asyncio.timeout(timeout):
                    if source is not None and deployment.registered:
                        # Enable before disable: the old must serve before the new leave.
                        serving = [i for i in source.serving]
                        missing = {
                            b.arn: {i for i in serving if i not in b.old_members}
                            for b in source.balancers
                        }
                        if any(missing.values()):
                            await self._register_back(deployment, gateway, source, missing)
                        if serving:
                            try:
                                await self._wait_healthy(
                                    deployment,
                                    gateway,
                                    source.balancers,
                                    serving,
                                    timeout,
                                    cancellable=False,
                                )
                            except DeployError as error:
                                closing.append(
                                    f"old instances not healthy ({error.message}); "
                                    f"new instances left in service"
                                )
                                return False, closing[-1]
                        registered: dict[str, set[str]] = {}
                        for arn, instance_id in deployment.registered:
                            registered.setdefault(arn, set()).add(instance_id)
                        await self._deregister(deployment, gateway, source.balancers, registered)
                    if new_ids:
                        async with deployment.io():
                            await gateway.call("ec2", "terminate_instances", InstanceIds=new_ids)
                    closing.append(f"terminated {', '.join(new_ids) or 'nothing'}")
                    return (
                        True,
                        f"terminated {', '.join(new_ids) or 'nothing'}; old instances serve",
                    )
        except TimeoutError:
            return False, f"rollback did not finish in {timeout:.0f} s"
        except Exception as error:
            return False, f"rollback failed: {_message(error)}"

    async def _register_back(
        self,
        deployment: Deployment,
        gateway: AwsGateway,
        source: _Source,
        missing: dict[str, set[str]],
    ) -> None:
        for balancer in source.balancers:
            back = sorted(missing.get(balancer.arn, ()))
            if not back:
                continue
            async with deployment.io():
                if balancer.kind is LoadBalancerKind.CLASSIC:
                    await gateway.call(
                        "elb",
                        "register_instances_with_load_balancer",
                        LoadBalancerName=balancer.name,
                        Instances=[{"InstanceId": i} for i in back],
                    )
                else:
                    await gateway.call(
                        "elbv2",
                        "register_targets",
                        TargetGroupArn=balancer.arn,
                        Targets=[{"Id": i} for i in back],
                    )

    # -- after a console died --------------------------------------------------------------

    async def reconcile(self, record: DeployRecord) -> tuple[str, list[str]]:
        """Put right a deploy whose console stopped mid-way; a summary and the instances
        terminated. The old instances keep serving until the end either way.

        If the deploy had not begun taking the old instances out, it is rolled back: its new
        instances (found by their DeployId tag) leave every load balancer and are terminated.
        If it had, and its new instances serve in every load balancer, it is finished
        forward: the old ones are drained and terminated. Run while holding the pair's lock.
        """
        request = DeployRequest(record.project, record.cluster, record.release, record.actor)
        project, cluster = self._pair(request)
        deployment = Deployment(record.id, request)
        gateway = await asyncio.to_thread(self._deploy_gateway, cluster.name, person(request.actor))
        steps = {step.step: step.state for step in await self.store.steps(record.id)}
        source = await self._read_source(gateway, project, cluster)
        new_ids = await self._new_instances(deployment, gateway)
        balancers = source.balancers
        if balancers:
            serving_new = [i for i in new_ids if i in source.serving]
        else:
            passed = steps.get(Step.HEALTH_GATE.value) == StepState.SUCCEEDED.value
            serving_new = [i for i in new_ids if i in source.serving] if passed else []
        health = await self._health(gateway, balancers)

        def members(ids: Iterable[str]) -> dict[str, set[str]]:
            return {
                b.arn: {i for i in ids if health[b.arn].get(i, "gone") not in GONE_STATES}
                for b in balancers
            }

        forward = Step.DEREGISTER.value in steps and bool(serving_new)
        if forward:
            old = [
                raw["InstanceId"] for raw in source.instances if raw["InstanceId"] not in new_ids
            ]
            leaving = members(old)
            if any(leaving.values()):
                await self._deregister(deployment, gateway, balancers, leaving)
            gone, kept = old, [i for i in new_ids if i not in old]
        else:
            leaving = members(new_ids)
            if any(leaving.values()):
                await self._deregister(deployment, gateway, balancers, leaving)
            gone, kept = new_ids, []
        if gone:
            await gateway.call("ec2", "terminate_instances", InstanceIds=gone)
        terminated = ", ".join(gone) or "nothing"
        if forward:
            summary = f"finished forward: {', '.join(kept)} serve; terminated old {terminated}"
        else:
            summary = f"rolled back: terminated {terminated}; the old instances serve"
        return summary, gone

    async def _new_instances(self, deployment: Deployment, gateway: AwsGateway) -> list[str]:
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


def _state(raw: dict[str, Any]) -> str:
    return str(raw.get("State", {}).get("Name", "unknown"))


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


def _time_to_healthy(interval: int | None, threshold: int | None) -> int:
    """AWS's arithmetic: healthy threshold x interval + one interval (defaults if unset)."""
    interval = interval or 30
    threshold = threshold or 5
    return threshold * interval + interval


def _message(error: BaseException) -> str:
    if isinstance(error, ConsoleError):
        return error.message
    if isinstance(error, TimeoutError):
        return "timed out"
    return f"{type(error).__name__}: {error}".splitlines()[0]


def _masked(event: DeployEvent, masker: SecretMasker) -> DeployEvent:
    """The event with its free text (output, step detail, reason) masked."""
    if not masker:
        return event
    if isinstance(event, OutputLine):
        return dataclasses.replace(event, text=masker.mask(event.text))
    if isinstance(event, StepStarted | StepFinished):
        return dataclasses.replace(event, detail=masker.mask(event.detail))
    if isinstance(event, DeployFinished | DeployWaiting):
        return dataclasses.replace(event, reason=masker.mask(event.reason))
    return event


def _record(
    deploy_id: str, request: DeployRequest, now: datetime, state: DeployState
) -> DeployRecord:
    return DeployRecord(
        id=deploy_id,
        project=request.project,
        cluster=request.cluster,
        release=request.release,
        image_id=None,
        actor=request.actor,
        state=state.value,
        created_at=now,
        started_at=now,
        finished_at=None,
        reason="",
        rollback_of=request.rollback_of,
    )
