"""The [world] table: the seed of the embedded world (demo and tests only)."""

from __future__ import annotations

from console.config.reader import HOUR, Table
from console.config.schema import ProjectConfig, WorldConfig, WorldEnv, WorldProject

MAX_INSTANCES = 1000
MAX_SEED = 2**32 - 1


def parse_world(table: Table, config_projects: dict[str, ProjectConfig]) -> WorldConfig:
    domain = table.string("domain", default="example.internal")
    seed = table.integer("seed", 42, minimum=0, maximum=MAX_SEED)
    registration_seconds = table.number("registration_seconds", 3.0, minimum=0.0, maximum=HOUR)
    interval = table.optional_integer("health_check_interval_seconds", 5, 300)
    healthy_threshold = table.optional_integer("healthy_threshold", 2, 10)
    delay = table.optional_integer("deregistration_delay_seconds", 0, 3600)
    projects: dict[str, WorldProject] = {}
    for project_name, entry in table.named_tables("projects", config_projects, "unknown project"):
        projects[project_name] = _parse_project(entry, config_projects[project_name])
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


def _parse_project(entry: Table, project: ProjectConfig) -> WorldProject:
    """A project's releases in the world, and how many instances run which in each cluster."""
    versions = entry.strings("versions", required=True)
    if not versions:
        entry.fail("must list at least one version", "versions")
    dns = entry.string("dns", default=project.name)
    broken = entry.strings("broken")
    failed_builds = entry.strings("failed_builds")
    for key, listed in (("broken", broken), ("failed_builds", failed_builds)):
        for version in listed:
            if version not in versions:
                entry.fail(f"{version!r} is not in versions", key)
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
    unknown = f"project {project.name!r} is not configured in this cluster"
    for cluster_name, env_table in entry.named_tables("clusters", project.clusters, unknown):
        envs[cluster_name] = _parse_env(env_table, versions)
    entry.done()
    return WorldProject(
        versions=versions,
        dns=dns,
        clusters=envs,
        broken=broken,
        routes=routes,
        failed_builds=failed_builds,
    )


def _parse_env(table: Table, versions: tuple[str, ...]) -> WorldEnv:
    """The instances of one project in one cluster of the world."""
    env = WorldEnv(
        instances=table.integer("instances", 1, minimum=0, maximum=MAX_INSTANCES),
        version=table.string("version", required=True),
        stopped=table.integer("stopped", 0, minimum=0, maximum=MAX_INSTANCES),
        unhealthy=table.integer("unhealthy", 0, minimum=0, maximum=MAX_INSTANCES),
        older=table.integer("older", 0, minimum=0, maximum=MAX_INSTANCES),
    )
    if env.version not in versions:
        table.fail(f"{env.version!r} is not in versions", "version")
    if env.stopped + env.unhealthy + env.older > env.instances:
        table.fail("stopped + unhealthy + older exceeds instances")
    table.done()
    return env
