"""The instance screen at 80x24 on the demo world: Enter on an instance shows its console output,
tags and load balancer health with AWS's reason; c copies its id; s says why no shell opens."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Log, Static

from console.config import AccessSettings, Config, SshSettings
from console.fleet.instance import BalancerHealth, ConsoleOutput, InstanceDetails, InstanceReader
from console.fleet.inventory import Fleet
from console.model import LoadBalancerKind
from screens.app import DeployConsoleApp, build_app
from screens.messages import ProjectChosen
from screens.project.cluster_panel import InstanceTable
from screens.project.instance import InstanceScreen
from screens.project.screen import ProjectScreen
from tests.screens.ui import frozen_clock, open_help, text_of, wait_for

SMALL = (80, 24)
FAILING = "media-service"  # in prod1, one instance fails its classic ELB's health check
AS_OF = datetime(2026, 11, 26, 11, 58, tzinfo=UTC)

SnapCompare = Callable[..., bool]


@asynccontextmanager
async def console_at_80x24(
    config: Config,
) -> AsyncIterator[tuple[DeployConsoleApp, Pilot[None]]]:
    fleet = Fleet(config, clock=frozen_clock)
    app = build_app(config, fleet, clock=frozen_clock, auto_refresh=False)
    try:
        async with app.run_test(size=SMALL) as pilot:
            await wait_for(pilot, lambda: app.refresh_count >= 1, "the first refresh")
            yield app, pilot
    finally:
        fleet.close()


async def open_project(pilot: Pilot[None], project: str, cluster: str) -> ProjectScreen:
    app = pilot.app
    app.post_message(ProjectChosen(project, cluster))
    await wait_for(pilot, lambda: isinstance(app.screen, ProjectScreen), "the project screen")
    screen = app.screen
    assert isinstance(screen, ProjectScreen)
    table = screen.panel(cluster).query_one(InstanceTable)
    await wait_for(pilot, lambda: table.has_focus and table.row_count > 0, "the instances")
    return screen


async def cursor_to(pilot: Pilot[None], table: InstanceTable, wanted: Callable[[str], bool]) -> str:
    """Move the cursor down to the first instance `wanted` picks; its id."""
    for _ in range(table.row_count):
        row = str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)
        if wanted(row):
            return row
        await pilot.press("down")
    raise AssertionError("no such instance in the table")


def failing_instance(screen: ProjectScreen, cluster: str) -> str:
    env = screen.panel(cluster).env
    assert env is not None
    return next(i.id for i in env.instances if not i.serving)


async def open_instance(
    pilot: Pilot[None], screen: ProjectScreen, cluster: str, key: str = "enter"
) -> InstanceScreen:
    wanted = failing_instance(screen, cluster)
    table = screen.panel(cluster).query_one(InstanceTable)
    await cursor_to(pilot, table, lambda row: row == wanted)
    await pilot.press(key)
    app = pilot.app
    await wait_for(pilot, lambda: isinstance(app.screen, InstanceScreen), "the instance screen")
    instance = app.screen
    assert isinstance(instance, InstanceScreen)
    await wait_for(pilot, lambda: instance.reads >= 1, "the instance's read")
    await pilot.pause()
    return instance


def shown(screen: InstanceScreen, name: str) -> str:
    return text_of(screen.query_one(f"#{name}", Static))


def said(app: DeployConsoleApp) -> list[tuple[str, str]]:
    return [(n.title, n.message) for n in app._notifications]


def fits(app: DeployConsoleApp, widget_id: str) -> bool:
    region = app.screen.query_one(f"#{widget_id}").region
    return region.height > 0 and region.bottom <= SMALL[1] and region.right <= SMALL[0]


async def test_enter_shows_console_output_tags_and_health_with_the_reason(
    world_config: Config,
) -> None:
    async with console_at_80x24(world_config) as (app, pilot):
        project = await open_project(pilot, FAILING, "prod1")
        screen = await open_instance(pilot, project, "prod1")
        title = shown(screen, "instance-title")
        assert title.startswith(f"{screen.instance_id} · {FAILING} in prod1") and "running" in title
        assert "AMI ami-" in shown(screen, "instance-facts")
        health = shown(screen, "instance-health")
        assert (
            f"✖ {FAILING}-prod1 (classic ELB) OutOfService · Instance: Instance has failed at "
            "least the UnhealthyThreshold number of health checks consecutively."
        ) in " ".join(health.split())
        tags = shown(screen, "instance-tags")
        keys = [part.split("=")[0] for part in tags.removeprefix("tags ").split("  ")]
        assert keys == sorted(keys) and {"Environment", "Project", "Version"} <= set(keys)
        assert "Environment=prod1" in tags and f"Project={FAILING}" in tags
        log = screen.query_one(Log)
        assert log.line_count >= 5 and any("Linux version" in line for line in log.lines)
        box = screen.query_one("#console-box")
        assert str(box.border_title).startswith(f"console output · {log.line_count} lines")
        for widget in ("instance-title", "instance-health", "instance-tags", "console-output"):
            assert fits(app, widget), widget
        await pilot.press("r")
        await wait_for(pilot, lambda: screen.reads == 2, "the second read")
        assert screen.query_one(Log).line_count == log.line_count
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is project, "back to the project")


async def test_i_opens_it_too_and_c_copies_the_id_there_and_on_the_row(
    world_config: Config,
) -> None:
    async with console_at_80x24(world_config) as (app, pilot):
        project = await open_project(pilot, FAILING, "prod1")
        wanted = failing_instance(project, "prod1")
        table = project.panel("prod1").query_one(InstanceTable)
        await cursor_to(pilot, table, lambda row: row == wanted)
        await pilot.press("c")
        await wait_for(pilot, lambda: said(app), "the copy's notice")
        assert app.clipboard == wanted
        assert said(app)[-1] == ("Instance id", f"copied {wanted}")
        app.copy_to_clipboard("")
        screen = await open_instance(pilot, project, "prod1", key="i")
        await pilot.press("c")
        await wait_for(pilot, lambda: app.clipboard == wanted, "the id on the clipboard")
        assert screen.instance_id == wanted
        help_screen = await open_help(pilot)
        assert help_screen.title_text == "keys: instance"
        ids = {row[3] for row in help_screen.rows}
        assert {"instance.copy_id", "instance.ssh", "instance.reload", "instance.back"} <= ids


async def test_enter_without_an_instance_in_focus_says_why(world_config: Config) -> None:
    async with console_at_80x24(world_config) as (app, pilot):
        project = await open_project(pilot, FAILING, "prod1")
        project.set_focus(None)
        await pilot.press("enter")
        await wait_for(pilot, lambda: said(app), "the refusal")
        assert said(app)[-1][1].startswith("put the cursor on an instance first")
        assert app.screen is project


async def test_a_part_that_cannot_be_read_says_so_in_one_line(world_config: Config) -> None:
    async def broken(project: str, cluster: str, instance_id: str) -> InstanceDetails:
        raise OSError("no route to the AWS endpoint")

    async with console_at_80x24(world_config) as (app, pilot):
        project = await open_project(pilot, FAILING, "prod1")
        project.read_instance = broken
        screen = await open_instance(pilot, project, "prod1")
        assert shown(screen, "instance-error") == "✖ OSError: no route to the AWS endpoint"
        assert fits(app, "instance-error")


# -- ssh: who may, where, and never with the deploy's key -------------------------------------


DEPLOY_KEY = Path("/etc/deploy-console/deploy_ed25519")


def with_ssh(config: Config, roles: dict[str, str] | None = None) -> Config:
    """`config` with [ssh] settings on every cluster (and these roles)."""
    settings = SshSettings(
        user="deploy",
        key=DEPLOY_KEY,
        known_hosts=Path("/etc/deploy-console/known_hosts"),
        jump_host="127.0.0.1:9",
    )
    clusters = tuple(dataclasses.replace(c, ssh=settings) for c in config.clusters)
    access = AccessSettings(users=dict(roles)) if roles is not None else config.access
    return dataclasses.replace(config, clusters=clusters, access=access)


async def press_ssh(pilot: Pilot[None], app: DeployConsoleApp) -> str:
    before = len(said(app))
    await pilot.press("s")
    await wait_for(pilot, lambda: len(said(app)) > before, "a word on ssh")
    return said(app)[-1][1]


async def test_s_without_ssh_settings_says_there_is_nothing_to_check_the_host_with(
    world_config: Config,
) -> None:
    async with console_at_80x24(world_config) as (app, pilot):
        screen = await open_instance(pilot, await open_project(pilot, FAILING, "prod1"), "prod1")
        assert await press_ssh(pilot, app) == (
            "cluster prod1 has no [ssh] settings: no known_hosts to check the host with"
        )
        assert app.screen is screen


@pytest.mark.parametrize(
    ("door", "reason"),
    [
        ("web", "ssh opens in a terminal: the web view cannot hand its page to a shell"),
        ("ssh", "ssh opens from a console on your own machine: this session runs on the "
                "console's host, where your own key is not"),
    ],
)  # fmt: skip
async def test_s_in_the_web_view_or_an_ssh_session_says_why_not(
    world_config: Config, monkeypatch: pytest.MonkeyPatch, door: str, reason: str
) -> None:
    monkeypatch.setattr(InstanceScreen, "door", staticmethod(lambda: door))
    async with console_at_80x24(with_ssh(world_config)) as (app, pilot):
        await open_instance(pilot, await open_project(pilot, FAILING, "prod1"), "prod1")
        assert await press_ssh(pilot, app) == reason


async def test_s_for_a_role_that_may_not_says_the_role(world_config: Config) -> None:
    roles = {"*": "deployer"}  # a deployer: not on a protected cluster (prod1)
    async with console_at_80x24(with_ssh(world_config, roles)) as (app, pilot):
        await open_instance(pilot, await open_project(pilot, FAILING, "prod1"), "prod1")
        message = await press_ssh(pilot, app)
        assert message.endswith(
            "is a deployer in prod1: may not ssh (a protected cluster needs admin)"
        )


async def test_s_where_it_may_hands_over_or_says_why_it_cannot(world_config: Config) -> None:
    async with console_at_80x24(with_ssh(world_config, {"*": "admin"})) as (app, pilot):
        screen = await open_instance(pilot, await open_project(pilot, FAILING, "prod1"), "prod1")
        assert screen.ssh_refusal() == ""
        # Pilot's terminal is headless: nothing to hand over, said in one line.
        assert await press_ssh(pilot, app) == (
            f"no shell on {screen.instance_id}: this terminal cannot be handed to ssh"
        )


# -- the snapshot ------------------------------------------------------------------------------


def test_snapshot_instance_screen(snap_compare: SnapCompare, world_config: Config) -> None:
    """media-service's failing instance in prod1 at 80x24 (the console output's time fixed)."""
    reader = InstanceReader(world_config)

    async def read(project: str, cluster: str, instance_id: str) -> InstanceDetails:
        details = await reader.read(project, cluster, instance_id)
        console = dataclasses.replace(details.console, timestamp=AS_OF)
        return dataclasses.replace(details, console=console)

    async def run_before(pilot: Pilot[None]) -> None:
        app = pilot.app
        await wait_for(pilot, lambda: getattr(app, "refresh_count", 0) >= 1, "the first refresh")
        project = await open_project(pilot, FAILING, "prod1")
        project.read_instance = read
        await open_instance(pilot, project, "prod1")

    fleet = Fleet(world_config, clock=frozen_clock)
    app = build_app(world_config, fleet, clock=frozen_clock, auto_refresh=False)
    try:
        assert snap_compare(app, terminal_size=SMALL, run_before=run_before)
    finally:
        fleet.close()
        reader.close()


async def test_many_tags_and_long_reasons_leave_the_console_output_on_screen(
    world_config: Config,
) -> None:
    async def crowded(project: str, cluster: str, instance_id: str) -> InstanceDetails:
        reason = "Health checks failed with these codes: [502] " * 3
        health = tuple(
            BalancerHealth(
                f"tg-{n}", LoadBalancerKind.TARGET_GROUP, "unhealthy", "Target.X", reason
            )
            for n in range(4)
        )
        tags = tuple((f"team:tag-{n:02d}", "a value " * 3) for n in range(40))
        lines = tuple(f"boot line {n}" for n in range(300))
        console = ConsoleOutput(lines, 300, AS_OF)
        return InstanceDetails(
            instance_id, project, cluster, "running", tags=tags, health=health, console=console
        )

    async with console_at_80x24(world_config) as (app, pilot):
        project = await open_project(pilot, FAILING, "prod1")
        project.read_instance = crowded
        screen = await open_instance(pilot, project, "prod1")
        log = screen.query_one(Log)
        assert fits(app, "console-output") and log.region.height >= 6
        assert fits(app, "instance-top")
        # The console output opens at its end: the newest lines are in view.
        assert log.scroll_y == log.max_scroll_y > 0
        assert "last" not in str(screen.query_one("#console-box").border_title)


async def test_s_on_the_project_screen_s_row_says_the_same(world_config: Config) -> None:
    async with console_at_80x24(with_ssh(world_config, {"*": "viewer"})) as (app, pilot):
        project = await open_project(pilot, FAILING, "prod1")
        message = await press_ssh(pilot, app)
        assert said(app)[-1][0] == "ssh: not now"
        assert message.endswith(
            "is a viewer in prod1: may not ssh (a protected cluster needs admin)"
        )
        project.set_focus(None)
        await pilot.press("s")
        await wait_for(pilot, lambda: len(said(app)) == 2, "the second word")
        assert said(app)[-1][1].startswith("put the cursor on an instance first")
