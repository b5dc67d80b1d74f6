"""Roll back, re-run and the full log from the history screen, its detail and the queue, through
Pilot: a real store file seeded through Store's API, deploys scripted (tests/screens/ui/
test_rollback_real.py rolls back for real)."""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Static

from console.config import AccessSettings, Config
from console.model import DeployRequest
from console.store import DeployRecord, Store
from screens.app import DeployConsoleApp
from screens.deploy.dialog import DeployDialog
from screens.deploy.screen import DeployScreen
from screens.history import detail as history_detail
from screens.history import log as history_log
from screens.history import screen as history
from screens.history.log import DeployLogScreen
from screens.history.screen import HistoryScreen
from tests.screens.ui import SteppingClock, stub_app, text_of, wait_for
from tests.screens.ui.deploy_fakes import ScriptedDeploys
from tests.screens.ui.test_history import (
    ALICE_OLD,
    ALICE_ROLLED_BACK,
    BOB_NEW,
    CAROL_FAILED,
    CONFIG,
    NEWEST_FIRST,
    seed_store,
    shown_detail,
    shown_history,
)
from tests.screens.ui.test_queue_screen import RUNNING_ID, queue_screen, select

SnapCompare = Callable[..., bool]
SMALL = (80, 24)
ADMINS = dataclasses.replace(CONFIG, access=AccessSettings(users={"*": "admin"}))


@pytest.fixture(scope="module")
def seeded_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("history") / "seeded.db"
    asyncio.run(seed_store(path))
    return path


@pytest.fixture
def store_path(seeded_file: Path, tmp_path: Path) -> Path:
    """A copy of test_history's seeded store for one test."""
    path = tmp_path / "deploy-console.db"
    shutil.copy(seeded_file, path)
    return path


@pytest.fixture(autouse=True)
def no_refresh(monkeypatch: pytest.MonkeyPatch) -> None:
    """No timed refresh: what a test sees is what its keys did."""
    for module in (history, history_detail, history_log):
        monkeypatch.setattr(module, "REFRESH_SECONDS", 60.0)


def said(app: DeployConsoleApp) -> list[tuple[str, str]]:
    return [(n.title, n.message) for n in app._notifications]


def make_app(
    store: Store | Path, config: Config = ADMINS, deploys: ScriptedDeploys | None = None
) -> DeployConsoleApp:
    return stub_app(config, history=store, deploys=deploys)


@asynccontextmanager
async def history_of(
    path: Path, config: Config = ADMINS, *, deploys: bool = True, size: tuple[int, int] = SMALL
) -> AsyncIterator[tuple[DeployConsoleApp, Pilot[None], HistoryScreen, ScriptedDeploys]]:
    """The console on the seeded store (deploys scripted, or none), its history open."""
    scripted = ScriptedDeploys()
    async with await Store.open(path, create=False) as store:
        app = make_app(store, config, scripted if deploys else None)
        async with app.run_test(size=size) as pilot:
            await wait_for(pilot, lambda: app.refresh_count >= 1, "the first refresh")
            await pilot.press("h")
            screen = await shown_history(pilot)
            yield app, pilot, screen, scripted


async def to_row(pilot: Pilot[None], screen: HistoryScreen, deploy_id: str) -> None:
    row = NEWEST_FIRST.index(deploy_id)
    screen.table.move_cursor(row=row)
    await wait_for(
        pilot,
        lambda: screen.cursor_record is not None and screen.cursor_record.id == deploy_id,
        f"the cursor on {deploy_id}",
    )
    await pilot.pause()


async def shown_dialog(pilot: Pilot[None]) -> DeployDialog:
    app = pilot.app
    await wait_for(pilot, lambda: isinstance(app.screen, DeployDialog), "the deploy dialog")
    dialog = app.screen
    assert isinstance(dialog, DeployDialog)
    await wait_for(pilot, lambda: dialog.plan is not None, "the plan")
    await wait_for(pilot, lambda: dialog.warnings is not None, "the warnings")
    await pilot.pause()
    return dialog


async def test_b_opens_the_dialog_on_the_release_before_and_deploys_it_as_a_rollback(
    store_path: Path,
) -> None:
    async with history_of(store_path) as (app, pilot, screen, deploys):
        await to_row(pilot, screen, ALICE_OLD.id)
        await pilot.press("b")
        dialog = await shown_dialog(pilot)
        assert dialog.highlighted is not None and dialog.highlighted.version == "2.14.0"
        assert dialog.plan is not None and dialog.plan.release.version == "2.14.0"
        box = dialog.query_one("#deploy-box")
        assert box.border_title == "roll back storefront → staging"
        why = text_of(dialog.query_one("#preset-why", Static))
        assert why == f"Rollback of {ALICE_OLD.id}: 2.14.0 again, which 2.14.1 replaced."
        assert str(dialog.confirm_button.label) == "Roll back"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, DeployScreen), "the deploy screen")
        assert deploys.started == [
            DeployRequest("storefront", "staging", "2.14.0", "alice", rollback_of=ALICE_OLD.id)
        ]
        # Escape leaves the deploy running and lands back on the history.
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is screen, "the history again")


async def test_another_release_picked_in_a_rollbacks_dialog_is_a_plain_deploy(
    store_path: Path,
) -> None:
    async with history_of(store_path) as (_, pilot, screen, deploys):
        await to_row(pilot, screen, ALICE_OLD.id)
        await pilot.press("b")
        dialog = await shown_dialog(pilot)
        await pilot.press("up")  # 2.14.1
        await wait_for(
            pilot,
            lambda: dialog.plan is not None and dialog.plan.release.version == "2.14.1",
            "the plan of 2.14.1",
        )
        assert str(dialog.confirm_button.label) == "Deploy"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: deploys.started, "the deploy")
        assert deploys.started[0].rollback_of is None


async def test_R_reruns_a_rolled_back_deploy_through_the_protected_confirmation(
    store_path: Path,
) -> None:
    async with history_of(store_path) as (_, pilot, screen, deploys):
        await to_row(pilot, screen, ALICE_ROLLED_BACK.id)
        await pilot.press("R")
        dialog = await shown_dialog(pilot)
        assert dialog.highlighted is not None and dialog.highlighted.version == "2.15.0"
        assert dialog.query_one("#deploy-box").border_title == "deploy storefront → prod1 🔒"
        why = text_of(dialog.query_one("#preset-why", Static))
        assert why == f"Re-run of {ALICE_ROLLED_BACK.id} (rolled back): 2.15.0 again."
        assert dialog.confirm_button.disabled  # prod1 is protected: its name first
        await pilot.click("#confirm-name")
        await pilot.press(*"prod1")
        await wait_for(pilot, lambda: not dialog.confirm_button.disabled, "Deploy enabled")
        await pilot.press("enter")
        await wait_for(pilot, lambda: deploys.started, "the deploy")
        assert deploys.started == [DeployRequest("storefront", "prod1", "2.15.0", "alice")]


@pytest.mark.parametrize(
    ("deploy_id", "key", "title", "why"),
    [
        (
            ALICE_ROLLED_BACK.id,
            "b",
            "Roll back: not now",
            f"{ALICE_ROLLED_BACK.id} rolled back: 2.14.1 still runs, nothing to roll back "
            "(R runs 2.15.0 again).",
        ),
        (
            CAROL_FAILED.id,
            "b",
            "Roll back: not now",
            f"{CAROL_FAILED.id} failed: a91f0c2 still runs, nothing to roll back "
            "(R runs b7e0d13 again).",
        ),
        (
            BOB_NEW.id,
            "R",
            "Re-run: not now",
            f"{BOB_NEW.id} succeeded: b rolls it back; d on the dashboard deploys 5.2.3 again.",
        ),
    ],
)
async def test_a_key_that_does_not_apply_to_the_row_says_why(
    store_path: Path, deploy_id: str, key: str, title: str, why: str
) -> None:
    async with history_of(store_path) as (app, pilot, screen, deploys):
        await to_row(pilot, screen, deploy_id)
        await pilot.press(key)
        await wait_for(pilot, lambda: said(app), "a word on the refused key")
        assert said(app) == [(title, why)]
        assert app.screen is screen and not deploys.started


async def test_a_viewer_and_a_console_without_deploys_are_told_why(store_path: Path) -> None:
    async with history_of(store_path, CONFIG) as (app, pilot, screen, _):  # nobody named
        await to_row(pilot, screen, ALICE_OLD.id)
        await pilot.press("b")
        await wait_for(pilot, lambda: said(app), "the refusal")
        title, why = said(app)[0]
        assert title == "Roll back: not now"
        assert why.startswith("alice is a viewer")
    async with history_of(store_path, deploys=False) as (app, pilot, screen, _):
        await to_row(pilot, screen, ALICE_OLD.id)
        assert screen.check_action("rollback", ()) is False  # not in the footer
        await pilot.press("R")
        await wait_for(pilot, lambda: said(app), "the refusal")
        assert said(app) == [("Re-run: not now", "this console runs no deploys")]


async def test_the_detail_rolls_back_and_opens_the_full_log(store_path: Path) -> None:
    async with history_of(store_path) as (app, pilot, screen, _):
        await to_row(pilot, screen, BOB_NEW.id)
        detail = await shown_detail(pilot, "enter")
        await pilot.press("R")  # succeeded: nothing to re-run
        await wait_for(pilot, lambda: said(app), "the refusal")
        assert said(app)[0][0] == "Re-run: not now"
        await pilot.press("o")
        await wait_for(pilot, lambda: isinstance(app.screen, DeployLogScreen), "the log")
        log = app.screen
        assert isinstance(log, DeployLogScreen)
        await wait_for(pilot, lambda: log.read_count >= 1, "the log read")
        await pilot.pause()
        lines = [line.plain for line in log.lines]
        assert lines[-1].endswith("deploy.finished succeeded")
        assert log.log_widget.is_vertical_scroll_end, "opened at the end"
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is detail, "the detail again")
        await pilot.press("b")
        dialog = await shown_dialog(pilot)
        assert dialog.highlighted is not None and dialog.highlighted.version == "5.2.0"


async def test_o_on_the_queue_opens_the_deploys_log(tmp_path: Path) -> None:
    from console.config import load_config
    from tests.conftest import DEMO_CONFIG

    async with queue_screen(tmp_path, load_config(DEMO_CONFIG)) as (app, pilot, screen, _):
        await select(pilot, screen, RUNNING_ID)
        await pilot.press("o")
        await wait_for(pilot, lambda: isinstance(app.screen, DeployLogScreen), "the log")
        log = app.screen
        assert isinstance(log, DeployLogScreen)
        await wait_for(pilot, lambda: log.read_count >= 1, "the log read")
        assert log.deploy_id == RUNNING_ID
        assert any("queue.enqueue queued: 2.15.0" in line.plain for line in log.lines)


# -- snapshots at 80x24: the new keys in the footer -----------------------------------------


@pytest.fixture
def snapshot_app(store_path: Path) -> Iterator[DeployConsoleApp]:
    yield make_app(store_path, deploys=ScriptedDeploys())


async def _history(pilot: Pilot[None]) -> HistoryScreen:
    await wait_for(pilot, lambda: pilot.app.refresh_count >= 1, "the first refresh")  # type: ignore[attr-defined]
    await pilot.press("h")
    return await shown_history(pilot)


def test_snapshot_history_80x24(snap_compare: SnapCompare, snapshot_app: DeployConsoleApp) -> None:
    """The list at 80x24, the cursor on a deploy that succeeded: b, R and o in the footer."""

    async def run_before(pilot: Pilot[None]) -> None:
        screen = await _history(pilot)
        await to_row(pilot, screen, BOB_NEW.id)

    assert snap_compare(snapshot_app, terminal_size=SMALL, run_before=run_before)


def test_snapshot_history_detail_80x24(
    snap_compare: SnapCompare, snapshot_app: DeployConsoleApp
) -> None:
    async def run_before(pilot: Pilot[None]) -> None:
        await _history(pilot)
        await shown_detail(pilot, "enter")

    assert snap_compare(snapshot_app, terminal_size=SMALL, run_before=run_before)


def test_snapshot_rollback_dialog_80x24(
    snap_compare: SnapCompare, snapshot_app: DeployConsoleApp
) -> None:
    async def run_before(pilot: Pilot[None]) -> None:
        screen = await _history(pilot)
        await to_row(pilot, screen, ALICE_OLD.id)
        await pilot.press("b")
        await shown_dialog(pilot)

    assert snap_compare(snapshot_app, terminal_size=SMALL, run_before=run_before)


def test_snapshot_deploy_log_80x24(
    snap_compare: SnapCompare, snapshot_app: DeployConsoleApp
) -> None:
    async def run_before(pilot: Pilot[None]) -> None:
        screen = await _history(pilot)
        await to_row(pilot, screen, ALICE_ROLLED_BACK.id)
        await pilot.press("o")
        app = pilot.app
        await wait_for(pilot, lambda: isinstance(app.screen, DeployLogScreen), "the log")
        log = app.screen
        assert isinstance(log, DeployLogScreen)
        await wait_for(pilot, lambda: log.read_count >= 1, "the log read")
        await pilot.pause()

    assert snap_compare(snapshot_app, terminal_size=SMALL, run_before=run_before)


async def test_without_a_previous_release_the_pairs_last_success_before_it_is_put_back(
    tmp_path: Path,
) -> None:
    """An old record that never said what it replaced: the release of the pair's last deploy
    that succeeded before it; the pair's first deploy has nothing to go back to, and says so."""
    clock = SteppingClock()
    first, second = "d-20261120-120000-aaaaaa", "d-20261121-120000-bbbbbb"
    async with await Store.open(tmp_path / "old.db", clock=clock) as store:
        for deploy_id, release in ((first, "2.14.0"), (second, "2.14.1")):
            record = DeployRecord(
                id=deploy_id,
                project="storefront",
                cluster="staging",
                release=release,
                actor="alice",
                created_at=clock.now,
            )
            await store.create_deploy(record)
            await store.set_deploy_state(deploy_id, "succeeded", reason=f"{release} serves")
            clock.advance(60)
        app = make_app(store, deploys=ScriptedDeploys())
        async with app.run_test(size=SMALL) as pilot:
            await wait_for(pilot, lambda: app.refresh_count >= 1, "the first refresh")
            await pilot.press("h")
            screen = await shown_history(pilot)
            assert [r.id for r in screen.records] == [second, first]
            await pilot.press("b")
            dialog = await shown_dialog(pilot)
            assert dialog.preset is not None and dialog.preset.release == "2.14.0"
            assert dialog.preset.rollback_of == second
            await pilot.press("escape")
            await wait_for(pilot, lambda: app.screen is screen, "the history again")
            await pilot.press("down", "b")
            await wait_for(pilot, lambda: said(app), "the word on the first deploy")
            assert said(app) == [
                (
                    "Roll back: not now",
                    f"{first} replaced no release (the first deploy of storefront to staging): "
                    "nothing to roll back to.",
                )
            ]
