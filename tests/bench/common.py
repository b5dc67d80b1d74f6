"""What the store benchmarks share: an empty store with today's schema, and the median time of
repeated calls."""

from __future__ import annotations

import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from console.store import Store


async def create(path: Path) -> None:
    """An empty store at `path` (the benchmark then fills its tables with sqlite3)."""
    async with await Store.open(path):
        pass


async def timed(call: Callable[[], Awaitable[Any]], repeat: int) -> tuple[float, Any]:
    """Median milliseconds of `repeat` calls, and the last result."""
    times = []
    result: Any = None
    for _ in range(repeat):
        started = time.perf_counter()
        result = await call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), result


async def median_ms(call: Callable[[], Awaitable[Any]], repeat: int) -> float:
    """Median milliseconds of `repeat` calls."""
    ms, _ = await timed(call, repeat)
    return ms
