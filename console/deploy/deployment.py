"""One running deploy: its events, its cancel switch, its waits, and what it changed so far."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import secrets as random_tokens
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

from console import events
from console.aws.waits import Wait
from console.errors import ConsoleError
from console.model import DeployRequest
from console.safe_text import SecretMasker

log = logging.getLogger(__name__)

T = TypeVar("T")


class DeployCancelled(ConsoleError):
    """Someone cancelled the deploy."""


def new_deploy_id(now: datetime) -> str:
    return f"d-{now:%Y%m%d-%H%M%S}-{random_tokens.token_hex(3)}"


def now() -> datetime:
    return datetime.now(UTC)


def message(error: BaseException) -> str:
    """What went wrong, in one line."""
    if isinstance(error, ConsoleError):
        return error.message
    if isinstance(error, TimeoutError):
        return "timed out"
    return f"{type(error).__name__}: {error}".splitlines()[0]


class Deployment:
    """One running deploy: its events, its cancel switch, and what it changed so far."""

    def __init__(
        self, deploy_id: str, request: DeployRequest, clock: Callable[[], datetime] = now
    ) -> None:
        self.deploy_id = deploy_id
        self.request = request
        self.clock = clock
        self.events: asyncio.Queue[events.DeployEvent] = asyncio.Queue()
        self.cancelled = asyncio.Event()
        self.cancel_reason = ""
        self.new_ids: list[str] = []
        self.reused: list[str] = []  # kept old instances a rollback started as its new ones
        self.registered: set[tuple[str, str]] = set()  # (balancer key, instance id)
        # A group-backed pair's deploy: the Auto Scaling group it made (console/deploy/groups).
        self.group_name: str | None = None
        self.log: list[tuple[datetime, str, str, str]] = []  # output not yet stored
        self.unrecorded: list[str] = []  # writes the store refused, said in the deploy's end
        # Every text of this deploy passes it before it is shown or stored: the secrets it
        # read from SSM, in every form, never leave the engine.
        self.masker = SecretMasker()
        # A decision on its bake asked in this process ("end:ACTOR" or "rollback:ACTOR");
        # one asked from another console comes through the store (console/deploy/bake.py).
        self.bake_request: str | None = None
        self.bake_decided = asyncio.Event()
        self.started = time.perf_counter()
        self.waiting = 0.0
        self._io_depth = 0
        self._io_since = 0.0

    def cancel(self, reason: str = "cancelled") -> None:
        self.cancel_reason = reason
        self.cancelled.set()

    def decide_bake(self, request: str) -> None:
        """End the bake early ("end:ACTOR") or roll back now ("rollback:ACTOR")."""
        self.bake_request = self.bake_request or request
        self.bake_decided.set()

    @contextlib.asynccontextmanager
    async def io(self) -> AsyncIterator[None]:
        """Marks time spent waiting on AWS, SSH or a timer (overlapping waits count once)."""
        if self._io_depth == 0:
            self._io_since = time.perf_counter()
        self._io_depth += 1
        try:
            yield
        finally:
            self._io_depth -= 1
            if self._io_depth == 0:
                self.waiting += time.perf_counter() - self._io_since

    # -- what it says ----------------------------------------------------------------------

    def emit(self, event: events.DeployEvent) -> None:
        """Shows the event (masked); output lines are kept to be stored."""
        event = _masked(event, self.masker)
        _log_event(event)
        if isinstance(event, events.OutputLine):
            self.log.append((self.clock(), event.source, event.stream, event.text))
        self.events.put_nowait(event)

    def note(self, text: str) -> None:
        """A line of the console's own output."""
        self.emit(events.OutputLine(self.deploy_id, "console", text))

    # -- how it waits ----------------------------------------------------------------------

    def waiting_for(self, timeout: float, what: str) -> Wait:
        """A wait that ends by `timeout` (its AWS calls too) and says what it waits for."""
        return Wait(timeout, self.note, what)

    async def cancellable(self, work: Awaitable[T]) -> T:
        """Runs `work` unless the deploy is cancelled first (then it is stopped)."""
        task = asyncio.ensure_future(work)
        waiter = asyncio.ensure_future(self.cancelled.wait())
        try:
            await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
            raise DeployCancelled(self.cancel_reason or "cancelled")
        return task.result()

    async def pause(self, seconds: float) -> None:
        """Sleeps `seconds`, or less if the deploy is cancelled (then raises DeployCancelled)."""
        async with self.io():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.cancelled.wait(), seconds)
        if self.cancelled.is_set():
            raise DeployCancelled(self.cancel_reason or "cancelled")


class Cadence:
    """Ticks every `period` seconds from its start, however long each round took.

    A loop that sleeps `period` after its work polls every period + work, and the work grows
    when many deploys share the loop and the endpoint: the polls drift. Here a round that
    overran its tick waits for the next one (no burst to catch up)."""

    def __init__(self, period: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.period = period
        self._clock = clock
        self._next = clock() + period

    def delay(self) -> float:
        """Seconds until the next tick (which it then consumes)."""
        now = self._clock()
        if now >= self._next:
            missed = int((now - self._next) // self.period) + 1
            self._next += missed * self.period
        delay = self._next - now
        self._next += self.period
        return delay


def _masked(event: events.DeployEvent, masker: SecretMasker) -> events.DeployEvent:
    """The event with its free text (output, step detail, reason) masked."""
    if not masker:
        return event
    if isinstance(event, events.OutputLine):
        return dataclasses.replace(event, text=masker.mask(event.text))
    if isinstance(event, events.StepStarted | events.StepFinished):
        return dataclasses.replace(event, detail=masker.mask(event.detail))
    if isinstance(event, events.DeployFinished | events.DeployWaiting):
        return dataclasses.replace(event, reason=masker.mask(event.reason))
    return event


def _log_event(event: events.DeployEvent) -> None:
    """The deploy's own lines in the log (already masked): its start, steps and end at info,
    remote output at debug."""
    extra: dict[str, object] = {"deploy_id": event.deploy_id}
    if isinstance(event, events.DeployStarted):
        log.info(
            "deploy started: %s -> %s %s by %s",
            event.project, event.cluster, event.release, event.actor,
            extra={**extra, "project": event.project, "cluster": event.cluster},
        )  # fmt: skip
    elif isinstance(event, events.StepStarted):
        log.debug("step %s started%s", str(event.step), _detail(event.detail), extra=extra)
    elif isinstance(event, events.StepFinished):
        log.info(
            "step %s %s in %.1fs%s",
            str(event.step), str(event.state), event.seconds, _detail(event.detail),
            extra={**extra, "step": str(event.step)},
        )  # fmt: skip
    elif isinstance(event, events.OutputLine):
        log.debug("%s: %s", event.source, event.text, extra={**extra, "stream": event.stream})
    elif isinstance(event, events.DeployFinished):
        # At info whatever its outcome: a failed deploy is the command's answer, not a fault.
        log.info(
            "deploy %s: %s", str(event.state), event.reason,
            extra={**extra, "seconds": round(event.seconds, 1)},
        )  # fmt: skip


def _detail(text: str) -> str:
    return f": {text}" if text else ""
