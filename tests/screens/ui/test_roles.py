"""The UI offers only what the user's role may do: in the command palette, the footer and the
keys alike (one predicate, each screen's check_action; the core refuses again at the end).

Roles: victor is a viewer, dora a deployer (unprotected clusters only), everyone else an
admin. The queue is a real store with deploys in it, as in test_queue_screen.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from textual.command import Command, CommandList, CommandPalette
from textual.pilot import Pilot
from textual.widgets._footer import FooterKey  # what the footer shows (no public name)

from console.access import READ_ONLY_ENV
from console.config import AccessSettings, Config, load_config
from console.store import Store
from screens.app import DeployConsoleApp
from screens.deploy.dialog import DeployDialog
from screens.project.screen import ProjectScreen
from screens.queue.dialogs import FreezeDialog, LockDialog
from screens.queue.screen import QueueScreen
from screens.widgets.fleet_header import FleetHeader
from tests.conftest import DEMO_CONFIG
from tests.screens.ui import SIZE, SteppingClock, stub_app, wait_for
from tests.screens.ui.test_queue_screen import (
    NEXT_ID,
    QueueDeploys,
    fill,
    make_app,
    runner_for,
    select,
)

ROLES = {"victor": "viewer", "dora": "deployer", "*": "admin"}
GATHER = CommandPalette._GATHER_COMMANDS_GROUP  # the palette's search worker
QUEUE_CHANGES = {"freeze", "lock", "unlock", "cancel_deploy", "move"}


@pytest.fixture(scope="module")
def config() -> Config:
    demo = load_config(DEMO_CONFIG)
    return dataclasses.replace(demo, access=AccessSettings(users=dict(ROLES)))


@asynccontextmanager
async def console_as(
    tmp_path: Path, config: Config, actor: str
) -> AsyncIterator[tuple[DeployConsoleApp, Pilot[None]]]:
    """The console of `actor`, over a real store whose queue holds deploys."""
    clock = SteppingClock()
    async with await Store.open(tmp_path / "console.db", clock=clock) as store:
        runner = runner_for(store, config, clock)
        await fill(runner.queue, clock)
        deploys = QueueDeploys(runner)
        deploys.actor = actor
        app = make_app(config, deploys, clock)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: app.refresh_count >= 1, "the first refresh")
            await pilot.pause()
            yield app, pilot


async def open_queue(pilot: Pilot[None]) -> QueueScreen:
    app = pilot.app
    await pilot.press("q")
    await wait_for(pilot, lambda: isinstance(app.screen, QueueScreen), "the queue")
    screen = app.screen
    assert isinstance(screen, QueueScreen)
    await wait_for(pilot, lambda: screen.read_count >= 1, "the first read")
    await select(pilot, screen, NEXT_ID)  # a queued deploy of bob's, in staging
    return screen


def footer_actions(app: DeployConsoleApp) -> set[str]:
    return {key.action.split("(")[0] for key in app.screen.query(FooterKey)}


def palette_list(app: DeployConsoleApp) -> tuple[list[str], bool]:
    """What the open palette lists: the commands' titles, and whether it says "No matches"."""
    palette = app.screen
    assert isinstance(palette, CommandPalette)
    options = palette.query_one(CommandList).options
    titles = [str(o.hit.text) for o in options if isinstance(o, Command)]
    return titles, any(not isinstance(o, Command) and o.disabled for o in options)


async def palette_search(pilot: Pilot[None], search: str, expect: str | None) -> list[str]:
    """Types `search` in the palette; the titles it offers once it found `expect` (or, with
    None, once it said it found nothing). Closes the palette again."""
    app = pilot.app
    await pilot.press("ctrl+p")
    await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette), "the palette")
    await pilot.press(*search)

    def settled() -> bool:
        titles, nothing = palette_list(app)  # type: ignore[arg-type]
        return expect in titles if expect is not None else bool(titles) or nothing

    await wait_for(pilot, settled, f"the palette's answer to {search!r}")
    await wait_for(
        pilot,
        lambda: not any(worker.group == GATHER and worker.is_running for worker in app.workers),
        "its search to end",
    )
    titles, _ = palette_list(app)  # type: ignore[arg-type]
    await pilot.press("escape")
    await wait_for(pilot, lambda: not isinstance(app.screen, CommandPalette), "it to close")
    return titles


async def test_a_viewer_is_offered_no_lock_freeze_cancel_or_move(
    tmp_path: Path, config: Config
) -> None:
    async with console_as(tmp_path, config, "victor") as (app, pilot):
        screen = await open_queue(pilot)
        for search in ("lock", "freeze", "cancel", "move"):
            offered = await palette_search(pilot, search, None)
            assert not [t for t in offered if t.startswith("queue: ") and search in t], offered
        await wait_for(pilot, lambda: "open_deploy" in footer_actions(app), "the footer")
        assert not footer_actions(app) & QUEUE_CHANGES, footer_actions(app)
        # The palette still works: it offers what a viewer may do.
        assert "queue: back" in await palette_search(pilot, "queue", "queue: back")

        audited = len(await screen.control.queue.store.audit_rows())
        await pilot.press("l", "f", "L", "c", "u", "n")
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        assert app.screen is screen, app.screen
        assert not any(isinstance(s, LockDialog | FreezeDialog) for s in app.screen_stack)
        assert len(await screen.control.queue.store.audit_rows()) == audited

        # Nor is a deploy offered on the dashboard.
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is app.dashboard, "the dashboard")
        assert "deploy" not in footer_actions(app)
        assert "deploy: open" not in await palette_search(pilot, "deploy", None)


async def test_an_admin_is_offered_lock_and_freeze(tmp_path: Path, config: Config) -> None:
    async with console_as(tmp_path, config, "alice") as (app, pilot):
        await open_queue(pilot)
        await wait_for(pilot, lambda: {"freeze", "lock"} <= footer_actions(app), "the footer")
        assert footer_actions(app) >= QUEUE_CHANGES
        assert "queue: lock" in await palette_search(pilot, "lock", "queue: lock")
        assert "queue: freeze or unfreeze" in await palette_search(
            pilot, "freeze", "queue: freeze or unfreeze"
        )
        await pilot.press("l")
        await wait_for(pilot, lambda: isinstance(app.screen, LockDialog), "the lock dialog")


async def test_a_deployer_is_offered_deploys_only_where_the_role_allows(
    tmp_path: Path, config: Config
) -> None:
    async with console_as(tmp_path, config, "dora") as (app, pilot):
        matrix = app.dashboard.matrix
        clusters = [c.name for c in config.clusters]
        staging, prod1 = clusters.index("staging") + 1, clusters.index("prod1") + 1
        row = matrix.visible_projects.index("storefront")

        matrix.move_cursor(row=row, column=prod1)  # a protected cluster: admins only
        await wait_for(pilot, lambda: matrix.cursor_cluster == "prod1", "the cursor on prod1")
        await wait_for(pilot, lambda: "deploy" not in footer_actions(app), "d to go")
        assert "deploy: open" not in await palette_search(pilot, "deploy", None)
        await pilot.press("d")
        await pilot.pause()
        assert not isinstance(app.screen, DeployDialog)

        matrix.move_cursor(row=row, column=staging)
        await wait_for(pilot, lambda: "deploy" in footer_actions(app), "d in staging")
        assert "deploy: open" in await palette_search(pilot, "deploy", "deploy: open")
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, DeployDialog), "the deploy dialog")
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is app.dashboard, "the dashboard")

        # The project screen: `d` for the cluster in focus only.
        matrix.move_cursor(row=row, column=prod1)
        await wait_for(pilot, lambda: matrix.cursor_cluster == "prod1", "the cursor on prod1")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ProjectScreen), "the project")
        project = app.screen
        assert isinstance(project, ProjectScreen)
        await wait_for(pilot, lambda: project.deploy_cluster == "prod1", "prod1 in focus")
        await wait_for(pilot, lambda: "deploy" not in footer_actions(app), "no d in prod1")
        project.panel("staging").table.focus()
        await wait_for(pilot, lambda: project.deploy_cluster == "staging", "staging in focus")
        await wait_for(pilot, lambda: "deploy" in footer_actions(app), "d in staging")
        await pilot.press("escape")

        # In the queue a deployer moves and cancels (their own), but never locks or freezes.
        await wait_for(pilot, lambda: app.screen is app.dashboard, "the dashboard")
        await open_queue(pilot)
        await wait_for(pilot, lambda: "cancel_deploy" in footer_actions(app), "the footer")
        assert not footer_actions(app) & {"freeze", "lock", "unlock"}
        for search in ("lock", "freeze"):
            offered = await palette_search(pilot, search, None)
            assert not [t for t in offered if t.startswith("queue: ") and search in t], offered


async def test_a_read_only_console_says_so_first_in_the_header(
    config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What `deploy-console web` serves without --allow-actions: an admin is a viewer too
    (test_read_only_makes_everyone_a_viewer...), and the header's first word says so."""
    for read_only in ("", "1"):
        monkeypatch.setenv(READ_ONLY_ENV, read_only)
        app = stub_app(config)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda app=app: app.refresh_count >= 1, "the first refresh")
            text = header_text(app)
            shown = "READ-ONLY 9 projects" if read_only else "9 projects"
            assert text.startswith(f"{shown} · 4 clusters"), text


def header_text(app: DeployConsoleApp) -> str:
    header = app.screen.query_one(FleetHeader)
    return header.describe(header.clock()).plain
