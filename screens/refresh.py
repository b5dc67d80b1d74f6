"""Reading one at a time, then a pause: the loop (ReadLoop), and the fleet refresh the
console and the kiosk share on it."""

from __future__ import annotations

import gc
from collections.abc import Callable

from textual import work
from textual.app import App
from textual.message_pump import MessagePump
from textual.timer import Timer

from console.config import Config
from console.fleet.inventory import FleetSource
from console.model import FleetSnapshot
from screens.messages import FleetRefreshed, FleetRefreshFailed, read_fleet


class ReadLoop:
    """One read at a time; the timer for the next is armed only once the last has ended, so
    a slow source never stacks reads up. `begin` before each read, `end` after it."""

    def __init__(self, owner: MessagePump, again: Callable[[], object], name: str) -> None:
        self._owner = owner
        self._again = again
        self._name = name
        self._timer: Timer | None = None
        self.reading = False

    def begin(self) -> bool:
        """Start a read now, dropping the one armed; False (nothing changes) while one runs."""
        if self.reading:
            return False
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        self.reading = True
        return True

    def end(self, next_in: float | None) -> None:
        """The read ended: arm the next `next_in` seconds from now (None: none)."""
        self.reading = False
        if next_in is not None and self._timer is None:
            self._timer = self._owner.set_timer(next_in, self._again, name=self._name)


class FleetRefreshApp(App[None]):
    """An app that shows the fleet: it reads the fleet now, then every refresh_seconds after
    each read ended (a slow AWS never stacks reads up); asking while a read runs joins it."""

    REFRESH_TIMER = "fleet-refresh"

    def __init__(self, config: Config, fleet: FleetSource, *, auto_refresh: bool) -> None:
        super().__init__()
        self.config = config
        self.fleet = fleet
        self.auto_refresh_fleet = auto_refresh
        self.snapshot: FleetSnapshot | None = None
        """The last snapshot a read delivered."""
        self.refresh_error: str | None = None
        """Why the last read failed (None: it did not)."""
        self.refresh_count = 0
        """Reads ended (good or failed): tests wait on it."""
        self._reads = ReadLoop(self, self.refresh_fleet, self.REFRESH_TIMER)

    @property
    def refreshing(self) -> bool:
        """A read runs."""
        return self._reads.reading

    def refresh_fleet(self) -> None:
        """Read the fleet now; the timer is re-armed once this read has ended."""
        if not self._reads.begin():
            return
        self.refresh_shown()
        self._refresh_worker()

    @work(exclusive=True, group="refresh", exit_on_error=False)
    async def _refresh_worker(self) -> None:
        self.post_message(await read_fleet(self.fleet))

    def on_fleet_refreshed(self, message: FleetRefreshed) -> None:
        first = self.snapshot is None
        self.snapshot = message.snapshot
        self.refresh_error = None
        self.fleet_read(message.snapshot)
        self._refresh_done()
        if first:
            # Everything alive now lives as long as the app: keep it out of the full
            # collections that otherwise pause the UI (measured up to 336 ms at 200 x 4).
            gc.freeze()

    def on_fleet_refresh_failed(self, message: FleetRefreshFailed) -> None:
        self.refresh_error = message.error
        self.fleet_unreadable(message.error)
        self._refresh_done()

    def _refresh_done(self) -> None:
        self.refresh_count += 1
        self._reads.end(self.config.refresh_seconds if self.auto_refresh_fleet else None)
        self.refresh_shown()

    # -- what each app does with a read -----------------------------------------------------

    def fleet_read(self, snapshot: FleetSnapshot) -> None:
        """A read succeeded (self.snapshot is it already)."""

    def fleet_unreadable(self, error: str) -> None:
        """A read failed (self.refresh_error says why); the last snapshot stays."""

    def refresh_shown(self) -> None:
        """A read started or ended: show it."""
