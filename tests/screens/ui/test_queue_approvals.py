"""Approving on the queue screen through Pilot at 80x24, on a real store: the approve key
opens the deploy's plan with approve and reject (a reason required), the requester's own
deploy says why not, an admin breaks glass on a queued rollback, and each verdict goes
through the queue with its audit row.

Over SSH and the web view the console is this same app (a session's actor is the key's or
the proxy's user), so approving there is this screen.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Input

from console.config import AccessSettings, Config, load_config
from console.model import DeployRequest
from console.queue.release_queue import DeployQueue
from console.store import Store
from screens.app import DeployConsoleApp
from screens.queue.approve_dialog import ApproveDialog, BreakGlassDialog
from screens.queue.screen import QueueScreen
from tests.conftest import DEMO_CONFIG
from tests.screens.ui import SteppingClock, wait_for
from tests.screens.ui.deploy_fakes import releases_of
from tests.screens.ui.test_queue_screen import (
    QueueDeploys,
    make_app,
    notifications,
    open_queue,
    rows,
    runner_for,
    select,
)

SMALL = (80, 24)
BOBS, ALICES = "d-20261126-115000-b0b000", "d-20261126-115100-a11ce0"
WAITS = "waiting for approval by 1 other user with approve on prod1"


@pytest.fixture(scope="module")
def config() -> Config:
    """prod1 needs one approval; the console's user (alice) and bob are admins."""
    demo = load_config(DEMO_CONFIG)
    clusters = tuple(
        dataclasses.replace(c, approvals=1) if c.name == "prod1" else c for c in demo.clusters
    )
    access = AccessSettings(users={"alice": "admin", "bob": "admin"})
    return dataclasses.replace(demo, clusters=clusters, access=access)


@asynccontextmanager
async def approving(
    tmp_path: Path, config: Config
) -> AsyncIterator[tuple[DeployConsoleApp, Pilot[None], QueueScreen, DeployQueue]]:
    clock = SteppingClock()
    async with await Store.open(tmp_path / "console.db", clock=clock) as store:
        runner = runner_for(store, config, clock)
        queue = runner.queue
        await queue.enqueue(DeployRequest("storefront", "prod1", "2.15.0", "bob"), BOBS)
        await queue.enqueue(DeployRequest("checkout-api", "prod1", "5.2.3", "alice"), ALICES)
        app = make_app(config, QueueDeploys(runner), clock, history=store)
        assert isinstance(app, DeployConsoleApp)
        async with app.run_test(size=SMALL) as pilot:
            screen = await open_queue(pilot)
            yield app, pilot, screen, queue


async def open_dialog(pilot: Pilot[None], screen: QueueScreen) -> ApproveDialog:
    await select(pilot, screen, BOBS)
    await pilot.press("a")
    app = pilot.app
    await wait_for(pilot, lambda: isinstance(app.screen, ApproveDialog), "the approve dialog")
    dialog = app.screen
    assert isinstance(dialog, ApproveDialog)
    await wait_for(pilot, lambda: "AMI" in dialog.plan_text, "the plan")
    return dialog


def on_screen(dialog: ApproveDialog, selector: str) -> bool:
    region = dialog.query_one(selector).region
    return region.width > 0 and region.right <= SMALL[0] and region.bottom <= SMALL[1]


async def test_another_user_approves_seeing_the_plan_at_80x24(
    tmp_path: Path, config: Config
) -> None:
    async with approving(tmp_path, config) as (app, pilot, screen, queue):
        assert [row[-1] for row in rows(screen)] == [WAITS, WAITS]
        # The requester's own deploy: the key says why not, nothing opens.
        await select(pilot, screen, ALICES)
        await pilot.press("a")
        await wait_for(pilot, lambda: notifications(app), "why not")
        assert notifications(app)[-1] == (
            f"alice may not approve their own deploy {ALICES}: another user with approve on "
            "prod1 does"
        )
        assert app.screen is screen

        dialog = await open_dialog(pilot, screen)
        ami = next(r.image_id for r in releases_of("storefront") if r.version == "2.15.0")
        assert f"AMI            {ami}" in dialog.plan_text
        assert "Plan storefront" in dialog.plan_text
        for part in ("#approve-plan", "#approve-text", "#approve", "#reject", "#cancel"):
            assert on_screen(dialog, part), part
        dialog.query_one("#approve-text", Input).value = "CAB-7 ok"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: app.screen is screen, "the queue again")
        done = f"{BOBS} (storefront → prod1) approved, {ami}: it may start."
        await wait_for(pilot, lambda: done in notifications(app), "the approval said")
        await wait_for(pilot, lambda: rows(screen)[0][-1] == "starts next", "the row to change")
        rows_ = [r for r in await queue.store.audit_rows(deploy_id=BOBS) if r.action == "approve"]
        assert [(r.actor, r.image_id) for r in rows_] == [("alice", ami)]
        record = await queue.store.deploy(BOBS)
        assert record is not None and record.image_id == ami


async def test_a_rejection_needs_a_reason_and_ends_the_deploy(
    tmp_path: Path, config: Config
) -> None:
    async with approving(tmp_path, config) as (app, pilot, screen, queue):
        dialog = await open_dialog(pilot, screen)
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: dialog.query_one("#approve-error").display, "the error")
        assert app.screen is dialog
        dialog.query_one("#approve-text", Input).value = "not during the sale"
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: app.screen is screen, "the queue again")
        await wait_for(pilot, lambda: len(rows(screen)) == 1, "the rejected deploy to leave")
        record = await queue.store.deploy(BOBS)
        assert record is not None
        assert (record.state, record.reason) == (
            "cancelled",
            "rejected by alice: not during the sale",
        )
        assert "reject" in [r.action for r in await queue.store.audit_rows(deploy_id=BOBS)]


async def test_an_admin_breaks_glass_on_their_queued_rollback(
    tmp_path: Path, config: Config
) -> None:
    async with approving(tmp_path, config) as (app, pilot, screen, queue):
        rollback = DeployRequest("storefront", "prod1", "2.14.1", "alice", rollback_of="d-0")
        glass_id = "d-20261126-115200-91a550"
        await queue.enqueue(rollback, glass_id)
        screen.poll_now()
        await wait_for(pilot, lambda: len(rows(screen)) == 3, "the rollback in the queue")
        await select(pilot, screen, BOBS)
        await pilot.press("g")  # not a rollback: says why not
        await wait_for(pilot, lambda: notifications(app), "why not")
        assert "is no rollback waiting for approval" in notifications(app)[-1]

        await select(pilot, screen, glass_id)
        await pilot.press("g")
        await wait_for(pilot, lambda: isinstance(app.screen, BreakGlassDialog), "the dialog")
        dialog = app.screen
        assert isinstance(dialog, BreakGlassDialog)
        await pilot.press("ctrl+s")  # no reason yet (keys: a toast may cover the buttons)
        await wait_for(pilot, lambda: dialog.query_one("#glass-error").display, "the error")
        assert app.screen is dialog
        assert on_screen(dialog, "#glass") and on_screen(dialog, "#glass-reason")
        dialog.query_one("#glass-reason", Input).value = "INC-9 checkout down"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: app.screen is screen, "the queue again")
        said = f"BREAK GLASS: {glass_id} rolls back without approval: INC-9 checkout down"
        await wait_for(pilot, lambda: said in notifications(app), "it said so")
        await wait_for(
            pilot, lambda: WAITS not in rows(screen)[-1][-1], "the rollback to wait no more"
        )
        actions = [r.action for r in await queue.store.audit_rows(deploy_id=glass_id)]
        assert "break-glass" in actions
