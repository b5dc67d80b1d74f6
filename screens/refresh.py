"""Reading one at a time, then a pause: the loop (ReadLoop), and the fleet refresh the
console and the kiosk share on it."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from textual import work
from textual.app import App
from textual.message_pump import MessagePump
from textual.timer import Timer

from console.config import Config
from console.fleet.inventory import FleetSource
from console.fleet.share import next_poll_in
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


@runtime_checkable
class FollowsStore(Protocol):
    """A fleet that may only read another process's snapshots (console/fleet/share.py)."""

    def follow_seconds(self) -> float | None:
        """How soon to look again while another process polls (None: this one polls)."""
        ...


class FleetRefreshApp(App[None]):
    """An app that shows the fleet: it reads the fleet now, then every refresh_seconds from
    the start of the last read, one read at a time (a slow AWS never stacks reads up); asking
    while a read runs joins it. While another process polls (a SharedFleet that reads the
    store), it looks for that poller's new snapshot every `follow_seconds()` instead, quietly:
    the screen changes only when a new snapshot or a new error arrives."""

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
        self._reads = ReadLoop(self, self._timed_read, self.REFRESH_TIMER)
        self._started = 0.0
        self._quiet = False
        """The read running is a look for another poller's snapshot: shown only if new."""
        self._next_quiet = False

    @property
    def refreshing(self) -> bool:
        """A read runs."""
        return self._reads.reading

    def refresh_fleet(self) -> None:
        """Read the fleet now; the timer is re-armed once this read has ended."""
        self._read(quiet=False)

    def _timed_read(self) -> None:
        self._read(quiet=self._next_quiet)

    def _read(self, *, quiet: bool) -> None:
        if not self._reads.begin():
            return
        self._started = time.monotonic()
        self._quiet = quiet
        if not quiet:
            self.refresh_shown()
        self._refresh_worker()

    @work(exclusive=True, group="refresh", exit_on_error=False)
    async def _refresh_worker(self) -> None:
        self.post_message(await read_fleet(self.fleet))

    def on_fleet_refreshed(self, message: FleetRefreshed) -> None:
        if self._quiet and message.snapshot is self.snapshot and self.refresh_error is None:
            self._refresh_done(shown=False)  # no new snapshot yet: nothing to show
            return
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
        if self._quiet and message.error == self.refresh_error:
            self._refresh_done(shown=False)  # told already
            return
        self.refresh_error = message.error
        self.fleet_unreadable(message.error)
        self._refresh_done()

    def _refresh_done(self, *, shown: bool = True) -> None:
        self.refresh_count += 1
        if self.auto_refresh_fleet:
            next_in, self._next_quiet = self.read_pace()
            self._reads.end(next_in)
        else:
            self._reads.end(None)
        if shown:
            self.refresh_shown()

    def read_pace(self) -> tuple[float, bool]:
        """As a read ends: seconds until the next, and whether that one only looks for
        another process's new snapshot (quiet). The kiosk benchmark's baseline overrides it."""
        fleet = self.fleet
        follow = fleet.follow_seconds() if isinstance(fleet, FollowsStore) else None
        if follow is not None:
            return follow, True
        return next_poll_in(self.config.refresh_seconds, time.monotonic() - self._started), False

    # -- what each app does with a read -----------------------------------------------------

    def fleet_read(self, snapshot: FleetSnapshot) -> None:
        """A read succeeded (self.snapshot is it already)."""

    def fleet_unreadable(self, error: str) -> None:
        """A read failed (self.refresh_error says why); the last snapshot stays."""

    def refresh_shown(self) -> None:
        """A read started or ended: show it."""
