"""`deploy-console status`: the fleet matrix (or JSON) once, for a terminal or a script."""

from __future__ import annotations

import argparse
import asyncio
import sys

from console.config import Config
from screens.cli.command_line import Commands, error_line, with_config


def register(commands: Commands) -> None:
    status = commands.add(
        "status", "print the fleet matrix (or JSON) and exit", with_config(status_command)
    )
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.add_argument("--project", action="append", metavar="NAME", help="only this project")
    status.add_argument("--cluster", action="append", metavar="NAME", help="only this cluster")


def status_command(config: Config, args: argparse.Namespace) -> int:
    from console.fleet.inventory import Fleet
    from console.fleet.report import snapshot_json
    from screens.cli.iam import terminal_mfa_prompt

    projects = tuple(args.project) if args.project else None
    clusters = tuple(args.cluster) if args.cluster else None
    for name in clusters or ():
        config.cluster(name)
    for name in projects or ():
        config.project(name)
    fleet = Fleet(config, mfa_prompt=terminal_mfa_prompt())
    try:
        snapshot = asyncio.run(fleet.refresh())
    finally:
        fleet.close()
    if args.json:
        from screens.cli.json_out import emit

        emit("status", **snapshot_json(snapshot, projects, clusters))
    else:
        from screens.cli.status_table import print_status

        print_status(snapshot, projects, clusters)
    failed = [
        cluster
        for cluster in snapshot.clusters
        if cluster.error and (clusters is None or cluster.name in clusters)
    ]
    for cluster in failed:
        print(error_line(f"cluster {cluster.name}: {cluster.error}"), file=sys.stderr)
    return 2 if failed else 0
