"""`deploy-console releases PROJECT`: a project's releases, newest first, and where each runs."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from console.config import Config
from console.errors import ConsoleError
from screens.cli.command_line import Commands, with_config
from screens.cli.json_out import emit, iso


def register(commands: Commands) -> None:
    releases = commands.add(
        "releases", "a project's releases, newest first", with_config(releases_command)
    )
    releases.add_argument("project")
    releases.add_argument("--cluster", metavar="NAME", help="the cluster's region (default: first)")
    releases.add_argument("--json", action="store_true", help="machine-readable output")


async def _releases(config: Config, args: argparse.Namespace) -> tuple[str, list[dict[str, Any]]]:
    """The cluster read (its region's AMIs), and the releases as JSON-ready data."""
    from screens.cli.iam import terminal_mfa_prompt

    project = config.project(args.project)
    cluster = args.cluster or next(iter(project.clusters), None)
    if cluster is None:
        raise ConsoleError(f"project {project.name} is not configured in any cluster")
    config.cluster(cluster)
    from console.deploy.releases import list_releases
    from console.fleet.inventory import Fleet

    fleet = Fleet(config, mfa_prompt=terminal_mfa_prompt())
    try:
        snapshot = await fleet.refresh()
        gateway = await asyncio.to_thread(fleet.gateway, cluster)
        releases = await list_releases(config, gateway, project.name, snapshot)
    finally:
        fleet.close()
    return cluster, [
        {
            "version": r.version,
            "image_id": r.image_id,
            "created_at": iso(r.created_at),
            "clusters": list(r.clusters),
        }
        for r in releases
    ]


def releases_command(config: Config, args: argparse.Namespace) -> int:
    cluster, releases = asyncio.run(_releases(config, args))
    if args.json:
        emit("releases", project=args.project, cluster=cluster, releases=releases)
        return 0
    from screens.cli.tables import print_table

    rows = [
        (
            str(release["version"]),
            str(release["image_id"]),
            str(release["created_at"] or "")[:19].replace("T", " "),
            ", ".join(release["clusters"]) or "-",
        )
        for release in releases
    ]
    print_table(("version", "image", "created (UTC)", "running in"), rows)
    return 0
