"""Helpers for the UI tests: clocks, bounded waits, and stand-in fleets that need no AWS."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from textual.content import Content
from textual.pilot import Pilot
from textual.widgets import Static

from console import model
from console.config import ClusterConfig, Config, ProjectClusterConfig, ProjectConfig
from console.fleet.inventory import Fleet
from screens.app import DeployConsoleApp, build_app
from screens.help import HelpScreen
from screens.widgets.confirm import ConfirmDialog

# A fixed "now", after the demo world's fixed launch times.
FROZEN_NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
SIZE = (120, 40)


def frozen_clock() -> datetime:
    return FROZEN_NOW


class SteppingClock:
    """A clock that moves only when a test says so."""

    def __init__(self, now: datetime = FROZEN_NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@asynccontextmanager
async def running_console(
    config: Config,
    fleet: Fleet | StubFleet | None = None,
    clock: Callable[[], datetime] = frozen_clock,
) -> AsyncIterator[tuple[DeployConsoleApp, Pilot[None]]]:
    """The console app on `config` (no deploys, no timer), after its first refresh has reached
    the screen; without `fleet` it reads the world through a Fleet of its own."""
    own_fleet = fleet is None
    fleet = fleet if fleet is not None else Fleet(config, clock=clock)
    app = build_app(config, fleet, clock=clock, auto_refresh=False)  # type: ignore[arg-type]
    try:
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: app.refresh_count >= 1, "the first refresh")
            await pilot.pause()
            yield app, pilot
    finally:
        if own_fleet:
            fleet.close()


async def wait_for(
    pilot: Pilot[object], condition: Callable[[], object], what: str, timeout: float = 15.0
) -> None:
    """Let the app run until `condition()` holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await pilot.pause(0.02)


async def confirm(pilot: Pilot[None], answer: str = "y") -> str:
    """Answer the confirmation dialog (y or n) once it is up; what it asked, as plain text."""
    app = pilot.app
    await wait_for(
        pilot,
        lambda: isinstance(app.screen, ConfirmDialog) and app.screen.query("#question"),
        "the confirmation",
    )
    question = str(app.screen.query_one("#question", Static).visual)
    await pilot.press(answer)
    await wait_for(pilot, lambda: not isinstance(app.screen, ConfirmDialog), "it to close")
    return question


async def open_help(pilot: Pilot[None]) -> HelpScreen:
    """Press ? and wait for the help screen; it stays open."""
    app = pilot.app
    await pilot.press("question_mark")
    await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), "the help")
    assert isinstance(app.screen, HelpScreen)
    return app.screen


def text_of(static: Static) -> str:
    """What a Static shows, as plain text."""
    visual = static.visual
    return visual.plain if isinstance(visual, Content) else str(visual)


def read_demo_snapshot(world_config: Config) -> model.FleetSnapshot:
    """One real read of the demo world (at FROZEN_NOW), for stand-in fleets to replay."""
    fleet = Fleet(world_config, clock=frozen_clock)
    try:
        return asyncio.run(fleet.refresh())
    finally:
        fleet.close()


class StubFleet:
    """Hands out prepared snapshots (or raises), and records how refreshes overlapped."""

    def __init__(
        self,
        config: Config,
        snapshots: list[model.FleetSnapshot | Exception],
        settings: dict[tuple[str, str], tuple[model.LoadBalancerSettings, ...] | Exception]
        | None = None,
        delay: float = 0.0,
    ) -> None:
        self.config = config
        self._snapshots = list(snapshots)
        self._settings = settings or {}
        self.delay = delay
        self.refreshes = 0
        self.running = 0
        self.most_at_once = 0
        self.closed = False

    async def refresh(self) -> model.FleetSnapshot:
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            item = self._snapshots[min(self.refreshes, len(self._snapshots) - 1)]
            self.refreshes += 1
            if isinstance(item, Exception):
                raise item
            return item
        finally:
            self.running -= 1

    async def load_balancer_settings(
        self, project: str, cluster: str
    ) -> tuple[model.LoadBalancerSettings, ...]:
        item = self._settings.get((project, cluster), ())
        if isinstance(item, Exception):
            raise item
        return item

    def close(self) -> None:
        self.closed = True


def unreachable(config: Config, cluster: str) -> Config:
    """The config with `cluster` pointed at a port nothing listens on."""
    clusters = tuple(
        replace(status, endpoint_url="http://127.0.0.1:9") if status.name == cluster else status
        for status in config.clusters
    )
    return replace(config, clusters=clusters)


def stub_app(
    config: Config,
    snapshot: model.FleetSnapshot | None = None,
    clock: Callable[[], datetime] = frozen_clock,
    **options: Any,
) -> DeployConsoleApp:
    """The console on a StubFleet that hands out `snapshot` (else every project healthy on
    1.0.0), with no refresh timer; `options` go to build_app (deploys, history)."""
    fleet = StubFleet(config, [snapshot or synthetic_snapshot(config, FROZEN_NOW, "1.0.0")])
    return build_app(config, fleet, clock=clock, auto_refresh=False, **options)  # type: ignore[arg-type]


def large_config(projects: int = 200) -> Config:
    """A config of `projects` projects in 4 clusters (every project in every cluster)."""
    clusters = tuple(
        ClusterConfig(name, "us-east-1", protected=name.startswith("prod"))
        for name in ("staging", "qaprod1", "prod1", "prod2")
    )
    group = ProjectClusterConfig(target_groups=("tg",))
    return Config(
        source=Path("large.toml"),
        clusters=clusters,
        projects=tuple(
            ProjectConfig(
                name=f"project-{index:03d}",
                repository="https://example.invalid/repo",
                clusters={cluster.name: group for cluster in clusters},
            )
            for index in range(projects)
        ),
    )


def synthetic_snapshot(config: Config, now: datetime, version: str) -> model.FleetSnapshot:
    """Every project healthy with two instances running `version`."""
    envs: dict[tuple[str, str], model.EnvStatus] = {}
    for project in config.projects:
        for cluster_name in project.clusters:
            instances = tuple(
                model.Instance(
                    id=f"i-{project.name}-{cluster_name}-{n}",
                    state="running",
                    image_id="ami-0123456789abcdef0",
                    version=version,
                    launched_at=now,
                    private_address="10.0.0.1",
                    targets=(
                        model.TargetState("tg", model.LoadBalancerKind.TARGET_GROUP, "healthy"),
                    ),
                    managed_by="deploy-console",  # (drift) as the demo's seed tags them
                )
                for n in range(2)
            )
            envs[(project.name, cluster_name)] = model.EnvStatus(
                project.name,
                cluster_name,
                model.Health.HEALTHY,
                instances=instances,
                load_balancers=("tg",),
                fetched_at=now,
            )
    return model.FleetSnapshot(
        generated_at=now,
        clusters=tuple(
            model.ClusterStatus(c.name, c.protected, fetched_at=now) for c in config.clusters
        ),
        projects=config.project_names,
        envs=envs,
    )


def with_cluster_down(
    snapshot: model.FleetSnapshot, cluster: str, error: str, now: datetime
) -> model.FleetSnapshot:
    """What the core returns when `cluster` fails after a good read: last data, unknown health."""
    clusters = tuple(
        replace(status, error=error) if status.name == cluster else replace(status, fetched_at=now)
        for status in snapshot.clusters
    )
    envs = {
        key: replace(env, health=model.Health.UNKNOWN, error=error)
        if key[1] == cluster
        else replace(env, fetched_at=now)
        for key, env in snapshot.envs.items()
    }
    return replace(snapshot, generated_at=now, clusters=clusters, envs=envs)
