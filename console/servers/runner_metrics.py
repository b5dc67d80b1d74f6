"""A serving runner's metrics (when the process installed some): its deploys' events, the
queue's depth and the audit anchor's age, sampled from the store."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from console.audit.anchor import s3_anchors
from console.config import Config
from console.deploy.services import DeployServices
from console.metrics.current import installed
from console.metrics.deploys import DeployMetrics
from console.metrics.sampling import Sample, sampling
from console.queue.release_queue import DeployQueue

OnEvent = Callable[[str, object], None]
QUEUE_STATES = ("queued", "running")


@asynccontextmanager
async def runner_metrics(
    config: Config, services: DeployServices, queue: DeployQueue, on_event: OnEvent | None
) -> AsyncIterator[OnEvent | None]:
    """The runner's `on_event`: `on_event` and, when metrics are installed, the deploy metrics
    too; the gauges are sampled while the block runs."""
    metrics = installed()
    if metrics is None:
        yield on_event
        return
    deploys = DeployMetrics(metrics, services.store.deploy)

    def both(deploy_id: str, event: object) -> None:
        deploys(deploy_id, event)
        if on_event is not None:
            on_event(deploy_id, event)

    async def queue_depth() -> None:
        states = Counter(entry.record.state for entry in await queue.entries())
        for state in QUEUE_STATES:
            metrics.queue_depth.labels(state=state).set(states.get(state, 0))

    samples: list[Sample] = [queue_depth]
    anchors = s3_anchors(config.audit, services.fleet.gateway)
    if anchors is not None:
        location = anchors.location

        async def anchor_age() -> None:
            record = await services.store.anchor_record(location)
            if record is not None:
                age = (datetime.now(UTC) - record.anchored_at).total_seconds()
                metrics.anchor_age.labels(location=location).set(max(0.0, age))

        samples.append(anchor_age)
    async with sampling(samples):
        try:
            yield both
        finally:
            await deploys.aclose()  # its look-ups log their own failures: it never raises
