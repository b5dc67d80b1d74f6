"""`deploy-console status`: the fleet matrix (or JSON) once, for a terminal or a script.

With a runner service up (config [runner] socket), plain `status` prints the runner's last
snapshot and its age, without polling AWS (this path imports neither boto3 nor the store);
`--fresh`, or no runner answering, polls AWS from this process.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime

from console.config import Config
from console.model import FleetSnapshot
from screens.cli.command_line import Commands, error_line, with_config


def register(commands: Commands) -> None:
    status = commands.add(
        "status", "print the fleet matrix (or JSON) and exit", with_config(status_command)
    )
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.add_argument("--project", action="append", metavar="NAME", help="only this project")
    status.add_argument("--cluster", action="append", metavar="NAME", help="only this cluster")
    status.add_argument(
        "--fresh",
        action="store_true",
        help="poll AWS now, even when a runner service holds a recent snapshot",
    )


def status_command(config: Config, args: argparse.Namespace) -> int:
    from console.fleet.report import snapshot_json

    projects = tuple(args.project) if args.project else None
    clusters = tuple(args.cluster) if args.cluster else None
    for name in clusters or ():
        config.cluster(name)
    for name in projects or ():
        config.project(name)
    snapshot, note = None, ""
    if not args.fresh and config.runner_socket is not None:
        from console.fleet.wire import ask_runner

        answer = ask_runner(config.runner_socket)
        if answer is not None:
            snapshot = answer.snapshot
            note = f"as of {age(snapshot.generated_at)}, from the runner"
    if snapshot is None:
        snapshot = poll(config)
    if args.json:
        from screens.cli.json_out import emit

        emit("status", **snapshot_json(snapshot, projects, clusters))
        if note:  # stdout stays JSON alone
            print(note, file=sys.stderr)
    else:
        from screens.cli.status_table import print_status

        if note:
            print(note)
        print_status(snapshot, projects, clusters)
    failed = [
        cluster
        for cluster in snapshot.clusters
        if cluster.error and (clusters is None or cluster.name in clusters)
    ]
    for cluster in failed:
        print(error_line(f"cluster {cluster.name}: {cluster.error}"), file=sys.stderr)
    return 2 if failed else 0


def poll(config: Config) -> FleetSnapshot:
    """A snapshot polled from AWS by this process."""
    from console.fleet.inventory import Fleet
    from screens.cli.iam import terminal_mfa_prompt

    fleet = Fleet(config, mfa_prompt=terminal_mfa_prompt())
    try:
        return asyncio.run(fleet.refresh())
    finally:
        fleet.close()


def age(moment: datetime, now: datetime | None = None) -> str:
    """How long ago, for a person: "12 s ago", "4 min ago", "2 h ago"."""
    seconds = max(0, round(((now or datetime.now(UTC)) - moment).total_seconds()))
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 7200:
        return f"{seconds // 60} min ago"
    return f"{seconds // 3600} h ago"
