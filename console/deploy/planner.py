"""The deploy planner: what a deploy would do, read from AWS alone (no store, no SSH)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from console.config import ClusterConfig, Config, ProjectConfig
from console.deploy import groups, retention
from console.deploy.balancers import health_of, read_balancers
from console.deploy.releases import resolve_release
from console.deploy.source import Source
from console.errors import ConsoleError, DeployError
from console.identity import person
from console.model import SERVING_STATES, DeployPlan, DeployRequest, PlannedLoadBalancer

if TYPE_CHECKING:
    # Only the type: boto3 loads with the first gateway (console/fleet/inventory.py).
    from console.aws.gateway import AwsGateway


class Gateways(Protocol):
    """A cluster's AWS gateway whose calls are made for `user` (Fleet.gateway): with a role,
    AWS records that user as the session's SourceIdentity."""

    def __call__(
        self, cluster_name: str, user: str | None = None, *, deploy: bool = False
    ) -> AwsGateway: ...


class DeployPlanner:
    """Says what a deploy would do, read from AWS alone: no store, no SSH, nothing changed.

    A command line plans first, so bad input is refused before the store is even created.
    """

    def __init__(self, config: Config, gateway: Gateways) -> None:
        self.config = config
        self._gateway = gateway

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
        project, cluster = pair = self._pair(request)
        gateway = await asyncio.to_thread(self._gateway, cluster.name, person(request.actor))
        release = await resolve_release(
            self.config, gateway, project.name, cluster.name, request.release
        )
        source = await self._read_source(gateway, project, cluster)
        reuses = await self._reusable(gateway, request, release.version)
        count = max(1, len(source.serving))
        group, replaces = "", tuple[str, ...]()
        if groups.is_group_pair(project, cluster):
            group, count, replaces = await groups.plan_group(gateway, self.config, pair, source)
        return DeployPlan(
            project=project.name,
            cluster=cluster.name,
            protected=cluster.protected,
            release=release,
            current_versions=tuple(
                sorted({self._tag(i, self.config.tags.version) or "?" for i in source.instances})
            ),
            old_instances=tuple(i["InstanceId"] for i in source.instances),
            instance_type=self._instance_type(project, cluster, source),
            count=count,
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
            reuses=tuple(reuses),
            group=group,
            replaces_groups=replaces,
        )

    async def _reusable(
        self, gateway: AwsGateway, request: DeployRequest, version: str
    ) -> list[str]:
        """A rollback's kept old instances it can start instead of launching (none for a
        deploy that rolls nothing back, or once the cluster's keep_old has passed)."""
        if request.rollback_of is None:
            return []
        tags = self.config.tags
        return await retention.reusable(
            gateway,
            ({tags.project: request.project, tags.environment: request.cluster}, tags.version),
            request.rollback_of,
            version,
            datetime.now(UTC),
        )

    @staticmethod
    def _instance_type(project: ProjectConfig, cluster: ClusterConfig, source: Source) -> str:
        launch = project.clusters[cluster.name].launch
        if launch is not None:
            return launch.instance_type
        if source.instances:
            return str(source.instances[0].get("InstanceType", "?"))
        raise DeployError(
            f"{project.name} in {cluster.name}: no launch settings in the config and no "
            f"instance to copy them from"
        )

    def _main_version(self, source: Source) -> str | None:
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
    ) -> Source:
        """The pair's instances now, its load balancers (read through `gateway`, which they
        then use), who is in each, and which instances serve in all of them."""
        tags = self.config.tags
        instances = await gateway.describe_instances(
            [
                {"Name": f"tag:{tags.project}", "Values": [project.name]},
                {"Name": f"tag:{tags.environment}", "Values": [cluster.name]},
                {"Name": "instance-state-name", "Values": ["pending", "running"]},
            ]
        )
        instances.sort(key=lambda raw: (str(raw.get("LaunchTime", "")), raw["InstanceId"]))
        balancers = await read_balancers(gateway, project.clusters[cluster.name])
        ids = [raw["InstanceId"] for raw in instances]
        health = await health_of(balancers)
        serving = set(ids)
        for balancer in balancers:
            states = health[balancer.key]
            balancer.old_members = {i for i in ids if i in states and states[i] != "gone"}
            serving &= {i for i in ids if states.get(i) in SERVING_STATES}
        if not balancers:
            serving = {raw["InstanceId"] for raw in instances if _state(raw) == "running"}
        return Source(instances, sorted(serving), balancers)


def _state(raw: dict[str, Any]) -> str:
    return str(raw.get("State", {}).get("Name", "unknown"))
