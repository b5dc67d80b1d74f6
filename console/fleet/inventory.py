"""The fleet inventory: one FleetSnapshot from the fewest AWS calls, keeping last good data."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

from console.config import ClusterConfig, Config
from console.errors import AwsError
from console.fleet import dns
from console.model import (
    ClusterStatus,
    DnsRecord,
    EnvStatus,
    FleetSnapshot,
    Health,
    Instance,
    LoadBalancerKind,
    LoadBalancerSettings,
    TargetState,
    summarize_health,
)

if TYPE_CHECKING:
    # Imported when the first gateway is made: a console that reads the fleet from the store
    # (console/fleet/share.py) never loads boto3.
    from console.aws.gateway import AwsGateway


class FleetSource(Protocol):
    """What the UI needs of a fleet: Fleet in-process, or ProcessFleet in a worker."""

    async def refresh(self) -> FleetSnapshot: ...

    async def load_balancer_settings(
        self, project: str, cluster: str
    ) -> tuple[LoadBalancerSettings, ...]: ...


LIVE_STATES = ["pending", "running", "shutting-down", "stopping", "stopped"]


def _now() -> datetime:
    return datetime.now(UTC)


def _utc(moment: datetime | None) -> datetime | None:
    """botocore parses times into the local zone; the console speaks UTC."""
    return moment.astimezone(UTC) if moment is not None else None


def _tag(tags: Iterable[dict[str, str]] | None, key: str) -> str | None:
    for tag in tags or ():
        if tag.get("Key") == key:
            return tag.get("Value")
    return None


@dataclass
class _GroupReading:
    """What one account+region returned in one refresh."""

    instances: list[dict[str, Any]]
    classic: dict[str, dict[str, Any]]
    target_groups: dict[str, dict[str, Any]]
    health: dict[tuple[str, str], dict[str, TargetState]]  # (kind, lb) -> instance -> state
    health_errors: dict[tuple[str, str], str]
    # (dns) Every load balancer listed here, by DNS name, and the ALBs (read when a pair here
    # has a DNS name: a record is judged against them).
    listed: dict[str, str] = field(default_factory=dict)
    albs: list[dict[str, Any]] = field(default_factory=list)


class Fleet:
    """Reads the whole fleet; a cluster that fails keeps its last good data, with the error."""

    def __init__(
        self,
        config: Config,
        clock: Callable[[], datetime] = _now,
        on_call: Callable[[str], None] | None = None,
        mfa_prompt: Callable[[str], str] | None = None,
    ) -> None:
        """`mfa_prompt` asks a person at a terminal for an MFA code (clusters with mfa_serial);
        without one, such clusters fail with a line that says why."""
        self.config = config
        self._roles: Any = None  # console.aws.role.RoleSessions, made with the first gateway
        self._mfa_prompt = mfa_prompt
        self._clock = clock
        self._executor: ThreadPoolExecutor | None = None  # made with the first gateway
        self._groups: dict[tuple[Any, ...], list[ClusterConfig]] = {}
        for cluster in config.clusters:
            self._groups.setdefault(cluster.account_key, []).append(cluster)
        # By (account_key, user): None is this process's own OS account.
        self._gateways: dict[tuple[tuple[Any, ...], str | None], AwsGateway | AwsError] = {}
        self._on_call = on_call
        self._gateway_locks: dict[tuple[tuple[Any, ...], str | None], threading.Lock] = {}
        self._last_good: dict[tuple[str, str], EnvStatus] = {}
        # The configured load balancers as the last good refresh listed them, per cluster.
        self._listed: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
        self._cluster_fetched: dict[str, datetime] = {}
        self._lock = asyncio.Lock()
        self._in_flight: asyncio.Task[FleetSnapshot] | None = None
        self._dns = dns.DnsReader(config, self._gateway_for)  # (dns) the pairs' records
        self.last_snapshot: FleetSnapshot | None = None

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)

    def gateway(
        self, cluster_name: str, user: str | None = None, *, deploy: bool = False
    ) -> AwsGateway:
        """The cluster's gateway; with a role_arn, its calls are made as `user` (the role's
        SourceIdentity, e.g. the person who asked for a deploy), else as this process's
        OS account. With `deploy`, in the cluster's deploy_role_arn if it has one (the
        runner's role; reading needs only role_arn). One gateway per role and user."""
        cluster = self.config.cluster(cluster_name)
        if deploy and cluster.deploy_role_arn:
            cluster = replace(cluster, role_arn=cluster.deploy_role_arn)
        # Without a role, who asks changes nothing AWS sees: one gateway serves everyone.
        gateway = self._gateway_for(cluster, user if cluster.role_arn else None)
        if isinstance(gateway, AwsError):
            raise gateway
        return gateway

    def _gateway_for(
        self, cluster: ClusterConfig, user: str | None = None
    ) -> AwsGateway | AwsError:
        """The gateway of `cluster`'s account+region (its first cluster's settings)."""
        key = cluster.account_key
        first = self._groups.get(key, [cluster])[0]
        made = (key, user)
        # (dns) The DNS reading asks for a gateway while the group reads do: made once.
        with self._gateway_locks.setdefault(made, threading.Lock()):
            return self._made_gateway(made, first, user)

    def _made_gateway(
        self, made: tuple[tuple[Any, ...], str | None], first: ClusterConfig, user: str | None
    ) -> AwsGateway | AwsError:
        if made not in self._gateways:
            from console.aws.gateway import MAX_CONCURRENT_CALLS, AwsGateway
            from console.aws.role import RoleSessions

            if self._roles is None:
                self._roles = RoleSessions(self._mfa_prompt)
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    max_workers=MAX_CONCURRENT_CALLS, thread_name_prefix="aws"
                )
            try:
                self._gateways[made] = AwsGateway(
                    first, self._executor, self._on_call, user=user, roles=self._roles
                )
            except AwsError as error:
                self._gateways[made] = error
        return self._gateways[made]

    @property
    def gateways(self) -> list[AwsGateway]:
        return [g for g in self._gateways.values() if not isinstance(g, AwsError)]

    def call_count(self) -> dict[str, int]:
        """AWS operations made so far, by name, over every account+region."""
        total: dict[str, int] = {}
        for gateway in self.gateways:
            for name, count in gateway.calls.items():
                total[name] = total.get(name, 0) + count
        return total

    async def refresh(self) -> FleetSnapshot:
        """A new snapshot. Concurrent callers share one refresh: never two at once."""
        if self._in_flight is not None and not self._in_flight.done():
            return await asyncio.shield(self._in_flight)
        self._in_flight = asyncio.ensure_future(self._refresh())
        return await asyncio.shield(self._in_flight)

    async def _refresh(self) -> FleetSnapshot:
        async with self._lock:
            readings, records = await asyncio.gather(
                asyncio.gather(
                    *(self._read_group(key, clusters) for key, clusters in self._groups.items())
                ),
                self._dns.read(),
            )
            now = self._clock()
            # Grouping thousands of instances is pure Python: done in a thread, the event
            # loop (the UI) keeps getting the GIL every switch interval instead of stalling.
            snapshot = await asyncio.to_thread(self._assemble, list(readings), now, records)
            self.last_snapshot = snapshot
            return snapshot

    def _assemble(
        self, readings: list[_GroupReading | str], now: datetime, records: dns.DnsReading
    ) -> FleetSnapshot:
        envs: dict[tuple[str, str], EnvStatus] = {}
        balancers = dns.fleet_balancers(
            self.config,
            [
                (clusters, reading)
                for clusters, reading in zip(self._groups.values(), readings, strict=True)
                if not isinstance(reading, str)
            ],
        )
        cluster_status: dict[str, ClusterStatus] = {}
        for clusters, reading in zip(self._groups.values(), readings, strict=True):
            for cluster in clusters:
                if isinstance(reading, str):
                    cluster_status[cluster.name] = ClusterStatus(
                        cluster.name,
                        cluster.protected,
                        error=reading,
                        fetched_at=self._cluster_fetched.get(cluster.name),
                    )
                    envs.update(self._stale_envs(cluster, reading))
                else:
                    self._cluster_fetched[cluster.name] = now
                    cluster_status[cluster.name] = ClusterStatus(
                        cluster.name, cluster.protected, fetched_at=now
                    )
                    envs.update(self._build_envs(cluster, reading, now, (records, balancers)))
        return FleetSnapshot(
            generated_at=now,
            clusters=tuple(cluster_status[c.name] for c in self.config.clusters),
            projects=self.config.project_names,
            envs=envs,
        )

    def _stale_envs(self, cluster: ClusterConfig, error: str) -> dict[tuple[str, str], EnvStatus]:
        envs: dict[tuple[str, str], EnvStatus] = {}
        for project in self.config.projects:
            settings = project.clusters.get(cluster.name)
            if settings is None:
                continue
            key = (project.name, cluster.name)
            last = self._last_good.get(key)
            if last is None:
                envs[key] = EnvStatus(
                    project.name,
                    cluster.name,
                    Health.UNKNOWN,
                    load_balancers=settings.load_balancers,
                    error=error,
                )
            else:
                envs[key] = replace(last, health=Health.UNKNOWN, error=error)
        return envs

    async def _read_group(
        self, key: tuple[Any, ...], clusters: list[ClusterConfig]
    ) -> _GroupReading | str:
        gateway = await asyncio.to_thread(self._gateway_for, clusters[0])
        if isinstance(gateway, AwsError):
            return gateway.message
        tags = self.config.tags
        names = {c.name for c in clusters}
        classic_names, group_names = self._configured_load_balancers(names)
        filters = [
            {"Name": "tag-key", "Values": [tags.project]},
            {"Name": f"tag:{tags.environment}", "Values": sorted(names)},
            {"Name": "instance-state-name", "Values": LIVE_STATES},
        ]

        async def no_listing() -> list[dict[str, Any]]:
            return []

        # (dns) With a DNS name in the config, every load balancer is listed: records are
        # judged against them all.
        judging = self._dns.active
        try:
            instances, classic_list, group_list, albs = await asyncio.gather(
                gateway.describe_instances(filters),
                gateway.classic_load_balancers() if classic_names or judging else no_listing(),
                gateway.target_groups() if group_names else no_listing(),
                gateway.load_balancers() if judging else no_listing(),
            )
        except AwsError as error:
            return error.message
        classic = {
            lb["LoadBalancerName"]: lb
            for lb in classic_list
            if lb["LoadBalancerName"] in classic_names
        }
        target_groups = {
            tg["TargetGroupName"]: tg for tg in group_list if tg["TargetGroupName"] in group_names
        }
        health, health_errors = await _read_health(gateway, classic, target_groups)
        for cluster in clusters:
            self._listed[cluster.name] = (classic, target_groups)
        listed = dns.listed_balancers(classic_list, albs) if judging else {}
        return _GroupReading(instances, classic, target_groups, health, health_errors, listed, albs)

    def _configured_load_balancers(self, cluster_names: set[str]) -> tuple[set[str], set[str]]:
        """The classic ELBs and the target groups the projects name in these clusters."""
        classic_names: set[str] = set()
        group_names: set[str] = set()
        for project in self.config.projects:
            for cluster_name, settings in project.clusters.items():
                if cluster_name in cluster_names:
                    classic_names.update(settings.classic_elbs)
                    group_names.update(settings.target_groups)
        return classic_names, group_names

    def _build_envs(
        self,
        cluster: ClusterConfig,
        reading: _GroupReading,
        now: datetime,
        judging: tuple[dns.DnsReading, dns.Balancers] | None = None,
    ) -> dict[tuple[str, str], EnvStatus]:
        tags = self.config.tags
        by_project: dict[str, list[dict[str, Any]]] = {}
        for raw in reading.instances:
            if _tag(raw.get("Tags"), tags.environment) != cluster.name:
                continue
            project_name = _tag(raw.get("Tags"), tags.project)
            if project_name:
                by_project.setdefault(project_name, []).append(raw)
        envs: dict[tuple[str, str], EnvStatus] = {}
        for project in self.config.projects:
            settings = project.clusters.get(cluster.name)
            if settings is None:
                continue
            errors: list[str] = []
            lbs: list[tuple[LoadBalancerKind, str]] = [
                (LoadBalancerKind.CLASSIC, name) for name in settings.classic_elbs
            ] + [(LoadBalancerKind.TARGET_GROUP, name) for name in settings.target_groups]
            for kind, name in lbs:
                listed = (
                    reading.classic if kind == LoadBalancerKind.CLASSIC else reading.target_groups
                )
                if name not in listed:
                    what = "classic ELB" if kind == LoadBalancerKind.CLASSIC else "target group"
                    errors.append(f"{what} {name} not found")
                elif (kind, name) in reading.health_errors:
                    errors.append(f"health of {name}: {reading.health_errors[(kind, name)]}")
            instances = tuple(
                sorted(
                    (self._instance(raw, lbs, reading) for raw in by_project.get(project.name, [])),
                    key=lambda instance: (instance.launched_at or now, instance.id),
                )
            )
            health = summarize_health(instances)
            if (
                any((kind, name) in reading.health_errors for kind, name in lbs)
                and health != Health.EMPTY
            ):
                health = Health.UNKNOWN
            env = EnvStatus(
                project=project.name,
                cluster=cluster.name,
                health=health,
                instances=instances,
                load_balancers=settings.load_balancers,
                error="; ".join(errors) or None,
                fetched_at=now,
                dns=_record(project.name, cluster.name, settings.dns, instances, judging),
            )
            envs[(project.name, cluster.name)] = env
            self._last_good[(project.name, cluster.name)] = env
        return envs

    def _instance(
        self,
        raw: dict[str, Any],
        lbs: list[tuple[LoadBalancerKind, str]],
        reading: _GroupReading,
    ) -> Instance:
        instance_id = raw["InstanceId"]
        targets: list[TargetState] = []
        for kind, name in lbs:
            per_lb = reading.health.get((kind, name))
            if per_lb is None:
                reason = reading.health_errors.get((kind, name), "load balancer not found")
                targets.append(TargetState(name, kind, "unknown", reason))
            elif instance_id in per_lb:
                targets.append(per_lb[instance_id])
            elif kind == LoadBalancerKind.CLASSIC:
                targets.append(TargetState(name, kind, "OutOfService", "not registered"))
            else:
                targets.append(TargetState(name, kind, "unused", "Target.NotRegistered"))
        return Instance(
            id=instance_id,
            state=raw.get("State", {}).get("Name", "unknown"),
            image_id=raw.get("ImageId", ""),
            version=_tag(raw.get("Tags"), self.config.tags.version) or "?",
            launched_at=_utc(raw.get("LaunchTime")),
            private_address=raw.get("PrivateIpAddress", "") or "",
            targets=tuple(targets),
            deploy_id=_tag(raw.get("Tags"), "DeployId"),
            managed_by=_tag(raw.get("Tags"), "ManagedBy"),
        )

    async def load_balancer_settings(
        self, project: str, cluster: str
    ) -> tuple[LoadBalancerSettings, ...]:
        """Health check and draining settings of a project's load balancers in a cluster.

        Read on demand (the project screen), not on every refresh: the dashboard's refresh
        stays at the minimum number of calls. The health checks come from the last refresh's
        listing when there is one; only the attributes (draining) are asked for.
        """
        settings = self.config.project(project).clusters.get(cluster)
        if settings is None:
            return ()
        gateway = await asyncio.to_thread(self.gateway, cluster)
        listed_classic, listed_groups = self._listed.get(cluster, (None, None))
        results: list[LoadBalancerSettings] = []
        kinds = (
            (LoadBalancerKind.CLASSIC, settings.classic_elbs, listed_classic, _classic_settings),
            (LoadBalancerKind.TARGET_GROUP, settings.target_groups, listed_groups, _group_settings),
        )
        for kind, names, listed, read in kinds:
            if not names:
                continue
            if listed is None:
                listed = await _listing(gateway, kind)
            for name in names:
                found = listed.get(name)
                if found is None:
                    results.append(LoadBalancerSettings(name, kind, exists=False))
                else:
                    results.append(await read(gateway, name, found))
        return tuple(results)


def _record(
    project: str,
    cluster: str,
    name: str | None,
    instances: tuple[Instance, ...],
    judging: tuple[dns.DnsReading, dns.Balancers] | None,
) -> DnsRecord | None:
    """(dns) The pair's record as this refresh read and judged it (None: no name configured)."""
    if name is None or judging is None:
        return None
    addresses = [i.private_address for i in instances if i.state in ("running", "pending")]
    return dns.judge((project, cluster), name, *judging, addresses)


async def _listing(gateway: AwsGateway, kind: LoadBalancerKind) -> dict[str, Any]:
    """Every load balancer of a kind in the gateway's account and region, by name."""
    if kind == LoadBalancerKind.CLASSIC:
        return {lb["LoadBalancerName"]: lb for lb in await gateway.classic_load_balancers()}
    return {tg["TargetGroupName"]: tg for tg in await gateway.target_groups()}


async def _classic_settings(
    gateway: AwsGateway, name: str, lb: dict[str, Any]
) -> LoadBalancerSettings:
    check = lb.get("HealthCheck", {})
    draining = (await gateway.classic_attributes(name)).get("ConnectionDraining", {})
    return LoadBalancerSettings(
        name,
        LoadBalancerKind.CLASSIC,
        target=check.get("Target", ""),
        deregistration_delay_seconds=draining.get("Timeout") if draining.get("Enabled") else 0,
        **_health_check(check, "Interval", "Timeout", "HealthyThreshold", "UnhealthyThreshold"),
    )


async def _group_settings(
    gateway: AwsGateway, name: str, tg: dict[str, Any]
) -> LoadBalancerSettings:
    attributes = await gateway.target_group_attributes(tg["TargetGroupArn"])
    delay = attributes.get("deregistration_delay.timeout_seconds")
    return LoadBalancerSettings(
        name,
        LoadBalancerKind.TARGET_GROUP,
        target=(
            f"{tg.get('HealthCheckProtocol', '')}:{tg.get('HealthCheckPort', '')}"
            f"{tg.get('HealthCheckPath', '')}"
        ),
        deregistration_delay_seconds=int(delay) if delay is not None else None,
        **_health_check(
            tg,
            "HealthCheckIntervalSeconds",
            "HealthCheckTimeoutSeconds",
            "HealthyThresholdCount",
            "UnhealthyThresholdCount",
        ),
    )


def _health_check(
    described: dict[str, Any], interval: str, timeout: str, healthy: str, unhealthy: str
) -> dict[str, Any]:
    """LoadBalancerSettings' health check fields, from a description that names them so."""
    return {
        "interval_seconds": described.get(interval),
        "timeout_seconds": described.get(timeout),
        "healthy_threshold": described.get(healthy),
        "unhealthy_threshold": described.get(unhealthy),
    }


async def _read_health(
    gateway: AwsGateway, classic: dict[str, Any], target_groups: dict[str, Any]
) -> tuple[dict[tuple[str, str], dict[str, TargetState]], dict[tuple[str, str], str]]:
    """Every listed load balancer's health, by (kind, name); and the errors of those that did
    not answer. At most MAX_CONCURRENT_CALLS at once."""
    from console.aws.gateway import MAX_CONCURRENT_CALLS  # loaded already: a gateway answered

    semaphore = asyncio.Semaphore(MAX_CONCURRENT_CALLS)
    health: dict[tuple[str, str], dict[str, TargetState]] = {}
    health_errors: dict[tuple[str, str], str] = {}

    async def read(
        kind: LoadBalancerKind,
        name: str,
        ask: Callable[[], Awaitable[list[dict[str, Any]]]],
        target: Callable[[dict[str, Any]], tuple[str, str, str]],
    ) -> None:
        async with semaphore:
            try:
                answers = await ask()
            except AwsError as error:
                health_errors[(kind, name)] = error.message
                return
        health[(kind, name)] = {
            instance: TargetState(name, kind, state, reason)
            for instance, state, reason in map(target, answers)
        }

    classic_kind, group_kind = LoadBalancerKind.CLASSIC, LoadBalancerKind.TARGET_GROUP
    await asyncio.gather(
        *(
            read(classic_kind, name, partial(gateway.classic_health, name), _classic_target)
            for name in sorted(classic)
        ),
        *(
            read(
                group_kind,
                name,
                partial(gateway.target_health, tg["TargetGroupArn"]),
                _group_target,
            )
            for name, tg in sorted(target_groups.items())
        ),
    )
    return health, health_errors


def _classic_target(state: dict[str, Any]) -> tuple[str, str, str]:
    """An instance's id, state and reason in a classic ELB's health answer."""
    return state["InstanceId"], state.get("State", "Unknown"), _classic_reason(state)


def _group_target(item: dict[str, Any]) -> tuple[str, str, str]:
    """A target's instance id, state and reason in a target group's health answer."""
    health = item.get("TargetHealth", {})
    return item["Target"]["Id"], health.get("State", "unavailable"), health.get("Reason", "")


def _classic_reason(state: dict[str, Any]) -> str:
    description = state.get("Description") or ""
    if description in ("N/A", ""):
        return state.get("ReasonCode", "") if state.get("ReasonCode") not in (None, "N/A") else ""
    return str(description)
