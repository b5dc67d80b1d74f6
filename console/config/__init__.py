"""Load and validate the TOML configuration into frozen dataclasses."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import math
import os
import re
import tempfile
import tomllib
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from console.config.paths import config_candidates, private_dir
from console.config.web import WebSettings, parse_web
from console.errors import ConfigError

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
# Upper bounds of numeric settings: past them a value is a mistake, and a huge one overflows
# timers, SQLite integers or datetime arithmetic far from the line that set it.
HOUR, DAY = 3600.0, 86400.0
MAX_PORT = 65535
MAX_PARALLEL = 1000
MAX_INSTANCES = 1000
MAX_SEED = 2**32 - 1
# A config is a few kilobytes; a bigger "file" (/dev/zero, a log) is refused before parsing.
MAX_CONFIG_BYTES = 8 * 1024 * 1024
LB_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,31}$")


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
ANCHOR_LOCK_MODES = ("governance", "compliance")
# S3 Object Lock takes a retention of at most 100 years.
MAX_ANCHOR_RETENTION_DAYS = 36500
# S3's rules for a bucket name (no dots next to each other, checked apart).
S3_BUCKET_PATTERN = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


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


ROLE_LISTS = {"viewers": "viewer", "deployers": "deployer", "admins": "admin"}


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
    # The runner service's socket on a shared console host (console.servers.runner_door):
    # commands that
    # change something ask it instead of writing the store themselves.
    runner_socket: Path | None = None
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


class _Table:
    """A TOML table being validated: remembers its key path and which keys were read."""

    def __init__(self, source: Path, path: str, data: Any) -> None:
        self.source = source
        self.path = path
        if not isinstance(data, dict):
            self.fail(f"must be a table, not {_type_name(data)}")
        self.data: dict[str, Any] = data
        self.read: set[str] = set()

    def key_path(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def fail(self, message: str, key: str | None = None) -> None:
        where = self.key_path(key) if key is not None else (self.path or "(top level)")
        raise ConfigError(f"{self.source}: {where}: {message}")

    def _get(self, key: str, kind: type | tuple[type, ...], required: bool) -> Any:
        self.read.add(key)
        if key not in self.data:
            if required:
                self.fail("is required but missing", key)
            return None
        value = self.data[key]
        # bool is an int in Python; never accept true where a number is expected.
        if isinstance(value, bool) and kind is not bool and bool not in _as_tuple(kind):
            self.fail(f"must be {_kind_name(kind)}, not a boolean", key)
        if not isinstance(value, kind):
            self.fail(f"must be {_kind_name(kind)}, not {_type_name(value)}", key)
        return value

    def string(self, key: str, required: bool = False, default: str | None = None) -> Any:
        value = self._get(key, str, required)
        if value is None:
            return default
        if not value.strip():
            self.fail("must not be empty", key)
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self._get(key, bool, False)
        return default if value is None else bool(value)

    def integer(self, key: str, default: int, minimum: int, maximum: int) -> int:
        """An integer within [minimum, maximum] (TOML integers reach 2**63: bound them all)."""
        value = self._get(key, int, False)
        if value is None:
            return default
        self._bounds(key, value, minimum, maximum)
        return int(value)

    def number(self, key: str, default: float, minimum: float, maximum: float) -> float:
        """A finite number within [minimum, maximum]: TOML also spells nan and inf, and a
        comparison with nan is always false, so check finiteness before the range."""
        value = self._get(key, (int, float), False)
        if value is None:
            return default
        if not math.isfinite(value):
            self.fail(
                f"must be a number from {_bound(minimum)} to {_bound(maximum)}, not {value}", key
            )
        self._bounds(key, value, minimum, maximum)
        return float(value)

    def _bounds(self, key: str, value: float, minimum: float, maximum: float) -> None:
        if value < minimum:
            self.fail(f"must be at least {_bound(minimum)}, not {value}", key)
        if value > maximum:
            self.fail(f"must be at most {_bound(maximum)}, not {value}", key)

    def strings(self, key: str, required: bool = False) -> tuple[str, ...]:
        value = self._get(key, list, required)
        if value is None:
            return ()
        for index, item in enumerate(value):
            if not isinstance(item, str) or not item.strip():
                self.fail(f"must be a list of non-empty strings (item {index} is not)", key)
        if len(set(value)) != len(value):
            self.fail("lists the same value twice", key)
        return tuple(value)

    def table(self, key: str, required: bool = False) -> _Table | None:
        self.read.add(key)
        if key not in self.data:
            if required:
                self.fail("is required but missing", key)
            return None
        return _Table(self.source, self.key_path(key), self.data[key])

    def tables(self, key: str) -> Iterator[_Table]:
        """An array of tables, e.g. [[clusters]]."""
        self.read.add(key)
        value = self.data.get(key, [])
        if not isinstance(value, list):
            self.fail(f"must be an array of tables ([[{key}]]), not {_type_name(value)}", key)
        for index, item in enumerate(value):
            yield _Table(self.source, f"{self.key_path(key)}[{index}]", item)

    def done(self) -> None:
        """Refuse keys nobody read: a typo must not be silently ignored."""
        unknown = sorted(set(self.data) - self.read)
        if unknown:
            self.fail("unknown key", unknown[0])


def _bound(limit: float) -> str:
    """A bound as people write it: 86400, 0.05, 4294967295 (not 4.29497e+09)."""
    return str(int(limit)) if float(limit).is_integer() else f"{limit:g}"


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "a boolean"}
    names.update({list: "a list", dict: "a table"})
    if kind == (int, float):
        return "a number"
    return " or ".join(names.get(k, k.__name__) for k in _as_tuple(kind))


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    return {
        str: "a string",
        int: "an integer",
        float: "a number",
        list: "a list",
        dict: "a table",
    }.get(type(value), type(value).__name__)


def _name(table: _Table, key: str, what: str) -> str:
    value: str = table.string(key, required=True)
    if not NAME_PATTERN.match(value):
        table.fail(f"{what} name {value!r} must be lower-case letters, digits and dashes", key)
    return value


ENV_NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _path(table: _Table, key: str, required: bool = False) -> Path | None:
    value = table.string(key, required=required)
    if value is None:
        return None
    path = Path(value).expanduser()
    if not path.is_absolute():
        # Relative paths are relative to the config file, as a person reading it expects.
        path = table.source.parent / path
    return path


def _parse_ssh(table: _Table) -> SshSettings:
    key = _path(table, "key", required=True)
    known_hosts = _path(table, "known_hosts", required=True)
    assert key is not None and known_hosts is not None
    jump_host = table.string("jump_host")
    if jump_host is not None and not re.match(r"^(\[[^\]]+\]|[^\s:\[\]]+)(:\d{1,5})?$", jump_host):
        table.fail(f"must be HOST or HOST:PORT, not {jump_host!r}", "jump_host")
    settings = SshSettings(
        user=table.string("user", required=True),
        key=key,
        known_hosts=known_hosts,
        jump_host=jump_host,
        port=table.integer("port", 22, minimum=1, maximum=MAX_PORT),
        connect_timeout=table.number("connect_timeout", 10.0, minimum=0.1, maximum=HOUR),
    )
    table.done()
    return settings


def _env_table(table: _Table, key: str, what: str) -> dict[str, str]:
    sub = table.table(key)
    if sub is None:
        return {}
    values: dict[str, str] = {}
    for name in sub.data:
        if not ENV_NAME_PATTERN.match(name):
            sub.fail("is not a valid environment variable name", name)
        value = sub.string(name, required=True)
        values[name] = value
    sub.done()
    if what == "secrets":
        for name, parameter in values.items():
            if not parameter.startswith("/"):
                sub.fail(f"must be an SSM parameter name starting with /, not {parameter!r}", name)
    return values


def _parse_deploy(table: _Table) -> DeploySettings:
    settings = DeploySettings(
        start=table.string("start", required=True),
        health=table.string("health", required=True),
        configure=table.string("configure"),
        migrate=table.string("migrate"),
        env_file=table.string("env_file", default=".env"),
        env=_env_table(table, "env", "env"),
        secrets=_env_table(table, "secrets", "secrets"),
        startup_timeout_seconds=table.number(
            "startup_timeout_seconds", 120.0, minimum=1.0, maximum=DAY
        ),
        health_interval_seconds=table.number(
            "health_interval_seconds", 2.0, minimum=0.1, maximum=HOUR
        ),
    )
    table.done()
    return settings


def _parse_engine(table: _Table) -> EngineSettings:
    defaults = EngineSettings()
    settings = EngineSettings(
        instance_ready_timeout_seconds=table.number(
            "instance_ready_timeout_seconds",
            defaults.instance_ready_timeout_seconds,
            minimum=1.0,
            maximum=DAY,
        ),
        health_gate_margin_seconds=table.number(
            "health_gate_margin_seconds",
            defaults.health_gate_margin_seconds,
            minimum=0.0,
            maximum=DAY,
        ),
        rollback_timeout_seconds=table.number(
            "rollback_timeout_seconds", defaults.rollback_timeout_seconds, minimum=1.0, maximum=DAY
        ),
        poll_seconds=table.number(
            "poll_seconds", defaults.poll_seconds, minimum=0.05, maximum=HOUR
        ),
        lock_stale_seconds=table.number(
            "lock_stale_seconds", defaults.lock_stale_seconds, minimum=1.0, maximum=DAY
        ),
    )
    table.done()
    return settings


def _role_lists(table: _Table) -> dict[str, str]:
    roles: dict[str, str] = {}
    for key, role in ROLE_LISTS.items():
        for user in table.strings(key):
            name = user[1:] if user.startswith("@") else user
            if user != "*" and not SSHD_USER_PATTERN.match(name):
                table.fail(
                    f"{user!r}: a user, @group or * (letters, digits and . _ @ -, at most 64)", key
                )
            if user in roles:
                table.fail(f"{user!r} is named twice: {roles[user]} and {role}", key)
            roles[user] = role
    return roles


def _parse_access(
    table: _Table, cluster_names: tuple[str, ...], project_names: tuple[str, ...]
) -> AccessSettings:
    users = _role_lists(table)
    scoped: dict[str, dict[str, dict[str, str]]] = {"clusters": {}, "projects": {}}
    for scope, known in (("clusters", cluster_names), ("projects", project_names)):
        scope_table = table.table(scope)
        if scope_table is None:
            continue
        for name in scope_table.data:
            if name not in known:
                what = scope[:-1]
                scope_table.fail(f"unknown {what} (known: {', '.join(known)})", name)
            sub = scope_table.table(name)
            assert sub is not None
            scoped[scope][name] = _role_lists(sub)
            sub.done()
        scope_table.done()
    table.done()
    return AccessSettings(users=users, clusters=scoped["clusters"], projects=scoped["projects"])


def _parse_queue(table: _Table, cluster_names: tuple[str, ...]) -> QueueSettings:
    parallel = table.integer("parallel", QueueSettings.parallel, minimum=1, maximum=MAX_PARALLEL)
    stages: list[tuple[str, ...]] = []
    seen: set[str] = set()
    for stage in table.strings("promotion"):
        names = tuple(name.strip() for name in stage.split("+"))
        for name in names:
            if name not in cluster_names:
                table.fail(
                    f"{name!r} is not a cluster (known: {', '.join(cluster_names)})", "promotion"
                )
            if name in seen:
                table.fail(f"cluster {name!r} is in two stages", "promotion")
            seen.add(name)
        if stages and len(stages[-1]) > 1:
            table.fail("only the last stage may name several clusters", "promotion")
        stages.append(names)
    table.done()
    return QueueSettings(parallel=parallel, promotion=tuple(stages))


def _parse_cluster(table: _Table) -> ClusterConfig:
    ssh_table = table.table("ssh")
    cluster = ClusterConfig(
        name=_name(table, "name", "cluster"),
        region=table.string("region", required=True),
        profile=table.string("profile"),
        endpoint_url=table.string("endpoint_url"),
        role_arn=table.string("role_arn"),
        deploy_role_arn=table.string("deploy_role_arn"),
        external_id=table.string("external_id"),
        mfa_serial=table.string("mfa_serial"),
        protected=table.boolean("protected", False),
        ssh=_parse_ssh(ssh_table) if ssh_table is not None else None,
    )
    if cluster.endpoint_url and not re.match(r"^https?://[^\s/]+", cluster.endpoint_url):
        table.fail(f"must be an http(s) URL, not {cluster.endpoint_url!r}", "endpoint_url")
    for key, role in (("role_arn", cluster.role_arn), ("deploy_role_arn", cluster.deploy_role_arn)):
        if role and not role.startswith("arn:"):
            table.fail(f"must be an IAM role ARN (arn:aws:iam::...), not {role!r}", key)
    _check_assume_role_settings(table, cluster)
    table.done()
    return cluster


# STS's own limits for AssumeRole's ExternalId and SerialNumber.
EXTERNAL_ID_PATTERN = re.compile(r"^[\w+=,.@:/-]{2,1224}$", re.ASCII)
MFA_SERIAL_PATTERN = re.compile(r"^[\w+=/:,.@-]{9,256}$", re.ASCII)


def _check_assume_role_settings(table: _Table, cluster: ClusterConfig) -> None:
    """external_id and mfa_serial go with role_arn, in the forms STS accepts."""
    settings = (
        ("deploy_role_arn", cluster.deploy_role_arn),
        ("external_id", cluster.external_id),
        ("mfa_serial", cluster.mfa_serial),
    )
    for key, value in settings:
        if value is not None and cluster.role_arn is None:
            table.fail("needs role_arn (the role the console reads with)", key)
    if cluster.external_id is not None and not EXTERNAL_ID_PATTERN.match(cluster.external_id):
        table.fail(
            "must be 2-1224 letters, digits or any of _+=,.@:/- (what STS accepts)", "external_id"
        )
    if cluster.mfa_serial is not None and not MFA_SERIAL_PATTERN.match(cluster.mfa_serial):
        table.fail(
            "must be an MFA device ARN (arn:aws:iam::123456789012:mfa/alice) or a "
            "hardware serial number",
            "mfa_serial",
        )


def _parse_launch(table: _Table) -> LaunchSettings:
    launch = LaunchSettings(
        instance_type=table.string("instance_type", required=True),
        subnet=table.string("subnet", required=True),
        security_groups=table.strings("security_groups"),
        key_name=table.string("key_name"),
        instance_profile=table.string("instance_profile"),
    )
    table.done()
    return launch


def _parse_project_cluster(table: _Table) -> ProjectClusterConfig:
    classic = table.strings("classic_elbs")
    groups = table.strings("target_groups")
    for key, names in (("classic_elbs", classic), ("target_groups", groups)):
        for lb_name in names:
            if not LB_NAME_PATTERN.match(lb_name):
                table.fail(f"{lb_name!r} is not a valid load balancer name", key)
    launch_table = table.table("launch")
    launch = _parse_launch(launch_table) if launch_table else None
    env = _env_table(table, "env", "env")
    secrets = _env_table(table, "secrets", "secrets")
    table.done()
    return ProjectClusterConfig(
        classic_elbs=classic, target_groups=groups, launch=launch, env=env, secrets=secrets
    )


def _parse_project(table: _Table, cluster_names: tuple[str, ...]) -> ProjectConfig:
    name = _name(table, "name", "project")
    repository = table.string("repository", required=True)
    description = table.string("description", default="")
    clusters: dict[str, ProjectClusterConfig] = {}
    clusters_table = table.table("clusters")
    if clusters_table is not None:
        for cluster_name in clusters_table.data:
            if cluster_name not in cluster_names:
                clusters_table.fail(
                    f"unknown cluster (known: {', '.join(cluster_names)})", cluster_name
                )
            sub = clusters_table.table(cluster_name)
            assert sub is not None
            clusters[cluster_name] = _parse_project_cluster(sub)
        clusters_table.done()
    deploy_table = table.table("deploy")
    deploy = _parse_deploy(deploy_table) if deploy_table is not None else None
    newest_wins = table.boolean("newest_wins", False)
    table.done()
    return ProjectConfig(
        name=name,
        repository=repository,
        description=description,
        clusters=clusters,
        deploy=deploy,
        newest_wins=newest_wins,
    )


def _parse_world(table: _Table, config_projects: dict[str, ProjectConfig]) -> WorldConfig:
    domain = table.string("domain", default="example.internal")
    seed = table.integer("seed", 42, minimum=0, maximum=MAX_SEED)
    registration_seconds = table.number("registration_seconds", 3.0, minimum=0.0, maximum=HOUR)
    interval = _optional_integer(table, "health_check_interval_seconds", 5, 300)
    healthy_threshold = _optional_integer(table, "healthy_threshold", 2, 10)
    delay = _optional_integer(table, "deregistration_delay_seconds", 0, 3600)
    projects: dict[str, WorldProject] = {}
    projects_table = table.table("projects")
    if projects_table is not None:
        for project_name in projects_table.data:
            project = config_projects.get(project_name)
            if project is None:
                projects_table.fail("unknown project", project_name)
            assert project is not None
            entry = projects_table.table(project_name)
            assert entry is not None
            versions = entry.strings("versions", required=True)
            if not versions:
                entry.fail("must list at least one version", "versions")
            dns = entry.string("dns", default=project_name)
            broken = entry.strings("broken")
            for version in broken:
                if version not in versions:
                    entry.fail(f"{version!r} is not in versions", "broken")
            routes: dict[str, tuple[str, ...]] = {}
            routes_table = entry.table("routes")
            if routes_table is not None:
                for version in routes_table.data:
                    if version not in versions:
                        routes_table.fail("is not in versions", version)
                    paths = routes_table.strings(version)
                    for path in paths:
                        if not path.startswith("/"):
                            routes_table.fail(f"{path!r} is not a path (no leading /)", version)
                    routes[version] = paths
                routes_table.done()
            envs: dict[str, WorldEnv] = {}
            clusters_table = entry.table("clusters")
            if clusters_table is not None:
                for cluster_name in clusters_table.data:
                    if cluster_name not in project.clusters:
                        clusters_table.fail(
                            f"project {project_name!r} is not configured in this cluster",
                            cluster_name,
                        )
                    env_table = clusters_table.table(cluster_name)
                    assert env_table is not None
                    env = WorldEnv(
                        instances=env_table.integer(
                            "instances", 1, minimum=0, maximum=MAX_INSTANCES
                        ),
                        version=env_table.string("version", required=True),
                        stopped=env_table.integer("stopped", 0, minimum=0, maximum=MAX_INSTANCES),
                        unhealthy=env_table.integer(
                            "unhealthy", 0, minimum=0, maximum=MAX_INSTANCES
                        ),
                        older=env_table.integer("older", 0, minimum=0, maximum=MAX_INSTANCES),
                    )
                    if env.version not in versions:
                        env_table.fail(f"{env.version!r} is not in versions", "version")
                    if env.stopped + env.unhealthy + env.older > env.instances:
                        env_table.fail("stopped + unhealthy + older exceeds instances")
                    env_table.done()
                    envs[cluster_name] = env
                clusters_table.done()
            entry.done()
            projects[project_name] = WorldProject(
                versions=versions, dns=dns, clusters=envs, broken=broken, routes=routes
            )
        projects_table.done()
    table.done()
    return WorldConfig(
        domain=domain,
        seed=seed,
        projects=projects,
        registration_seconds=registration_seconds,
        health_check_interval_seconds=interval,
        healthy_threshold=healthy_threshold,
        deregistration_delay_seconds=delay,
    )


def _parse_audit(table: _Table, cluster_names: tuple[str, ...]) -> AuditSettings:
    defaults = AuditSettings()
    bucket = table.string("anchor_bucket")
    if bucket is not None and (not S3_BUCKET_PATTERN.match(bucket) or ".." in bucket):
        table.fail(
            f"{bucket!r} is not an S3 bucket name (3-63 lower-case letters, digits, dots "
            "and dashes)",
            "anchor_bucket",
        )
    key: str = table.string("anchor_key", default=defaults.anchor_key)
    if key.startswith("/") or key.endswith("/") or len(key.encode()) > 1000:
        table.fail(
            f"must be an S3 object key like {DEFAULT_ANCHOR_KEY!r}, not {key!r}", "anchor_key"
        )
    cluster = table.string("anchor_cluster")
    if cluster is not None and cluster not in cluster_names:
        table.fail(
            f"unknown cluster {cluster!r} (known: {', '.join(cluster_names)})", "anchor_cluster"
        )
    every = table.number(
        "anchor_every_seconds", defaults.anchor_every_seconds, minimum=1.0, maximum=DAY
    )
    lock_mode: str = table.string("anchor_lock_mode", default=defaults.anchor_lock_mode)
    if lock_mode not in ANCHOR_LOCK_MODES:
        table.fail(f"choose governance or compliance, not {lock_mode!r}", "anchor_lock_mode")
    retention = table.integer(
        "anchor_retention_days",
        defaults.anchor_retention_days,
        minimum=1,
        maximum=MAX_ANCHOR_RETENTION_DAYS,
    )
    if bucket is None:
        for name in (
            "anchor_key",
            "anchor_cluster",
            "anchor_every_seconds",
            "anchor_lock_mode",
            "anchor_retention_days",
        ):
            if name in table.data:
                table.fail("needs anchor_bucket (the S3 bucket the anchor is written to)", name)
    elif cluster is None:
        table.fail(
            "is required with anchor_bucket: the cluster whose region and credentials reach "
            "the bucket",
            "anchor_cluster",
        )
    table.done()
    return AuditSettings(
        anchor_bucket=bucket,
        anchor_key=key,
        anchor_cluster=cluster,
        anchor_every_seconds=every,
        anchor_lock_mode=lock_mode,
        anchor_retention_days=retention,
    )


SSHD_USER_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@-]{0,63}$")


def _parse_sshd(table: _Table) -> SshdSettings:
    listen: str = table.string("listen", default=SshdSettings.listen)
    try:
        ipaddress.ip_address(listen)
    except ValueError:
        table.fail(f"must be an IP address such as 127.0.0.1, not {listen!r}", "listen")
    port = table.integer("port", SshdSettings.port, minimum=1, maximum=MAX_PORT)
    keys: list[SshdKey] = []
    for key_table in table.tables("keys"):
        user: str = key_table.string("user", required=True)
        if not SSHD_USER_PATTERN.fullmatch(user):  # match: $ lets a final newline in
            key_table.fail(f"{user!r} must be letters, digits and . _ @ - (at most 64)", "user")
        key: str = key_table.string("key", required=True)
        if not _is_public_key(key):
            key_table.fail(
                "must be one OpenSSH public key line (ssh-ed25519 AAAA... comment)", "key"
            )
        groups = tuple(key_table.strings("groups"))
        for group in groups:
            if not SSHD_USER_PATTERN.match(group):
                key_table.fail(
                    f"{group!r} must be letters, digits and . _ @ - (at most 64)", "groups"
                )
        key_table.done()
        keys.append(SshdKey(user=user, key=key.strip(), groups=groups))
    authorized_keys = _path(table, "authorized_keys")
    per_user = _bounded_integer(table, "max_sessions_per_user", SshdSettings.max_sessions_per_user)
    sessions = _bounded_integer(table, "max_sessions", SshdSettings.max_sessions)
    startups = _bounded_integer(table, "max_startups", SshdSettings.max_startups)
    grace = table.number(
        "login_grace_seconds", SshdSettings.login_grace_seconds, minimum=0.1, maximum=3600
    )
    table.done()
    return SshdSettings(
        listen=listen,
        port=port,
        keys=tuple(keys),
        authorized_keys=authorized_keys,
        max_sessions_per_user=per_user,
        max_sessions=sessions,
        max_startups=startups,
        login_grace_seconds=grace,
    )


def _bounded_integer(table: _Table, key: str, default: int, maximum: int = 10_000) -> int:
    return table.integer(key, default, minimum=1, maximum=maximum)


def _is_public_key(line: str) -> bool:
    # Checked by parsing it: a key asyncssh cannot read would never let anyone in. Imported
    # here: only a config with [sshd] keys pays for loading asyncssh.
    import asyncssh

    try:
        asyncssh.import_public_key(line.strip())
    except (asyncssh.KeyImportError, ValueError):
        return False
    return "\n" not in line.strip()


def _optional_integer(table: _Table, key: str, minimum: int, maximum: int) -> int | None:
    """An integer within AWS's bounds for the setting, or None when the key is absent."""
    if key not in table.data:
        table.read.add(key)
        return None
    return table.integer(key, minimum, minimum=minimum, maximum=maximum)


def parse_config(data: dict[str, Any], source: Path) -> Config:
    """Validate a parsed TOML document; every error names the file and the key path."""
    top = _Table(source, "", data)
    refresh = top.number("refresh_seconds", 10.0, minimum=1.0, maximum=DAY)
    tags_table = top.table("tags")
    tags = TagKeys()
    if tags_table is not None:
        tags = TagKeys(
            project=tags_table.string("project", default="Project"),
            environment=tags_table.string("environment", default="Environment"),
            version=tags_table.string("version", default="Version"),
        )
        tags_table.done()
    clusters: list[ClusterConfig] = []
    for cluster_table in top.tables("clusters"):
        cluster = _parse_cluster(cluster_table)
        if any(existing.name == cluster.name for existing in clusters):
            cluster_table.fail(f"duplicate cluster {cluster.name!r}", "name")
        clusters.append(cluster)
    if not clusters:
        top.fail("at least one [[clusters]] entry is required", "clusters")
    cluster_names = tuple(cluster.name for cluster in clusters)
    projects: dict[str, ProjectConfig] = {}
    for project_table in top.tables("projects"):
        project = _parse_project(project_table, cluster_names)
        if project.name in projects:
            project_table.fail(f"duplicate project {project.name!r}", "name")
        projects[project.name] = project
    world_table = top.table("world")
    world = _parse_world(world_table, projects) if world_table is not None else None
    engine_table = top.table("engine")
    engine = _parse_engine(engine_table) if engine_table is not None else EngineSettings()
    store = _path(top, "store")
    access_table = top.table("access")
    access = (
        _parse_access(access_table, cluster_names, tuple(projects))
        if access_table is not None
        else AccessSettings()
    )
    queue_table = top.table("queue")
    queue = _parse_queue(queue_table, cluster_names) if queue_table is not None else QueueSettings()
    runner_table = top.table("runner")
    runner_socket = None
    if runner_table is not None:
        runner_socket = _path(runner_table, "socket", required=True)
        runner_table.done()
    audit_table = top.table("audit")
    audit = _parse_audit(audit_table, cluster_names) if audit_table is not None else AuditSettings()
    sshd_table = top.table("sshd")
    sshd = _parse_sshd(sshd_table) if sshd_table is not None else SshdSettings()
    web_table = top.table("web")
    web = parse_web(web_table) if web_table is not None else WebSettings()
    top.done()
    return Config(
        source=source,
        clusters=tuple(clusters),
        projects=tuple(projects.values()),
        tags=tags,
        refresh_seconds=refresh,
        world=world,
        engine=engine,
        store=store,
        queue=queue,
        access=access,
        audit=audit,
        sshd=sshd,
        runner_socket=runner_socket,
        digest=document_digest(data),
        web=web,
    )


def document_digest(data: dict[str, Any]) -> str:
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_CONFIG_BYTES + 1)
        if len(raw) > MAX_CONFIG_BYTES:
            raise ConfigError(f"{path}: larger than {MAX_CONFIG_BYTES // 2**20} MiB: not a config")
        return tomllib.loads(raw.decode("utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a config file") from None
    except PermissionError:
        raise ConfigError(f"{path}: permission denied") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: invalid TOML: {error}") from None
    except RecursionError:
        # tomllib parses nested arrays and inline tables recursively.
        raise ConfigError(f"{path}: invalid TOML: arrays or tables nested too deeply") from None
    except OSError as error:
        raise ConfigError(f"{path}: cannot read: {error.strerror or error}") from None


def load_config(path: Path) -> Config:
    return parse_config(read_toml(path), path)


def find_config(explicit: str | None) -> Config:
    """Load the config from --config, $DEPLOY_CONSOLE_CONFIG or the user config dir."""
    for origin, path in config_candidates(explicit):
        if origin == "user config" and not path.exists():
            raise ConfigError(
                f"no config found: pass --config PATH, set $DEPLOY_CONSOLE_CONFIG, "
                f"or create {path} (see config/example.toml)"
            )
        return load_config(path)
    raise ConfigError("no config found")


def write_world_config(
    source: Path, endpoint_url: str, destination: Path, ssh: dict[str, Any] | None = None
) -> None:
    """Write a copy of `source` whose clusters all point at `endpoint_url` (and `ssh`).

    The file is the console's own (generated), so rewriting it with tomli-w is safe; it is
    written to a temporary file first so a reader never sees half of it.
    """
    data = read_toml(source)
    for cluster in data.get("clusters", []):
        cluster["endpoint_url"] = endpoint_url
        cluster.pop("profile", None)
        for key in ("role_arn", "deploy_role_arn", "external_id", "mfa_serial"):
            cluster.pop(key, None)
        if ssh is not None:
            cluster["ssh"] = dict(ssh)
    parse_config(data, destination)
    private_dir(destination.parent)
    handle, temporary = tempfile.mkstemp(dir=destination.parent, prefix=".world-", suffix=".toml")
    try:
        with os.fdopen(handle, "wb") as output:
            tomli_w.dump(data, output)
        os.replace(temporary, destination)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
