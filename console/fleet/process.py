"""The fleet refresh in a worker process, so parsing AWS answers never holds the UI's GIL."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import resource_tracker

from console.config import Config
from console.errors import AwsError
from console.fleet.inventory import Fleet
from console.model import FleetSnapshot, LoadBalancerSettings

# The refresh is background work: the worker yields the CPU to the UI's key presses.
WORKER_NICENESS = 10
PARENT_CHECK_SECONDS = 1.0

# The worker process's own fleet and event loop, made once by the pool's initializer.
_worker_fleet: Fleet | None = None
_worker_loop: asyncio.AbstractEventLoop | None = None


def _start_worker(config: Config) -> None:
    global _worker_fleet, _worker_loop
    with contextlib.suppress(OSError, AttributeError):  # AttributeError: no os.nice (Windows)
        os.nice(WORKER_NICENESS)
    threading.Thread(target=_exit_with, args=(os.getppid(),), daemon=True).start()
    # ctrl+c in the terminal of `sshd` or `web` reaches the whole process group: the server
    # stops the worker itself (no KeyboardInterrupt traceback from it on the way out).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _worker_loop = asyncio.new_event_loop()
    _worker_fleet = Fleet(config)


def _exit_with(parent: int) -> None:
    """A console killed outright (SIGKILL) cannot stop its worker: the worker sees its parent
    gone (it is re-parented) and ends within a second instead of idling forever."""
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_SECONDS)
    os._exit(0)


def _worker_refresh() -> FleetSnapshot:
    assert _worker_fleet is not None and _worker_loop is not None
    return _worker_loop.run_until_complete(_worker_fleet.refresh())


def _worker_settings(project: str, cluster: str) -> tuple[LoadBalancerSettings, ...]:
    assert _worker_fleet is not None and _worker_loop is not None
    return _worker_loop.run_until_complete(_worker_fleet.load_balancer_settings(project, cluster))


def _start_resource_tracker() -> None:
    """multiprocessing's resource tracker hands its process `sys.stderr`'s descriptor; under
    Textual that is a capture object without one (fileno() -1) and every spawn fails with
    "bad value(s) in fds_to_keep". Started with the process's own stderr, it is there for good."""
    captured = sys.stderr
    sys.stderr = sys.__stderr__ or captured
    try:
        resource_tracker.ensure_running()
    finally:
        sys.stderr = captured


class ProcessFleet:
    """A Fleet whose boto3 calls, parsing and grouping run in one worker process.

    At 200 projects x 4 clusters a refresh parses megabytes of XML; in the UI's process that
    held the event loop for up to 250 ms at a time. Same methods as Fleet for the UI.
    """

    def __init__(self, config: Config) -> None:
        self.config = config
        _start_resource_tracker()
        # spawn, not fork: the UI process has threads (fork would copy their locks).
        self._pool = ProcessPoolExecutor(
            max_workers=1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
            initargs=(config,),
        )
        self._in_flight: asyncio.Future[FleetSnapshot] | None = None
        self.last_snapshot: FleetSnapshot | None = None

    async def refresh(self) -> FleetSnapshot:
        """A new snapshot; concurrent callers share one refresh."""
        if self._in_flight is None or self._in_flight.done():
            loop = asyncio.get_running_loop()
            self._in_flight = loop.run_in_executor(self._pool, _worker_refresh)
        try:
            snapshot = await asyncio.shield(self._in_flight)
        except BrokenProcessPool:
            raise AwsError("the fleet worker process died; restart the console") from None
        self.last_snapshot = snapshot
        return snapshot

    async def load_balancer_settings(
        self, project: str, cluster: str
    ) -> tuple[LoadBalancerSettings, ...]:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, _worker_settings, project, cluster)
        except BrokenProcessPool:
            raise AwsError("the fleet worker process died; restart the console") from None

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
