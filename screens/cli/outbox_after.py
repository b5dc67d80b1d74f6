"""After a CLI deploy ends with no runner serving its store: deliver the notifications it wrote
now (a few seconds at most), and leave what is left (a retry) to a detached runner."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from console.deploy.services import DeployServices

log = logging.getLogger(__name__)

DELIVER_SECONDS = 5.0  # the longest a finished deploy's command waits for its notifications


async def deliver_after_deploy(services: DeployServices) -> None:
    """Never raises: the deploy has ended; its notifications never change its outcome."""
    try:
        await _deliver(services)
    except Exception as error:  # a busy store, a runner that cannot start: said, not fatal
        log.warning("notify: left in the outbox for the next runner: %s", error)


async def _deliver(services: DeployServices) -> None:
    from console.notify.delivery import Notifier
    from console.servers.runner_service import DetachedRunners, runner_serves
    from console.store.outbox import Outbox
    from screens.cli.console import runner_argv

    config, store = services.config, services.store
    outbox = getattr(store, "outbox", None)
    if not config.notify.routes or not isinstance(outbox, Outbox):
        return
    if not await outbox.busy() or await asyncio.to_thread(runner_serves, store.path):
        return  # nothing to send, or the runner serving the store sends it
    notifier = Notifier(outbox, config.notify, holder=f"deploy-{os.getpid()}")
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(DELIVER_SECONDS):
            await notifier.drain()
    if await outbox.busy():  # a retry or a slow channel: a runner takes it from here
        await DetachedRunners(store.path, runner_argv(config, store.path)).ensure()
