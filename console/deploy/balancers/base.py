"""The one small interface the engine drives every load balancer through, whatever its kind."""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from console.model import LoadBalancerKind

if TYPE_CHECKING:
    from console.aws.gateway import AwsGateway

# States a deregistered instance passes through before it is gone ("gone": no longer listed).
GONE_STATES = frozenset({"unused", "OutOfService", "gone"})


@dataclass(frozen=True)
class Settings:
    """What AWS says of one load balancer, as the engine needs it."""

    name: str
    key: str  # how AWS names it in calls: a target group's ARN, a classic ELB's name
    time_to_healthy: int  # seconds a healthy new instance takes to count as healthy
    drain_seconds: int  # how long a deregistered instance may drain


class Balancer(ABC):
    """One load balancer the project's instances serve in, read through one gateway: its
    settings (time to healthy, drain delay), and registering, deregistering, health."""

    kind: ClassVar[LoadBalancerKind]
    what: ClassVar[str]  # how a person calls the kind, e.g. "classic ELB"

    def __init__(self, gateway: AwsGateway, settings: Settings) -> None:
        self.gateway = gateway
        self.name = settings.name
        self.key = settings.key
        self.time_to_healthy = settings.time_to_healthy
        self.drain_seconds = settings.drain_seconds
        self.old_members: set[str] = set()  # the instances in it before the deploy

    @classmethod
    async def read(cls, gateway: AwsGateway, names: Sequence[str]) -> list[Balancer]:
        """The named load balancers of this kind, each with its settings, using `gateway`."""
        if not names:
            return []
        return [cls(gateway, settings) for settings in await cls.settings(gateway, names)]

    @classmethod
    @abstractmethod
    async def settings(cls, gateway: AwsGateway, names: Sequence[str]) -> list[Settings]:
        """The named load balancers' settings, read from AWS."""

    @property
    def label(self) -> str:
        return f"{self.what} {self.name}"

    @abstractmethod
    async def register(self, instance_ids: Sequence[str]) -> None:
        """Puts the instances in."""

    @abstractmethod
    async def deregister(self, instance_ids: Sequence[str]) -> None:
        """Takes the instances out (their draining then runs its course)."""

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
