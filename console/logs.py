"""The deploy a log record belongs to: a context variable set around a deploy's work."""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Iterator
from contextlib import contextmanager

DEPLOY_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("deploy_id", default=None)


def current_deploy_id() -> str | None:
    """The id of the deploy whose work is running in this context, if any."""
    return DEPLOY_ID.get()


@contextmanager
def deploy_scope(deploy_id: str) -> Iterator[None]:
    """Every record logged inside (and in tasks created inside) carries `deploy_id`."""
    token = DEPLOY_ID.set(deploy_id)
    try:
        yield
    finally:
        DEPLOY_ID.reset(token)


def deploy_context(deploy_id: str) -> contextvars.Context:
    """A copy of the current context with `deploy_id` set, for asyncio.create_task(context=):
    the task's records carry the id without it leaking into the caller's context."""
    context = contextvars.copy_context()
    context.run(DEPLOY_ID.set, deploy_id)
    return context


class DeployIdFilter(logging.Filter):
    """Stamps `record.deploy_id` from the context unless the caller gave one (extra=)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "deploy_id", None) is None:
            record.deploy_id = DEPLOY_ID.get()
        return True
