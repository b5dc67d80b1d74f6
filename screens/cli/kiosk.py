"""`deploy-console kiosk`: the read-only wall screen, on the store's deploys and the fleet."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from console.config import Config
from screens.cli.command_line import Commands, UsageError, seconds_option, with_config


def register(commands: Commands) -> None:
    kiosk = commands.add(
        "kiosk",
        "a read-only wall screen: tiles, clock, latest deploys",
        with_config(kiosk_command),
    )
    kiosk.add_argument(
        "--rotate",
        type=seconds_option("--rotate", maximum=86400.0),
        default=15.0,
        metavar="SECONDS",
        help="show the next page every SECONDS when the fleet needs several (default: 15)",
    )
    kiosk.add_argument(
        "--quit-key",
        metavar="KEY",
        help="the one key that does anything (else kiosk.quit in [keymap], else ctrl+q)",
    )


def kiosk_command(config: Config, args: argparse.Namespace) -> int:
    from console.deploy.services import store_path
    from screens.keymap import kiosk_keymap
    from screens.kiosk.screen import check_quit_key

    keymap = kiosk_keymap(config)
    try:
        quit_key = check_quit_key(args.quit_key or "ctrl+q")
    except ValueError as error:
        raise UsageError(str(error)) from None
    store = store_path(config, getattr(args, "store", None))
    # --quit-key given wins over the config's [keymap].
    keymap = {} if args.quit_key else keymap
    return asyncio.run(_run_kiosk(config, store, args.rotate, quit_key, keymap))


async def _run_kiosk(
    config: Config, store_file: Path, rotate: float, quit_key: str, keymap: dict[str, str]
) -> int:
    from console.fleet.share import shared_fleet
    from console.queue.board import DeployBoard, read_board
    from console.queue.release_queue import DeployQueue
    from console.queue.wall import PairNotes, read_pair_notes
    from console.store import Store
    from screens.kiosk.screen import build_kiosk

    # Read-only: the kiosk never creates the store; until a console has, it shows no deploys.
    opened: list[Store] = []

    async def board() -> DeployBoard:
        if not opened:
            if not store_file.is_file():
                return DeployBoard({}, ())
            # Opened on the app's loop, like the console's: aiosqlite objects belong to it.
            opened.append(await Store.open(store_file, create=False))
        return await read_board(opened[0], DeployQueue(opened[0], config))

    pairs = [(project.name, cluster) for project in config.projects for cluster in project.clusters]

    async def notes() -> PairNotes:
        """Each pair's mark and last deploy, on the store board() opened (read just after it)."""
        if not opened:
            return PairNotes()
        return await read_pair_notes(DeployQueue(opened[0], config), pairs)

    # Read-only here too: without a store file the kiosk polls AWS on its own.
    fleet = shared_fleet(config, store_file, "kiosk", create_store=False)
    app = build_kiosk(config, fleet, board, notes=notes, rotate_seconds=rotate, quit_key=quit_key)
    app.set_keymap(keymap)
    try:
        await app.run_async()
    finally:
        await fleet.aclose()
        for store in opened:
            await store.close()
    return app.return_code or 0
