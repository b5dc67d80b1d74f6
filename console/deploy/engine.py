"""The deploy engine: a red/black deploy of one project to one cluster, told as events.

The rules it keeps are DEPLOY_SEMANTICS.md's, step by step: the old instances serve until the
new ones are healthy in every load balancer, any failure or cancel before the switch puts
things back (enable before disable), and every step is written to the store before it acts.
What each step does lives beside it: launch, configure (SSH), traffic (load balancers, through
balancers/), rollback; the planner reads what is there.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from console.access import Access, Action
from console.config import ClusterConfig, Config, ProjectConfig
from console.config.bake import BakeSettings, format_span
from console.deploy import groups, retention, scale, traffic
from console.deploy.bake import END as BAKE_END
from console.deploy.bake import ROLLBACK as BAKE_ROLLBACK
from console.deploy.bake import BakeWatch
from console.deploy.bake import watch as bake_watch
from console.deploy.balancers import GONE_STATES
from console.deploy.configure import OpenHost, RemoteHost, configure
from console.deploy.deployment import (
    Cadence,
    DeployCancelled,
    Deployment,
    message,
    new_deploy_id,
    now,
)
from console.deploy.launch import MANAGED_BY, launch
from console.deploy.planner import DeployPlanner, Gateways
from console.deploy.releases import resolve_release
from console.deploy.risks import ReleaseWarning, plan_warnings
from console.deploy.rollback import bring_back_kept, put_right, roll_back
from console.deploy.source import Source
from console.deploy.stack_change import put_right_stack_change, run_stack_change
from console.deploy.steps import recorded
from console.errors import ConsoleError, DeployError, StoreError
from console.events import DeployEvent, DeployFinished, DeployStarted
from console.identity import current_actor, person
from console.logs import deploy_context
from console.model import DeployPlan, DeployRequest, DeployState, Release, Step
from console.store import DeployRecord, Store

if TYPE_CHECKING:
    from console.aws.gateway import AwsGateway

# Callers import these from here, where they lived before the engine was split by job.
__all__ = [
    "GONE_STATES",
    "MANAGED_BY",
    "Cadence",
    "DeployCancelled",
    "DeployEngine",
    "DeployPlanner",
    "Deployment",
    "Gateways",
    "OpenHost",
    "RemoteHost",
    "new_deploy_id",
]


class DeployEngine(DeployPlanner):
    """Plans and runs deploys; several pairs may run at once, each its own Deployment."""

    def __init__(
        self,
        config: Config,
        gateway: Gateways,
        store: Store,
        open_host: OpenHost,
        *,
        clock: Callable[[], datetime] = now,
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

    async def release_warnings(self, plan: DeployPlan, actor: str) -> list[ReleaseWarning]:
        """What deploying `plan` warns of (see risks): AWS read as `actor`, the store's
        recent deploys."""
        gateway = await asyncio.to_thread(self._gateway, plan.cluster, person(actor))
        return await plan_warnings(self.config, gateway, plan, self.store, self._clock())

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
        if record.kind != "deploy":  # (i16-scale) a scale's release is a count
            raise DeployError(
                f"{deploy_id} was a {record.kind}, not a deploy: nothing to roll back "
                f"(scale again to change the count)"
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
            # Its lock, its record and its audit row commit together: no deploy without a line.
            await self.store.begin_deploy(
                DeployRecord.new(deploy_id, request, self._clock(), running=True),
                stale_after=self.config.engine.lock_stale_seconds,
                audit={
                    "action": "deploy.started",
                    "actor": request.actor,
                    "project": project.name,
                    "cluster": cluster.name,
                    "deploy_id": deploy_id,
                    "outcome": DeployState.RUNNING.value,
                    "reason": f"release {request.release}, not through the queue",
                },
            )
        else:
            deploy_id = claimed.id
        deployment = Deployment(deploy_id, request, self._clock)
        self.running[deploy_id] = deployment
        task = asyncio.create_task(
            self._execute(deployment, project, cluster), context=deploy_context(deploy_id)
        )
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

    async def decide_bake(self, deploy_id: str, actor: str, decision: str) -> None:
        """End a baking deploy's bake early (decision "end") or roll it back now
        ("rollback"), wherever it runs: asked through the store (the engine running it reads
        it each round) and audited; at once when it runs here. DeployError if it is not
        baking; AccessDenied as for a cancel (one's own deploy, else an admin)."""
        if decision not in (BAKE_END, BAKE_ROLLBACK):
            raise DeployError(f"unknown bake decision {decision!r} (end or rollback)")
        steps = {step.step: step.state for step in await self.store.steps(deploy_id)}
        async with self.store.transaction() as tx:
            record = await tx.deploy(deploy_id)
            if record is None:
                raise DeployError(f"unknown deploy {deploy_id!r}")
            if record.state != DeployState.RUNNING.value or steps.get(Step.BAKE.value) != "running":
                raise DeployError(f"deploy {deploy_id} is not baking")
            Access(self.config).check(
                actor, Action.BAKE, record.cluster, owner=record.actor, project=record.project
            )
            await tx.request_bake(deploy_id, f"{decision}:{person(actor)}")
            await tx.audit(
                "bake-requested",
                actor=actor,
                project=record.project,
                cluster=record.cluster,
                deploy_id=deploy_id,
                step=Step.BAKE.value,
                outcome=decision,
                reason="end the bake early" if decision == BAKE_END else "roll back now",
            )
        deployment = self.running.get(deploy_id)
        if deployment is not None:
            deployment.decide_bake(f"{decision}:{person(actor)}")

    async def reap_kept(self) -> list[str]:
        """Terminates, in every cluster, the kept old instances whose keep_old has passed
        (stopped ones only); the ids terminated. A cluster AWS does not answer is skipped."""
        gone: list[str] = []
        accounts = {c.account_key: c for c in self.config.clusters}  # one look per account
        for cluster in accounts.values():
            try:
                gateway = await asyncio.to_thread(
                    self._deploy_gateway, cluster.name, person(str(current_actor()))
                )
                gone += await retention.reap(gateway, self._clock())
            except ConsoleError:
                continue
        return gone

    def cancel(self, deploy_id: str, actor: str) -> bool:
        deployment = self.running.get(deploy_id)
        if deployment is None:
            return False
        deployment.cancel(f"cancelled by {actor}")
        return True

    async def _execute(
        self, deployment: Deployment, project: ProjectConfig, cluster: ClusterConfig
    ) -> None:
        state = DeployState.FAILED
        reason = ""
        heartbeat = asyncio.create_task(self._heartbeat(deployment))
        try:
            state, reason = await self._operation(deployment, project, cluster)
        except Exception as error:  # the engine must always finish what it started
            reason = message(error)
            state = DeployState.FAILED
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat  # it ends by itself only if the lock or the store failed it
            await self._finish(deployment, state, reason)

    async def _operation(
        self, deployment: Deployment, project: ProjectConfig, cluster: ClusterConfig
    ) -> tuple[DeployState, str]:
        """What the queue entry runs, by its kind (DeployRequest.kind)."""
        kind = deployment.request.kind
        if kind == "deploy":
            return await self._red_black(deployment, project, cluster)
        if kind == scale.KIND:  # (i16-scale) more or fewer instances at the running release
            return await scale.scale(self, deployment, project, cluster)
        if kind == "stack":  # a stack change (console/deploy/stack_change.py)
            gateway = await asyncio.to_thread(
                self._deploy_gateway, cluster.name, person(deployment.request.actor)
            )
            return await run_stack_change(self.store, deployment, gateway, self.config)
        return DeployState.FAILED, f"this console cannot run a {kind!r} entry (a newer one did)"

    async def _finish(self, deployment: Deployment, state: DeployState, reason: str) -> None:
        """Stores the output, the outcome with its audit row and the pair's lock let go, and
        tells the end; a write the store refused is said in the reason, never dropped."""
        request = deployment.request
        reason = "; ".join(filter(None, [reason, *deployment.unrecorded]))
        reason = deployment.masker.mask(reason)
        try:
            await self._flush_log(deployment)
        except StoreError as error:
            reason = f"{reason}; its output is not all recorded: {error.message}"
        try:
            # The outcome, its audit row and the pair's lock: one transaction.
            await self.store.set_deploy_state(
                deployment.deploy_id,
                state.value,
                reason=reason,
                release=(request.project, request.cluster),
                audit={
                    "action": "deploy.finished",
                    "actor": request.actor,
                    "project": request.project,
                    "cluster": request.cluster,
                    "deploy_id": deployment.deploy_id,
                    "outcome": state.value,
                    "reason": reason,
                },
            )
        except StoreError as error:
            # Said, not swallowed: the deploy's end is not on record, so its lease runs
            # out and the next runner reconciles it against AWS.
            reason = f"{reason}; not recorded: {error.message}"
        total = time.perf_counter() - deployment.started
        own = total - deployment.waiting
        deployment.emit(
            DeployFinished(deployment.deploy_id, state, reason, round(total, 3), round(own, 3))
        )

    async def _heartbeat(self, deployment: Deployment) -> None:
        """Keeps the pair's lock (the queue's lease) fresh, stores the output so far, and
        hears a cancel asked from another console (`queue cancel`). A store that fails it
        cancels the deploy: a lock not kept fresh is soon another runner's."""
        request = deployment.request
        period = max(0.5, self.config.engine.lock_stale_seconds / 3)
        tick = min(period, 1.0)
        beat = time.monotonic()
        try:
            while True:
                await asyncio.sleep(tick)
                if time.monotonic() - beat >= period:
                    beat = time.monotonic()
                    held = await self.store.heartbeat(
                        request.project, request.cluster, deployment.deploy_id
                    )
                    if not held:
                        deployment.cancel(
                            "cancelled: the deploy lost its lock (heartbeat went stale)"
                        )
                        return
                await self._flush_log(deployment)
                if not deployment.cancelled.is_set():
                    asked = await self.store.cancel_requested(deployment.deploy_id)
                    if asked:
                        deployment.cancel(f"cancelled by {asked}")
        except StoreError as error:
            deployment.cancel(f"cancelled: the store did not keep the deploy: {error.message}")

    async def _flush_log(self, deployment: Deployment) -> None:
        lines, deployment.log = deployment.log, []
        await self.store.append_log(deployment.deploy_id, lines)

    def _step(
        self, deployment: Deployment, step: Step, detail: str = ""
    ) -> AbstractAsyncContextManager[list[str]]:
        """The step on record (with its audit row) before it acts; see steps.recorded."""
        return recorded(self.store, deployment, step, detail)

    # -- the red/black sequence -------------------------------------------------------------

    async def _red_black(
        self, deployment: Deployment, project: ProjectConfig, cluster: ClusterConfig
    ) -> tuple[DeployState, str]:
        request = deployment.request
        gateway = await asyncio.to_thread(self._deploy_gateway, cluster.name, person(request.actor))
        async with self._step(deployment, Step.LOCK, f"held by {request.actor}"):
            pass
        source: Source | None = None
        try:
            release, source = await self._resolve(deployment, gateway, project, cluster)
            await self._bring_up(deployment, gateway, (project, cluster), release, source)
        except Exception as error:
            cancelled = isinstance(error, DeployCancelled)
            why = message(error)
            grouped = await self._freeze_group(deployment, gateway)
            rolled_back, how = await roll_back(
                self.store,
                deployment,
                gateway,
                source,
                timeout=self.config.engine.rollback_timeout_seconds,
                poll_seconds=self.config.engine.poll_seconds,
            )
            if rolled_back and grouped:
                how = await self._remove_group(deployment, gateway, how)
            if not rolled_back:
                return DeployState.FAILED, f"{why}; {how}"
            state = DeployState.CANCELLED if cancelled else DeployState.ROLLED_BACK
            return state, f"{why}; rolled back: {how}"
        # From here the new instances serve: a failure stops the deploy, it never undoes it.
        bake = cluster.bake
        if groups.is_group_pair(project, cluster) and bake.seconds > 0:
            # The old group is deleted at the switch: nothing would be left to roll back to.
            deployment.note("bake: not for a group-backed pair (its old group is deleted)")
            bake = BakeSettings()
        try:
            await self._switch(deployment, gateway, source, bake)
        except Exception as error:
            return (
                DeployState.FAILED,
                f"{message(error)} (the new instances serve; finish by hand)",
            )
        serves = f"{release.version} serves on {', '.join(deployment.new_ids)}"
        if bake.seconds > 0:
            return await self._bake(deployment, gateway, source, bake, serves)
        return DeployState.SUCCEEDED, serves

    async def _resolve(
        self,
        deployment: Deployment,
        gateway: AwsGateway,
        project: ProjectConfig,
        cluster: ClusterConfig,
    ) -> tuple[Release, Source]:
        """The release's image and the pair as it is; the deploy's record says both."""
        request = deployment.request
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
            deployment.emit(
                DeployStarted(
                    deployment.deploy_id,
                    project.name,
                    cluster.name,
                    release.version,
                    release.image_id,
                    request.actor,
                    self._clock(),
                )
            )
            closing.append(
                f"{release.version} is {release.image_id}; "
                f"{len(source.serving)} of {len(source.instances)} old instances in service"
            )
        return release, source

    async def _bring_up(
        self,
        deployment: Deployment,
        gateway: AwsGateway,
        pair: tuple[ProjectConfig, ClusterConfig],
        release: Release,
        source: Source,
    ) -> None:
        """The new instances up and serving beside the old: launch to traffic guard."""
        project, cluster = pair
        engine = self.config.engine
        async with self._step(deployment, Step.LAUNCH) as closing:
            grouped = groups.is_group_pair(project, cluster)
            reused = [] if grouped else await self._reuse_kept(deployment, gateway, release)
            if reused:
                closing.append(f"reused kept {', '.join(reused)} (started, not launched)")
            elif grouped:
                await deployment.cancellable(
                    groups.launch_group(deployment, gateway, self.config, pair, release, source)
                )
                closing.append(f"{deployment.group_name}: {', '.join(deployment.new_ids)}")
            else:
                await deployment.cancellable(
                    launch(deployment, gateway, self.config, pair, release, source)
                )
                closing.append(", ".join(deployment.new_ids))
        async with self._step(deployment, Step.CONFIGURE):
            await deployment.cancellable(
                configure(deployment, gateway, project, cluster, self._open_host)
            )
        async with self._step(deployment, Step.REGISTER) as closing:
            await deployment.cancellable(traffic.register(deployment, source.balancers))
            await groups.attach(deployment, gateway, source)
            closing.append(", ".join(b.label for b in source.balancers) or "no load balancer")
        gate = max((b.time_to_healthy for b in source.balancers), default=0)
        timeout = gate + engine.health_gate_margin_seconds
        async with self._step(deployment, Step.HEALTH_GATE, f"up to {timeout:.0f} s"):
            if source.balancers:
                await traffic.wait_healthy(
                    deployment, source.balancers, deployment.new_ids, timeout, engine.poll_seconds
                )
            else:
                deployment.note("no load balancer: the health command was the gate")
        async with self._step(deployment, Step.TRAFFIC_GUARD), deployment.io():
            await traffic.traffic_guard(deployment, source.balancers)

    async def _freeze_group(self, deployment: Deployment, gateway: AwsGateway) -> bool:
        """A group deploy's new group replaces nothing while the rollback terminates its
        instances; whether there is one (its name is known once the launch made it)."""
        if not deployment.group_name:
            return False
        try:
            await groups.freeze(deployment, gateway)
        except Exception as error:  # the rollback goes on: the group is deleted after it
            deployment.note(f"could not suspend {deployment.group_name}: {message(error)}")
        return True

    async def _remove_group(self, deployment: Deployment, gateway: AwsGateway, how: str) -> str:
        """After a group deploy's rollback: its group deleted too; what the rollback did."""
        name = deployment.group_name or ""
        try:
            await groups.remove_group(deployment, gateway, name)
        except Exception as error:
            return f"{how}; group {name} left: {message(error)} (delete it by hand)"
        return f"{how}; deleted group {name}"

    async def _reuse_kept(
        self, deployment: Deployment, gateway: AwsGateway, release: Release
    ) -> list[str]:
        """A rollback within keep_old: the kept old instances started again as its new ones
        (they keep their marks until the rollback succeeds: one that fails stops them again)."""
        ids = await self._reusable(gateway, deployment.request, release.version)
        if not ids:
            return []
        deployment.note(f"rollback: {', '.join(ids)} were kept stopped: starting them")
        await deployment.cancellable(
            retention.start(
                deployment,
                gateway,
                ids,
                self.config.engine.rollback_timeout_seconds,
                self.config.engine.poll_seconds,
            )
        )
        deployment.new_ids = list(ids)
        deployment.reused = list(ids)
        return ids

    async def _switch(
        self, deployment: Deployment, gateway: AwsGateway, source: Source, bake: BakeSettings
    ) -> None:
        """The old instances out of every load balancer (drained), then terminated, or
        stopped and kept (a cluster's bake and keep_old: a rollback starts them again)."""
        async with self._step(deployment, Step.DEREGISTER) as closing:
            if deployment.group_name:  # the old groups first, else they put theirs back
                await groups.detach_old(deployment, gateway, self.config, source)
            old_members = {b.key: b.old_members for b in source.balancers}
            drained = await traffic.drain(
                deployment, source.balancers, old_members, self.config.engine.poll_seconds
            )
            closing.append(drained)
        async with self._step(deployment, Step.TERMINATE) as closing:
            old = [raw["InstanceId"] for raw in source.instances]
            if deployment.group_name:
                gone = await groups.delete_groups(
                    deployment, gateway, self.config, keep=deployment.group_name
                )
                bare = groups.bare(source, deployment.new_ids)
                if bare:  # a pair taken over from bare instances: those go too
                    async with deployment.io():
                        await gateway.call("ec2", "terminate_instances", InstanceIds=bare)
                    gone.append(", ".join(bare))
                closing.append(f"deleted {', '.join(gone) or 'no old group'}")
            elif old and bake.keeps_old:
                until = self._clock() + timedelta(seconds=bake.seconds + bake.keep_old_seconds)
                async with deployment.io():
                    await retention.keep(gateway, old, until, deployment.deploy_id)
                closing.append(f"stopped, kept until {retention.stamp(until)}: {', '.join(old)}")
            elif old:
                async with deployment.io():
                    await gateway.call("ec2", "terminate_instances", InstanceIds=old)
                closing.append(", ".join(old))
            else:
                closing.append("no old instances")
            if deployment.reused:  # a rollback's kept instances serve again: not kept now
                async with deployment.io():
                    await retention.forget(gateway, deployment.reused)

    async def _bake(
        self,
        deployment: Deployment,
        gateway: AwsGateway,
        source: Source,
        settings: BakeSettings,
        serves: str,
    ) -> tuple[DeployState, str]:
        """Watches for the cluster's bake: trouble (or an admin) rolls back to the kept old
        instances; a bake that passes (or is ended early) leaves them kept for keep_old."""
        engine = self.config.engine
        old = [raw["InstanceId"] for raw in source.instances]
        span = format_span(settings.seconds)
        await self._audit(deployment, "bake-start", "baking", f"{span}; {settings.watches()}")
        watcher = BakeWatch(deployment, gateway, source.balancers, settings)
        detail = f"{settings.seconds} s; {settings.watches()}"
        async with self._step(deployment, Step.BAKE, detail) as closing:
            outcome = await bake_watch(self.store, deployment, watcher, engine.poll_seconds)
            closing.append(outcome.summary)
        if outcome.rollback is None:
            until = self._clock() + timedelta(seconds=settings.keep_old_seconds)
            async with deployment.io():
                if settings.keep_old_seconds:
                    await retention.keep_until(gateway, old, until)
                elif old:
                    await gateway.call("ec2", "terminate_instances", InstanceIds=old)
            kept = (
                f"old kept stopped until {retention.stamp(until)}"
                if settings.keep_old_seconds and old
                else "old terminated"
            )
            await self._audit(deployment, "bake-end", "succeeded", f"{outcome.summary}; {kept}")
            return DeployState.SUCCEEDED, f"{serves}; bake {outcome.summary}; {kept}"
        if not old:  # a first deploy: removing the new would leave nothing serving
            why = f"{outcome.rollback}; no old instance to roll back to: the new ones stay"
            await self._audit(deployment, "bake-rollback", "failed", why)
            return DeployState.FAILED, why
        await self._audit(deployment, "bake-rollback", "rolling back", outcome.rollback)
        deployment.note(f"bake: {outcome.rollback}: rolling back to the kept old instances")
        back, how = await bring_back_kept(
            self.store,
            deployment,
            gateway,
            source,
            timeout=engine.rollback_timeout_seconds,
            poll_seconds=engine.poll_seconds,
        )
        if not back:
            return DeployState.FAILED, f"{outcome.rollback}; {how}"
        # A cancel during the bake ends cancelled, as one before the switch does.
        state = DeployState.CANCELLED if outcome.cancelled else DeployState.ROLLED_BACK
        return state, f"{outcome.rollback}; rolled back: {how}"

    async def _audit(self, deployment: Deployment, action: str, outcome: str, reason: str) -> None:
        """An audit row of the bake; one the store refused is said in the deploy's end."""
        request = deployment.request
        try:
            await self.store.audit(
                action,
                actor=request.actor,
                project=request.project,
                cluster=request.cluster,
                deploy_id=deployment.deploy_id,
                instance_ids=tuple(deployment.new_ids),
                step=Step.BAKE.value,
                outcome=outcome,
                reason=deployment.masker.mask(reason),
            )
        except StoreError as error:
            deployment.unrecorded.append(f"the store did not record {action}: {error.message}")

    # -- after a console died --------------------------------------------------------------

    async def reconcile(self, record: DeployRecord) -> tuple[str, list[str]]:
        """Put right a deploy whose console stopped mid-way; a summary and the instances
        terminated. The old instances keep serving until the end either way.

        If the deploy had not begun taking the old instances out, it is rolled back: its new
        instances (found by their DeployId tag) leave every load balancer and are terminated.
        If it had, and its new instances serve in every load balancer, it is finished
        forward: the old ones are drained and terminated. Run while holding the pair's lock.
        """
        request = DeployRequest(
            record.project, record.cluster, record.release, record.actor, kind=record.kind
        )
        project, cluster = self._pair(request)
        deployment = Deployment(record.id, request, self._clock)
        gateway = await asyncio.to_thread(self._deploy_gateway, cluster.name, person(request.actor))
        recorded_steps = await self.store.steps(record.id)
        source = await self._read_source(gateway, project, cluster)
        if record.kind == "stack":  # its end is CloudFormation's: read and put on record
            return await put_right_stack_change(self.store, record.release, record.actor, gateway)
        if record.kind == scale.KIND:  # (i16-scale) a scale-in is finished from its steps
            return await scale.put_right(self, deployment, gateway, source, recorded_steps)
        steps = {step.step: step.state for step in recorded_steps}
        if groups.is_group_pair(project, cluster):
            return await self._reconcile_group(deployment, gateway, source, steps)
        return await put_right(deployment, gateway, source, steps, self.config.engine.poll_seconds)

    async def _reconcile_group(
        self, deployment: Deployment, gateway: AwsGateway, source: Source, steps: dict[str, str]
    ) -> tuple[str, list[str]]:
        """A group deploy put right: its group frozen while put_right decides, then deleted
        (rolled back) or kept as the only one (finished forward)."""
        deployment.group_name = await groups.deploy_group(gateway, self.config, deployment)
        grouped = await self._freeze_group(deployment, gateway)
        summary, gone = await put_right(
            deployment, gateway, source, steps, self.config.engine.poll_seconds
        )
        if not grouped:
            return summary, gone
        if summary.startswith("finished forward"):
            await groups.resume(deployment, gateway)
            await groups.attach(deployment, gateway, source)
            await groups.detach_old(deployment, gateway, self.config, source)
            deleted = await groups.delete_groups(
                deployment, gateway, self.config, keep=deployment.group_name
            )
            return f"{summary}; deleted {', '.join(deleted) or 'no old group'}", gone
        return await self._remove_group(deployment, gateway, summary), gone
