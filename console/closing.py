"""What is undone on the way out of a block, whatever happened: Closing (`async with thing as
thing:` closes it) and setting (a context variable set for the block)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from types import TracebackType
from typing import Self, TypeVar

T = TypeVar("T")


class Closing(ABC):
    """A base for what holds connections: `close()` is the one method to write."""

    @abstractmethod
    async def close(self) -> None: ...

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()


@contextmanager
def setting(variable: ContextVar[T], value: T) -> Iterator[None]:
    """`variable` holds `value` inside the block (in this task and the tasks it starts)."""
    token = variable.set(value)
    try:
        yield
    finally:
        variable.reset(token)
