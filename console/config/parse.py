"""Parsing the config document: its top level, the clusters, projects, deploy and queue."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from console.config.backup import parse_backup
from console.config.bake import parse_bake
from console.config.doors import parse_access, parse_audit, parse_sshd
from console.config.gates import parse_hooks, parse_probe
from console.config.keymap import KeymapSettings, parse_keymap
from console.config.locate import closest, key_line
from console.config.notify import NotifySettings, parse_notify
from console.config.provisioning import (
    DnsSettings,
    check_dns_name,
    desired_count,
    pair_dns_name,
    parse_dns,
    parse_pair_stack,
    parse_stack,
    world_tuned,
)
from console.config.reader import DAY, HOUR, MAX_PORT, Table
from console.config.schema import (
    CLUSTER_COLOURS,
    AccessSettings,
    AuditSettings,
    BackupSettings,
    ClusterConfig,
    Config,
    DeploySettings,
    EngineSettings,
    LaunchSettings,
    MetricsSettings,
    ProjectClusterConfig,
    ProjectConfig,
    QueueSettings,
    SshdSettings,
    SshSettings,
    StackSettings,
    TagKeys,
    WorldConfig,
)
from console.config.tickets import parse_ticket
from console.config.web import WebSettings, parse_web
from console.config.windows import DeployWindow, WindowSpecError, parse_window
from console.config.world_seed import parse_world
from console.errors import ConfigError
from console.metrics.address import MetricsAddressError, parse_address

MAX_PARALLEL = 1000
LB_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,31}$")
# STS's own limits for AssumeRole's ExternalId and SerialNumber.
EXTERNAL_ID_PATTERN = re.compile(r"^[\w+=,.@:/-]{2,1224}$", re.ASCII)
MFA_SERIAL_PATTERN = re.compile(r"^[\w+=/:,.@-]{9,256}$", re.ASCII)
T = TypeVar("T")


def parse_config(data: dict[str, Any], source: Path) -> Config:
    """Validate a parsed TOML document; every error names the file and the key path."""
    top = Table(source, "", data)
    refresh = top.number("refresh_seconds", 10.0, minimum=1.0, maximum=DAY)
    tags = _section(top, "tags", _parse_tags, TagKeys())
    clusters = _parse_clusters(top)
    names = tuple(cluster.name for cluster in clusters)
    projects = _parse_projects(top, names, {cluster.name: cluster.stack for cluster in clusters})
    world = _section(top, "world", lambda table: parse_world(table, projects), None)
    projects = _world_tuned_stacks(projects, world)  # (provisioning)
    engine = _section(top, "engine", _parse_engine, EngineSettings())
    store = top.file_path("store")
    access = _section(
        top, "access", lambda table: parse_access(table, names, tuple(projects)), AccessSettings()
    )
    queue = _section(top, "queue", lambda table: _parse_queue(table, names), QueueSettings())
    no_runner: tuple[Path | None, float] = (None, Config.runner_stop_grace)
    runner_socket, stop_grace = _section(top, "runner", _parse_runner, no_runner)
    audit = _section(top, "audit", lambda table: parse_audit(table, names), AuditSettings())
    sshd = _section(top, "sshd", parse_sshd, SshdSettings())
    web = _section(top, "web", parse_web, WebSettings())
    keymap = _section(top, "keymap", parse_keymap, KeymapSettings())
    notify = _section(top, "notify", lambda table: parse_notify(table, names), NotifySettings())
    hooks = parse_hooks(top, names, tuple(projects))
    backup = _section(top, "backup", parse_backup, BackupSettings())  # (backup)
    metrics = _section(top, "metrics", _parse_metrics, MetricsSettings())
    dns = _section(top, "dns", parse_dns, DnsSettings())  # (provisioning)
    top.done()
    return Config(
        source=source,
        clusters=clusters,
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
        runner_stop_grace=stop_grace,
        digest=document_digest(data),
        web=web,
        keymap=keymap,
        notify=notify,
        hooks=hooks,
        backup=backup,
        metrics=metrics,
        dns=dns,
    )


def document_digest(data: dict[str, Any]) -> str:
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _section(top: Table, key: str, parse: Callable[[Table], T], default: T) -> T:
    """An optional table of the document, parsed; `default` where the config has none."""
    table = top.table(key)
    return parse(table) if table is not None else default


def _parse_tags(table: Table) -> TagKeys:
    tags = TagKeys(
        project=table.string("project", default="Project"),
        environment=table.string("environment", default="Environment"),
        version=table.string("version", default="Version"),
    )
    table.done()
    return tags


def _parse_clusters(top: Table) -> tuple[ClusterConfig, ...]:
    clusters: list[ClusterConfig] = []
    for cluster_table in top.tables("clusters"):
        cluster = _parse_cluster(cluster_table)
        if any(existing.name == cluster.name for existing in clusters):
            cluster_table.fail(f"duplicate cluster {cluster.name!r}", "name")
        clusters.append(cluster)
    if not clusters:
        top.fail("at least one [[clusters]] entry is required", "clusters")
    return tuple(clusters)


def _parse_projects(
    top: Table, cluster_names: tuple[str, ...], stacks: dict[str, StackSettings | None]
) -> dict[str, ProjectConfig]:
    projects: dict[str, ProjectConfig] = {}
    for project_table in top.tables("projects"):
        project = _parse_project(project_table, cluster_names, stacks)
        if project.name in projects:
            project_table.fail(f"duplicate project {project.name!r}", "name")
        projects[project.name] = project
    return projects


def _parse_runner(table: Table) -> tuple[Path | None, float]:
    socket = table.file_path("socket")
    grace = _stop_grace(table)
    table.done()
    return socket, grace


def _stop_grace(table: Table) -> float:
    """(service) How long a stopping runner lets its deploys run to their end: "10m", "90s",
    "0s" (hand them over at once), at most a day; default 10m."""
    return table.seconds(
        "stop_grace",
        Config.runner_stop_grace,
        timedelta(days=1),
        "90s, 10m, 1h; 0s hands over at once",
    )


def _parse_metrics(table: Table) -> MetricsSettings:
    """Each server's endpoint: PORT or HOST:PORT, on loopback only."""
    found: dict[str, str | None] = {}
    for key in ("runner", "sshd", "web"):
        value = table.string(key)
        if value is not None:
            try:
                value = str(parse_address(value))
            except MetricsAddressError as error:
                table.fail(str(error), key)
        found[key] = value
    table.done()
    return MetricsSettings(**found)


def _parse_ssh(table: Table) -> SshSettings:
    key = table.file_path("key", required=True)
    known_hosts = table.file_path("known_hosts", required=True)
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


def _parse_deploy(table: Table) -> DeploySettings:
    settings = DeploySettings(
        start=table.string("start", required=True),
        health=table.string("health", required=True),
        configure=table.string("configure"),
        migrate=table.string("migrate"),
        env_file=table.string("env_file", default=".env"),
        env=table.environment("env"),
        secrets=table.environment("secrets", secrets=True),
        startup_timeout_seconds=table.number(
            "startup_timeout_seconds", 120.0, minimum=1.0, maximum=DAY
        ),
        health_interval_seconds=table.number(
            "health_interval_seconds", 2.0, minimum=0.1, maximum=HOUR
        ),
    )
    table.done()
    return settings


def _parse_engine(table: Table) -> EngineSettings:
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


def _parse_queue(table: Table, cluster_names: tuple[str, ...]) -> QueueSettings:
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


def _parse_cluster(table: Table) -> ClusterConfig:
    ssh_table = table.table("ssh")
    cluster = ClusterConfig(
        name=table.name("name", "cluster"),
        region=table.string("region", required=True),
        profile=table.string("profile"),
        endpoint_url=table.string("endpoint_url"),
        role_arn=table.string("role_arn"),
        deploy_role_arn=table.string("deploy_role_arn"),
        external_id=table.string("external_id"),
        mfa_serial=table.string("mfa_serial"),
        protected=table.boolean("protected", False),
        ssh=_parse_ssh(ssh_table) if ssh_table is not None else None,
        colour=_cluster_colour(table),
        windows=_cluster_windows(table),
        ticket=_section(table, "ticket", parse_ticket, None),
        bake=parse_bake(table),
        require_build=_section(table, "require_build", parse_probe, None),
        approvals=table.integer("approvals", 0, minimum=0, maximum=MAX_APPROVALS),
        approval_expires=_approval_expires(table),
        stack=_section(table, "stack", parse_stack, None),  # (provisioning) pairs' defaults
    )
    if cluster.endpoint_url and not re.match(r"^https?://[^\s/]+", cluster.endpoint_url):
        table.fail(f"must be an http(s) URL, not {cluster.endpoint_url!r}", "endpoint_url")
    for key, role in (("role_arn", cluster.role_arn), ("deploy_role_arn", cluster.deploy_role_arn)):
        if role and not role.startswith("arn:"):
            table.fail(f"must be an IAM role ARN (arn:aws:iam::...), not {role!r}", key)
    _check_assume_role_settings(table, cluster)
    table.done()
    return cluster


def _cluster_colour(table: Table) -> str | None:
    """One of CLUSTER_COLOURS; else one line naming the file's line and the valid ones."""
    value: str | None = table.string("colour")
    if value is None or value.lower() in CLUSTER_COLOURS:
        return None if value is None else value.lower()
    line = key_line(table.source, table.key_path("colour"))
    where = f"{table.source}:{line}" if line is not None else str(table.source)
    meant = closest(value.lower(), CLUSTER_COLOURS)
    hint = f"did you mean {meant}? " if meant else ""
    raise ConfigError(
        f"{where}: {table.key_path('colour')}: unknown colour {value!r} "
        f"({hint}valid: {', '.join(CLUSTER_COLOURS)})"
    )


MAX_APPROVALS = 5  # more approvers than that is a typo


def _approval_expires(table: Table) -> float:
    """How long an approval counts: "30m", "4h", "2d" (at most 30 days); default 4h."""
    return table.seconds(
        "approval_expires", ClusterConfig.approval_expires, timedelta(days=30), "30m, 4h, 2d", 1
    )


def _cluster_windows(table: Table) -> tuple[DeployWindow, ...]:
    """The cluster's deploy windows; a malformed one fails naming its line."""
    windows = []
    for spec in table.strings("windows"):
        try:
            windows.append(parse_window(spec))
        except WindowSpecError as error:
            table.fail(str(error), "windows")
    return tuple(windows)


def _check_assume_role_settings(table: Table, cluster: ClusterConfig) -> None:
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


def _parse_launch(table: Table) -> LaunchSettings:
    launch = LaunchSettings(
        instance_type=table.string("instance_type", required=True),
        subnet=table.string("subnet", required=True),
        security_groups=table.strings("security_groups"),
        key_name=table.string("key_name"),
        instance_profile=table.string("instance_profile"),
    )
    table.done()
    return launch


def _parse_project_cluster(
    table: Table, stack_defaults: StackSettings | None
) -> ProjectClusterConfig:
    classic = table.strings("classic_elbs")
    groups = table.strings("target_groups")
    for key, names in (("classic_elbs", classic), ("target_groups", groups)):
        for lb_name in names:
            if not LB_NAME_PATTERN.match(lb_name):
                table.fail(f"{lb_name!r} is not a valid load balancer name", key)
    launch_table = table.table("launch")
    launch = _parse_launch(launch_table) if launch_table else None
    env = table.environment("env")
    secrets = table.environment("secrets", secrets=True)
    desired = desired_count(table)  # (provisioning)
    dns = check_dns_name(table, "dns")
    stack = parse_pair_stack(table, stack_defaults)
    if stack is not None and len(classic + groups) != 1:
        table.fail(
            "a stack builds one load balancer: name exactly one in classic_elbs or target_groups",
            "stack",
        )
    table.done()
    return ProjectClusterConfig(
        classic_elbs=classic,
        target_groups=groups,
        launch=launch,
        env=env,
        secrets=secrets,
        desired=desired,
        dns=dns,
        stack=stack,
    )


def _parse_project(
    table: Table, cluster_names: tuple[str, ...], stacks: dict[str, StackSettings | None]
) -> ProjectConfig:
    name = table.name("name", "project")
    repository = table.string("repository", required=True)
    description = table.string("description", default="")
    clusters: dict[str, ProjectClusterConfig] = {}
    unknown = f"unknown cluster (known: {', '.join(cluster_names)})"
    for cluster_name, sub in table.named_tables("clusters", cluster_names, unknown):
        clusters[cluster_name] = _parse_project_cluster(sub, stacks.get(cluster_name))
    deploy_table = table.table("deploy")
    deploy = _parse_deploy(deploy_table) if deploy_table is not None else None
    newest_wins = table.boolean("newest_wins", False)
    dns = check_dns_name(table, "dns")  # (provisioning)
    for cluster_name, settings in clusters.items():
        own = pair_dns_name(settings.dns or dns, name, cluster_name)
        clusters[cluster_name] = dataclasses.replace(settings, dns=own)
    table.done()
    return ProjectConfig(
        name=name,
        repository=repository,
        description=description,
        clusters=clusters,
        deploy=deploy,
        newest_wins=newest_wins,
        dns=dns,
    )


def _world_tuned_stacks(
    projects: dict[str, ProjectConfig], world: WorldConfig | None
) -> dict[str, ProjectConfig]:
    """(provisioning) Every pair's stack with [world]'s load balancer tuning applied (see
    world_tuned): the embedded world's fleet, stacks included, checks and drains as it says."""
    if world is None:
        return projects
    tuning = (
        world.health_check_interval_seconds,
        world.healthy_threshold,
        world.deregistration_delay_seconds,
    )
    if tuning == (None, None, None):
        return projects
    tuned: dict[str, ProjectConfig] = {}
    for name, project in projects.items():
        clusters = {
            cluster: dataclasses.replace(pair, stack=world_tuned(pair.stack, *tuning))
            if pair.stack is not None
            else pair
            for cluster, pair in project.clusters.items()
        }
        tuned[name] = dataclasses.replace(project, clusters=clusters)
    return tuned
