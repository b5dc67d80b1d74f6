"""The deploy metrics, from the events a runner tells (console/events.py): no engine hooks."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from console.events import DeployFinished, DeployStarted, StepFinished

if TYPE_CHECKING:
    from console.metrics.registry import Metrics

log = logging.getLogger(__name__)
UNKNOWN = "unknown"


class Queued(Protocol):
    """What the metrics read of a deploy's record: its cluster and when it was queued."""

    @property
    def cluster(self) -> str: ...

    @property
    def created_at(self) -> datetime: ...


RecordOf = Callable[[str], Awaitable[Queued | None]]


class DeployMetrics:
    """An `on_event` for a runner: counts deploys by cluster and outcome, observes deploy and
    step durations, and the queue wait (queued to started, read from the deploy's record)."""

    def __init__(self, metrics: Metrics, record_of: RecordOf | None = None) -> None:
        self.metrics = metrics
        self._record_of = record_of
        self._clusters: dict[str, str] = {}
        self._lookups: set[asyncio.Task[None]] = set()

    def __call__(self, deploy_id: str, event: object) -> None:
        if isinstance(event, DeployStarted):
            self._clusters[deploy_id] = event.cluster
            self._look_up(deploy_id, lambda record: self._waited(record, event.at))
        elif isinstance(event, StepFinished):
            step = self.metrics.step_seconds.labels(step=event.step.value, state=event.state.value)
            step.observe(event.seconds)
        elif isinstance(event, DeployFinished):
            cluster = self._clusters.pop(deploy_id, None)
            if cluster is not None:
                self._finished(cluster, event)
            else:  # ended before it started (a pre-deploy hook failed): its record says where
                self._look_up(
                    deploy_id,
                    lambda record: self._finished(record.cluster if record else UNKNOWN, event),
                )

    def _finished(self, cluster: str, event: DeployFinished) -> None:
        outcome = event.state.value
        self.metrics.deploys.labels(cluster=cluster, outcome=outcome).inc()
        self.metrics.deploy_seconds.labels(cluster=cluster, outcome=outcome).observe(event.seconds)

    def _waited(self, record: Queued | None, started: datetime) -> None:
        if record is not None:
            seconds = max(0.0, (started - record.created_at).total_seconds())
            self.metrics.queue_wait.labels(cluster=record.cluster).observe(seconds)

    def _look_up(self, deploy_id: str, then: Callable[[Queued | None], None]) -> None:
        if self._record_of is None:
            then(None)
            return
        record_of = self._record_of

        async def look_up() -> None:
            record = None
            try:
                record = await record_of(deploy_id)
            except Exception as error:  # a busy store must never break a deploy's events
                log.warning("metrics: reading deploy %s: %s", deploy_id, error)
            then(record)

        task = asyncio.get_running_loop().create_task(look_up())
        self._lookups.add(task)
        task.add_done_callback(self._lookups.discard)

    async def aclose(self) -> None:
        """Let the look-ups in flight end (each logs its own failure; a cancelled one is
        over)."""
        for ended in await asyncio.gather(*self._lookups, return_exceptions=True):
            if isinstance(ended, Exception):  # counting it failed: said, not hidden
                log.warning("metrics: counting a deploy: %s", ended)
