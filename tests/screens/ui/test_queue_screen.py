"""The queue screen through Pilot, on a real store file: what it shows, and each action going
through the queue (audited) or the runner. No AWS: the runner's engine is never asked to run."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Checkbox, Input, OptionList, RadioButton, Static

from console.config import Config, load_config
from console.deploy.engine import DeployEngine
from console.errors import StoreError
from console.model import DeployRequest
from console.queue.release_queue import DeployQueue
from console.queue.runner import Runner
from console.store import Store
from screens.app import DeployConsoleApp
from screens.deploy.screen import DeployScreen
from screens.deploy.tracking import TrackedDeploy
from screens.help import keys_of
from screens.history.detail import DeployDetailScreen
from screens.queue.dialogs import FreezeDialog, HoldsDialog, LockDialog
from screens.queue.screen import QueueScreen
from tests.conftest import DEMO_CONFIG
from tests.screens.ui import (
    FROZEN_NOW,
    SIZE,
    SteppingClock,
    confirm,
    stub_app,
    wait_for,
)
from tests.screens.ui.deploy_fakes import ScriptedDeploys

RUNNER = "ops-host:4242:ab12"
RUNNING_ID = "d-20261126-115000-a1b2c3"
BEHIND_ID = "d-20261126-115100-d4e5f6"
FROZEN_ID = "d-20261126-115200-0a1b2c"
NEXT_ID = "d-20261126-115230-3c4d5e"
LOCKED_ID = "d-20261126-115300-6f7a8b"
SnapCompare = Callable[..., bool]


@pytest.fixture(scope="module")
def config() -> Config:
    return load_config(DEMO_CONFIG)


class QueueDeploys(ScriptedDeploys):
    """The scripted deploys (actor alice) with a real runner over the real store."""

    def __init__(self, runner: Runner) -> None:
        super().__init__()
        self.runner = runner


def _no_aws(_cluster: str) -> object:
    raise AssertionError("the queue screen never reaches AWS")


def _no_ssh(*_args: object, **_kwargs: object) -> object:
    raise AssertionError("the queue screen never reaches an instance")


def request(project: str, cluster: str, release: str, actor: str) -> DeployRequest:
    return DeployRequest(project, cluster, release, actor)


async def fill(queue: DeployQueue, clock: SteppingClock) -> None:
    """One deploy running, one behind it, one held by a freeze, one free to start, one held
    by a lock; a warning lock besides. Then the clock moves to FROZEN_NOW."""
    clock.now = FROZEN_NOW - timedelta(minutes=10)
    await queue.enqueue(request("storefront", "staging", "2.15.0", "alice"), RUNNING_ID)
    assert (await queue.claim(RUNNER)) is not None
    clock.advance(60)
    await queue.enqueue(request("storefront", "staging", "2.14.1", "bob"), BEHIND_ID)
    await queue.freeze("prod1", "dave", "change freeze before the sale")
    clock.advance(60)
    await queue.enqueue(request("checkout-api", "prod1", "5.2.3", "carol"), FROZEN_ID)
    clock.advance(30)
    await queue.enqueue(request("media-service", "staging", "1.6.0", "bob"), NEXT_ID)
    await queue.lock(owner="dave", reason="AMI rebuild", cluster="qaprod1")
    await queue.lock(
        owner="erin",
        reason="schema migration running",
        project="search-api",
        warning=True,
        expires_at=clock.now + timedelta(hours=2),
    )
    clock.advance(30)
    await queue.enqueue(request("notifications-worker", "qaprod1", "7.1.1", "bob"), LOCKED_ID)
    clock.now = FROZEN_NOW


def make_app(
    config: Config,
    deploys: ScriptedDeploys | None,
    clock: SteppingClock,
    history: Store | None = None,
) -> DeployConsoleApp:
    return stub_app(config, clock=clock, deploys=deploys, history=history)


def runner_for(store: Store, config: Config, clock: SteppingClock) -> Runner:
    engine = DeployEngine(config, _no_aws, store, _no_ssh, clock=clock)  # type: ignore[arg-type]
    return Runner(engine, DeployQueue(store, config), name="this-console")


@asynccontextmanager
async def queue_screen(
    tmp_path: Path, config: Config, size: tuple[int, int] = SIZE
) -> AsyncIterator[tuple[DeployConsoleApp, Pilot[None], QueueScreen, DeployQueue]]:
    clock = SteppingClock()
    async with await Store.open(tmp_path / "console.db", clock=clock) as store:
        runner = runner_for(store, config, clock)
        await fill(runner.queue, clock)
        app = make_app(config, QueueDeploys(runner), clock, history=store)
        assert isinstance(app, DeployConsoleApp)
        async with app.run_test(size=size) as pilot:
            screen = await open_queue(pilot)
            await pilot.pause()
            yield app, pilot, screen, runner.queue


async def open_queue(pilot: Pilot[None]) -> QueueScreen:
    """After the console's first refresh, q; the queue screen once it has read the queue."""
    app = pilot.app
    assert isinstance(app, DeployConsoleApp)
    await wait_for(pilot, lambda: app.refresh_count >= 1, "the first refresh")
    await pilot.press("q")
    await wait_for(pilot, lambda: isinstance(app.screen, QueueScreen), "the queue")
    screen = app.screen
    assert isinstance(screen, QueueScreen)
    await wait_for(pilot, lambda: screen.read_count >= 1, "the first read")
    return screen


def rows(screen: QueueScreen) -> list[list[str]]:
    """The table as shown, a row a deploy: its first cell is "pair\nid"."""
    table = screen.table
    return [[cell.plain for cell in table.get_row_at(i)] for i in range(table.row_count)]


def ids(screen: QueueScreen) -> list[str]:
    return [row[0].split("\n")[1] for row in rows(screen)]


def text(screen: QueueScreen, selector: str) -> str:
    visual = screen.query_one(selector, Static).visual
    return str(getattr(visual, "plain", visual))


def notifications(app: DeployConsoleApp) -> list[str]:
    return [n.message for n in app._notifications]


async def select(pilot: Pilot[None], screen: QueueScreen, deploy_id: str) -> None:
    screen.table.move_cursor(row=ids(screen).index(deploy_id))
    await wait_for(pilot, lambda: screen.table.selected_id == deploy_id, f"{deploy_id} selected")
    await pilot.pause()


async def test_the_queue_in_order_with_why_each_waits(tmp_path: Path, config: Config) -> None:
    async with queue_screen(tmp_path, config) as (app, pilot, screen, _queue):
        assert rows(screen) == [
            [f"storefront → staging\n{RUNNING_ID}", "running", "2.15.0", "alice", "10m 00s",
             f"running on {RUNNER}"],
            [f"storefront → staging\n{BEHIND_ID}", "queued", "2.14.1", "bob", "9m 00s",
             f"behind {RUNNING_ID} (running) on storefront in staging"],
            [f"checkout-api → prod1 🔒\n{FROZEN_ID}", "queued", "5.2.3", "carol", "8m 00s",
             "prod1 frozen by dave since 2026-11-26 11:51 UTC: change freeze before the sale"],
            [f"media-service → staging\n{NEXT_ID}", "queued", "1.6.0", "bob", "7m 30s",
             "starts next"],
            [f"notifications-worker → qaprod1\n{LOCKED_ID}", "queued", "7.1.1", "bob",
             "7m 00s", "locked on cluster qaprod1 by dave: AMI rebuild (no expiry)"],
        ]  # fmt: skip
        assert text(screen, "#queue-holds").splitlines() == [
            "❄ prod1 frozen by dave since 2026-11-26 11:51 UTC: change freeze before the sale",
            "🔒 #1 locked on cluster qaprod1 by dave: AMI rebuild (no expiry)",
            "🔒 #2 warning lock on project search-api by erin: schema migration running "
            "(until 2026-11-26 13:52 UTC)",
        ]
        assert "4 queued · 1 running · at most 4 at a time" in text(screen, "#queue-title")

        clock = app.clock
        assert isinstance(clock, SteppingClock)
        clock.advance(65)  # the ages tick without a change in the store
        await wait_for(pilot, lambda: rows(screen)[0][4] == "11m 05s", "the age to tick")

        # Another console (or the CLI) changes the queue: the next read shows it, and the
        # cursor stays on its deploy although that deploy's row moved up.
        await select(pilot, screen, NEXT_ID)
        newest = "d-20261126-120000-bbbbbb"
        async with await Store.open(tmp_path / "console.db", clock=clock) as other:
            elsewhere = DeployQueue(other, config)
            await elsewhere.cancel(BEHIND_ID, "bob")
            await elsewhere.enqueue(request("admin-portal", "staging", "3.9.0", "bob"), newest)
        await wait_for(
            pilot, lambda: ids(screen)[-1] == newest and BEHIND_ID not in ids(screen), "the read"
        )
        assert screen.table.selected_id == NEXT_ID
        assert ids(screen).index(NEXT_ID) == 2

        # Enter opens the deploy's screen when this console follows it; one started elsewhere
        # opens its record, steps and output as the store has them (followed while it runs).
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, DeployDetailScreen), "its detail")
        detail = app.screen
        assert isinstance(detail, DeployDetailScreen) and detail.deploy_id == NEXT_ID
        await wait_for(pilot, lambda: detail.read_count >= 1, "its record read")
        assert detail.record is not None and detail.record.state == "queued"
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is screen, "back to the queue")
        app.tracked[1] = TrackedDeploy(
            1, request("storefront", "staging", "2.15.0", "alice"), deploy_id=RUNNING_ID
        )
        await select(pilot, screen, RUNNING_ID)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, DeployScreen), "the deploy screen")
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is screen, "back to the queue")
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is app.dashboard, "back to the dashboard")


async def test_cancel_queued_and_running_deploys(tmp_path: Path, config: Config) -> None:
    async with queue_screen(tmp_path, config) as (app, pilot, screen, queue):
        await select(pilot, screen, NEXT_ID)
        await pilot.press("c")
        question = await confirm(pilot)
        assert "Cancel media-service 1.6.0 to staging" in question
        assert "It is queued: it leaves the queue and never starts." in question
        await wait_for(pilot, lambda: NEXT_ID not in ids(screen), "the row to go")
        record = await queue.store.deploy(NEXT_ID)
        assert record is not None and record.state == "cancelled"
        audit = [(r.action, r.actor, r.outcome) for r in await queue.store.audit_rows()
                 if r.deploy_id == NEXT_ID]  # fmt: skip
        assert audit[-1] == ("queue.cancel", "alice", "cancelled")
        assert any("cancelled: it will not run" in n for n in notifications(app))
        assert screen.table.selected_id == LOCKED_ID  # where the row was: the next one

        await select(pilot, screen, RUNNING_ID)
        await pilot.press("c")
        question = await confirm(pilot)
        assert f"It is running on {RUNNER}: it rolls back there." in question
        await wait_for(
            pilot, lambda: "cancel asked by alice" in rows(screen)[0][5], "the cancel asked"
        )
        record = await queue.store.deploy(RUNNING_ID)
        assert record is not None and record.cancel_requested == "alice"
        assert not screen.check_action("cancel_deploy", ())  # asked once is enough

        await select(pilot, screen, BEHIND_ID)
        await pilot.press("c")
        await confirm(pilot, "n")  # keep it
        record = await queue.store.deploy(BEHIND_ID)
        assert record is not None and record.state == "queued"


async def test_move_within_the_pair_only_for_queued_deploys(tmp_path: Path, config: Config) -> None:
    async with queue_screen(tmp_path, config) as (_app, pilot, screen, queue):
        # The running deploy does not move, nor does a deploy alone on its pair.
        assert not screen.check_action("move", (-1,)) and not screen.check_action("move", (1,))
        assert screen.check_action("cancel_deploy", ())
        await pilot.press("shift+down")
        assert ids(screen)[0] == RUNNING_ID
        await select(pilot, screen, NEXT_ID)
        assert not screen.check_action("move", (-1,)) and not screen.check_action("move", (1,))

        later = "d-20261126-115900-aaaaaa"
        await queue.enqueue(request("storefront", "staging", "2.13.0", "carol"), later)
        await wait_for(pilot, lambda: later in ids(screen), "the new deploy")
        await select(pilot, screen, later)
        assert screen.check_action("move", (-1,)) and not screen.check_action("move", (1,))
        await pilot.press("shift+up")
        await wait_for(
            pilot, lambda: ids(screen).index(later) < ids(screen).index(BEHIND_ID), "the move"
        )
        assert screen.table.selected_id == later
        moves = [r for r in await queue.store.audit_rows() if r.action == "queue.move"]
        assert [(m.deploy_id, m.actor, m.reason) for m in moves] == [
            (later, "alice", "up from 2 to 1 of 2 queued")
        ]
        await pilot.press("n")  # the other keys: n down, u up
        await wait_for(
            pilot, lambda: ids(screen).index(later) > ids(screen).index(BEHIND_ID), "back down"
        )

        # The store cannot be read: the rows stay, and the title says why and since when.
        async def locked() -> None:
            raise StoreError("the store console.db stayed locked by another process; try again")

        queue.view = locked  # type: ignore[method-assign]
        await wait_for(pilot, lambda: "cannot read" in text(screen, "#queue-title"), "the error")
        assert "stayed locked by another process; try again (showing the queue as read 0s ago)" in (
            text(screen, "#queue-title")
        )
        assert len(ids(screen)) == 6


async def test_freeze_unfreeze_and_a_refusal(tmp_path: Path, config: Config) -> None:
    async with queue_screen(tmp_path, config) as (app, pilot, screen, queue):
        await select(pilot, screen, NEXT_ID)  # media-service in staging
        await pilot.press("f")
        await wait_for(pilot, lambda: isinstance(app.screen, FreezeDialog), "the freeze dialog")
        dialog = app.screen
        await pilot.press("enter")  # no reason yet: refused in the dialog
        assert "needs a reason" in text(dialog, "#dialog-error")  # type: ignore[arg-type]
        await pilot.press(*"incident", "enter")
        await wait_for(
            pilot, lambda: "staging frozen by alice" in text(screen, "#queue-holds"), "the freeze"
        )
        await wait_for(
            pilot,
            lambda: rows(screen)[ids(screen).index(NEXT_ID)][5].endswith(": incident"),
            "the row to say so",
        )
        view = await queue.view()
        assert [(f.cluster, f.actor, f.reason) for f in view.freezes] == [
            ("prod1", "dave", "change freeze before the sale"),
            ("staging", "alice", "incident"),
        ]

        await pilot.press("f")  # frozen: f offers to unfreeze
        assert "Unfreeze staging?" in await confirm(pilot)
        await wait_for(
            pilot, lambda: "staging frozen" not in text(screen, "#queue-holds"), "the unfreeze"
        )
        actions = [(r.action, r.actor, r.cluster) for r in await queue.store.audit_rows()]
        assert actions[-2:] == [
            ("queue.freeze", "alice", "staging"),
            ("queue.unfreeze", "alice", "staging"),
        ]

        # What the queue refuses is a notification; the screen goes on.
        await pilot.press("f")
        await wait_for(pilot, lambda: isinstance(app.screen, FreezeDialog), "the freeze dialog")
        next(b for b in app.screen.query(RadioButton) if b.name == "prod1").value = True
        app.screen.query_one("#freeze-reason", Input).value = "again"
        await pilot.press("enter")
        await wait_for(pilot, lambda: any("already" in n for n in notifications(app)), "it")
        assert notifications(app)[-1] == (
            "already prod1 frozen by dave since 2026-11-26 11:51 UTC: change freeze before the sale"
        )
        assert app.screen is screen and app.is_running


async def test_lock_then_remove_it(tmp_path: Path, config: Config) -> None:
    async with queue_screen(tmp_path, config) as (app, pilot, screen, queue):
        await select(pilot, screen, NEXT_ID)
        await pilot.press("l")
        await wait_for(pilot, lambda: isinstance(app.screen, LockDialog), "the lock dialog")
        dialog = app.screen
        labels = [str(button.label) for button in dialog.query(RadioButton)]
        assert labels == [
            "media-service in staging (this pair only)",
            "project media-service (every cluster)",
            "cluster staging (every project)",
            "everything (every project in every cluster)",
        ]
        dialog.query_one("#lock-reason", Input).value = "load test"
        dialog.query_one("#lock-expiry", Input).value = "soon"
        await pilot.press("enter")
        assert "expiry 'soon'" in text(dialog, "#dialog-error")  # type: ignore[arg-type]
        dialog.query_one("#lock-expiry", Input).value = "30m"
        await pilot.press("enter")
        await wait_for(pilot, lambda: "#3 locked on media-service in staging" in
                       text(screen, "#queue-holds"), "the lock")  # fmt: skip
        assert "by alice: load test (until 2026-11-26 12:30 UTC)" in text(screen, "#queue-holds")
        # A lock never holds its owner (alice), but bob's deploy waits for it.
        assert rows(screen)[ids(screen).index(NEXT_ID)][5].startswith(
            "locked on media-service in staging by alice: load test"
        )

        await pilot.press("L")
        await wait_for(pilot, lambda: isinstance(app.screen, HoldsDialog), "the list")
        options = app.screen.query_one(OptionList)
        assert options.option_count == 4  # one freeze, three locks
        options.highlighted = 3
        await pilot.press("enter")
        assert "Remove the lock?" in await confirm(pilot)
        await wait_for(pilot, lambda: "#3" not in text(screen, "#queue-holds"), "the unlock")
        actions = [(r.action, r.actor) for r in await queue.store.audit_rows()]
        assert actions[-2:] == [("lock.add", "alice"), ("lock.remove", "alice")]
        assert rows(screen)[ids(screen).index(NEXT_ID)][5] == "starts next"

        # A warning lock on everything: the dialog's last scope, and its checkbox.
        await pilot.press("l")
        await wait_for(pilot, lambda: isinstance(app.screen, LockDialog), "the lock dialog")
        app.screen.query(RadioButton).last().value = True
        app.screen.query_one(Checkbox).value = True
        app.screen.query_one("#lock-reason", Input).value = "heads up"
        await pilot.press("enter")
        await wait_for(pilot, lambda: "warning lock on everything by alice: heads up" in
                       text(screen, "#queue-holds"), "the warning lock")  # fmt: skip
        assert rows(screen)[ids(screen).index(NEXT_ID)][5] == "starts next"


async def test_no_queue_here(config: Config) -> None:
    """Deploys without a runner (or none at all): q says so and stays on the dashboard."""
    app = make_app(config, ScriptedDeploys(), SteppingClock())
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.refresh_count >= 1, "the first refresh")
        keys = {(k.key, k.description, k.binding_id) for k in keys_of(app.screen, app)}
        assert ("q", "Queue", "queue.open") in keys
        await pilot.press("q")
        await wait_for(pilot, lambda: notifications(app), "a notification")
        assert notifications(app)[0].lower().startswith("no queue here")
        assert app.screen is app.dashboard
        app.deploys = None
        await pilot.press("q")
        await wait_for(pilot, lambda: len(notifications(app)) == 2, "a second notification")
        assert app.screen is app.dashboard


# -- snapshots ------------------------------------------------------------------------------


@pytest.fixture
def snapshot_store(tmp_path: Path, config: Config) -> Iterator[Path]:
    clock = SteppingClock()

    async def prepare() -> None:
        async with await Store.open(tmp_path / "console.db", clock=clock) as store:
            await fill(DeployQueue(store, config), clock)

    asyncio.run(prepare())
    yield tmp_path / "console.db"


class _Opened:
    """The app's store, opened in the app's own loop (aiosqlite's thread outlives no test)."""

    store: Store | None = None

    def close(self) -> None:
        if self.store is not None:
            asyncio.run(self.store.close())


def _snap_queue(
    snap_compare: SnapCompare,
    config: Config,
    snapshot_store: Path,
    then: Callable[[Pilot[None]], Awaitable[None]] | None = None,
    *,
    size: tuple[int, int] = SIZE,
    row: str = FROZEN_ID,
) -> bool:
    """The queue screen on the snapshot store with `row` (the frozen one) selected, after
    `then`, on a terminal of `size`."""
    clock = SteppingClock()
    deploys = QueueDeploys(None)  # type: ignore[arg-type]
    opened = _Opened()

    async def run_before(pilot: Pilot[None]) -> None:
        store = opened.store = await Store.open(snapshot_store, clock=clock)
        deploys.runner = runner_for(store, config, clock)
        await select(pilot, await open_queue(pilot), row)
        if then is not None:
            await then(pilot)

    try:
        return snap_compare(make_app(config, deploys, clock), terminal_size=size,
                            run_before=run_before)  # fmt: skip
    finally:
        opened.close()


def test_snapshot_queue(snap_compare: SnapCompare, config: Config, snapshot_store: Path) -> None:
    """Running, behind, frozen, next, locked; a freeze, a lock and a warning lock above."""
    assert _snap_queue(snap_compare, config, snapshot_store)


def test_snapshot_lock_dialog(
    snap_compare: SnapCompare, config: Config, snapshot_store: Path
) -> None:
    """The lock dialog from the frozen checkout-api row: the scopes of its pair."""

    async def lock_dialog(pilot: Pilot[None]) -> None:
        app = pilot.app
        await pilot.press("l")
        await wait_for(pilot, lambda: isinstance(app.screen, LockDialog), "the lock dialog")
        app.screen.query_one("#lock-reason", Input).value = "vendor outage"
        app.screen.query_one("#lock-expiry", Input).value = "2h"
        for field in app.screen.query(Input):  # a blinking cursor is drawn or not by timing
            field.cursor_blink = False
        await pilot.pause()

    assert _snap_queue(snap_compare, config, snapshot_store, lock_dialog)
