"""`project add NAME --cluster C`: the config change as a patch; with --write, applied."""

from __future__ import annotations

import argparse
import asyncio

from console.config import Config
from screens import PROG
from screens.cli.command_line import Commands, say, with_config

EXIT_REFUSED = 3


def register(commands: Commands) -> None:
    project = commands.add("project", "add a project to the config (a patch, or --write)")
    nested = commands.nested(project, "project_command", required=True)
    add = nested.add(
        "add",
        "print the config change adding a project (a unified diff); --write applies it",
        with_config(add_command),
    )
    add.add_argument("name", metavar="NAME", help="the new project's name")
    add.add_argument(
        "--cluster",
        dest="cluster",
        metavar="CLUSTER",
        action="append",
        required=True,
        help="a cluster it runs in (repeat for more): a target group NAME-CLUSTER, launch "
        "settings copied from a project there, desired 1, its stack opted in",
    )
    add.add_argument(
        "--repository", metavar="URL", help="its repository (default: a sibling's, renamed)"
    )
    add.add_argument(
        "--write",
        action="store_true",
        help="apply it to the config file (comments and order kept; atomic; admins only)",
    )


def add_command(config: Config, args: argparse.Namespace) -> int:
    """The patch on stdout (for `git apply`); exit 2 bad input (a name in use, an unknown
    cluster), 3 --write refused (not an admin)."""
    from console.access import AccessDenied
    from console.config.edit import add_project
    from console.deploy.services import actor, store_path

    addition = add_project(config, args.name, args.cluster, args.repository)
    print(addition.patch, end="", flush=True)
    if not args.write:
        say(f"not written: `{PROG} project add ... --write` applies it to {addition.path}")
        return 0
    from console.stacks.projects import require_admin, write_project

    store = store_path(config, args.store)
    who = actor()
    try:
        asyncio.run(require_admin(config, store, who, args.cluster, args.name, "add a project"))
    except AccessDenied as refused:
        say(f"refused: {refused.message}")
        return EXIT_REFUSED
    row = asyncio.run(write_project(addition, store, who))
    print(
        f"wrote {addition.path}: project {args.name} in {', '.join(args.cluster)} "
        f"(audit #{row}, patch sha256:{addition.digest[:12]})",
        flush=True,
    )
    from console.stacks.projects import plan_pairs

    for cluster, plan in asyncio.run(plan_pairs(addition.config, args.name, args.cluster)):
        again = f"{PROG} stack plan {args.name} {cluster}"
        if isinstance(plan, str):
            say(f"plan: not made for {cluster}: {plan} (`{again}` makes it)")
            continue
        counts = ", ".join(f"{n} to {action}" for action, n in plan.counts().items() if n)
        print(f"plan: {plan.stack_name} ({plan.change_set_type}): {counts or 'no changes'}")
        for resource in plan.resources:
            change = resource.change
            print(f"  {change.action.value:<8} {change.logical_id:<16} {change.resource_type}")
        print(f"  `{again}` shows it in full", flush=True)
    return 0
