"""Deadline-bound waits: the time left bounds every AWS call, and a word every few seconds."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import time
from collections.abc import AsyncIterator, Callable

from console.closing import setting

# A person watching a wait hears what it waits for at least this often.
PROGRESS_SECONDS = 5.0

_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "aws_call_deadline", default=None
)


def call_deadline() -> float | None:
    """The time (time.monotonic) by which an AWS call made now must end, if a wait set one."""
    return _deadline.get()


def deadline(at: float) -> contextlib.AbstractContextManager[None]:
    """AWS calls made inside (by this task and the tasks it starts) end by `at`."""
    return setting(_deadline, at)


class Wait:
    """One wait with a deadline: the time left for each call, and progress every few seconds.

    Inside `async with wait:` every AWS call ends by the deadline (console.aws.gateway reads it),
    and `report` hears every `every` seconds what is awaited, e.g. "waiting for i-1 healthy in
    target group web: initial, 12 s of up to 45 s", also while a call hangs.
    """

    def __init__(
        self,
        timeout: float,
        report: Callable[[str], None],
        waiting_for: str,
        *,
        every: float = PROGRESS_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.timeout = timeout
        self.waiting_for = waiting_for
        self._report = report
        self._every = every
        self._clock = clock
        self.started = clock()
        self.deadline = self.started + timeout
        self._asking_since: float | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._scope: contextlib.ExitStack | None = None

    def left(self) -> float:
        return max(0.0, self.deadline - self._clock())

    @property
    def expired(self) -> bool:
        return self._clock() >= self.deadline

    def progress(self) -> str:
        now = self._clock()
        text = (
            f"waiting for {self.waiting_for}, {now - self.started:.0f} s of up to "
            f"{self.timeout:.0f} s"
        )
        if self._asking_since is not None and now - self._asking_since >= self._every:
            text += f" (AWS has not answered for {now - self._asking_since:.0f} s)"
        return text

    @contextlib.asynccontextmanager
    async def asking(self) -> AsyncIterator[None]:
        """Marks a call in flight, so that progress says how long AWS has been silent."""
        self._asking_since = self._clock()
        try:
            yield
        finally:
            self._asking_since = None

    async def sleep(self, seconds: float) -> None:
        """Sleeps, but never past the deadline."""
        await asyncio.sleep(min(seconds, self.left()))

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self._every)
            self._report(self.progress())

    async def __aenter__(self) -> Wait:
        self.started = self._clock()
        self.deadline = self.started + self.timeout
        self._scope = contextlib.ExitStack()
        self._scope.enter_context(deadline(self.deadline))
        self._ticker = asyncio.create_task(self._tick())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._ticker is not None:
            # Not awaited: a cancel of the waiting task itself must not be swallowed here.
            self._ticker.cancel()
        if self._scope is not None:
            self._scope.close()
