"""`bake end ID` and `bake rollback ID`: the deploy screen's e and r keys on the command line."""

from __future__ import annotations

import argparse
import asyncio

from console.config import Config
from console.errors import DeployError
from screens.cli.command_line import Commands, say, with_config

EXIT_REFUSED = 3
ASKED = {
    "end": "asked {id} to end its bake early: nothing is watched any more, the old "
    "instances stay kept",
    "rollback": "asked {id} to roll back now: its console starts the kept old instances "
    "and drains the new ones",
}


def register(commands: Commands) -> None:
    bake = commands.add("bake", "end a deploy's bake early, or roll it back now")
    decisions = commands.nested(bake, "decision", required=True)
    for decision, help in (
        ("end", "end a baking deploy's bake early (the release stays)"),
        ("rollback", "roll a baking deploy back now to the kept old instances"),
    ):
        parser = decisions.add(decision, help, with_config(bake_command))
        parser.add_argument("deploy_id", metavar="DEPLOY_ID")


def bake_command(config: Config, args: argparse.Namespace) -> int:
    """Exit 0 asked (the deploy's console acts within its next look), 2 an unknown deploy or
    one not baking, 3 refused (like a cancel: one's own deploy, else an admin)."""
    from console.access import AccessDenied

    try:
        asyncio.run(_decide(config, args))
    except AccessDenied as refused:
        say(f"refused: {refused.message}")
        return EXIT_REFUSED
    print(ASKED[args.decision].format(id=args.deploy_id), flush=True)
    return 0


async def _decide(config: Config, args: argparse.Namespace) -> None:
    from console.deploy.services import actor, deploy_services, store_path

    if config.runner_socket is not None:
        # The runner service knows who asks; this process's word is not enough there.
        raise DeployError("bake decisions through a runner service: use its console (e, r)")
    store = store_path(config, args.store)
    if not store.exists():  # nothing was ever deployed with it: do not create it now
        raise DeployError(f"unknown deploy {args.deploy_id!r} (no store at {store})")
    async with deploy_services(config, store) as services:
        await services.engine.decide_bake(args.deploy_id, actor(), args.decision)
