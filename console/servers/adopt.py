"""After a restore: the deploys AWS shows (by their DeployId tag) that the restored copy does not
know, or knows as unfinished, handed to the runner's reconcile with what AWS says of them."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from console.config import ClusterConfig, Config, ProjectConfig
from console.deploy.planner import DeployPlanner, Gateways
from console.deploy.source import Source
from console.model import DeployState, Step, StepState
from console.store import DeployRecord, Store, utc_now

DEPLOY_TAG = "DeployId"  # console/deploy/launch.py tags every instance a deploy launches
LOST_RUNNER = "lost with the store (restored from a backup)"
RUNNING = DeployState.RUNNING.value
QUEUED = DeployState.QUEUED.value
INTERRUPTED = DeployState.INTERRUPTED.value


@dataclass(frozen=True)
class Adoption:
    """A deploy with instances alive on AWS that the copy does not know (`known` False) or
    knows as unfinished; `forward`: its instances are the oldest serving ones, so it had ended
    in fact (or taken the traffic) and the reconcile finishes it forward, never rolls it back."""

    deploy_id: str
    project: str
    cluster: str
    release: str
    instance_ids: tuple[str, ...]
    known: bool
    forward: bool
    launched: datetime | None

    @property
    def described(self) -> str:
        what = "known to the copy as unfinished" if self.known else "not in the copy"
        fate = (
            "its instances serve: the reconcile finishes it forward"
            if self.forward
            else "older instances serve: the reconcile rolls it back"
        )
        return (
            f"{self.deploy_id} ({self.project} → {self.cluster} {self.release}, "
            f"{len(self.instance_ids)} instance{'' if len(self.instance_ids) == 1 else 's'}): "
            f"{what}; {fate}"
        )


def _tag(raw: dict[str, Any], key: str) -> str | None:
    for tag in raw.get("Tags") or ():
        if tag.get("Key") == key:
            return str(tag.get("Value"))
    return None


def _pair_adoptions(
    source: Source, known: dict[str, DeployRecord]
) -> list[tuple[str, list[dict[str, Any]], bool]]:
    """(deploy id, its instances, forward) for each deploy alive on the pair that is unknown or
    unfinished in the copy (source.instances come oldest launch first)."""
    serving = set(source.serving)
    oldest_serving = next(
        (_tag(raw, DEPLOY_TAG) for raw in source.instances if raw["InstanceId"] in serving), None
    )
    groups: dict[str, list[dict[str, Any]]] = {}
    for raw in source.instances:
        deploy_id = _tag(raw, DEPLOY_TAG)
        if deploy_id:
            groups.setdefault(deploy_id, []).append(raw)
    found = []
    for deploy_id, raws in groups.items():
        record = known.get(deploy_id)
        if record is not None and not _unfinished(record):
            continue
        found.append((deploy_id, raws, deploy_id == oldest_serving))
    return found


def _unfinished(record: DeployRecord) -> bool:
    if record.state in (RUNNING, QUEUED):
        return True
    return record.state == INTERRUPTED and record.reconciled_at is None


async def find_adoptions(store: Store, config: Config, gateway: Gateways) -> list[Adoption]:
    """Every pair's live instances read from AWS (read only), grouped by deploy."""
    planner = DeployPlanner(config, gateway)
    adoptions: list[Adoption] = []
    for project in config.projects:
        for cluster_name in project.clusters:
            cluster = config.cluster(cluster_name)
            source = await _source(planner, gateway, project, cluster)
            ids = [_tag(raw, DEPLOY_TAG) for raw in source.instances]
            known = {}
            for deploy_id in {i for i in ids if i}:
                record = await store.deploy(deploy_id)
                if record is not None:
                    known[deploy_id] = record
            for deploy_id, raws, forward in _pair_adoptions(source, known):
                record = known.get(deploy_id)
                release = _tag(raws[0], config.tags.version) or "unknown"
                times = [
                    raw["LaunchTime"] for raw in raws if isinstance(raw.get("LaunchTime"), datetime)
                ]
                launched = min(times, default=None)
                adoptions.append(
                    Adoption(
                        deploy_id,
                        project.name,
                        cluster.name,
                        record.release if record else release,
                        tuple(raw["InstanceId"] for raw in raws),
                        record is not None,
                        forward,
                        launched,
                    )
                )
    return adoptions


async def _source(
    planner: DeployPlanner, gateway: Gateways, project: ProjectConfig, cluster: ClusterConfig
) -> Source:
    reader = await asyncio.to_thread(gateway, cluster.name)
    return await planner._read_source(reader, project, cluster)


async def adopt(store: Store, adoption: Adoption, actor: str) -> None:
    """Make the runner reconcile it: a running deploy of no live runner (an unknown one is
    recorded first), the deregister step noted when it goes forward; one audit row."""
    record = await store.deploy(adoption.deploy_id)
    reason = f"restored from a backup: {adoption.described}"
    if record is None:
        at = adoption.launched or utc_now()
        await store.create_deploy(
            DeployRecord(
                id=adoption.deploy_id,
                project=adoption.project,
                cluster=adoption.cluster,
                release=adoption.release,
                actor=actor,
                state=RUNNING,
                created_at=at,
                started_at=at,
                runner=LOST_RUNNER,
                reason=reason,
            )
        )
    elif record.state == QUEUED:  # it ran after the copy: never run it a second time
        await store.set_deploy_state(adoption.deploy_id, RUNNING, reason=reason)
    if adoption.forward:
        steps = {step.step for step in await store.steps(adoption.deploy_id)}
        if Step.DEREGISTER.value not in steps:
            detail = "(restore) its instances serve: the old ones were being taken out"
            await store.step_started(adoption.deploy_id, Step.DEREGISTER.value, detail=detail)
            await store.step_finished(
                adoption.deploy_id, Step.DEREGISTER.value, StepState.SUCCEEDED.value
            )
    await store.audit(
        "deploy.adopted",
        actor=actor,
        project=adoption.project,
        cluster=adoption.cluster,
        deploy_id=adoption.deploy_id,
        instance_ids=adoption.instance_ids,
        outcome=RUNNING,
        reason=reason,
    )
