"""The runner's delivery loop: route new outbox events to their channels, claim due deliveries,
send each in its own task, record the outcome; a failure is retried with exponential backoff.
At least once: a delivery is marked delivered only after its channel took it, and a claim
left by a runner that died runs out, so the next runner sends it again (same idempotency key)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from console.config import Config
from console.config.notify import NotifySettings
from console.errors import ConsoleError
from console.notify import channels
from console.store.outbox import Delivery, Outbox, OutboxEvent

log = logging.getLogger(__name__)

POLL_SECONDS = 0.25
CONCURRENCY = 8
LEASE_MARGIN = 10.0  # a claim outlives the longest attempt by this much


class Notifier:
    """Delivers the store's outbox on the configured channels until cancelled."""

    def __init__(
        self,
        outbox: Outbox,
        settings: NotifySettings,
        *,
        holder: str,
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        self.outbox = outbox
        self.settings = settings
        self.holder = holder
        self.poll_seconds = poll_seconds
        self._wake = asyncio.Event()
        self._sending: set[asyncio.Task[None]] = set()
        longest = max((c.timeout for c in settings.channels.values()), default=0.0)
        self.lease_seconds = longest + LEASE_MARGIN

    def wake(self) -> None:
        """Look at the outbox now (a deploy just ended here)."""
        self._wake.set()

    async def run_forever(self) -> None:
        try:
            while True:
                try:
                    await self.once()
                except ConsoleError as error:  # the store was busy: the next look tries again
                    log.warning("notify: %s", error.message)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.poll_seconds):
                        await self._wake.wait()
                self._wake.clear()
        finally:
            for task in self._sending:
                task.cancel()
            if self._sending:
                await asyncio.gather(*self._sending, return_exceptions=True)

    async def once(self) -> int:
        """Route what is new and start sending what is due; how many sends started."""
        if not await self.outbox.work_waiting():
            return 0
        await self.outbox.route(self._route)
        room = CONCURRENCY - len(self._sending)
        if room <= 0:
            return 0
        due = await self.outbox.claim_due(self.holder, self.lease_seconds, limit=room)
        for delivery in due:
            task = asyncio.create_task(self._deliver(delivery))
            self._sending.add(task)
            task.add_done_callback(self._sent)
        return len(due)

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._sending.discard(task)
        self._wake.set()  # room for the next due delivery

    async def settle(self) -> None:
        """Wait for the sends under way (tests, `notify` commands)."""
        while self._sending:
            await asyncio.gather(*list(self._sending), return_exceptions=True)

    async def drain(self) -> None:
        """Send what is due now until nothing due is left (a command delivering the events it
        wrote before it exits; what fails waits for its retry in the outbox)."""
        try:
            while await self.once():
                await self.settle()
        finally:
            for task in self._sending:
                task.cancel()
            await self.settle()

    def _route(self, event: OutboxEvent) -> list[str]:
        return self.settings.channels_for(event.event, event.cluster)

    async def _deliver(self, delivery: Delivery) -> None:
        channel = self.settings.channels.get(delivery.channel)
        try:
            if channel is None:
                await self.outbox.attempt_failed(
                    delivery.id, f"channel {delivery.channel} is no longer in the config", None
                )
                return
            try:
                await channels.send(channel, delivery.event)
            except channels.NotifyError as error:
                retry = self.settings.retry_after(delivery.attempts + 1)
                log.warning(
                    "notify %s to %s failed (attempt %d): %s",
                    delivery.event.event,
                    delivery.channel,
                    delivery.attempts + 1,
                    error.message,
                )
                await self.outbox.attempt_failed(delivery.id, error.message, retry)
                return
            await self.outbox.delivered(delivery.id)
        except ConsoleError as error:  # not recorded: the claim runs out and it is sent again
            log.warning("notify: delivery %d not recorded: %s", delivery.id, error.message)


def notifier_for(store: Any, config: Config, holder: str) -> Notifier | None:
    """The notifier of a runner serving `store` (None for a store without an outbox)."""
    outbox = getattr(store, "outbox", None)
    if not isinstance(outbox, Outbox):
        return None
    return Notifier(outbox, config.notify, holder=holder)
