"""Every dialog at 80x24, a standard terminal: what a person must reach to act is on screen.

Each dialog is opened the way a person opens it; its fields and buttons must lie wholly inside
the 80x24 screen, not clipped by their box, and be the widget drawn at their centre (nothing
over them). A snapshot of each at 80x24 keeps its look.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from textual.app import App
from textual.pilot import Pilot
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Input, Static

from console.config import Config, load_config
from console.events import DeployWaiting
from console.model import DeployRequest, FleetSnapshot, Step
from console.store import DeployRecord
from screens.app import DeployConsoleApp
from screens.deploy.dialog import DeployDialog
from screens.deploy.picker import DeployListDialog
from screens.deploy.screen import DeployScreen
from screens.deploy.tracking import TrackedDeploy
from screens.help import HelpScreen
from screens.queue.dialogs import FreezeDialog, HoldsDialog, LockDialog
from screens.widgets.confirm import ConfirmDialog
from tests.conftest import DEMO_CONFIG
from tests.screens.ui import FROZEN_NOW, stub_app, wait_for
from tests.screens.ui.deploy_fakes import (
    ScriptedDeploys,
    failed_deploy,
    held_deploy,
    open_dialog,
)
from tests.screens.ui.test_queue_screen import (  # noqa: F401  (snapshot_store: a fixture)
    BEHIND_ID,
    NEXT_ID,
    RUNNING_ID,
    _snap_queue,
    queue_screen,
    rows,
    select,
    snapshot_store,
)

SMALL = (80, 24)
SnapCompare = Callable[..., bool]
Opener = Callable[[Pilot[None]], Awaitable[Screen[object]]]


def hidden(screen: Screen[object], *selectors: str) -> list[str]:
    """The selectors whose widget is not wholly on the screen, clipped, or drawn over."""
    width, height = SMALL
    missing = []
    for selector in selectors:
        widget = screen.query_one(selector, Widget)
        geometry = screen.find_widget(widget)
        region = geometry.region
        inside = region.x >= 0 and region.y >= 0 and region.right <= width
        inside = inside and region.bottom <= height and region.area > 0
        drawn, _ = screen.get_widget_at(*region.center) if inside else (None, None)
        on_top = drawn is widget or (drawn is not None and widget in drawn.ancestors)
        if not (inside and geometry.visible_region == region and on_top):
            missing.append(f"{selector} at {region}")
    return missing


@pytest.fixture(autouse=True)
def quick_plans(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(DeployDialog, "PLAN_DELAY", 0.0)


@pytest.fixture(scope="module")
def config() -> Config:
    return load_config(DEMO_CONFIG)


async def _first_refresh(pilot: Pilot[None]) -> DeployConsoleApp:
    app = pilot.app
    assert isinstance(app, DeployConsoleApp)
    await wait_for(pilot, lambda: app.refresh_count >= 1, "the first refresh")
    return app


async def _still(pilot: Pilot[None]) -> None:
    """Inputs drawn without a blinking cursor (drawn or not by timing), then one more frame."""
    for field in pilot.app.screen.query(Input):
        field.cursor_blink = False
    await pilot.pause()


@asynccontextmanager
async def small_console(
    config: Config, snapshot: FleetSnapshot
) -> AsyncIterator[tuple[DeployConsoleApp, Pilot[None], ScriptedDeploys]]:
    """The console at 80x24 on the demo fleet after its first refresh; its scripted deploys
    hold at their configure step."""
    deploys = ScriptedDeploys(snapshot, hold_at=Step.CONFIGURE)
    app = stub_app(config, snapshot, deploys=deploys)
    async with app.run_test(size=SMALL) as pilot:
        await _first_refresh(pilot)
        yield app, pilot, deploys


# -- the deploy dialogs ----------------------------------------------------------------------


async def test_a_protected_deploy_is_confirmed_at_80x24_by_typing_the_cluster_name(
    world_config: Config, demo_snapshot: FleetSnapshot
) -> None:
    async with small_console(world_config, demo_snapshot) as (_app, pilot, deploys):
        dialog = await open_dialog(pilot, 3)  # storefront in prod1
        assert hidden(dialog, "#confirm-name", "#confirm", "#cancel", "#plan-area") == []
        assert dialog.confirm_button.disabled
        await _type_prod1_and_deploy(pilot, deploys)


async def _type_prod1_and_deploy(pilot: Pilot[None], deploys: ScriptedDeploys) -> None:
    """Tab once from the releases to the name field (as a person does), type prod1, press
    Enter: storefront's newest release deploys."""
    await pilot.press("tab")
    await pilot.pause()
    assert pilot.app.focused is not None and pilot.app.focused.id == "confirm-name"
    await pilot.press(*"prod1", "enter")
    await wait_for(pilot, lambda: deploys.started, "the deploy to start")
    assert deploys.started == [DeployRequest("storefront", "prod1", "2.15.0", "alice")]


async def test_the_plan_scrolls_at_80x24_and_the_buttons_stay(
    world_config: Config, demo_snapshot: FleetSnapshot
) -> None:
    async with small_console(world_config, demo_snapshot) as (_app, pilot, _deploys):
        dialog = await open_dialog(pilot, 3)
        area = dialog.query_one("#plan-area")
        await pilot.pause()
        # The plan is longer than its area here: its last line is reached by scrolling, with
        # the keys while the releases keep the cursor.
        assert area.max_scroll_y > 0
        for _ in range(area.max_scroll_y):
            await pilot.press("ctrl+down")
        await pilot.pause()
        assert area.scroll_y == area.max_scroll_y
        assert dialog.release_table.has_focus
        assert "expected" in dialog.plan_text
        assert hidden(dialog, "#confirm-name", "#confirm", "#cancel") == []


async def test_the_deploy_dialog_of_an_unprotected_cluster_at_80x24(
    world_config: Config, demo_snapshot: FleetSnapshot
) -> None:
    async with small_console(world_config, demo_snapshot) as (_app, pilot, deploys):
        dialog = await open_dialog(pilot, 1)  # storefront in staging, which runs 2.15.0
        shown = ("#releases", "#plan-area", "#warnings-area", "#anyway", "#confirm", "#cancel")
        assert hidden(dialog, *shown) == []
        await pilot.click("#confirm")  # disabled: 2.15.0 already runs there
        assert deploys.started == []
        await pilot.click("#anyway")
        await pilot.click("#confirm")
        await wait_for(pilot, lambda: deploys.started, "the deploy to start")


def _warned_prod1() -> list[DeployRecord]:
    """2.15.0 failed in qaprod1 yesterday: deploying it to prod1 is warned."""
    return [failed_deploy("storefront", "qaprod1", "2.15.0")]


async def test_a_warned_protected_deploy_is_confirmed_at_80x24(
    world_config: Config, demo_snapshot: FleetSnapshot
) -> None:
    deploys = ScriptedDeploys(demo_snapshot, recent=_warned_prod1())
    app = stub_app(world_config, demo_snapshot, deploys=deploys)
    async with app.run_test(size=SMALL) as pilot:
        await _first_refresh(pilot)
        dialog = await open_dialog(pilot, 3)  # storefront in prod1
        shown = ("#warnings-area", "#anyway", "#confirm-name", "#confirm", "#cancel")
        assert hidden(dialog, *shown) == []
        assert "failed in qaprod1" in dialog.warnings_text
        await pilot.click("#anyway")
        await _type_prod1_and_deploy(pilot, deploys)


# -- every dialog, opened as a person opens it -----------------------------------------------


async def _cancel_confirmation(pilot: Pilot[None]) -> Screen[object]:
    app = await _first_refresh(pilot)
    deploys = app.deploys
    assert isinstance(deploys, ScriptedDeploys)
    await held_deploy(app, pilot, deploys, "storefront", "staging", "2.15.0")
    await pilot.press("c")
    await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog), "the confirmation")
    return app.screen


async def _deploy_list(pilot: Pilot[None]) -> Screen[object]:
    app = await _first_refresh(pilot)
    deploys = app.deploys
    assert isinstance(deploys, ScriptedDeploys)
    await held_deploy(app, pilot, deploys, "storefront", "staging", "2.15.0")
    await pilot.press("escape", "D")
    await wait_for(pilot, lambda: isinstance(app.screen, DeployListDialog), "the deploy list")
    return app.screen


async def _help(pilot: Pilot[None]) -> Screen[object]:
    app = await _first_refresh(pilot)
    await pilot.press("question_mark")
    await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), "the help")
    return app.screen


DEPLOY_DIALOGS: dict[str, tuple[Opener, tuple[str, ...]]] = {
    "cancel-confirmation": (_cancel_confirmation, ("#question", "#yes", "#no")),
    "deploy-list": (_deploy_list, ("#deploy-list", "#deploy-list-hint")),
    "help": (_help, ("#help-keys",)),
}


@pytest.mark.parametrize("name", DEPLOY_DIALOGS)
async def test_each_console_dialog_fits_80x24(
    name: str, world_config: Config, demo_snapshot: FleetSnapshot
) -> None:
    opener, selectors = DEPLOY_DIALOGS[name]
    deploys = ScriptedDeploys(demo_snapshot, hold_at=Step.CONFIGURE)
    app = stub_app(world_config, demo_snapshot, deploys=deploys)
    async with app.run_test(size=SMALL) as pilot:
        dialog = await opener(pilot)
        await pilot.pause()
        assert hidden(dialog, *selectors) == []


@pytest.mark.parametrize("name", DEPLOY_DIALOGS)
def test_snapshot_console_dialog(
    name: str, snap_compare: SnapCompare, world_config: Config, demo_snapshot: FleetSnapshot
) -> None:
    opener, _ = DEPLOY_DIALOGS[name]
    deploys = ScriptedDeploys(demo_snapshot, hold_at=Step.CONFIGURE)

    async def run_before(pilot: Pilot[None]) -> None:
        await opener(pilot)
        await _still(pilot)

    app = stub_app(world_config, demo_snapshot, deploys=deploys)
    assert snap_compare(app, terminal_size=SMALL, run_before=run_before)


def _prod1_dialog_matches(
    snap_compare: SnapCompare, config: Config, snapshot: FleetSnapshot, deploys: ScriptedDeploys
) -> bool:
    async def run_before(pilot: Pilot[None]) -> None:
        await _first_refresh(pilot)
        await open_dialog(pilot, 3)
        await _still(pilot)

    app = stub_app(config, snapshot, deploys=deploys)
    return bool(snap_compare(app, terminal_size=SMALL, run_before=run_before))


def test_snapshot_protected_deploy_dialog(
    snap_compare: SnapCompare, world_config: Config, demo_snapshot: FleetSnapshot
) -> None:
    deploys = ScriptedDeploys(demo_snapshot)
    assert _prod1_dialog_matches(snap_compare, world_config, demo_snapshot, deploys)


def test_snapshot_warned_protected_deploy_dialog(
    snap_compare: SnapCompare, world_config: Config, demo_snapshot: FleetSnapshot
) -> None:
    """A release that failed lately, to a protected cluster: the warning, the tick and the
    name field all on one 80x24 screen."""
    deploys = ScriptedDeploys(demo_snapshot, recent=_warned_prod1())
    assert _prod1_dialog_matches(snap_compare, world_config, demo_snapshot, deploys)


async def test_the_deploy_log_reads_at_the_full_width_of_80_columns(
    world_config: Config, demo_snapshot: FleetSnapshot
) -> None:
    async with small_console(world_config, demo_snapshot) as (app, pilot, deploys):
        screen = await held_deploy(app, pilot, deploys, "storefront", "prod1", "2.15.0")
        await pilot.pause()
        assert screen.log_widget.region.width == SMALL[0]
        assert screen.log_widget.region.height >= 8
        assert hidden(screen, "#steps", "#log") == []


def test_snapshot_deploy_screen(
    snap_compare: SnapCompare, world_config: Config, demo_snapshot: FleetSnapshot
) -> None:
    """A deploy held in its configure step at 80 columns: its steps and its log both read."""
    deploys = ScriptedDeploys(demo_snapshot, hold_at=Step.CONFIGURE)

    async def run_before(pilot: Pilot[None]) -> None:
        app = await _first_refresh(pilot)
        await held_deploy(app, pilot, deploys, "storefront", "prod1", "2.15.0")
        await pilot.pause()

    app = stub_app(world_config, demo_snapshot, deploys=deploys)
    assert snap_compare(app, terminal_size=SMALL, run_before=run_before)


# -- the queue's dialogs ---------------------------------------------------------------------


QUEUE_DIALOGS: dict[str, tuple[str, type[Screen[object]], tuple[str, ...]]] = {
    "freeze": ("f", FreezeDialog, ("#freeze-cluster", "#freeze-reason", "#freeze", "#cancel")),
    "lock": (
        "l",
        LockDialog,
        ("#lock-scope", "#lock-reason", "#lock-expiry", "#lock-warning", "#lock", "#cancel"),
    ),
    "holds": ("L", HoldsDialog, ("#holds",)),
}


@pytest.mark.parametrize("name", QUEUE_DIALOGS)
async def test_each_queue_dialog_fits_80x24(name: str, tmp_path: Path, config: Config) -> None:
    key, kind, selectors = QUEUE_DIALOGS[name]
    async with queue_screen(tmp_path, config, SMALL) as (app, pilot, screen, _):
        await select(pilot, screen, NEXT_ID)  # media-service's row, free to start
        await pilot.press(key)
        await wait_for(pilot, lambda: isinstance(app.screen, kind), f"the {name} dialog")
        await pilot.pause()
        assert hidden(app.screen, *selectors) == []


@pytest.mark.parametrize("name", QUEUE_DIALOGS)
def test_snapshot_queue_dialog(
    name: str,
    snap_compare: SnapCompare,
    config: Config,
    snapshot_store: Path,  # noqa: F811  (the queue tests' fixture, imported above)
) -> None:
    key, kind, _ = QUEUE_DIALOGS[name]

    async def open_it(pilot: Pilot[None]) -> None:
        await pilot.press(key)
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, kind), f"the {name} dialog")
        await _still(pilot)

    assert _snap_queue(snap_compare, config, snapshot_store, open_it, size=SMALL, row=NEXT_ID)


async def test_the_queue_at_80_columns_keeps_why_each_deploy_waits_readable(
    tmp_path: Path, config: Config
) -> None:
    """Release and actor fold under the state, so the why-waiting column is not cut off."""
    async with queue_screen(tmp_path, config, SMALL) as (_app, _pilot, screen, _):
        table = screen.table
        assert [column.label.plain for column in table.columns.values()] == [
            "pair / deploy", "state", "waited", "why waiting",
        ]  # fmt: skip
        assert table.virtual_size.width <= table.size.width, "no column runs off the screen"
        first, second = rows(screen)[:2]
        assert first[:2] == [f"storefront → staging\n{RUNNING_ID}", "running\n2.15.0 alice"]
        assert second[1] == "queued\n2.14.1 bob"
        assert second[3] == f"behind {RUNNING_ID} (running) on storefront in staging"


def test_snapshot_queue_screen(
    snap_compare: SnapCompare,
    config: Config,
    snapshot_store: Path,  # noqa: F811  (the queue tests' fixture, imported above)
) -> None:
    """The queue at 80x24: the holds above, every row's state and the footer's keys."""
    assert _snap_queue(snap_compare, config, snapshot_store, size=SMALL)


async def test_a_waiting_deploy_says_why_under_its_title_at_80x24() -> None:
    """On a short terminal the outcome line under the steps is out of view: the reason a
    queued deploy waits (a window, a lock, the deploy ahead) is under its title."""
    why = "outside deploy windows of prod1 until Mon 09:00 Europe/Berlin (08:00 UTC)"
    tracked = TrackedDeploy(0, DeployRequest("storefront", "prod1", "2.15.0", "alice"))
    tracked.apply(DeployWaiting("d-1", why))

    class Shows(App[None]):
        def on_mount(self) -> None:
            self.push_screen(DeployScreen(tracked, lambda: FROZEN_NOW, protected=True))

    app = Shows()
    async with app.run_test(size=SMALL) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, DeployScreen), "the deploy screen")
        await pilot.pause()
        visual = app.screen.query_one("#deploy-title", Static).visual
        assert f"\nwaiting: {why}" in str(getattr(visual, "plain", visual))
        assert hidden(app.screen, "#deploy-title") == []
