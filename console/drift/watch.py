"""The runner's drift watch: now and then it reads the fleet, records the findings not seen
before, each a `drift` notification event, and wakes the notifier to tell them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from console.config import Config
from console.drift.review import review, row
from console.errors import ConsoleError
from console.fleet.inventory import Fleet
from console.store import Store

log = logging.getLogger(__name__)

# The watch reads the fleet once every this many refresh periods (the config's
# refresh_seconds: 10 s by default, so once a minute): the dashboard's own refresh aside,
# drift costs one fleet read a minute (its AWS calls: README "Performance").
REFRESHES_PER_LOOK = 6


class DriftWatch:
    """Looks for new findings with a fleet and a store, as `actor` (the runner's account)."""

    def __init__(
        self,
        config: Config,
        fleet: Fleet,
        store: Store,
        actor: str,
        told: Callable[[], None] | None = None,
    ) -> None:
        self.config = config
        self.fleet = fleet
        self.store = store
        self.actor = actor
        self.told = told  # called when new findings are in the outbox (the notifier's wake)
        self.looks = 0

    @property
    def period(self) -> float:
        return self.config.refresh_seconds * REFRESHES_PER_LOOK

    async def look(self) -> list[str]:
        """One look: the ids of the findings recorded as new."""
        # Imported here: console.stacks loads boto3, which a runner's importer (a session
        # console that reads the fleet from the store) must not load.
        from console.drift.stacks import stack_findings

        snapshot = await self.fleet.refresh()
        stacks = await stack_findings(self.config, self.fleet.gateway)
        findings = await review(self.config, snapshot, self.store, stacks)
        fresh = [row(item.finding) for item in findings if item.known is None]
        self.looks += 1
        if not fresh:
            return []
        new = await self.store.drift.record_new(fresh, self.actor)
        if new:
            log.info("drift: %d new finding(s): %s", len(new), ", ".join(new))
            if self.told is not None:
                self.told()
        return new

    async def run_forever(self) -> None:
        """A look every period; the first after one period too (a runner that starts is busy
        reconciling, and one started for a single deploy is often gone by then)."""
        while True:
            await asyncio.sleep(self.period)
            try:
                await self.look()
            except ConsoleError as error:
                log.warning("drift watch: %s", error.message)


@asynccontextmanager
async def drift_watch(
    config: Config,
    fleet: Fleet,
    store: Store,
    actor: str,
    told: Callable[[], None] | None = None,
) -> AsyncIterator[DriftWatch]:
    """The watch running in the background until the block ends."""
    watch = DriftWatch(config, fleet, store, actor, told)
    task = asyncio.create_task(watch.run_forever())
    try:
        yield watch
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
