"""AWS identity at the command line: `iam-policy ROLE`, and the MFA prompt of a person."""

from __future__ import annotations

import argparse
import getpass
import sys
import threading
from collections.abc import Callable

from console.aws.iam import ROLES, policy
from screens.cli.command_line import Commands


def register(commands: Commands) -> None:
    iam = commands.add(
        "iam-policy",
        "print a least-privilege IAM policy of the console (docs/iam)",
        iam_policy_command,
        common=False,
    )
    # Checked by console.aws.iam, not with choices=: one line naming the roles, exit 2.
    iam.add_argument("role", nargs="?", metavar="ROLE", help="poller, runner, anchor-writer, trust")
    iam.add_argument(
        "--json", action="store_true", help="the roles, machine-readable (a policy is JSON already)"
    )


def iam_policy_command(args: argparse.Namespace) -> int:
    """Print the policy document of ROLE (or, without one, the roles and what each is for)."""
    if args.role is None and args.json:
        from screens.cli.json_out import emit

        emit("iam-policy", roles=[{"name": role, "purpose": why} for role, why in ROLES.items()])
        return 0
    if args.role is None:
        width = max(len(role) for role in ROLES)
        for role, purpose in ROLES.items():
            print(f"{role:<{width}}  {purpose}")
        return 0
    sys.stdout.write(policy(args.role))
    return 0


def terminal_mfa_prompt() -> Callable[[str], str] | None:
    """Asks for an MFA code when a person is at this terminal (stdin is a TTY), else None:
    a pipe, a CI job or a service has nobody to type it, and is refused in one line."""
    if not sys.stdin.isatty():
        return None
    lock = threading.Lock()  # AWS calls run in worker threads: one question at a time

    def ask(prompt: str) -> str:
        with lock:
            return getpass.getpass(prompt).strip()

    return ask
