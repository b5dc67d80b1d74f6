"""One fleet poller per host: the poller lease's holder polls AWS and writes each snapshot to
the store; every other console, kiosk and SSH or browser session reads it from there.

Twenty viewers then cost AWS what one costs. The lease lives in the store (table
`fleet_poller`): the holder renews it with every poll (and every few seconds while a slow poll
runs); a console that may poll takes it over when it has not been renewed for `stale_after`
seconds, or at once when its holder released it on the way out. A reader that may not poll (a
session under `deploy-console sshd` or `web`) never loads boto3.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import sqlite3
import time
import zlib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from console import model
from console.config import Config
from console.errors import ConsoleError, StoreError
from console.fleet.inventory import FleetSource
from console.fleet.wire import SNAPSHOT_FORMAT, snapshot_data, snapshot_from_data
from console.metrics.current import observe_refresh
from console.model import FleetSnapshot
from console.store import PollerLease, Store

# Set in a console's environment by `deploy-console sshd` and `web`: read the fleet from the
# store, never poll AWS (the server polls, once for all its sessions).
READ_ONLY_FLEET_ENV = "DEPLOY_CONSOLE_FLEET_FROM_STORE"
# A lease not renewed for this many refresh intervals (and at least MIN_STALE_SECONDS) is free.
STALE_INTERVALS = 3
MIN_STALE_SECONDS = 15.0
# While another process polls, a reader looks this often for its next snapshot: one row read
# (the snapshot itself only when new), so a new snapshot reaches every wall within this.
FOLLOW_SECONDS = 0.5


class FleetShareError(ConsoleError):
    """No fresh snapshot in the store: no poller yet, or the poller stopped or failed."""


def poller_name(role: str) -> str:
    """Who holds the lease, as readers are told: e.g. "sshd pid 4242 on web-1"."""
    return f"{role} pid {os.getpid()} on {socket.gethostname()}"


def stale_seconds(config: Config) -> float:
    return max(STALE_INTERVALS * config.refresh_seconds, MIN_STALE_SECONDS)


def next_poll_in(interval: float, elapsed: float) -> float:
    """Polls start on a fixed cadence, every `interval` from the last one's start however long
    it took (one that overran waits for the next tick, no burst): sleeping `interval` after
    each poll made the period interval + poll time, and a change waited up to both."""
    return interval - (elapsed % interval)


# -- the snapshot as stored: compressed JSON (console/fleet/wire.py), read back to equal values


def encode_snapshot(snapshot: FleetSnapshot) -> bytes:
    data = snapshot_data(snapshot)
    return zlib.compress(json.dumps(data, separators=(",", ":")).encode(), 1)


def decode_snapshot(body: bytes) -> FleetSnapshot:
    try:
        data: dict[str, Any] = json.loads(zlib.decompress(body))
    except (zlib.error, ValueError) as problem:
        raise StoreError(f"the stored fleet snapshot is unreadable: {problem}") from None
    if data.get("format") != SNAPSHOT_FORMAT:
        raise StoreError(
            f"the stored fleet snapshot has format {data.get('format')!r}; this console reads "
            f"format {SNAPSHOT_FORMAT} (a different deploy-console version polls this store)"
        )
    return snapshot_from_data(data)


# -- the shared fleet ---------------------------------------------------------------------


def _utc_now() -> datetime:
    return datetime.now(UTC)


class SharedFleet:
    """A FleetSource over the store: polls AWS (through `poller()`, made on first need) only
    while it holds the lease, else reads the holder's latest snapshot.

    Without `poller` it only reads (a session of `deploy-console sshd` or `web`). With
    `create_store=False` a missing store file is not created: a console that may poll then
    polls on its own, a reader says no poller has written yet.
    """

    def __init__(
        self,
        config: Config,
        store: Path,
        *,
        name: str,
        poller: Callable[[], FleetSource] | None = None,
        create_store: bool = True,
        stale_after: float | None = None,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.config = config
        self.store_path = store
        self.name = name
        self._make_poller = poller
        self._poller: FleetSource | None = None
        self._create_store = create_store
        self.stale_after = stale_seconds(config) if stale_after is None else stale_after
        self._clock = clock
        self._store: Store | None = None
        self._generation: int | None = None
        self.last_snapshot: FleetSnapshot | None = None
        self.polls = 0
        """Polls of AWS made by this process (tests and benchmarks count them)."""
        self.reads = 0
        """Snapshots read from the store (decoded: a new generation)."""
        self._in_flight: asyncio.Task[FleetSnapshot] | None = None
        self._polling: asyncio.Task[None] | None = None
        self._held = False
        """True while this process holds the lease (as of its last look)."""
        self._details: FleetSource | None = None
        """A reader's own AWS access, made when a project's page asks for details."""

    async def refresh(self) -> FleetSnapshot:
        """The freshest snapshot; concurrent callers share one."""
        if self._in_flight is None or self._in_flight.done():
            self._in_flight = asyncio.ensure_future(self._refresh())
        return await asyncio.shield(self._in_flight)

    async def _refresh(self) -> FleetSnapshot:
        store = await self._open()
        if store is None:
            if self._make_poller is None:
                raise FleetShareError(
                    f"no fleet snapshot yet: {self.store_path} does not exist (a console or "
                    "`deploy-console sshd` on this host polls AWS and writes it)"
                )
            return await self._source().refresh()  # no store to share through
        if self._make_poller is not None and await self.hold(store):
            return await self._poll(store)
        return await self._read(store)

    async def hold(self, store: Store | None = None) -> bool:
        """Take or renew the lease if this fleet may poll; True when it holds it."""
        store = store or await self._open()
        if store is None or self._make_poller is None:
            return False
        lease = await store.take_poller_lease(self.name, stale_after=self.stale_after)
        self._held = lease.holder == self.name
        return self._held

    async def poll_if_holder(self) -> bool:
        """For servers: poll and write a snapshot when this fleet holds (or takes) the lease;
        False when another process polls."""
        store = await self._open()
        if store is None or not await self.hold(store):
            return False
        with contextlib.suppress(ConsoleError):  # recorded for readers by _poll
            await self._poll(store)
        return True

    def start_polling(self) -> None:
        """For servers: keep_polling in the background until aclose()."""
        if self._polling is None:
            self._polling = asyncio.create_task(self.keep_polling())

    async def keep_polling(self) -> None:
        """For servers: poll every refresh interval (start to start) while holding the lease,
        and take it whenever it frees; runs until cancelled."""
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            # A store busy or unreadable, AWS failing: readers are told; try again next round.
            with contextlib.suppress(ConsoleError, sqlite3.Error):
                await self.poll_if_holder()
            await asyncio.sleep(next_poll_in(self.config.refresh_seconds, loop.time() - started))

    def follow_seconds(self) -> float | None:
        """How soon to look for the next snapshot while another process polls; None while
        this one polls AWS itself (or has no store to share through): then every interval."""
        if self._held or self._store is None:
            return None
        return FOLLOW_SECONDS

    async def _poll(self, store: Store) -> FleetSnapshot:
        polled = asyncio.Event()
        renewing = asyncio.create_task(self._renew(store, polled))
        started = time.monotonic()
        try:
            snapshot = await self._source().refresh()
        except ConsoleError as error:
            await store.fleet_poll_failed(self.name, error.message)
            raise
        except Exception as error:
            await store.fleet_poll_failed(self.name, f"{type(error).__name__}: {error}")
            raise
        finally:
            observe_refresh(time.monotonic() - started)  # console/metrics, when on
            polled.set()  # the renewer ends its round (never cancelled inside a write)
            await renewing
        self.polls += 1
        body = await asyncio.to_thread(encode_snapshot, snapshot)
        generation = await store.write_fleet_snapshot(self.name, body)
        if generation is not None:
            self._generation = generation
        self.last_snapshot = snapshot
        return snapshot

    async def _renew(self, store: Store, polled: asyncio.Event) -> None:
        """Keep the lease while a slow poll runs."""
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.stale_after / STALE_INTERVALS):
                    await polled.wait()
            if polled.is_set():
                return
            with contextlib.suppress(StoreError):
                await store.take_poller_lease(self.name, stale_after=self.stale_after)

    async def _read(self, store: Store) -> FleetSnapshot:
        lease, body = await store.read_fleet_snapshot(self._generation)
        if lease is None or lease.generation == 0:
            who = f" ({lease.holder} is polling)" if lease is not None and lease.holder else ""
            raise FleetShareError(f"waiting for the first fleet snapshot{who}")
        if body is not None:
            self.last_snapshot = await asyncio.to_thread(decode_snapshot, body)
            self._generation = lease.generation
            self.reads += 1
        assert self.last_snapshot is not None
        return self._checked(lease, self.last_snapshot)

    def _checked(self, lease: PollerLease, snapshot: FleetSnapshot) -> FleetSnapshot:
        if not lease.fresh(self._clock(), self.stale_after):
            since = lease.written_at or lease.renewed_at
            raise FleetShareError(
                f"the fleet poller ({lease.holder or 'none'}) stopped: no snapshot since "
                f"{since:%H:%M:%S} UTC"
            )
        if lease.error:
            raise FleetShareError(f"the fleet poller ({lease.holder}): {lease.error}")
        return snapshot

    def _source(self) -> FleetSource:
        if self._poller is None:
            assert self._make_poller is not None
            self._poller = self._make_poller()
        return self._poller

    async def load_balancer_settings(
        self, project: str, cluster: str
    ) -> tuple[model.LoadBalancerSettings, ...]:
        """Read from AWS by this process: a reader loads boto3 for it (a project's page)."""
        if self._make_poller is not None:
            return await self._source().load_balancer_settings(project, cluster)
        if self._details is None:
            from console.fleet.inventory import Fleet

            self._details = Fleet(self.config)
        return await self._details.load_balancer_settings(project, cluster)

    async def _open(self) -> Store | None:
        if self._store is None:
            if not self._create_store and not self.store_path.is_file():
                return None
            self._store = await Store.open(self.store_path, create=self._create_store)
        return self._store

    async def aclose(self) -> None:
        """Release the lease (another console takes it at its next refresh) and close."""
        if self._polling is not None:
            self._polling.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._polling
            self._polling = None
        if self._in_flight is not None and not self._in_flight.done():
            self._in_flight.cancel()
            with contextlib.suppress(BaseException):
                await self._in_flight
        if self._store is not None:
            if self._held:
                with contextlib.suppress(StoreError):
                    await self._store.release_poller_lease(self.name)
            await self._store.close()
            self._store = None
        for source in (self._poller, self._details):
            close = getattr(source, "close", None)
            if close is not None:
                close()
        self._poller = self._details = None


def shared_fleet(
    config: Config, store: Path, role: str, *, create_store: bool = True
) -> SharedFleet:
    """The fleet a console, kiosk or server uses: it polls AWS (in a worker process, see
    console/fleet/process.py) while it holds the lease, else reads the store. Under
    READ_ONLY_FLEET_ENV (a session of `sshd` or `web`) it only reads."""
    if os.environ.get(READ_ONLY_FLEET_ENV) == "1":
        return SharedFleet(config, store, name=poller_name(role), create_store=create_store)

    def worker() -> FleetSource:
        from console.fleet.process import ProcessFleet

        return ProcessFleet(config)

    return SharedFleet(
        config, store, name=poller_name(role), poller=worker, create_store=create_store
    )
