"""`deploy-console runner`: run queued deploys headless, on a host without a TUI.

As a service (contrib/systemd/): SIGTERM (or ctrl+c) stops it taking deploys and lets those in
flight reach their end within `[runner] stop_grace`; what is still running then, or at a
second SIGTERM or ctrl+c, is handed to the next start (not rolled back). SIGHUP reloads the
config where that is safe. What it reports goes to the `console.runner` logger (stderr).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from console.config import Config, load_config
from console.config.paths import store_path
from console.errors import ConsoleError
from screens.cli.command_line import Commands, with_config
from screens.cli.metrics_option import add_metrics_option, metrics_served

if TYPE_CHECKING:
    from console.servers.runner_service import RunnerService

log = logging.getLogger("console.runner")
DOOR_SECONDS = 2.0  # a runner handing over closes its socket; followers are not waited for


def register(commands: Commands) -> None:
    runner = commands.add(
        "runner",
        "run queued deploys headless (a host without a TUI; SIGTERM lets deploys in flight "
        "end, SIGHUP reloads the config)",
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
    _log_to_stderr()
    with metrics_served(config.metrics.runner, args):
        return asyncio.run(_runner(config, args))


def _log_to_stderr() -> None:
    """Until the process configures logging itself: the console's info lines on stderr, one
    line each (journald stamps them)."""
    if not logging.getLogger().handlers:
        logging.basicConfig(stream=sys.stderr, format="%(message)s", level=logging.WARNING)
    console = logging.getLogger("console")
    if console.level == logging.NOTSET:
        console.setLevel(logging.INFO)


def _shown(seconds: float) -> str:
    """A grace as the config says it: 10m, 90s, 1h."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size:g}{unit}"
    return f"{seconds:g}s"


class Signals:
    """What the runner is told: stop (SIGTERM, SIGINT; `stops` counts them) and reload
    (SIGHUP). A signal the process was started ignoring stays ignored (`nohup`, `&`)."""

    def __init__(self) -> None:
        self.stop = asyncio.Event()
        self.again = asyncio.Event()
        self.hup = asyncio.Event()
        self.stops = 0
        self.how = ""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(signum) is not signal.SIG_IGN:
                loop.add_signal_handler(signum, self._told, signum)

    def _told(self, signum: int) -> None:
        if signum == signal.SIGHUP:
            self.hup.set()
            return
        self.stops += 1
        self.how = signal.Signals(signum).name
        (self.stop if self.stops == 1 else self.again).set()


def report(deploy_id: str, event: object) -> None:
    from console.events import DeployFinished, DeployStarted
    from console.queue.runner import Reconciled

    extra = {"deploy_id": deploy_id}
    if isinstance(event, DeployStarted):
        line = f"{deploy_id}: {event.project} → {event.cluster} {event.release} by {event.actor}"
        log.info("%s: running", line, extra=extra)
    elif isinstance(event, DeployFinished):
        log.info("%s: %s: %s", deploy_id, event.state, event.reason, extra=extra)
    elif isinstance(event, Reconciled):
        log.info("%s: interrupted; %s", deploy_id, event.summary, extra=extra)


async def _runner(config: Config, args: argparse.Namespace) -> int:
    from console.metrics.current import count_sessions
    from console.servers.runner_service import runner_service

    signals = Signals()
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
        reloading = asyncio.create_task(_reload_on_hup(service, signals))
        try:
            grace = _shown(config.runner_stop_grace)
            until = "until idle" if exit_when_idle else f"SIGTERM stops, {grace} grace"
            where = f"; requests on {socket_path}" if socket_path else ""
            log.info("runner %s: running queued deploys (%s)%s", runner.name, until, where)
            if await _serve(service, signals, exit_when_idle):
                left = await _drain(service, signals)
                if left:
                    reloading.cancel()
                    if door is not None:  # its followers are not waited for: they see it go
                        with contextlib.suppress(TimeoutError):
                            async with asyncio.timeout(DOOR_SECONDS):
                                await door.close()
                        door.path.unlink(missing_ok=True)
                        door = None
                    await _hand_over(service, signals, left)
                log.info("runner %s: stopped; no deploy left running", runner.name)
        finally:
            reloading.cancel()
            if door is not None:
                await door.close()
    return 0


async def _serve(service: RunnerService, signals: Signals, exit_when_idle: bool) -> bool:
    """Run until told to stop (True), idle with --exit-when-idle, or the runner ended."""
    stopped = asyncio.create_task(signals.stop.wait())
    waits: set[asyncio.Task[object]] = {service.task, stopped}
    if exit_when_idle:
        waits.add(asyncio.create_task(service.until_idle()))
    done, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    for task in pending - {service.task}:
        task.cancel()
    if service.task.done():
        return False
    if stopped in done:
        return True
    log.info("runner %s: idle, exiting", service.runner.name)
    return False


async def _drain(service: RunnerService, signals: Signals) -> list[str]:
    """Stop taking deploys; wait for those in flight up to the grace, or a second signal.
    The ids still running."""
    runner = service.runner
    in_flight = runner.running_here
    if in_flight and service.config.runner_stop_grace > 0:
        log.info(
            "runner %s: stopping (%s): taking no new deploys; %s may run %s to end "
            "(%s again hands over now)",
            runner.name,
            signals.how,
            ", ".join(in_flight),
            _shown(service.config.runner_stop_grace),
            signals.how,
        )
    draining = asyncio.create_task(service.drain())
    again = asyncio.create_task(signals.again.wait())
    await asyncio.wait({draining, again}, return_when=asyncio.FIRST_COMPLETED)
    again.cancel()
    if not draining.done():
        draining.cancel()
        await asyncio.gather(draining, return_exceptions=True)
        await runner.pause()
    return runner.running_here


async def _hand_over(service: RunnerService, signals: Signals, left: list[str]) -> NoReturn:
    """Leave the deploys still running to the next start, audited; the process ends here."""
    if signals.again.is_set():
        why = f"{signals.how}, twice"
    else:
        why = f"{signals.how}, after its stop grace of {_shown(service.config.runner_stop_grace)}"
    log.warning(
        "runner %s: handing over %s to the next start (not rolled back)",
        service.runner.name,
        ", ".join(left),
    )
    await service.hand_over_and_exit(why)


async def _reload_on_hup(service: RunnerService, signals: Signals) -> None:
    """SIGHUP: read the config file again; a config that does not parse, or that changes what
    deploys act on, is refused in one line and the old one kept."""
    from console.servers.runner_service import RunnerServiceError

    while True:
        await signals.hup.wait()
        signals.hup.clear()
        source = service.config.source
        try:
            new = await asyncio.to_thread(load_config, source)
            changed = await service.reload(new)
        except RunnerServiceError as error:
            log.error("config reload refused: %s", error.message)
        except ConsoleError as error:
            log.error("config reload refused: %s; kept the config it runs on", error.message)
        else:
            log.info("config reloaded from %s: %s", source, changed)
