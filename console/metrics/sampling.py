"""Gauges read now and then from the store (queue depth, the audit anchor's age)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

log = logging.getLogger(__name__)

SAMPLE_SECONDS = 5.0  # the queue depth and the anchor's age are read this often

Sample = Callable[[], Awaitable[None]]


async def sample_forever(samples: list[Sample], every: float = SAMPLE_SECONDS) -> None:
    """Run each sample now and every `every` seconds until cancelled; one that fails (a busy
    store) is logged and tried again next round."""
    while True:
        for sample in samples:
            try:
                await sample()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("metrics: %s", error)
        await asyncio.sleep(every)


@contextlib.asynccontextmanager
async def sampling(
    samples: list[Sample], every: float = SAMPLE_SECONDS
) -> AsyncIterator[asyncio.Task[None]]:
    """sample_forever in the background while the block runs."""
    task = asyncio.create_task(sample_forever(samples, every))
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
