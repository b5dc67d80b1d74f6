"""Waiting in tests for a condition with a deadline, never a fixed sleep: the one poll-until."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


def wait_until(
    condition: Callable[[], T], what: str, timeout: float = 20.0, every: float = 0.05
) -> T:
    """Polls `condition` until it returns something true, and returns that; fails with what was
    awaited after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(every)


async def await_until(
    condition: Callable[[], Any] | Callable[[], Awaitable[Any]],
    what: str,
    timeout: float = 20.0,
    every: float = 0.01,
) -> Any:
    """`wait_until` inside an event loop: `condition` may be a plain or an async callable."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(every)
