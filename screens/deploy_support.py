"""What the console needs to deploy: a small protocol, and its adapter over the deploy engine."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Protocol

from console.events import DeployEvent
from console.model import DeployPlan, DeployRequest, FleetSnapshot, Release

if TYPE_CHECKING:
    from console.aws import AwsGateway
    from console.engine import DeployEngine


class DeploySupport(Protocol):
    """Deploys as the console sees them; `build_app(..., deploys=None)` runs without any."""

    @property
    def actor(self) -> str:
        """Who deploys from this console (the OS login, or the SSH key's user)."""
        ...

    async def releases(self, project: str, cluster: str) -> list[Release]:
        """The project's releases, newest first."""
        ...

    async def plan(self, request: DeployRequest) -> DeployPlan:
        """What the deploy would do, read from AWS; changes nothing."""
        ...

    def run(self, request: DeployRequest) -> AsyncIterator[DeployEvent]:
        """The deploy's events to its end; raises a ConsoleError (LockBusy) before any if busy."""
        ...

    def cancel(self, deploy_id: str, actor: str) -> bool:
        """Ask a running deploy to stop and roll back; False if it is not running here."""
        ...


class EngineDeploys:
    """DeploySupport over console.engine.DeployEngine (see console.deploys.deploy_services)."""

    def __init__(
        self,
        engine: DeployEngine,
        gateway: Callable[[str], AwsGateway],
        actor: str,
        snapshot: Callable[[], FleetSnapshot | None] = lambda: None,
    ) -> None:
        self.engine = engine
        self._gateway = gateway
        self._actor = actor
        self._snapshot = snapshot

    @property
    def actor(self) -> str:
        return self._actor

    async def releases(self, project: str, cluster: str) -> list[Release]:
        from console.releases import list_releases

        gateway = await asyncio.to_thread(self._gateway, cluster)
        return await list_releases(self.engine.config, gateway, project, self._snapshot())

    async def plan(self, request: DeployRequest) -> DeployPlan:
        return await self.engine.plan(request)

    def run(self, request: DeployRequest) -> AsyncIterator[DeployEvent]:
        return self.engine.run(request)

    def cancel(self, deploy_id: str, actor: str) -> bool:
        return self.engine.cancel(deploy_id, actor)
