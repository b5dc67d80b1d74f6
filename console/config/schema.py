"""What a config is: the frozen dataclasses the TOML becomes, and their defaults."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from console.config.backup import BackupSettings
from console.config.bake import BakeSettings
from console.config.gates import HookSettings, ProbeSettings
from console.config.keymap import KeymapSettings
from console.config.notify import NotifySettings
from console.config.provisioning import DnsSettings, StackSettings
from console.config.tickets import TicketSettings
from console.config.web import WebSettings
from console.config.windows import DeployWindow
from console.errors import ConfigError

__all__ = [
    "CLUSTER_COLOURS",
    "DEFAULT_ANCHOR_KEY",
    "AccessSettings",
    "AuditSettings",
    "BackupSettings",
    "ClusterConfig",
    "Config",
    "DeploySettings",
    "DnsSettings",
    "EngineSettings",
    "HookSettings",
    "LaunchSettings",
    "ProbeSettings",
    "ProjectClusterConfig",
    "ProjectConfig",
    "QueueSettings",
    "SshSettings",
    "SshdKey",
    "SshdSettings",
    "StackSettings",
    "TagKeys",
    "TicketSettings",
    "WorldConfig",
    "WorldEnv",
    "WorldProject",
]


@dataclass(frozen=True)
class TagKeys:
    project: str = "Project"
    environment: str = "Environment"
    version: str = "Version"


@dataclass(frozen=True)
class SshSettings:
    """How the deploy engine reaches a cluster's instances over SSH."""

    user: str
    key: Path
    known_hosts: Path
    jump_host: str | None = None
    port: int = 22
    connect_timeout: float = 10.0

    @property
    def jump_address(self) -> tuple[str, int] | None:
        """The jump host as (host, port); port 22 when the config gives none."""
        if self.jump_host is None:
            return None
        host, _, port = self.jump_host.rpartition(":")
        if not host:
            return (self.jump_host, 22)
        return (host.strip("[]"), int(port))


# The colours a cluster may be given (`colour = "..."`): names a person knows.
CLUSTER_COLOURS = ("red", "orange", "yellow", "green", "cyan", "blue", "purple", "magenta", "grey")


@dataclass(frozen=True)
class ClusterConfig:
    name: str
    region: str
    profile: str | None = None
    endpoint_url: str | None = None
    role_arn: str | None = None
    # The role deploys assume instead (the runner's, allowed to change the fleet); role_arn
    # then only reads, and a process that never deploys never holds write credentials.
    deploy_role_arn: str | None = None
    # Passed as ExternalId when assuming role_arn (the role's trust policy may require it).
    external_id: str | None = None
    # An MFA device (ARN or serial) the role requires: a person types its code at a terminal.
    mfa_serial: str | None = None
    protected: bool = False
    ssh: SshSettings | None = None
    # How its column and tiles look (one of CLUSTER_COLOURS); a protected cluster's header
    # is a bar in it (red when unset), so production is unmistakable.
    colour: str | None = None
    # When deploys may start ([] : any time); a deploy queued outside them waits.
    windows: tuple[DeployWindow, ...] = ()
    # `ticket = { required, pattern }`: the change ticket a deploy to it carries (None: no
    # ticket field is offered, and one given is only checked for its form).
    ticket: TicketSettings | None = None
    # `bake`, `alarms`, `keep_old`, `bake_max_5xx`, `bake_max_unhealthy`: what is watched once
    # the new instances serve, and how long the old are kept stopped (default: not at all).
    bake: BakeSettings = field(default_factory=BakeSettings)
    # `require_build = { url } | { command }`: must say a release's build passed before a
    # deploy of it is queued here (gates: console/gates/).
    require_build: ProbeSettings | None = None
    # `approvals = N`: how many other people with `approve` on it approve a deploy before it
    # starts (0: none); an approval counts for `approval_expires` seconds ("4h" in the file).
    approvals: int = 0
    approval_expires: float = 4 * 3600.0
    # (provisioning) `stack = {...}`: the defaults of its pairs' stacks (a pair's `stack = true`
    # takes them, a pair's table changes some); None: StackSettings' own.
    stack: StackSettings | None = None

    @property
    def account_key(self) -> tuple[str | None, ...]:
        """Clusters with the same credentials and region are asked together."""
        return (
            self.endpoint_url,
            self.profile,
            self.role_arn,  # deploy_role_arn aside: reading never uses it
            self.external_id,
            self.mfa_serial,
            self.region,
        )


@dataclass(frozen=True)
class LaunchSettings:
    instance_type: str
    subnet: str
    security_groups: tuple[str, ...] = ()
    key_name: str | None = None
    instance_profile: str | None = None


@dataclass(frozen=True)
class ProjectClusterConfig:
    classic_elbs: tuple[str, ...] = ()
    target_groups: tuple[str, ...] = ()
    launch: LaunchSettings | None = None
    # Added to (and overriding) the project's deploy env and secrets in this cluster.
    env: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    # (provisioning) How many instances the pair should run (drift compares; `scale` changes
    # it); its DNS record's name (the pair's `dns`, else the project's filled in); the stack
    # the console owns for it (opt-in: None leaves the infrastructure to someone else).
    desired: int | None = None
    dns: str | None = None
    stack: StackSettings | None = None

    @property
    def load_balancers(self) -> tuple[str, ...]:
        return self.classic_elbs + self.target_groups


@dataclass(frozen=True)
class DeploySettings:
    """What a deploy runs on a new instance, over SSH, in this order."""

    start: str
    health: str
    configure: str | None = None
    migrate: str | None = None
    env_file: str = ".env"
    env: dict[str, str] = field(default_factory=dict)
    # Environment variable name -> SSM SecureString parameter name (values never logged).
    secrets: dict[str, str] = field(default_factory=dict)
    startup_timeout_seconds: float = 120.0
    health_interval_seconds: float = 2.0


@dataclass(frozen=True)
class ProjectConfig:
    name: str
    repository: str
    description: str = ""
    clusters: dict[str, ProjectClusterConfig] = field(default_factory=dict)
    deploy: DeploySettings | None = None
    # A newer queued deploy of a pair cancels the older ones still queued (not running).
    newest_wins: bool = False
    # (provisioning) The DNS name of each cluster's record, with {project} and {cluster}.
    dns: str | None = None

    def deploy_env(self, cluster: str) -> tuple[dict[str, str], dict[str, str]]:
        """(plain values, secret parameter names) for a deploy to `cluster`."""
        plain = dict(self.deploy.env) if self.deploy else {}
        secrets = dict(self.deploy.secrets) if self.deploy else {}
        overrides = self.clusters.get(cluster)
        if overrides is not None:
            plain.update(overrides.env)
            secrets.update(overrides.secrets)
        return plain, secrets


@dataclass(frozen=True)
class EngineSettings:
    """How patient the deploy engine is; the health gate's timeout comes from AWS itself."""

    instance_ready_timeout_seconds: float = 600.0
    health_gate_margin_seconds: float = 60.0
    rollback_timeout_seconds: float = 1800.0
    poll_seconds: float = 2.0
    lock_stale_seconds: float = 30.0


DEFAULT_ANCHOR_KEY = "deploy-console/audit-anchor.json"


@dataclass(frozen=True)
class AuditSettings:
    """Where the audit chain's head is anchored outside the store (an S3 object), and how often.

    No anchor_bucket: nothing is anchored, and `audit verify` checks the chain alone.
    """

    anchor_bucket: str | None = None
    anchor_key: str = DEFAULT_ANCHOR_KEY
    # The cluster whose region, endpoint and credentials reach the bucket.
    anchor_cluster: str | None = None
    anchor_every_seconds: float = 300.0
    # Where the bucket has Object Lock enabled, each anchor version is locked in this mode for
    # this many days: no one may delete it before then (in governance mode, no one without
    # s3:BypassGovernanceRetention; in compliance mode, no one at all, the root user included).
    anchor_lock_mode: str = "governance"
    anchor_retention_days: int = 365


@dataclass(frozen=True)
class AccessSettings:
    """Roles by user ("@name": a group; "*": anyone not named), with per-cluster and
    per-project overrides; see console.access. Empty: everyone is a viewer (default deny)."""

    users: dict[str, str] = field(default_factory=dict)
    clusters: dict[str, dict[str, str]] = field(default_factory=dict)
    projects: dict[str, dict[str, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class QueueSettings:
    """The release queue: how many deploys run at once across the fleet, and the promotion
    chain (each stage a tuple of clusters deployed together once the stage before succeeded;
    empty: the clusters in config order, one per stage)."""

    parallel: int = 4
    promotion: tuple[tuple[str, ...], ...] = ()


@dataclass(frozen=True)
class WorldEnv:
    """How many instances of which version the embedded world runs for a project+cluster."""

    instances: int
    version: str
    stopped: int = 0
    unhealthy: int = 0
    older: int = 0


@dataclass(frozen=True)
class WorldProject:
    versions: tuple[str, ...]
    dns: str
    clusters: dict[str, WorldEnv] = field(default_factory=dict)
    # Releases whose health command fails on the world's instances (a bad build to deploy).
    broken: tuple[str, ...] = ()
    # Releases whose AMI says BuildStatus=failed (the others: passed), for a require_build gate.
    failed_builds: tuple[str, ...] = ()
    # The HTTP paths a release answers 200 on, by version (a load balancer's health check
    # path must be one of them); a version not listed serves the world's default routes.
    routes: dict[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class WorldConfig:
    """The seed of the embedded world (demo and tests only)."""

    domain: str = "example.internal"
    seed: int = 42
    projects: dict[str, WorldProject] = field(default_factory=dict)
    # How long a newly registered instance stays `initial` (registration in progress).
    registration_seconds: float = 3.0
    # Every load balancer's health check and drain; None: per-cluster values like AWS's own.
    health_check_interval_seconds: int | None = None
    healthy_threshold: int | None = None
    deregistration_delay_seconds: int | None = None


@dataclass(frozen=True)
class SshdKey:
    """One public key allowed to log in to the console's SSH server, and whose it is."""

    user: str
    key: str
    groups: tuple[str, ...] = ()  # roles may be granted to these ("@name" in [access])


@dataclass(frozen=True)
class SshdSettings:
    """The console's own SSH server (`deploy-console sshd`): loopback unless told otherwise."""

    listen: str = "127.0.0.1"
    port: int = 2222
    keys: tuple[SshdKey, ...] = ()
    # An OpenSSH authorized_keys file; each line names its user with
    # environment="DEPLOY_CONSOLE_USER=alice".
    authorized_keys: Path | None = None
    # Consoles one user may run at once, and all users together (each costs ~17-30 MB).
    max_sessions_per_user: int = 4
    max_sessions: int = 64
    # Connections that have not logged in yet, at once (OpenSSH's MaxStartups): more are
    # turned away at once; each is closed after login_grace_seconds (LoginGraceTime).
    max_startups: int = 10
    login_grace_seconds: float = 30.0


@dataclass(frozen=True)
class MetricsSettings:
    """[metrics]: where each serving command serves Prometheus metrics (loopback HOST:PORT,
    console.metrics.address); None: it serves none unless `--metrics` says."""

    runner: str | None = None
    sshd: str | None = None
    web: str | None = None


@dataclass(frozen=True)
class Config:
    source: Path
    clusters: tuple[ClusterConfig, ...]
    projects: tuple[ProjectConfig, ...]
    tags: TagKeys = TagKeys()
    refresh_seconds: float = 10.0
    world: WorldConfig | None = None
    engine: EngineSettings = EngineSettings()
    store: Path | None = None
    queue: QueueSettings = QueueSettings()
    access: AccessSettings = AccessSettings()
    audit: AuditSettings = AuditSettings()
    sshd: SshdSettings = SshdSettings()
    web: WebSettings = field(default_factory=WebSettings)
    # [keymap]: binding id -> keys; checked against the screens' bindings where a screen runs.
    keymap: KeymapSettings = field(default_factory=KeymapSettings)
    # [notify]: channels and routes of the notifications the runner delivers (console/notify/).
    notify: NotifySettings = field(default_factory=NotifySettings)
    # The runner service's socket on a shared console host (console.servers.runner_door):
    # commands that
    # change something ask it instead of writing the store themselves.
    runner_socket: Path | None = None
    # (service) [runner] stop_grace: how long a stopping runner lets its deploys reach their
    # end before it hands them to the next start (screens/cli/runner.py).
    runner_stop_grace: float = 600.0
    # [[hooks]]: commands run before and after deploys (console/gates/hooks.py).
    hooks: tuple[HookSettings, ...] = ()
    # (backup) [backup]: the runner's scheduled copies of the store (console/store/backup.py).
    backup: BackupSettings = field(default_factory=BackupSettings)
    # [metrics]: the opt-in Prometheus endpoints of runner, sshd and web (console/metrics/).
    metrics: MetricsSettings = MetricsSettings()
    # (provisioning) [dns]: the hosted zones records are read in (console/fleet DNS reading).
    dns: DnsSettings = field(default_factory=DnsSettings)
    # sha256 of the parsed document (comments and layout do not count): the audit records it
    # with each deploy, and a row whenever a console starts on rules that changed.
    digest: str = ""

    @property
    def rules(self) -> str:
        """The rules in one line: the digest of who may get in and do what (the access table,
        the SSH keys, the web door's authentication), and the protected clusters."""
        doors = {"access": asdict(self.access), "sshd": asdict(self.sshd), "web": asdict(self.web)}
        access = json.dumps(doors, sort_keys=True, default=str)
        protected = ",".join(c.name for c in self.clusters if c.protected) or "none"
        return f"access {hashlib.sha256(access.encode()).hexdigest()[:12]} · protected {protected}"

    def cluster(self, name: str) -> ClusterConfig:
        for cluster in self.clusters:
            if cluster.name == name:
                return cluster
        raise ConfigError(f"unknown cluster {name!r} (known: {', '.join(self.cluster_names)})")

    def project(self, name: str) -> ProjectConfig:
        for project in self.projects:
            if project.name == name:
                return project
        raise ConfigError(f"unknown project {name!r}")

    @property
    def promotion(self) -> tuple[tuple[str, ...], ...]:
        """The promotion chain's stages (see QueueSettings)."""
        return self.queue.promotion or tuple((name,) for name in self.cluster_names)

    @property
    def cluster_names(self) -> tuple[str, ...]:
        return tuple(cluster.name for cluster in self.clusters)

    @property
    def project_names(self) -> tuple[str, ...]:
        return tuple(project.name for project in self.projects)
