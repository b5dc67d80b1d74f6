"""The command line's parser: each command group registers its subcommands, in --help's order."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from screens import PROG
from screens import logging_setup as logs
from screens.cli import (
    approvals,
    audit,
    completion,
    config,
    console,
    deploy,
    gate,
    history,
    iam,
    kiosk,
    notify,
    queue,
    release,
    runner,
    sshd,
    stack,
    status,
    store,
    web,
    world,
)
from screens.cli.command_line import Commands, Parser
from screens.cli.version import VersionAction

# Each group's module is light to import: what a command needs (boto3, asyncssh, textual...)
# is imported when it runs.
GROUPS: tuple[Callable[[Commands], None], ...] = (
    status.register,
    deploy.register,
    release.register,
    gate.register,
    history.register,
    stack.register,
    queue.register,
    approvals.register,
    runner.register,
    notify.register,
    audit.register,
    store.register,
    iam.register,
    config.register,
    world.register_world,
    sshd.register,
    web.register,
    kiosk.register,
    completion.register,
    world.register_demo,
)


def _options(default: object) -> Parser:
    shared = Parser(add_help=False)
    shared.add_argument(
        "--config",
        metavar="PATH",
        default=default,
        help="config file (else $DEPLOY_CONSOLE_CONFIG, else the user config dir)",
    )
    shared.add_argument(
        "--store",
        metavar="PATH",
        default=default,
        help="the deploy and audit store (else the config's `store`, else the user data dir)",
    )
    logs.add_arguments(shared, default)
    return shared


def parser() -> argparse.ArgumentParser:
    """The whole command line; a parsed command's `handler` runs it (no command: the console)."""
    top = Parser(
        prog=PROG,
        description="A terminal console for the fleet: health, versions, deploys.",
        parents=[_options(None)],
    )
    top.add_argument("--version", action=VersionAction)
    top.set_defaults(handler=console.console_handler)
    subparsers = top.add_subparsers(dest="command", parser_class=Parser, metavar="COMMAND")
    # Given before the command or after it: a command's own default must not undo the first.
    commands = Commands(subparsers, _options(argparse.SUPPRESS))
    for register in GROUPS:
        register(commands)
    return top


def has_command(name: str) -> bool:
    """Whether this build of the console has the command `name` (the SSH server asks)."""
    return any(
        isinstance(action, argparse._SubParsersAction) and name in action.choices
        for action in parser()._actions
    )
