"""The bake: once the new instances serve, watch CloudWatch alarms and the load balancers."""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from console.aws.waits import deadline
from console.config.bake import BakeSettings, format_span
from console.deploy.balancers import Balancer, ClassicElb, health_of
from console.deploy.deployment import Cadence, Deployment, message
from console.errors import ConsoleError
from console.model import SERVING_STATES
from console.store import Store

if TYPE_CHECKING:
    from console.aws.gateway import AwsGateway

ASK_SECONDS = 10.0  # each look's AWS calls end by then: a silent API never stalls the bake
NOTE_EVERY = 60.0  # a line in the deploy's output while all is quiet
END, ROLLBACK = "end", "rollback"


@dataclass(frozen=True)
class BakeOutcome:
    """How a bake ended: `rollback` says why it rolls back (None: it passed, or was ended
    early by `ended_by`)."""

    rollback: str | None = None
    ended_by: str | None = None
    cancelled: bool = False

    @property
    def summary(self) -> str:
        if self.rollback is not None:
            return self.rollback
        if self.ended_by is not None:
            return f"ended early by {self.ended_by}"
        return "passed: nothing crossed a limit"


def five_xx_metric(balancer: Balancer) -> tuple[str, str, dict[str, str]]:
    """The 5xx metric AWS publishes for the load balancer: namespace, name, the dimension that
    names it (a target group's ARN suffix, a classic ELB's name)."""
    if isinstance(balancer, ClassicElb):
        return "AWS/ELB", "HTTPCode_Backend_5XX", {"LoadBalancerName": balancer.name}
    suffix = balancer.key.split(":")[-1]  # targetgroup/NAME/ID
    return "AWS/ApplicationELB", "HTTPCode_Target_5XX_Count", {"TargetGroup": suffix}


class BakeWatch:
    """One bake's looks: alarms, new instances' health, 5xx since the bake began."""

    def __init__(
        self,
        deployment: Deployment,
        gateway: AwsGateway,
        balancers: Sequence[Balancer],
        settings: BakeSettings,
    ) -> None:
        self.deployment = deployment
        self.gateway = gateway
        self.balancers = list(balancers)
        self.settings = settings
        self.since = datetime.now(UTC)  # CloudWatch's clock is the real one
        self.silent: set[str] = set()

    async def look(self) -> str | None:
        """Why the deploy must roll back now, or None when nothing crossed a limit."""
        for read in (self._alarms, self._unhealthy, self._five_xx):
            try:
                with deadline(time.monotonic() + ASK_SECONDS):
                    async with self.deployment.io():
                        trouble = await read()
            except ConsoleError as error:
                self._silent(read.__name__, message(error))
                continue
            if trouble:
                return trouble
        return None

    def _silent(self, what: str, why: str) -> None:
        if what not in self.silent:  # said once: a bake is long and AWS may be slow a while
            self.silent.add(what)
            self.deployment.note(f"bake: could not read {what.strip('_')} ({why}); still watching")

    async def alarms(self, state: str | None = None) -> list[dict[str, Any]]:
        """The alarms the bake watches (matching a name or pattern), in `state` if given."""
        if not self.settings.alarms:
            return []
        found: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"MaxRecords": 100}
            if state:
                kwargs["StateValue"] = state
            if token:
                kwargs["NextToken"] = token
            page = await self.gateway.call("cloudwatch", "describe_alarms", **kwargs)
            for alarm in [*page.get("MetricAlarms", []), *page.get("CompositeAlarms", [])]:
                name = str(alarm.get("AlarmName", ""))
                if any(fnmatch.fnmatchcase(name, p) for p in self.settings.alarms):
                    found.append(alarm)
            token = page.get("NextToken")
            if not token:
                return found

    async def _alarms(self) -> str | None:
        firing = sorted(str(a["AlarmName"]) for a in await self.alarms("ALARM"))
        if firing:
            return f"alarm {', '.join(firing)} in ALARM during the bake"
        return None

    async def _unhealthy(self) -> str | None:
        if not self.balancers:
            return None
        health = await health_of(self.balancers)
        for balancer in self.balancers:
            states = health[balancer.key]
            bad = [
                f"{i} {states.get(i, 'not registered')}"
                for i in self.deployment.new_ids
                if states.get(i) not in SERVING_STATES
            ]
            if len(bad) > self.settings.max_unhealthy:
                return (
                    f"{len(bad)} new instance(s) not healthy in {balancer.label} during the "
                    f"bake (limit {self.settings.max_unhealthy}): {'; '.join(bad)}"
                )
        return None

    async def _five_xx(self) -> str | None:
        total = 0
        where: list[str] = []
        for balancer in self.balancers:
            count = await self._five_xx_of(balancer)
            if count:
                total += count
                where.append(f"{count} in {balancer.label}")
        if total > self.settings.max_5xx:
            return (
                f"{total} 5xx answers during the bake (limit {self.settings.max_5xx}): "
                f"{', '.join(where)}"
            )
        return None

    async def _five_xx_of(self, balancer: Balancer) -> int:
        namespace, name, dimensions = five_xx_metric(balancer)
        listed = await self.gateway.call(
            "cloudwatch",
            "list_metrics",
            Namespace=namespace,
            MetricName=name,
            Dimensions=[{"Name": k, "Value": v} for k, v in dimensions.items()],
        )
        total = 0.0
        end = datetime.now(UTC) + timedelta(minutes=1)
        for metric in listed.get("Metrics", []):
            stats = await self.gateway.call(
                "cloudwatch",
                "get_metric_statistics",
                Namespace=namespace,
                MetricName=name,
                Dimensions=metric.get("Dimensions", []),
                StartTime=self.since,
                EndTime=end,
                Period=60,
                Statistics=["Sum"],
            )
            total += sum(float(point.get("Sum", 0)) for point in stats.get("Datapoints", []))
        return int(total)


async def watch(
    store: Store,
    deployment: Deployment,
    watcher: BakeWatch,
    poll_seconds: float,
) -> BakeOutcome:
    """Watches for the bake's length; ends early on trouble, a decision or a cancel."""
    settings = watcher.settings
    ends = time.monotonic() + settings.seconds
    cadence = Cadence(poll_seconds)
    quiet_since = time.monotonic()
    with contextlib.suppress(ConsoleError), deadline(time.monotonic() + ASK_SECONDS):
        watched = sorted(str(a["AlarmName"]) for a in await watcher.alarms())
        missing = [
            p for p in settings.alarms if not any(fnmatch.fnmatchcase(w, p) for w in watched)
        ]
        if watched:
            deployment.note(f"bake: watching alarms {', '.join(watched)}")
        if missing:
            deployment.note(f"bake: no alarm matches {', '.join(missing)}")
    while True:
        decided = await _decision(store, deployment)
        if decided is not None:
            return decided
        if deployment.cancelled.is_set():
            why = deployment.cancel_reason or "cancelled"
            return BakeOutcome(rollback=f"{why} during the bake", cancelled=True)
        trouble = await watcher.look()
        if trouble:
            return BakeOutcome(rollback=trouble)
        left = ends - time.monotonic()
        if left <= 0:
            return BakeOutcome()
        if time.monotonic() - quiet_since >= NOTE_EVERY:
            quiet_since = time.monotonic()
            deployment.note(f"bake: {format_span(left)} left, nothing crossed a limit")
        await _pause(deployment, min(cadence.delay(), left))


async def _decision(store: Store, deployment: Deployment) -> BakeOutcome | None:
    """A decision asked here or (through the store) from another console."""
    asked = deployment.bake_request
    if asked is None:
        with contextlib.suppress(ConsoleError):
            asked = await store.bake_requested(deployment.deploy_id)
    if not asked:
        return None
    decision, _, actor = asked.partition(":")
    if decision == ROLLBACK:
        return BakeOutcome(rollback=f"roll back asked by {actor} during the bake")
    return BakeOutcome(ended_by=actor)


async def _pause(deployment: Deployment, seconds: float) -> None:
    """Sleeps, or less when the deploy is cancelled or a decision is asked here."""
    waits = [
        asyncio.ensure_future(deployment.cancelled.wait()),
        asyncio.ensure_future(deployment.bake_decided.wait()),
    ]
    try:
        async with deployment.io():
            await asyncio.wait(waits, timeout=max(0.0, seconds))
    finally:
        for waiter in waits:
            waiter.cancel()
