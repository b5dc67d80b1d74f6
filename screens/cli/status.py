"""`deploy-console status`: the fleet matrix (or JSON) once, for a terminal or a script.

With a runner service up (config [runner] socket), plain `status` prints the runner's last
snapshot and its age, without polling AWS (this path imports neither boto3 nor the store);
`--fresh`, or no runner answering, polls AWS from this process.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from console.config import Config
from console.model import FleetSnapshot
from screens.cli.command_line import Commands, with_config
from screens.cli.status_show import age, show

__all__ = ["age", "register", "show"]


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
    projects = tuple(args.project) if args.project else None
    clusters = tuple(args.cluster) if args.cluster else None
    for name in clusters or ():
        config.cluster(name)
    for name in projects or ():
        config.project(name)
    snapshot = None
    findings: list[dict[str, Any]] = []
    if not args.fresh and config.runner_socket is not None:
        from console.fleet.wire import ask_runner

        answer = ask_runner(config.runner_socket)
        if answer is not None:
            snapshot, findings = answer.snapshot, answer.findings
    from_runner = snapshot is not None
    if snapshot is None:
        snapshot = poll(config)
        if args.json:
            findings = asyncio.run(drift_findings(config, args, snapshot))
    return show(
        snapshot, projects, clusters, as_json=args.json, from_runner=from_runner, findings=findings
    )


async def drift_findings(
    config: Config, args: argparse.Namespace, snapshot: FleetSnapshot
) -> list[dict[str, Any]]:
    """(drift) The snapshot's findings, against the store when there is one."""
    from console.config.paths import store_path
    from console.drift.review import findings_json
    from console.store import Store

    path = store_path(config.store, getattr(args, "store", None))
    if not path.exists():
        return await findings_json(config, snapshot, None)
    async with await Store.open(path, create=False, read_only=True) as store:
        return await findings_json(config, snapshot, store)


def poll(config: Config) -> FleetSnapshot:
    """A snapshot polled from AWS by this process."""
    from console.fleet.inventory import Fleet
    from screens.cli.iam import terminal_mfa_prompt

    fleet = Fleet(config, mfa_prompt=terminal_mfa_prompt())
    try:
        return asyncio.run(fleet.refresh())
    finally:
        fleet.close()
