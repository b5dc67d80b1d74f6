"""The domain model: frozen values that describe the fleet as the console sees it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class Health(StrEnum):
    """How one project is doing in one cluster."""

    HEALTHY = "healthy"
    DEGRADED = "degraded"
    DOWN = "down"
    EMPTY = "empty"
    UNKNOWN = "unknown"


class LoadBalancerKind(StrEnum):
    CLASSIC = "classic"
    TARGET_GROUP = "target-group"


# Target states that count as serving traffic, for ALB/NLB target groups and classic ELBs.
SERVING_STATES = frozenset({"healthy", "InService"})


@dataclass(frozen=True)
class TargetState:
    """An instance's state in one load balancer, with the reason AWS gives."""

    load_balancer: str
    kind: LoadBalancerKind
    state: str
    reason: str = ""

    @property
    def serving(self) -> bool:
        return self.state in SERVING_STATES


@dataclass(frozen=True)
class Instance:
    id: str
    state: str
    image_id: str
    version: str
    launched_at: datetime | None
    private_address: str
    targets: tuple[TargetState, ...] = ()
    # (drift) Its DeployId and ManagedBy tags: who launched it (None: no such tag).
    deploy_id: str | None = None
    managed_by: str | None = None

    @property
    def serving(self) -> bool:
        """Running and healthy in every load balancer it is expected in."""
        return self.state == "running" and all(target.serving for target in self.targets)


@dataclass(frozen=True)
class LoadBalancerSettings:
    """Health check and draining settings of one load balancer, read from AWS."""

    name: str
    kind: LoadBalancerKind
    exists: bool = True
    interval_seconds: int | None = None
    timeout_seconds: int | None = None
    healthy_threshold: int | None = None
    unhealthy_threshold: int | None = None
    target: str = ""
    deregistration_delay_seconds: int | None = None

    @property
    def time_to_healthy_seconds(self) -> int | None:
        """Healthy threshold x interval + one interval (AWS's own arithmetic)."""
        if self.interval_seconds is None or self.healthy_threshold is None:
            return None
        return self.healthy_threshold * self.interval_seconds + self.interval_seconds


@dataclass(frozen=True)
class DnsRecord:
    """(dns) A pair's Route 53 record as read (console/fleet/dns.py): its type, what it points
    at (values, or an alias's target), TTL, whether that is the pair's own load balancer (or,
    without one, its instances), and what is wrong with it (None: nothing, or not known)."""

    name: str
    type: str | None = None  # None: Route 53 has no record of that name
    values: tuple[str, ...] = ()
    ttl: int | None = None
    alias: bool = False
    points_to_pair: bool = False
    finding: str | None = None
    error: str | None = None  # the read failed: what the record was is not known


@dataclass(frozen=True)
class EnvStatus:
    """One project in one cluster: its instances, health and versions."""

    project: str
    cluster: str
    health: Health
    instances: tuple[Instance, ...] = ()
    load_balancers: tuple[str, ...] = ()
    error: str | None = None
    fetched_at: datetime | None = None
    dns: DnsRecord | None = None  # (dns) None: the pair has no DNS name configured

    @property
    def versions(self) -> tuple[str, ...]:
        """Versions running, most instances first."""
        counts: dict[str, int] = {}
        newest: dict[str, float] = {}
        for instance in self.instances:
            if instance.state in ("running", "pending"):
                counts[instance.version] = counts.get(instance.version, 0) + 1
                launched = instance.launched_at.timestamp() if instance.launched_at else 0.0
                newest[instance.version] = max(newest.get(instance.version, 0.0), launched)
        # On a tie, the most recently launched release first: that is where a deploy went.
        return tuple(
            sorted(counts, key=lambda version: (-counts[version], -newest[version], version))
        )

    @property
    def serving_count(self) -> int:
        return sum(1 for instance in self.instances if instance.serving)

    @property
    def total_count(self) -> int:
        return len(self.instances)

    def age_seconds(self, now: datetime) -> float | None:
        if self.fetched_at is None:
            return None
        return max(0.0, (now - self.fetched_at).total_seconds())


@dataclass(frozen=True)
class ClusterStatus:
    name: str
    protected: bool
    error: str | None = None
    fetched_at: datetime | None = None


@dataclass(frozen=True)
class FleetSnapshot:
    """Every project in every cluster at one moment."""

    generated_at: datetime
    clusters: tuple[ClusterStatus, ...]
    projects: tuple[str, ...]
    envs: dict[tuple[str, str], EnvStatus] = field(default_factory=dict)

    def env(self, project: str, cluster: str) -> EnvStatus | None:
        """None when the project is not deployed to that cluster at all."""
        return self.envs.get((project, cluster))

    def cluster(self, name: str) -> ClusterStatus:
        for cluster in self.clusters:
            if cluster.name == name:
                return cluster
        raise KeyError(name)


def summarize_health(instances: tuple[Instance, ...]) -> Health:
    """Health of a project in a cluster from its instances."""
    if not instances:
        return Health.EMPTY
    serving = sum(1 for instance in instances if instance.serving)
    if serving == len(instances):
        return Health.HEALTHY
    if serving == 0:
        return Health.DOWN
    return Health.DEGRADED


@dataclass(frozen=True)
class Release:
    """A deployable build: an AMI tagged with its project and version."""

    version: str
    image_id: str
    created_at: datetime | None
    state: str = "available"
    name: str = ""
    # Clusters that run this version now (any running instance of it).
    clusters: tuple[str, ...] = ()


class DeployState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"

    @property
    def finished(self) -> bool:
        return self not in (DeployState.QUEUED, DeployState.RUNNING)

    @property
    def words(self) -> str:
        """The state as people read it, the same on every screen and in the CLI's text
        output ("rolled back"); JSON and `--state` keep the value ("rolled_back")."""
        return self.value.replace("_", " ")


class Step(StrEnum):
    """The red/black steps, in the order they run (DEPLOY_SEMANTICS 0-9)."""

    LOCK = "lock"
    RESOLVE = "resolve"
    LAUNCH = "launch"
    CONFIGURE = "configure"
    REGISTER = "register"
    HEALTH_GATE = "health-gate"
    TRAFFIC_GUARD = "traffic-guard"
    DEREGISTER = "deregister"
    TERMINATE = "terminate"
    # Only with a cluster's `bake`: watching alarms and load balancers after the switch.
    BAKE = "bake"
    ROLLBACK = "rollback"


# The steps every deploy shows; bake and rollback join the list when they start.
DEPLOY_STEPS: tuple[Step, ...] = tuple(
    step for step in Step if step not in (Step.ROLLBACK, Step.BAKE)
)


class StepState(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class DeployRequest:
    """Deploy `release` (a version or an AMI id) of a project to a cluster."""

    project: str
    cluster: str
    release: str
    actor: str
    # Set when this deploy puts back the release a finished deploy replaced.
    rollback_of: str | None = None
    # The change ticket it goes with (a cluster's `ticket` setting says whether one is needed).
    ticket: str | None = None
    # Not before this time (`deploy --at`, aware); an admin's reason to start it outside its
    # cluster's deploy windows (`--outside-window`).
    not_before: datetime | None = None
    window_override: str | None = None
    # (provisioning) What the queue runs for the pair: "deploy" (red/black to `release`),
    # "stack" (a stack change: `release` is its change id) or "scale" (`release`: the count).
    kind: str = "deploy"


@dataclass(frozen=True)
class PlannedLoadBalancer:
    name: str
    kind: LoadBalancerKind
    removing: tuple[str, ...]  # old instance ids that leave it
    time_to_healthy_seconds: int | None
    drain_seconds: int | None


@dataclass(frozen=True)
class DeployPlan:
    """What a deploy will do, read from AWS before anyone confirms it."""

    project: str
    cluster: str
    protected: bool
    release: Release
    current_versions: tuple[str, ...]
    old_instances: tuple[str, ...]
    instance_type: str
    count: int
    load_balancers: tuple[PlannedLoadBalancer, ...]
    # A rollback within the cluster's keep_old: the kept old instances it starts again
    # instead of launching (console/deploy/retention.py).
    reuses: tuple[str, ...] = ()
    # A group-backed pair: the Auto Scaling group the deploy makes, and the ones it replaces.
    group: str = ""
    replaces_groups: tuple[str, ...] = ()

    @property
    def expected_healthy_seconds(self) -> int:
        return max((lb.time_to_healthy_seconds or 0 for lb in self.load_balancers), default=0)

    @property
    def drain_seconds(self) -> int:
        return max((lb.drain_seconds or 0 for lb in self.load_balancers), default=0)
