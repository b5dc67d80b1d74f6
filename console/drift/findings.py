"""Drift findings: what differs between the fleet and what the console put there, as pure
functions of a fleet snapshot, the store's deploy history and the config."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from console.config import Config
from console.model import EnvStatus, FleetSnapshot, Instance

__all__ = [
    "COUNT",
    "KINDS",
    "MANAGED_BY",
    "PROVENANCE",
    "UNMANAGED",
    "Deployed",
    "Finding",
    "earlier_clusters",
    "find",
    "finding_id",
]

PROVENANCE, UNMANAGED, COUNT, STACK = "provenance", "unmanaged", "count", "stack"
KINDS = (PROVENANCE, UNMANAGED, COUNT, STACK)
# The ManagedBy tag a deploy (console/deploy/launch.py) and the world's seed put on instances.
MANAGED_BY = "deploy-console"
# Instances that count: a stopped one (kept by a bake's keep_old, or stopped by hand) serves
# nothing and runs no image anyone could reach.
LIVE = ("pending", "running")


def finding_id(kind: str, project: str, cluster: str, subject: str) -> str:
    """A finding's stable id: the same drift found again is the same finding (its baseline
    and acknowledgement stick); "d-" and 10 hex digits, short enough to type."""
    digest = hashlib.sha256(f"{kind}\0{project}\0{cluster}\0{subject}".encode()).hexdigest()
    return f"d-{digest[:10]}"


@dataclass(frozen=True)
class Finding:
    """One drift: its kind, pair, what it is about (an instance, a count, a resource), what
    is wrong and what to do about it."""

    kind: str
    project: str
    cluster: str
    subject: str
    what: str
    todo: str
    # The instances it is about (not part of its id: a provenance finding is the image's).
    instances: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        return finding_id(self.kind, self.project, self.cluster, self.subject)

    @property
    def pair(self) -> tuple[str, str]:
        return (self.project, self.cluster)


@dataclass(frozen=True)
class Deployed:
    """A deploy the store holds: what went where, and whether it succeeded or still runs."""

    project: str
    cluster: str
    release: str
    image_id: str | None
    state: str


def earlier_clusters(config: Config, project: str, cluster: str) -> tuple[str, ...] | None:
    """The project's clusters in the nearest stage before `cluster`'s on the promotion chain
    (a stage the project is not in is passed over); None when there is no rule: `cluster` is
    not on the chain, or no earlier stage has the project."""
    stages = config.promotion
    where = next((index for index, stage in enumerate(stages) if cluster in stage), None)
    if where is None:
        return None
    clusters = config.project(project).clusters
    for stage in reversed(stages[:where]):
        present = tuple(name for name in stage if name in clusters)
        if present:
            return present
    return None


def find(
    config: Config,
    snapshot: FleetSnapshot,
    deploys: Iterable[Deployed],
    desired: Mapping[tuple[str, str], int | None] | None = None,
) -> list[Finding]:
    """Every finding in the snapshot, pair by pair in config order. `desired`: each pair's
    desired count as `scale` keeps it (a pair left out: the config's `desired`)."""
    history = list(deploys)
    found: list[Finding] = []
    for project in config.projects:
        for cluster in config.cluster_names:
            if cluster not in project.clusters:
                continue
            env = snapshot.env(project.name, cluster)
            if env is None or env.fetched_at is None or env.error is not None:
                continue  # not read (yet): nothing is known of it
            wanted = project.clusters[cluster].desired
            if desired is not None and (project.name, cluster) in desired:
                wanted = desired[(project.name, cluster)]
            found += _pair_findings(config, env, history, wanted)
    return found


def _pair_findings(
    config: Config, env: EnvStatus, history: list[Deployed], desired: int | None
) -> list[Finding]:
    live = [instance for instance in env.instances if instance.state in LIVE]
    found = [_unmanaged(env, instance) for instance in live if _unmanaged_one(instance)]
    earlier = earlier_clusters(config, env.project, env.cluster)
    if earlier is not None:
        proven = _proven(history, env.project, earlier)
        unproven: dict[str, list[Instance]] = {}
        for instance in live:
            if instance.image_id not in proven and instance.version not in proven:
                unproven.setdefault(instance.image_id, []).append(instance)
        found += [_provenance(env, same, earlier) for same in unproven.values()]
    running = any(
        d.project == env.project and d.cluster == env.cluster and d.state == "running"
        for d in history
    )  # a deploy in flight runs old and new instances side by side for a while
    if desired is not None and not running and len(live) != desired:
        found.append(_count(env, live, desired))
    return found


def _unmanaged_one(instance: Instance) -> bool:
    return instance.deploy_id is None and instance.managed_by != MANAGED_BY


def _unmanaged(env: EnvStatus, instance: Instance) -> Finding:
    return Finding(
        UNMANAGED,
        env.project,
        env.cluster,
        instance.id,
        f"{instance.id} ({instance.version}, {instance.image_id}) was not launched by this "
        "console: no DeployId tag, no ManagedBy=deploy-console",
        "deploy the pair to replace it, or terminate it; if it belongs, tag it "
        "ManagedBy=deploy-console",
        (instance.id,),
    )


def _proven(history: list[Deployed], project: str, clusters: tuple[str, ...]) -> set[str]:
    """The images and versions deployed successfully to the project in one of `clusters`."""
    proven: set[str] = set()
    for deploy in history:
        if deploy.project == project and deploy.cluster in clusters and deploy.state == "succeeded":
            proven.add(deploy.release)
            if deploy.image_id:
                proven.add(deploy.image_id)
    return proven - {"?"}


def _provenance(env: EnvStatus, instances: list[Instance], earlier: tuple[str, ...]) -> Finding:
    """One image on the pair that never passed the stage before (its instances listed)."""
    first = instances[0]
    before = " or ".join(earlier)
    ids = tuple(instance.id for instance in instances)
    return Finding(
        PROVENANCE,
        env.project,
        env.cluster,
        first.image_id,
        f"{first.version} ({first.image_id}) on {', '.join(ids)} was never deployed "
        f"successfully to {before}",
        f"deploy a release that passed {before}; a fleet taken over as it runs: drift --baseline",
        ids,
    )


def _count(env: EnvStatus, live: list[Instance], desired: int) -> Finding:
    count = len(live)
    direction = "below" if count < desired else "above"
    return Finding(
        COUNT,
        env.project,
        env.cluster,
        direction,
        f"{count} instance{'s' if count != 1 else ''} running, {desired} desired ({direction})",
        f"scale {env.project} {env.cluster} {desired} brings it back to {desired}; "
        f"scale {env.project} {env.cluster} {count} makes {count} the desired count"
        if count
        else f"deploy {env.project} to {env.cluster}: nothing runs",
        tuple(instance.id for instance in live),
    )
