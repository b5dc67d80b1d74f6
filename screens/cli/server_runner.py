"""The runner of an `sshd` or `web` server: whether it runs one, and how it stops as a service.

With `[runner] socket` set a runner service (`deploy-console runner`) serves the store: the
server runs none of its own, and its sessions' deploys are the service's (a restart of the
server touches none). Otherwise the server runs one, which stops like `deploy-console runner`:
once the server takes no more sessions, the deploys in flight get `[runner] stop_grace` to end
(a second SIGTERM ends it at once) and what is left is handed to the next start, never rolled
back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from console.config import Config
from screens.cli.runner import Signals, _drain, _hand_over, _log_to_stderr, report

if TYPE_CHECKING:
    from console.servers.runner_service import RunnerService

log = logging.getLogger("console.runner")


def server_signals() -> Signals:
    """What a server is told: stop (SIGTERM, SIGINT, counted) and reload (SIGHUP); its
    reports (drain, hand-over, reload) go to the `console.runner` logger on stderr."""
    _log_to_stderr()
    return Signals()


@contextlib.asynccontextmanager
async def server_runner(
    config: Config, store: Path, signals: Signals, name: str, runs_deploys: bool
) -> AsyncIterator[RunnerService | None]:
    """The server's own runner (None when its sessions queue no deploy, or when the runner
    service of `[runner] socket` runs them). Leave the block once the server takes no more
    sessions: the runner drains and hands over (the process may end there, exit code 0)."""
    if not runs_deploys:
        yield None
        return
    if config.runner_socket is not None:
        from console.servers.runner_service import runner_serves

        if not await asyncio.to_thread(runner_serves, store):
            log.warning(
                "%s: no runner serves %s yet: deploys wait queued until the runner service "
                "(%s) starts",
                name,
                store,
                config.runner_socket,
            )
        yield None
        return
    from console.servers.runner_service import runner_service

    async with runner_service(config, store, on_event=report) as service:
        yield service
        left = await _drain(service, signals)
        if left:
            await _hand_over(service, signals, left)  # ends the process
        log.info("%s: runner %s stopped; no deploy left running", name, service.runner.name)


async def on_hangup(signals: Signals, reload: Callable[[], Awaitable[None]]) -> None:
    """Run `reload` at each SIGHUP (until cancelled)."""
    while True:
        await signals.hup.wait()
        signals.hup.clear()
        await reload()
