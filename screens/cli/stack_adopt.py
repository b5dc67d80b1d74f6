"""`stack adopt PROJECT CLUSTER [--baseline]` (in the `stack` group of screens/cli/stack.py):
a hand-made pair kept as its stack's baseline; what `stack status` says of an adoption."""

from __future__ import annotations

import argparse
import asyncio
from typing import TYPE_CHECKING

from console.config import Config
from screens import PROG
from screens.cli.command_line import Commands, say, with_config

if TYPE_CHECKING:
    from console.store.adoptions import Adoption

EXIT_REFUSED = 3
KEPT = "its stack references these and never creates, changes or deletes them"


def register_stack(stack: Commands) -> None:
    """`stack adopt` in the `stack` group (screens/cli/stack.py's SUBCOMMANDS)."""
    adopt = stack.add(
        "adopt",
        "record a hand-made pair's load balancer, target group, security group and DNS "
        "record as the baseline its stack keeps (admins)",
        with_config(adopt_command),
    )
    adopt.add_argument("project")
    adopt.add_argument("cluster")
    adopt.add_argument(
        "--baseline",
        action="store_true",
        help="record the pair's resources again, replacing the baseline it has",
    )


def adopt_command(config: Config, args: argparse.Namespace) -> int:
    """Exit 0 recorded; 2 bad input (unknown pair, its stack exists, nothing in AWS, adopted
    already without --baseline); 3 refused (not an admin)."""
    from console.access import AccessDenied
    from console.deploy.services import actor, store_path
    from console.stacks.adopt import adopt_pair

    store = store_path(config, args.store)
    try:
        adoption, found = asyncio.run(
            adopt_pair(config, store, args.project, args.cluster, actor(), replace=args.baseline)
        )
    except AccessDenied as refused:
        say(f"refused: {refused.message}")
        return EXIT_REFUSED
    print(
        f"{args.project} in {args.cluster}: adopted as a baseline (not a CloudFormation "
        f"import: CloudFormation cannot import a Route 53 record; audit #{adoption.audit_id})",
        flush=True,
    )
    _print_resources(adoption)
    for missing in found.missing:
        print(f"  not found: {missing} (its stack will create it)")
    if config.project(args.project).clusters[args.cluster].stack is None:
        print(
            f"next: `stack = true` in [projects.clusters.{args.cluster}] of {args.project} "
            f"opts its stack in; then `{PROG} stack plan {args.project} {args.cluster}`"
        )
    return 0


def print_adoptions(config: Config, args: argparse.Namespace, pairs: list[tuple[str, str]]) -> None:
    """Below `stack status`'s table: each listed pair's adopted baseline (screens/cli/stack.py
    calls this; nothing for pairs without one, nor without a store)."""
    from console.deploy.services import store_path
    from console.stacks.adopt import adoptions

    found = asyncio.run(adoptions(store_path(config, args.store)))
    for project, cluster in pairs:
        adoption = found.get((project, cluster))
        if adoption is not None:
            for line in adoption_lines(adoption, project, cluster):
                print(line)


def adoption_lines(adoption: Adoption, project: str, cluster: str) -> list[str]:
    """What `stack status` says of a pair's adoption."""
    head = (
        f"{project} in {cluster}: adopted as a baseline on {adoption.adopted_at:%Y-%m-%d %H:%M} "
        f"UTC by {adoption.actor} (audit #{adoption.audit_id})"
    )
    return [head, *_resource_lines(adoption)]


def _print_resources(adoption: Adoption) -> None:
    for line in _resource_lines(adoption):
        print(line)


def _resource_lines(adoption: Adoption) -> list[str]:
    from console.stacks.adopt import resource_line

    rows = [resource_line(resource) for resource in adoption.resources]
    kind_width = max((len(kind) for kind, _, _ in rows), default=0)
    name_width = max((len(name) for _, name, _ in rows), default=0)
    lines = [
        f"  {kind.ljust(kind_width)}  {name.ljust(name_width)}  {detail}"
        for kind, name, detail in rows
    ]
    return [*lines, f"  {KEPT}"]
