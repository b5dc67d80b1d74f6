"""The runner's fleet snapshot for plain `status`: refreshed every refresh_seconds while
people ask for it, so that their command answers from memory instead of polling AWS."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from console.config import Config
from console.fleet.inventory import Fleet
from console.fleet.share import next_poll_in
from console.fleet.wire import snapshot_data
from console.model import FleetSnapshot

log = logging.getLogger(__name__)

# With nobody asking for this long, the runner stops polling (AWS calls cost); the next ask
# waits for one refresh again.
IDLE_STOP_SECONDS = 900.0


class SnapshotKeeper:
    """Polls the fleet in the background from the first ask on (see the module docstring)."""

    def __init__(self, config: Config, runner: str = "", idle_stop: float = IDLE_STOP_SECONDS):
        self.config = config
        self.runner = runner
        self.idle_stop = idle_stop
        self._fleet: Fleet | None = None
        self._task: asyncio.Task[None] | None = None
        self._latest: FleetSnapshot | None = None
        self._fresh = asyncio.Event()
        self._asked_at = 0.0

    async def latest(self) -> FleetSnapshot:
        """The last snapshot; the first ask (or the first after an idle stop) waits for one."""
        self._asked_at = time.monotonic()
        if self._task is None or self._task.done():
            self._latest = None
            self._fresh.clear()
            self._task = asyncio.create_task(self._keep())
        if self._latest is None:
            waiter = asyncio.create_task(self._fresh.wait())
            await asyncio.wait({waiter, self._task}, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            if self._latest is None:
                self._task.result()  # the keeper failed: its error goes to the asker
            self._asked_at = time.monotonic()  # idle from when the asker got its answer
        assert self._latest is not None
        return self._latest

    async def answer(self) -> dict[str, Any]:
        """The door's answer: the snapshot as data, and which runner holds it."""
        return {**snapshot_data(await self.latest()), "runner": self.runner}

    async def _keep(self) -> None:
        if self._fleet is None:
            self._fleet = Fleet(self.config)
        interval = self.config.refresh_seconds
        while True:
            started = time.monotonic()
            try:
                self._latest = await self._fleet.refresh()
                self._fresh.set()
            except Exception:
                # A refresh keeps per-cluster errors in the snapshot; this is anything else.
                log.exception("fleet refresh for status failed")
                if self._latest is None:
                    raise
            if time.monotonic() - self._asked_at >= self.idle_stop:
                return  # nobody asks any more: the next ask starts again
            await asyncio.sleep(next_poll_in(interval, time.monotonic() - started))

    @property
    def polling(self) -> bool:
        return self._task is not None and not self._task.done()

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._fleet is not None:
            self._fleet.close()
