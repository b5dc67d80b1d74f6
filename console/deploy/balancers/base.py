"""The one small interface the engine drives every load balancer through, whatever its kind."""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, ClassVar

from console.model import LoadBalancerKind

if TYPE_CHECKING:
    from console.aws.gateway import AwsGateway

# States a deregistered instance passes through before it is gone ("gone": no longer listed).
GONE_STATES = frozenset({"unused", "OutOfService", "gone"})


class Balancer(ABC):
    """One load balancer the project's instances serve in, read through one gateway: its
    settings (time to healthy, drain delay), and registering, deregistering, health."""

    kind: ClassVar[LoadBalancerKind]
    what: ClassVar[str]  # how a person calls the kind, e.g. "classic ELB"
    register_call: ClassVar[str]  # the AWS calls that put instances in and take them out
    deregister_call: ClassVar[str]

    def __init__(
        self,
        gateway: AwsGateway,
        name: str,
        key: str,
        time_to_healthy: int,
        drain_seconds: int,
    ) -> None:
        self.gateway = gateway
        self.name = name
        self.key = key  # how AWS names it in calls: a target group's ARN, a classic ELB's name
        self.time_to_healthy = time_to_healthy
        self.drain_seconds = drain_seconds
        self.old_members: set[str] = set()  # the instances in it before the deploy

    @property
    def label(self) -> str:
        return f"{self.what} {self.name}"

    async def register(self, instance_ids: Sequence[str]) -> None:
        """Puts the instances in."""
        await self._send(self.register_call, instance_ids)

    async def deregister(self, instance_ids: Sequence[str]) -> None:
        """Takes the instances out (their draining then runs its course)."""
        await self._send(self.deregister_call, instance_ids)

    @abstractmethod
    async def _send(self, call: str, instance_ids: Sequence[str]) -> None:
        """Makes the kind's register or deregister call for the instances."""

    @abstractmethod
    async def health(self) -> dict[str, str]:
        """Instance id -> state, for the instances registered in it."""


async def health_of(balancers: Iterable[Balancer]) -> dict[str, dict[str, str]]:
    """Per balancer key: instance id -> state (only registered instances are listed)."""

    async def read(balancer: Balancer) -> tuple[str, dict[str, str]]:
        return balancer.key, await balancer.health()

    return dict(await asyncio.gather(*(read(b) for b in balancers)))


def time_to_healthy(interval: int | None, threshold: int | None) -> int:
    """AWS's arithmetic: healthy threshold x interval + one interval (defaults if unset)."""
    interval = interval or 30
    threshold = threshold or 5
    return threshold * interval + interval
