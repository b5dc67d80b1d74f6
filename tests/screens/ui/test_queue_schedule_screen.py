"""The queue screen at 80x24 with scheduled deploys and deploy windows: a scheduled deploy says
when it starts; an admin's w on a deploy waiting for its window asks a reason and lets it go
(audited); a deployer is told why not."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

from textual.pilot import Pilot
from textual.widgets import Static

from console.config import Config, load_config
from console.config.windows import parse_window
from console.model import DeployRequest
from console.queue.release_queue import DeployQueue
from console.store import DeployRecord, Store
from screens.app import DeployConsoleApp
from screens.queue.dialogs import OverrideDialog
from screens.queue.screen import QueueScreen
from tests.conftest import DEMO_CONFIG
from tests.screens.ui import FROZEN_NOW, SteppingClock, wait_for
from tests.screens.ui.test_queue_screen import (
    QueueDeploys,
    make_app,
    notifications,
    open_queue,
    rows,
    runner_for,
    select,
)

SCHEDULED_ID = "d-20261126-115000-5c4ed0"
WINDOW_ID = "d-20261126-115100-a1d0e5"
# FROZEN_NOW is Thursday 12:00 UTC, 13:00 in Berlin: after staging's window.
CLOSED = "outside deploy windows of staging until Fri 09:00 Europe/Berlin (08:00 UTC)"


def windowed(*, admin: bool = True) -> Config:
    """The demo with a morning window on staging; admin=False: alice is a deployer."""
    demo = load_config(DEMO_CONFIG)
    window = parse_window("Mon-Fri 09:00-12:00 Europe/Berlin")
    clusters = tuple(
        dataclasses.replace(c, windows=(window,)) if c.name == "staging" else c
        for c in demo.clusters
    )
    access = demo.access
    if not admin:
        access = dataclasses.replace(access, users={"carol": "admin", "*": "deployer"})
    return dataclasses.replace(demo, clusters=clusters, access=access)


@asynccontextmanager
async def scheduled_queue(
    tmp_path: Path, config: Config
) -> AsyncIterator[tuple[DeployConsoleApp, Pilot[None], QueueScreen, DeployQueue]]:
    clock = SteppingClock(FROZEN_NOW)
    async with await Store.open(tmp_path / "console.db", clock=clock) as store:
        runner = runner_for(store, config, clock)
        at = FROZEN_NOW + timedelta(hours=2, minutes=10)
        await runner.queue.enqueue(
            DeployRequest("storefront", "qaprod1", "2.15.0", "alice", not_before=at), SCHEDULED_ID
        )
        await runner.queue.enqueue(
            DeployRequest("storefront", "staging", "2.15.0", "bob"), WINDOW_ID
        )
        app = make_app(config, QueueDeploys(runner), clock)
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await open_queue(pilot)
            yield app, pilot, screen, runner.queue


def status(screen: QueueScreen, deploy_id: str) -> str:
    (row,) = [row for row in rows(screen) if row[0].endswith(deploy_id)]
    return " ".join(row[-1].split())


def footer_keys(screen: QueueScreen) -> set[str]:
    return {binding.description for _, binding, enabled, _ in screen.active_bindings.values()}


async def test_a_scheduled_deploy_shows_when_it_starts(tmp_path: Path) -> None:
    async with scheduled_queue(tmp_path, windowed()) as (_app, _pilot, screen, _queue):
        assert status(screen, SCHEDULED_ID) == "scheduled for Thu 14:10 UTC (in 2h 10m)"
        assert status(screen, WINDOW_ID) == CLOSED


async def test_an_admin_lets_a_deploy_go_outside_its_window_with_a_reason(tmp_path: Path) -> None:
    async with scheduled_queue(tmp_path, windowed()) as (app, pilot, screen, queue):
        await select(pilot, screen, WINDOW_ID)
        assert screen.check_action("outside_window", ()) is True
        assert "Outside window" in footer_keys(screen)
        await pilot.press("w")
        await wait_for(pilot, lambda: isinstance(app.screen, OverrideDialog), "the dialog")
        dialog = app.screen
        box = dialog.query_one("#override-box")
        assert box.region.bottom <= 24 and dialog.query_one("#override").region.height > 0
        shown = str(dialog.query_one("#override-deploy", Static).visual)
        assert "storefront 2.15.0 → staging" in shown and CLOSED in " ".join(shown.split())
        await pilot.press("ctrl+s")  # no reason yet: it says so, and stays
        await wait_for(
            pilot, lambda: dialog.query_one("#dialog-error").display, "the missing reason"
        )
        assert isinstance(app.screen, OverrideDialog)
        await pilot.press(*"hotfix", "ctrl+s")
        await wait_for(pilot, lambda: app.screen is screen, "the dialog to close")
        await wait_for(
            pilot,
            lambda: (
                status(screen, WINDOW_ID) == "starts next · outside its window by alice: hotfix"
            ),
            "the override in the queue",
        )
        rows_ = [r for r in await queue.store.audit_rows() if r.action == "window-override"]
        assert [(r.actor, r.deploy_id, r.reason) for r in rows_] == [("alice", WINDOW_ID, "hotfix")]
        # Once overridden (or on a cluster without windows) the key rests.
        assert screen.check_action("outside_window", ()) is None
        await select(pilot, screen, SCHEDULED_ID)
        assert screen.check_action("outside_window", ()) is None


async def test_a_deployer_is_told_why_not(tmp_path: Path) -> None:
    async with scheduled_queue(tmp_path, windowed(admin=False)) as (app, pilot, screen, _queue):
        await select(pilot, screen, WINDOW_ID)
        assert "Outside window" not in footer_keys(screen)
        await pilot.press("w")
        await wait_for(
            pilot,
            lambda: (
                "alice is a deployer in staging: may not deploy outside its window "
                "(needs admin)" in notifications(app)
            ),
            "the refusal",
        )
        assert not isinstance(app.screen, OverrideDialog)
        assert status(screen, WINDOW_ID) == CLOSED


async def test_the_history_detail_shows_the_schedule_and_the_override(tmp_path: Path) -> None:
    from tests.screens.ui.test_history import header_text, running, shown_detail, shown_history

    at = FROZEN_NOW + timedelta(hours=1)
    request = DeployRequest(
        "storefront", "staging", "2.15.0", "carol", not_before=at, window_override="INC-88"
    )
    async with await Store.open(tmp_path / "console.db") as store:
        await store.create_deploy(DeployRecord.new(WINDOW_ID, request, FROZEN_NOW))
        async with running(store, (80, 24)) as (_app, pilot):
            await pilot.press("h")
            await shown_history(pilot)
            detail = await shown_detail(pilot, "enter")
            header = header_text(detail)
    assert "schedule not before 2026-11-26 13:00:00 UTC" in header, header
    assert "window   outside its window by carol: INC-88" in header, header
