"""The runner as a service: the process that executes deploys (a `deploy-console runner`, or the
one runner of an `sshd` or `web` server), and how a console finds one or starts one.

A deploy belongs to a runner, never to the session or terminal that queued it. Every serving
runner holds a shared flock on a file beside the store (`<store>.runners`); the kernel drops it
when the process ends, however it ends, so "is a runner serving this store?" has no stale
answer. A console that queues a deploy and finds no runner starts `deploy-console runner
--exit-when-idle` detached (its own session: closing the console's terminal never reaches it).

(service) A runner stopped as a service does not roll back what it runs: `drain` stops taking
deploys and lets those in flight reach their end within the config's stop grace, then
`hand_over_and_exit` records each one left and ends the process without touching them; the
next runner reconciles them by the usual rules. `reload` takes a new config (SIGHUP) where
that is safe while deploys run.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fcntl
import logging
import os
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from console.config import ClusterConfig, Config
from console.deploy.services import deploy_services
from console.drift.watch import drift_watch
from console.errors import ConsoleError
from console.identity import current_actor
from console.notify.delivery import LEASE_MARGIN
from console.queue.release_queue import DeployQueue
from console.queue.runner import Runner
from console.servers.runner_metrics import runner_metrics
from console.store.backup import scheduled_backups

log = logging.getLogger(__name__)

# A runner started for a console's deploy stays this long after the last one (the test suite
# shortens it through the environment: tests/conftest.py).
IDLE_SECONDS = float(os.environ.get("DEPLOY_CONSOLE_IDLE_SECONDS") or 10.0)
HOLD_SECONDS = 5.0  # a checker holds the file exclusively for microseconds; never this long
STARTUP_SECONDS = 30.0  # a runner just started gets this long to take its place
LOG_BYTES, LOG_BACKUPS = 1_000_000, 5  # a detached runner's log, rotated when one starts


class RunnerServiceError(ConsoleError):
    """The runner could not take its place beside the store, or could not be started."""


def presence_path(store: Path) -> Path:
    return store.with_name(f"{store.name}.runners")


def log_path(store: Path) -> Path:
    """Where a detached runner logs (beside the store it serves, 0600; rotated at start)."""
    return store.with_name(f"{store.name}.runner.log")


class Presence:
    """A serving runner's shared flock on the store's presence file, held until release()."""

    def __init__(self, store: Path) -> None:
        self.path = presence_path(store)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def hold(self) -> None:
        if self._fd is not None:
            return
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as error:
            raise RunnerServiceError(f"cannot open {self.path}: {error.strerror}") from None
        deadline = time.monotonic() + HOLD_SECONDS
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(fd)
                    raise RunnerServiceError(
                        f"{self.path} stayed locked by another process"
                    ) from None
                time.sleep(0.01)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the lock
            self._fd = None


def runner_serves(store: Path) -> bool:
    """Whether a live runner process serves `store` (holds its presence lock)."""
    try:
        fd = os.open(presence_path(store), os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # drops our lock, if we took it
    return False


def rotate_log(log_file: Path, max_bytes: int = LOG_BYTES, backups: int = LOG_BACKUPS) -> None:
    """Shift `log_file` to `.1` (and `.1` to `.2`...) once it holds `max_bytes` or more."""
    try:
        if log_file.stat().st_size < max_bytes:
            return
        for n in range(backups - 1, 0, -1):
            older = log_file.with_name(f"{log_file.name}.{n}")
            if older.exists():
                older.replace(log_file.with_name(f"{log_file.name}.{n + 1}"))
        log_file.replace(log_file.with_name(f"{log_file.name}.1"))
    except OSError:
        return  # no log yet, or one we may not move: appended to as before


def start_detached(argv: Sequence[str], log_file: Path) -> subprocess.Popen[bytes]:
    """Start `argv` in a session of its own, its output appended to `log_file` (0600): the
    hangup of the caller's terminal, or the caller's death, never reaches it. A log past
    LOG_BYTES moves to `.1` first (`.1` to `.2`..., LOG_BACKUPS kept)."""
    rotate_log(log_file)
    try:
        fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    except OSError as error:
        raise RunnerServiceError(f"cannot open {log_file}: {error.strerror}") from None
    try:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=fd,
            stderr=fd,
            start_new_session=True,
            close_fds=True,
        )
    except OSError as error:
        raise RunnerServiceError(f"cannot start the runner: {error.strerror}") from None
    finally:
        os.close(fd)


class DetachedRunners:
    """For a console that does not run deploys itself: before it relies on a runner, ensure()
    starts one (`argv`) when none serves the store."""

    def __init__(self, store: Path, argv: Sequence[str]) -> None:
        self.store = store
        self.argv = list(argv)
        self.started: list[subprocess.Popen[bytes]] = []
        self._started_at = 0.0

    async def ensure(self) -> bool:
        """True when it started a runner; False when one serves the store already, or the one
        it started is still coming up."""
        self.started = [process for process in self.started if process.poll() is None]
        if await asyncio.to_thread(runner_serves, self.store):
            return False
        if self.started and time.monotonic() - self._started_at < STARTUP_SECONDS:
            return False
        process = await asyncio.to_thread(start_detached, self.argv, log_path(self.store))
        self._started_at = time.monotonic()
        self.started.append(process)
        log.info("started runner pid %s for %s", process.pid, self.store)
        return True


def _end_children() -> None:
    """Stop the helper processes this one started (a server's fleet poller): os._exit skips
    the exit handlers that would, and an orphan would poll AWS, and hold the server's stderr
    open, long after the server ended."""
    import multiprocessing

    children = multiprocessing.active_children()
    for child in children:
        child.terminate()
    for child in children:
        child.join(2)
        if child.is_alive():
            child.kill()


@dataclass
class RunnerService:
    """A runner running in the background, holding the store's presence."""

    runner: Runner
    task: asyncio.Task[None]
    presence: Presence
    config: Config

    async def drain(self) -> list[str]:
        """Take no new deploys; let those in flight end within the config's stop grace. The
        ids still running after it (to hand over)."""
        return await self.runner.drain(self.config.runner_stop_grace)

    async def hand_over_and_exit(self, why: str) -> NoReturn:
        """Record the deploys still running here as handed over, then end the process at
        once, exit code 0: nothing rolls back (the engine's tasks never run their cleanup),
        the presence and the pairs' locks go with the process, and the next runner
        reconciles what is left once their heartbeat is stale, as after a crash."""
        try:
            await self.runner.hand_over(why)
        finally:
            logging.shutdown()  # flushes every handler: the last lines reach the journal
            _end_children()
            os._exit(0)

    async def reload(self, new: Config) -> str:
        """Take `new` where that is safe while deploys run: who may do what, the queue's
        rules, deploy windows, approvals, tickets and build checks, protected clusters,
        notifications, hooks, the stop grace. What deploys act on (clusters' accounts,
        regions, roles and SSH, their bake, the projects, the engine, the store, the socket)
        is refused as a whole: RunnerServiceError names it; the old config stays. Returns
        what changed, in a few words."""
        fixed = _fixed_parts(self.config, new)
        if fixed:
            raise RunnerServiceError(
                f"{new.source}: {', '.join(fixed)} changed: a runner takes that only when it "
                "starts (restart it: deploys in flight get the stop grace); kept the config "
                "it runs on"
            )
        changed = [
            name
            for name in ("access", "queue", "notify", "hooks", "clusters", "runner_stop_grace")
            if getattr(self.config, name) != getattr(new, name)
        ]
        self.config = new
        self.runner.queue.config = new
        self.runner.engine.config = new
        notifier = self.runner.notifier
        if notifier is not None:
            notifier.settings = new.notify
            longest = max((c.timeout for c in new.notify.channels.values()), default=0.0)
            notifier.lease_seconds = longest + LEASE_MARGIN
        if new.digest:  # a `config` audit row when the rules changed, as at a start
            await self.runner.queue.store.record_config(
                str(current_actor()), new.digest, new.rules, str(new.source)
            )
        self.runner.wake()  # a window or an approval may let a deploy start now
        return ", ".join(changed) or "nothing"

    async def until_idle(self, idle_seconds: float = IDLE_SECONDS) -> None:
        """Return once nothing was queued, running or left to reconcile on the store, and
        nothing ran here, for `idle_seconds`. The presence is released before the last look:
        a console that queues meanwhile is either seen by that look or finds no runner and
        starts one."""
        idle_since: float | None = None
        while True:
            if await self._idle():
                now = time.monotonic()
                if idle_since is None:
                    idle_since = now
                elif now - idle_since >= idle_seconds:
                    # Claim nothing more, then look once more without the presence held.
                    await self.runner.pause()
                    self.presence.release()
                    if await self._idle():
                        return
                    await asyncio.to_thread(self.presence.hold)
                    self.runner.executes = True
                    self.runner.wake()
                    idle_since = None
            else:
                idle_since = None
            await asyncio.sleep(self.runner.poll_seconds)

    async def _idle(self) -> bool:
        if self.runner.running_here:
            return False
        notifier = self.runner.notifier
        with contextlib.suppress(ConsoleError):  # notifications still to deliver keep it up
            if notifier is not None and await notifier.outbox.busy():
                return False
        with contextlib.suppress(ConsoleError):
            return not await self.runner.queue.entries()
        return False  # the store is busy: look again


@asynccontextmanager
async def runner_service(
    config: Config, store: Path, *, on_event: Callable[[str, object], None] | None = None
) -> AsyncIterator[RunnerService]:
    """The engine on `store`, its runner claiming, running and reconciling deploys in the
    background, the store's presence held; on exit the deploys running here roll back (unless
    handed over first: RunnerService.hand_over_and_exit)."""
    backup = config.backup  # (backup) the store copied on a schedule while the runner serves
    async with contextlib.AsyncExitStack() as stack:
        services = await stack.enter_async_context(deploy_services(config, store))
        await stack.enter_async_context(
            scheduled_backups(store, backup.dir, backup.every_seconds, backup.keep)
        )
        queue = DeployQueue(services.store, config)
        # With metrics on (console/metrics), the deploy events feed them too.
        told = await stack.enter_async_context(runner_metrics(config, services, queue, on_event))
        runner = Runner(services.engine, queue, on_event=told)
        # (drift) New findings recorded now and then, each a notification event.
        wake = runner.notifier.wake if runner.notifier is not None else None
        who = str(current_actor())
        await stack.enter_async_context(
            drift_watch(config, services.fleet, services.store, who, wake)
        )
        presence = Presence(store)
        await asyncio.to_thread(presence.hold)
        task = asyncio.create_task(runner.run_forever())
        try:
            yield RunnerService(runner, task, presence, config)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            presence.release()


# A cluster's rules, which a reload takes; the rest of a cluster (its account, region, roles,
# SSH, bake) is what deploys act on, and waits for a restart, as do the parts in _FIXED.
_RELOADED_CLUSTER_FIELDS = (
    "protected", "colour", "windows", "ticket", "require_build", "approvals", "approval_expires",
)  # fmt: skip
_FIXED = ("projects", "tags", "world", "engine", "store", "runner_socket", "audit")


def _fixed_parts(old: Config, new: Config) -> list[str]:
    """The parts of `new` that differ from `old` and that a running runner cannot take."""
    differ = [name for name in _FIXED if getattr(old, name) != getattr(new, name)]
    if [_aws_part(c) for c in old.clusters] != [_aws_part(c) for c in new.clusters]:
        differ.insert(0, "clusters (names, accounts, regions, roles, ssh, bake)")
    return differ


def _aws_part(cluster: ClusterConfig) -> ClusterConfig:
    defaults = ClusterConfig(cluster.name, cluster.region)
    return dataclasses.replace(
        cluster, **{name: getattr(defaults, name) for name in _RELOADED_CLUSTER_FIELDS}
    )
