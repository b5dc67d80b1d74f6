"""The console itself, run with no command: the TUI on the fleet, its runner and its anchor."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from pathlib import Path

from console.config import Config, find_config
from screens.cli.command_line import say


def console_handler(args: argparse.Namespace) -> int:
    return run_console(find_config(args.config), getattr(args, "store", None))


def run_console(config: Config, store: str | None, *, runs_deploys: bool = False) -> int:
    from console.deploy.services import store_path
    from screens.keymap import config_keymap

    config_keymap(config)  # a [keymap] mistake is one line before the screen starts

    return asyncio.run(_run_console(config, store_path(config, store), runs_deploys))


def runner_argv(config: Config, store: Path) -> list[str]:
    """The detached runner a console starts when no runner serves its store."""
    return [
        sys.executable, "-m", "screens.main", "--config", str(config.source.resolve()),
        "--store", str(store.resolve()), "runner", "--exit-when-idle",
    ]  # fmt: skip


async def _run_console(config: Config, store: Path, runs_deploys: bool = False) -> int:
    from console.audit.anchor import anchor_schedule
    from console.deploy.services import actor, deploy_services
    from console.fleet.share import READ_ONLY_FLEET_ENV, shared_fleet
    from console.queue.release_queue import DeployQueue
    from console.queue.runner import Runner
    from console.servers.runner_service import DetachedRunners
    from screens.app import build_app
    from screens.deploy.support import EngineDeploys

    # A session of `sshd` or `web`: it reads the fleet its server polls for every session,
    # and the server's runner runs what it queues.
    session = os.environ.get(READ_ONLY_FLEET_ENV) == "1"
    # The store belongs to the loop it was opened on: the app's, so open it here.
    async with deploy_services(config, store) as services:
        fleet = shared_fleet(config, store, "console")
        queue = DeployQueue(services.store, config)
        # A deploy belongs to a runner process, never to this console: closing its terminal
        # (or dropping its SSH or browser session) changes nothing about a deploy. A local
        # console starts a detached runner when none serves the store (and at start, when
        # something waits for one).
        detached = (
            None if session or runs_deploys else DetachedRunners(store, runner_argv(config, store))
        )
        runner = Runner(
            services.engine,
            queue,
            executes=runs_deploys,
            on_queued=detached.ensure if detached is not None else None,
        )
        if detached is not None and await queue.entries():
            await detached.ensure()
        deploys = EngineDeploys(services.engine, services.fleet.gateway, actor(), runner=runner)
        anchor = (
            None
            if session
            else anchor_schedule(config.audit, services.store, services.fleet.gateway)
        )
        app = build_app(config, fleet, deploys=deploys, anchor=anchor, history=services.store)
        running = asyncio.create_task(runner.run_forever())
        try:
            await app.run_async()
        finally:
            await fleet.aclose()
            if runner.running_here:
                say(
                    f"cancelling the deploys this console ran "
                    f"({', '.join(runner.running_here)}); each rolls back first"
                )
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running
        return app.return_code or 0
