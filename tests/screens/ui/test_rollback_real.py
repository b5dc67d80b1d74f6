"""A rollback from history at 80x24 as a new user does it, keys only, on the real engine (moto,
loopback SSH, SQLite): the deploy dialog's downgrade warning and protected confirmation on the
way, the rollback run by the console's runner, and the history and audit saying so after."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Static

from console.config import Config
from console.deploy.services import deploy_services
from console.model import DeployRequest, DeployState
from console.queue.release_queue import DeployQueue
from console.queue.runner import Runner
from console.store import Store
from screens.app import DeployConsoleApp, build_app
from screens.deploy.dialog import DeployDialog
from screens.deploy.screen import DeployScreen
from screens.deploy.support import EngineDeploys
from screens.history.detail import DeployDetailScreen
from screens.history.log import DeployLogScreen
from screens.history.screen import HistoryScreen
from tests.deploy_world import quick_seed, running_versions, world_process
from tests.screens.ui import text_of, wait_for
from tests.screens.ui.test_deploy import deploy_screen
from tests.screens.ui.test_deploy_real import DEPLOY_TIMEOUT
from tests.screens.ui.test_history import header_text

SMALL = (80, 24)
# A protected cluster, one instance: the quickest pair that asks for the typed name.
PROJECT, CLUSTER, BEFORE, AFTER = "admin-portal", "prod1", "3.8.0", "3.9.0"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Config]:
    workdir = tmp_path_factory.mktemp("rollback-world")
    with world_process(quick_seed(workdir, 1), workdir) as config:
        yield config


@asynccontextmanager
async def console(
    config: Config, path: Path
) -> AsyncIterator[tuple[DeployConsoleApp, Pilot[None]]]:
    """The console as `deploy-console` runs it, at 80x24: its runner runs what it queues, and
    `h` reads the same store."""
    async with deploy_services(config, path) as services:
        runner = Runner(services.engine, DeployQueue(services.store, config))
        deploys = EngineDeploys(services.engine, services.fleet.gateway, "tester", runner=runner)
        app = build_app(
            config, services.fleet, auto_refresh=False, deploys=deploys, history=services.store
        )
        running = asyncio.create_task(runner.run_forever())
        try:
            async with app.run_test(size=SMALL) as pilot:
                await wait_for(
                    pilot, lambda: app.refresh_count >= 1, "the first refresh", timeout=30
                )
                yield app, pilot
        finally:
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running


async def deployed(app: DeployConsoleApp, pilot: Pilot[None], what: str) -> DeployScreen:
    """The deploy screen now shown, once its deploy has ended."""
    await wait_for(pilot, lambda: isinstance(app.screen, DeployScreen), f"{what}'s screen")
    screen = deploy_screen(app)
    await wait_for(pilot, lambda: screen.tracked.finished, f"{what}'s end", DEPLOY_TIMEOUT)
    await pilot.pause()
    return screen


async def tab_to(pilot: Pilot[None], selector: str) -> None:
    """Tab (as a person does) until the widget is focused."""
    app = pilot.app
    for _ in range(12):
        if app.focused is not None and app.focused.id == selector.lstrip("#"):
            return
        await pilot.press("tab")
        await pilot.pause()
    raise AssertionError(f"tab never reached {selector}: at {app.focused}")


def preview(screen: HistoryScreen) -> str:
    return text_of(screen.query_one("#history-preview", Static))


async def test_roll_back_from_history_at_80x24(world: Config, tmp_path: Path) -> None:
    assert running_versions(world, PROJECT, CLUSTER) == {BEFORE}
    async with console(world, tmp_path / "store.db") as (app, pilot):
        # Someone deployed AFTER; it went well, and now it has to go.
        app.start_deploy(DeployRequest(PROJECT, CLUSTER, AFTER, "tester"))
        first = await deployed(app, pilot, "the deploy")
        assert first.tracked.state is DeployState.SUCCEEDED, first.tracked.reason
        deploy_id = first.tracked.deploy_id
        assert deploy_id is not None
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is app.dashboard, "the dashboard")

        # h, the deploy is the newest row; b.
        await pilot.press("h")
        await wait_for(pilot, lambda: isinstance(app.screen, HistoryScreen), "the history")
        history = app.screen
        assert isinstance(history, HistoryScreen)
        await wait_for(pilot, lambda: history.cursor_record is not None, "the history's rows")
        assert history.cursor_record is not None and history.cursor_record.id == deploy_id
        assert history.check_action("rollback", ()) is True  # "b Roll back" in the footer
        await pilot.press("b")

        # The dialog: BEFORE preselected, a downgrade warned, the protected name asked for.
        await wait_for(pilot, lambda: isinstance(app.screen, DeployDialog), "the dialog")
        dialog = app.screen
        assert isinstance(dialog, DeployDialog)
        await wait_for(pilot, lambda: dialog.warnings is not None, "the plan and warnings", 60)
        assert dialog.highlighted is not None and dialog.highlighted.version == BEFORE
        assert f"Rollback of {deploy_id}" in text_of(dialog.query_one("#preset-why", Static))
        assert "a downgrade" in dialog.warnings_text
        assert dialog.confirm_button.disabled
        await pilot.press("ctrl+y")  # deploy anyway
        await tab_to(pilot, "#confirm-name")
        await pilot.press(*CLUSTER)
        await wait_for(pilot, lambda: not dialog.confirm_button.disabled, "Roll back enabled")
        assert str(dialog.confirm_button.label) == "Roll back"
        for selector in ("#confirm-name", "#confirm"):  # both on the 80x24 screen
            region = dialog.query_one(selector).region
            assert region.area and region.bottom <= SMALL[1], (selector, region)
        await pilot.press("enter")

        # The rollback runs through the queue like any deploy, and lands.
        rollback = await deployed(app, pilot, "the rollback")
        assert rollback.tracked.state is DeployState.SUCCEEDED, rollback.tracked.reason
        assert rollback.tracked.request.rollback_of == deploy_id
        assert running_versions(world, PROJECT, CLUSTER) == {BEFORE}

        # Back on the history: the rollback is the newest row, and says what it rolled back.
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is history, "the history again")
        history.action_refresh()
        await wait_for(
            pilot,
            lambda: history.records and history.records[0].id == rollback.tracked.deploy_id,
            "the rollback in the history",
        )
        history.table.move_cursor(row=0)
        # The engine says "succeeded" as it writes it: the history (read every 3 s) may have
        # read the row a moment before, still running.
        line = f"{AFTER} → {BEFORE} (rollback of {deploy_id})  succeeded"
        await wait_for(pilot, lambda: line in preview(history), "the rollback's outcome")

        # Its detail names the deploy it rolled back; o shows its log, the queue's row first.
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, DeployDetailScreen), "the detail")
        detail = app.screen
        assert isinstance(detail, DeployDetailScreen)
        await wait_for(pilot, lambda: detail.read_count >= 1, "the detail's read")
        assert f"rollback of {deploy_id}" in header_text(detail)
        await pilot.press("o")
        await wait_for(pilot, lambda: isinstance(app.screen, DeployLogScreen), "the log")
        log = app.screen
        assert isinstance(log, DeployLogScreen)
        await wait_for(pilot, lambda: log.read_count >= 1, "the log's read")
        shown = [line.plain for line in log.lines]
        assert any(f"queue.enqueue queued: {BEFORE} (rollback of {deploy_id})" in x for x in shown)

    # The audit says who queued it, as what, under which rules.
    async with await Store.open(tmp_path / "store.db", create=False) as reopened:
        rows = await reopened.audit_rows(deploy_id=rollback.tracked.deploy_id)
    queued = [row for row in rows if row.action == "queue.enqueue"]
    assert [(row.actor, row.reason) for row in queued] == [
        ("tester", f"{BEFORE} (rollback of {deploy_id})")
    ]
    assert rows[-1].action == "deploy.finished" and rows[-1].outcome == "succeeded"
