"""`deploy-console store backup|restore`: an online copy of the store, and putting one back."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from console.config import Config, find_config
from console.config.paths import store_path
from screens.cli.command_line import Commands


def register(commands: Commands) -> None:
    store = commands.add("store", "back the store up, or restore a copy", command, common=False)
    store_commands = commands.nested(store, "store_command", required=True)
    backup = store_commands.add(
        "backup", "an online, consistent copy of the store (deploys may run meanwhile)"
    )
    backup.add_argument("path", metavar="PATH", help="the copy's file (written atomically)")
    backup.add_argument("--force", action="store_true", help="replace PATH if it exists")
    restore = store_commands.add(
        "restore",
        "put a copy back: its chain verified, its gap to the anchor said, lost deploys found",
    )
    restore.add_argument("backup", metavar="BACKUP", help="a copy made by `store backup`")
    restore.add_argument(
        "--into", metavar="STORE", help="the store to restore into (default: --store / config)"
    )
    restore.add_argument(
        "--force", action="store_true", help="replace an existing store (kept aside, renamed)"
    )


def _config(args: argparse.Namespace) -> Config | None:
    """--store alone needs no config (like `audit verify`); else the config is read."""
    if args.store and not args.config:
        return None
    return find_config(args.config)


def command(args: argparse.Namespace) -> int:
    if args.store_command == "backup":
        return _backup(args)
    return _restore(args)


def _backup(args: argparse.Namespace) -> int:
    from console.store.backup import take_backup

    config = _config(args)
    store = store_path(config.store if config else None, args.store)
    summary = asyncio.run(take_backup(store, Path(args.path), force=args.force))
    print(
        f"store backup: {summary.path} ({_size(summary.size)} in {summary.seconds:.2f} s): "
        f"{summary.described}"
    )
    return 0


def _restore(args: argparse.Namespace) -> int:
    from console.identity import current_actor
    from console.servers.store_restore import restore

    # A path given without --config: no config (then neither anchor nor AWS is read).
    config = None if (args.store or args.into) and not args.config else find_config(args.config)
    if args.into:
        into = Path(args.into)
    else:
        into = store_path(config.store if config else None, args.store)
    outcome = asyncio.run(
        restore(
            Path(args.backup), into, config=config, actor=str(current_actor()), force=args.force
        )
    )
    copy = outcome.copy
    print(f"store restore: {copy.path} → {outcome.into}: {copy.described}")
    print(f"  {outcome.gap or 'the anchor was not compared'}")
    if outcome.replaced is not None:
        print(f"  the store it replaced is kept at {outcome.replaced}")
    if outcome.aws_problem is not None:
        print(
            f"  AWS was not read ({outcome.aws_problem}): deploys the copy does not know were "
            "not looked for (restore with --config to find them)"
        )
    for adoption in outcome.adoptions:
        print(f"  {adoption.described}")
    if outcome.queued:
        print(f"  {outcome.queued} deploy(s) queued in the copy will run when a runner starts")
    print('  next: start the runner (README "When the console host dies mid-deploy")')
    return 0


def _size(size: int) -> str:
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KiB"
    return f"{size / 1024 / 1024:.1f} MiB"
