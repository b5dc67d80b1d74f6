"""`deploy-console runner`: run queued deploys headless, on a host without a TUI."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from console.config import Config
from console.config.paths import store_path
from screens import PROG
from screens.cli.command_line import Commands, stop_on_signals, with_config
from screens.cli.metrics_option import add_metrics_option, metrics_served


def register(commands: Commands) -> None:
    runner = commands.add(
        "runner",
        "run queued deploys headless (a host without a TUI)",
        with_config(runner_command),
    )
    runner.add_argument(
        "--exit-when-idle",
        action="store_true",
        help="end once nothing is queued, running or left to reconcile (a console starts "
        "such a runner when none serves its store)",
    )
    runner.add_argument(
        "--socket",
        metavar="PATH",
        help="serve people's commands on this Unix socket (a shared console host; a caller is "
        "known by its uid, SO_PEERCRED; default: config [runner] socket)",
    )
    add_metrics_option(runner, "runner")


def runner_command(config: Config, args: argparse.Namespace) -> int:
    with metrics_served(config.metrics.runner, args):
        return asyncio.run(_runner(config, args))


async def _runner(config: Config, args: argparse.Namespace) -> int:
    from console.events import DeployFinished, DeployStarted
    from console.metrics.current import count_sessions
    from console.queue.runner import Reconciled
    from console.servers.runner_service import runner_service

    stop = stop_on_signals(keep_ignored=True)

    def report(deploy_id: str, event: object) -> None:
        if isinstance(event, DeployStarted):
            line = (
                f"{deploy_id}: {event.project} → {event.cluster} {event.release} by {event.actor}"
            )
            print(f"{line}: running", flush=True)
        elif isinstance(event, DeployFinished):
            print(f"{deploy_id}: {event.state}: {event.reason}", flush=True)
        elif isinstance(event, Reconciled):
            print(f"{deploy_id}: interrupted; {event.summary}", flush=True)

    exit_when_idle = getattr(args, "exit_when_idle", False)
    socket_path = getattr(args, "socket", None)
    if socket_path is None and not exit_when_idle:  # a console's passing runner serves no door
        socket_path = config.runner_socket
    store = store_path(config.store, args.store)
    async with runner_service(config, store, on_event=report) as service:
        runner = service.runner
        door = None
        if socket_path:
            from console.servers.runner_door import RunnerDoor

            door = RunnerDoor(runner, Path(socket_path))
            await door.start()
            count_sessions("local", lambda: door.requests if door else 0)
        try:
            until = "until idle" if exit_when_idle else "ctrl+c stops"
            where = f"; requests on {socket_path}" if socket_path else ""
            print(f"runner {runner.name}: running queued deploys ({until}){where}", flush=True)
            stopped: asyncio.Task[object] = asyncio.create_task(stop.wait())
            waits: set[asyncio.Task[object]] = {service.task, stopped}
            if exit_when_idle:
                waits.add(asyncio.create_task(service.until_idle()))
            done, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for task in pending - {service.task}:
                task.cancel()
            if not service.task.done():
                if stopped in done:
                    print(
                        f"{PROG}: runner stopping: deploys running here roll back first",
                        flush=True,
                    )
                else:
                    print(f"runner {runner.name}: idle, exiting", flush=True)
        finally:
            if door is not None:
                await door.close()
    return 0
