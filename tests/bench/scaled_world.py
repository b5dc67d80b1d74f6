"""A config with a `[world]` section for N projects x 4 clusters, for the benchmarks.

Every project runs in all four clusters behind one load balancer per cluster (a third of
them classic ELBs, the rest target groups), with 2 or 3 instances each (2.5 on average:
200 projects give 800 load balancers and 2,000 instances) and 3 versions. A few of them
are imperfect, as in a real fleet: an older instance left over, a stopped one, one that
fails its health check.

    .venv/bin/python -m tests.bench.scaled_world generate --projects 200 OUT.toml

`serve` runs a world like `deploy-console world` does (same World class, same stdout line),
except that it sends Route 53 its records in batches: AWS (and moto) refuse a change batch of
more than 1,000 records, an UPSERT counting twice, which a fleet of this size exceeds. The
bench uses it only when `deploy-console world` fails on exactly that.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import Any

import tomli_w

from console.config import Config, load_config

# Route 53 takes at most 1,000 records per change batch, each UPSERT counted twice; the
# demo's A records hold at most a few addresses.

# The demo's clusters: three in one account+region, one in another.
CLUSTERS: tuple[tuple[str, str, bool, str], ...] = (
    # name, region, protected, instance type
    ("staging", "us-east-1", False, "t3.small"),
    ("qaprod1", "us-east-1", False, "t3.medium"),
    ("prod1", "us-east-1", True, "m5.large"),
    ("prod2", "us-west-2", True, "m5.large"),
)


def project_name(index: int) -> str:
    return f"svc-{index:03d}"


def is_classic(project_index: int, cluster_index: int) -> bool:
    """One load balancer in three is a classic ELB, spread over projects and clusters."""
    return (project_index + cluster_index) % 3 == 0


def instance_count(project_index: int, cluster_index: int) -> int:
    return 2 + (project_index * len(CLUSTERS) + cluster_index) % 2


def generate(projects: int, seed: int = 42) -> dict[str, Any]:
    """The TOML document as plain data (tomli-w writes it)."""
    clusters = [
        {"name": name, "region": region, "protected": protected}
        for name, region, protected, _ in CLUSTERS
    ]
    project_tables: list[dict[str, Any]] = []
    world_projects: dict[str, Any] = {}
    for index in range(projects):
        name = project_name(index)
        settings: dict[str, Any] = {}
        envs: dict[str, Any] = {}
        versions = [f"{1 + index % 4}.{minor}.0" for minor in (7, 8, 9)]
        for cluster_index, (cluster, _, protected, instance_type) in enumerate(CLUSTERS):
            lb_name = f"{name}-{cluster}"
            key = "classic_elbs" if is_classic(index, cluster_index) else "target_groups"
            settings[cluster] = {
                key: [lb_name],
                "launch": {
                    "instance_type": instance_type,
                    "subnet": f"{cluster}-app-a",
                    "security_groups": [f"{cluster}-web"],
                    "key_name": f"deploy-{cluster}",
                    "instance_profile": lb_name,
                },
            }
            pair = index * len(CLUSTERS) + cluster_index
            env: dict[str, Any] = {
                "instances": instance_count(index, cluster_index),
                "version": versions[1] if protected else versions[2],
            }
            if pair % 10 == 3:
                env["older"] = 1
            if pair % 25 == 7:
                env["stopped"] = 1
            if pair % 20 == 11:
                env["unhealthy"] = 1
            envs[cluster] = env
        project_tables.append(
            {
                "name": name,
                "repository": f"https://github.com/example-shop/{name}",
                "description": f"benchmark service {index}",
                # (dns) the record the world seeds for each pair: the fleet reads and judges it
                "dns": f"{name}.{{cluster}}.bench.internal",
                "clusters": settings,
            }
        )
        world_projects[name] = {"versions": versions, "dns": name, "clusters": envs}
    return {
        "refresh_seconds": 10,
        "tags": {"project": "Project", "environment": "Environment", "version": "Version"},
        "clusters": clusters,
        "projects": project_tables,
        "world": {"domain": "bench.internal", "seed": seed, "projects": world_projects},
    }


def write(path: Path, projects: int, seed: int = 42) -> Config:
    """Write the config and load it back: the console's own validation checks it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".scaled-", suffix=".toml")
    try:
        with os.fdopen(handle, "wb") as output:
            tomli_w.dump(generate(projects, seed), output)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return load_config(path)


def expected_totals(config: Config) -> tuple[int, int]:
    """(instances, load balancers) the world should hold once seeded from `config`."""
    assert config.world is not None
    instances = sum(
        env.instances for spec in config.world.projects.values() for env in spec.clusters.values()
    )
    load_balancers = sum(
        len(settings.load_balancers)
        for project in config.projects
        for settings in project.clusters.values()
    )
    return instances, load_balancers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    generate_command = commands.add_parser("generate", help="write a scaled config")
    generate_command.add_argument("--projects", type=int, default=200)
    generate_command.add_argument("--seed", type=int, default=42)
    generate_command.add_argument("output", type=Path)
    args = parser.parse_args()
    config = write(args.output, args.projects, args.seed)
    instances, load_balancers = expected_totals(config)
    print(
        f"{args.output}: {len(config.projects)} projects x {len(config.clusters)} clusters, "
        f"{load_balancers} load balancers, {instances} instances"
    )


if __name__ == "__main__":
    main()
