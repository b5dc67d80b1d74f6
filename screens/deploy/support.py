"""What the console needs to deploy: a small protocol, and its adapter over the deploy engine."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, Protocol

from console.events import DeployEvent
from console.model import DeployPlan, DeployRequest, FleetSnapshot, Release

if TYPE_CHECKING:
    from console.aws.gateway import AwsGateway
    from console.deploy.engine import DeployEngine
    from console.queue.runner import Runner
    from console.store import DeployRecord


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

    async def recent_deploys(self, project: str) -> list[DeployRecord]:
        """The project's deploys of the last days, any cluster (console.deploy.risks reads
        them for the release warnings)."""
        ...

    def run(self, request: DeployRequest) -> AsyncIterator[DeployEvent]:
        """Queue the deploy and follow its events to its end (DeployWaiting while it waits);
        a ConsoleError before any if it is refused."""
        ...

    def cancel(self, deploy_id: str, actor: str) -> bool:
        """Cancel a deploy: queued, it never starts; running, it rolls back."""
        ...

    async def decide_bake(self, deploy_id: str, decision: str) -> None:
        """End a baking deploy's bake early ("end") or roll it back now ("rollback"), as this
        console's actor, wherever it runs; a ConsoleError (one line) if refused."""
        ...


class EngineDeploys:
    """DeploySupport over console.deploy.engine.DeployEngine (see
    console.deploy.services.deploy_services)."""

    def __init__(
        self,
        engine: DeployEngine,
        gateway: Callable[[str], AwsGateway],
        actor: str,
        snapshot: Callable[[], FleetSnapshot | None] = lambda: None,
        runner: Runner | None = None,
    ) -> None:
        self.engine = engine
        self.runner = runner
        self._cancels: set[asyncio.Future[Any]] = set()
        self._gateway = gateway
        self._actor = actor
        self._snapshot = snapshot

    @property
    def actor(self) -> str:
        return self._actor

    async def releases(self, project: str, cluster: str) -> list[Release]:
        from console.deploy.releases import list_releases

        gateway = await asyncio.to_thread(self._gateway, cluster)
        return await list_releases(self.engine.config, gateway, project, self._snapshot())

    async def plan(self, request: DeployRequest) -> DeployPlan:
        return await self.engine.plan(request)

    async def recent_deploys(self, project: str) -> list[DeployRecord]:
        from console.deploy.risks import RECENT_LIMIT, recent_since

        since = recent_since(self.engine.now())
        return await self.engine.store.deploys(project=project, since=since, limit=RECENT_LIMIT)

    def run(self, request: DeployRequest) -> AsyncIterator[DeployEvent]:
        if self.runner is None:  # no queue: straight to the engine (LockBusy if the pair is busy)
            return self.engine.run(request)
        return self._queued(self.runner, request)

    async def _queued(self, runner: Runner, request: DeployRequest) -> AsyncIterator[DeployEvent]:
        record = await runner.enqueue(request)
        # The runner process that runs it may be another: its output comes through the store.
        async for event in runner.follow(record.id, output=True):
            yield event

    async def decide_bake(self, deploy_id: str, decision: str) -> None:
        await self.engine.decide_bake(deploy_id, self._actor, decision)

    def cancel(self, deploy_id: str, actor: str) -> bool:
        if self.engine.cancel(deploy_id, actor):
            return True
        if self.runner is None:
            return False
        # Queued, or running in another console: through the store.
        future = asyncio.ensure_future(self.runner.cancel(deploy_id, actor))
        self._cancels.add(future)
        future.add_done_callback(self._cancels.discard)
        return True
