"""The history screen through Pilot, on a real store file seeded through Store's API.

The fleet is a stand-in (the history reads the store, not AWS); times are frozen at FROZEN_NOW.
"""

from __future__ import annotations

import asyncio
import hashlib
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Static

from console.config import ClusterConfig, Config, ProjectClusterConfig, ProjectConfig
from console.store import DeployRecord, Store
from screens.app import DeployConsoleApp
from screens.dashboard.screen import DashboardScreen
from screens.history import detail as history_detail
from screens.history import screen as history
from screens.history.detail import DeployDetailScreen
from screens.history.screen import HistoryScreen
from screens.messages import ProjectChosen
from screens.project.screen import ProjectScreen
from tests.screens.ui import (
    FROZEN_NOW,
    SteppingClock,
    open_help,
    stub_app,
    text_of,
    wait_for,
)

SnapCompare = Callable[..., bool]
SIZE = (120, 30)

CLUSTERS = tuple(
    ClusterConfig(name, "us-east-1", protected=name.startswith("prod"))
    for name in ("staging", "qaprod1", "prod1", "prod2")
)
RUNS_IN = {
    "storefront": ("staging", "qaprod1", "prod1", "prod2"),
    "checkout-api": ("staging", "prod1"),
    "search-api": ("staging", "prod2"),
}
CONFIG = Config(
    source=Path("history.toml"),
    clusters=CLUSTERS,
    projects=tuple(
        ProjectConfig(
            name=name,
            repository=f"https://git.example.invalid/{name}",
            clusters={cluster: ProjectClusterConfig(target_groups=("tg",)) for cluster in runs_in},
        )
        for name, runs_in in RUNS_IN.items()
    ),
)

SUCCEEDED_STEPS = (
    ("lock", "succeeded", 0.0, "held by {actor}"),
    ("resolve", "succeeded", 0.2, "{release} is ami-0b1e2c3d4e5f60718"),
    ("launch", "succeeded", 0.3, "i-0a1b2c3d4e5f60718"),
    ("configure", "succeeded", 2.1, ""),
    ("register", "succeeded", 0.1, "target group {project}-{cluster}"),
    ("health-gate", "succeeded", 15.0, "up to 45 s"),
    ("traffic-guard", "succeeded", 0.0, ""),
    ("deregister", "succeeded", 5.0, "drained in every load balancer"),
    ("terminate", "succeeded", 0.2, "i-0ffee0ddba11c0de1"),
)
ROLLED_BACK_STEPS = (
    *SUCCEEDED_STEPS[:3],  # lock, resolve, launch
    ("configure", "failed", 14.0, "health command failed on i-0a1b2c3d4e5f60718 (exit 1)"),
    ("rollback", "succeeded", 0.1, "terminated i-0a1b2c3d4e5f60718"),
)


@dataclass(frozen=True)
class Seed:
    """One deploy to record: the pair, who, how it ended, how long before FROZEN_NOW."""

    ago: timedelta
    project: str
    cluster: str
    previous: str
    release: str
    actor: str
    state: str
    reason: str = ""
    steps: tuple[tuple[str, str, float, str], ...] = SUCCEEDED_STEPS

    @property
    def id(self) -> str:
        """Like the engine's: UTC start to the second, then 6 hex digits."""
        suffix = hashlib.sha256(f"{self.project} {self.ago}".encode()).hexdigest()[:6]
        return f"d-{FROZEN_NOW - self.ago:%Y%m%d-%H%M%S}-{suffix}"


# Oldest first (the order they are recorded in).
SEEDS = (
    Seed(timedelta(days=11), "storefront", "staging", "2.14.0", "2.14.1", "alice", "succeeded"),
    Seed(timedelta(days=3), "checkout-api", "prod1", "5.1.0", "5.2.0", "bob", "succeeded"),
    Seed(
        timedelta(hours=30),
        "storefront",
        "prod1",
        "2.14.1",
        "2.15.0",
        "alice",
        "rolled_back",
        "health command failed on i-0a1b2c3d4e5f60718 for 12 s (last exit 1); rolled back: "
        "terminated i-0a1b2c3d4e5f60718; old instances serve",
        ROLLED_BACK_STEPS,
    ),
    Seed(
        timedelta(hours=5),
        "search-api",
        "staging",
        "a91f0c2",
        "b7e0d13",
        "carol",
        "failed",
        "no AMI of search-api has Version b7e0d13",
        (("lock", "succeeded", 0.0, "held by {actor}"), ("resolve", "failed", 0.4, "no AMI")),
    ),
    Seed(
        timedelta(minutes=40),
        "storefront",
        "staging",
        "2.15.0",
        "2.16.0",
        "alice",
        "cancelled",
        "cancelled by alice",
        ROLLED_BACK_STEPS[:3],
    ),
    Seed(timedelta(minutes=10), "checkout-api", "staging", "5.2.0", "5.2.3", "bob", "succeeded"),
)
NEWEST_FIRST = [seed.id for seed in reversed(SEEDS)]


async def record(store: Store, clock: SteppingClock, seed: Seed) -> None:
    """One deploy as the engine records it: the deploy, each step and its audit rows, the end."""
    clock.now = FROZEN_NOW - seed.ago
    who_where = {"actor": seed.actor, "project": seed.project, "cluster": seed.cluster}
    await store.create_deploy(
        DeployRecord(
            id=seed.id, release=seed.release, state="running", created_at=clock.now, **who_where
        )
    )
    await store.set_deploy_state(
        seed.id, "running", image_id="ami-0b1e2c3d4e5f60718", previous_release=seed.previous
    )
    words = {"release": seed.release, **who_where}
    for step, state, seconds, detail in seed.steps:
        text = detail.format(**words)
        await store.step_started(seed.id, step)
        await store.audit(
            "deploy.step", deploy_id=seed.id, step=step, outcome="started", **who_where
        )
        clock.advance(seconds)
        await store.step_finished(seed.id, step, state, detail=text)
        await store.audit(
            "deploy.step", deploy_id=seed.id, step=step, outcome=state, reason=text, **who_where
        )
    if seed.state != "running":
        await store.set_deploy_state(seed.id, seed.state, reason=seed.reason)
        await store.audit(
            "deploy.finished",
            deploy_id=seed.id,
            outcome=seed.state,
            reason=seed.reason,
            **who_where,
        )


async def seed_store(path: Path, seeds: tuple[Seed, ...] = SEEDS) -> None:
    clock = SteppingClock()
    async with await Store.open(path, clock=clock) as store:
        for seed in seeds:
            await record(store, clock, seed)


@pytest.fixture(scope="module")
def seeded_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("history") / "seeded.db"
    asyncio.run(seed_store(path))
    return path


@pytest.fixture
def store_path(seeded_file: Path, tmp_path: Path) -> Path:
    """A copy of the seeded store for one test (closed stores leave no WAL behind)."""
    path = tmp_path / "deploy-console.db"
    shutil.copy(seeded_file, path)
    return path


@pytest.fixture(autouse=True)
def no_refresh(monkeypatch: pytest.MonkeyPatch) -> None:
    """No timed refresh unless a test asks for one: what a test sees is what its keys did."""
    monkeypatch.setattr(history, "REFRESH_SECONDS", 60.0)
    monkeypatch.setattr(history_detail, "REFRESH_SECONDS", 60.0)


@pytest.fixture
def quick_refresh(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(history, "REFRESH_SECONDS", 0.2)
    monkeypatch.setattr(history_detail, "REFRESH_SECONDS", 0.2)


def make_app(store: Store | Path | None) -> DeployConsoleApp:
    return stub_app(CONFIG, history=store)


@asynccontextmanager
async def running(
    store: Store | Path | None, size: tuple[int, int] = SIZE
) -> AsyncIterator[tuple[DeployConsoleApp, Pilot[None]]]:
    app = make_app(store)
    async with app.run_test(size=size) as pilot:
        await wait_for(pilot, lambda: app.refresh_count >= 1, "the first refresh")
        yield app, pilot


@asynccontextmanager
async def history_open(
    path: Path, size: tuple[int, int] = SIZE
) -> AsyncIterator[tuple[HistoryScreen, Pilot[None]]]:
    """The console on the store at path, its history open (h on the dashboard)."""
    async with (
        await Store.open(path, create=False) as store,
        running(store, size) as (_app, pilot),
    ):
        await pilot.press("h")
        screen = await shown_history(pilot)
        yield screen, pilot


async def shown_history(pilot: Pilot[None]) -> HistoryScreen:
    app = pilot.app
    await wait_for(pilot, lambda: isinstance(app.screen, HistoryScreen), "the history screen")
    screen = app.screen
    assert isinstance(screen, HistoryScreen)
    await wait_for(pilot, lambda: screen.read_count >= 1 and not screen.reading, "the first read")
    await pilot.pause()
    return screen


async def shown_detail(pilot: Pilot[None], *keys: str) -> DeployDetailScreen:
    """Press `keys` (enter last) and wait for the deploy's detail, read once."""
    await pilot.press(*keys)
    app = pilot.app
    await wait_for(pilot, lambda: isinstance(app.screen, DeployDetailScreen), "the detail")
    detail = app.screen
    assert isinstance(detail, DeployDetailScreen)
    await wait_for(pilot, lambda: detail.read_count >= 1, "the deploy's records")
    # A DataTable sizes its columns when its own queue is idle, after the rows arrive: a
    # snapshot taken before then shows the header unsized (seen once under load).
    await wait_for(pilot, lambda: not any(map(_sizing, detail.query(DataTable))), "the steps sized")
    # Textual's DataTable keys its rendered rows by an update count that its idle-time sizing
    # does not move: a frame drawn between add_row and the sizing (under load) keeps the
    # header at its unsized widths. Drop those renders so the snapshot is the settled screen.
    for table in detail.query(DataTable):
        table._clear_caches()
        table.refresh()
    await pilot.pause()
    return detail


def _sizing(table: DataTable[object]) -> bool:
    """Whether `table` still has rows or cells to measure (DataTable does it on idle)."""
    return bool(table._require_update_dimensions or table._updated_cells or table._new_rows)


def shown_ids(screen: HistoryScreen) -> list[str]:
    """The deploy ids in the table, top to bottom."""
    table = screen.table
    return [table.get_row_at(row)[0].plain for row in range(table.row_count)]


def row_text(screen: HistoryScreen, deploy_id: str) -> list[str]:
    return [cell.plain.strip() for cell in screen.table.get_row(deploy_id)]


def header_text(detail: DeployDetailScreen) -> str:
    """The detail's header as lines of `label    value`."""
    cells = [text_of(static) for static in detail.query("#detail-header Static").results(Static)]
    return "\n".join(
        f"{label:<9}{value}" for label, value in zip(cells[::2], cells[1::2], strict=True)
    )


def title_text(screen: HistoryScreen) -> str:
    return text_of(screen.query_one("#history-title", Static))


async def type_filter(
    pilot: Pilot[None], screen: HistoryScreen, text: str, *, typed: bool = False
) -> None:
    """`/`, the text (typed key by key, or pasted), Enter; wait until its rows are read."""
    count = screen.read_count
    await pilot.press("slash")
    if typed:
        await pilot.press(*("space" if char == " " else char for char in text))
    else:
        screen.filter_input.value = text
    await pilot.press("enter")
    await wait_for(
        pilot, lambda: screen.read_count > count and not screen.reading, f"rows for {text!r}"
    )
    await pilot.pause()


def ids_of(*seeds: Seed) -> list[str]:
    return [seed.id for seed in seeds]


ALICE_OLD, BOB_PROD1, ALICE_ROLLED_BACK, CAROL_FAILED, ALICE_CANCELLED, BOB_NEW = SEEDS


async def test_h_opens_the_deploys_newest_first(store_path: Path) -> None:
    async with history_open(store_path, size=(160, 30)) as (screen, pilot):
        assert shown_ids(screen) == NEWEST_FIRST
        assert row_text(screen, ALICE_ROLLED_BACK.id) == [
            ALICE_ROLLED_BACK.id,
            "storefront",
            "prod1",
            "2.14.1 → 2.15.0",
            "alice",
            "rolled back",
            "11-25 06:00",
            "14.6s",
            "health command failed on i-0a1b2c3d4e5f60718 …",
        ]
        assert "6 deploys, newest first" in title_text(screen)
        assert "filter: none, every deploy" in title_text(screen)
        # The preview under the table says all of the reason of the deploy under the cursor.
        await pilot.press("down", "down", "down")
        preview = text_of(screen.query_one("#history-preview", Static))
        assert "storefront → prod1  2.14.1 → 2.15.0  rolled back: health command failed" in preview
        assert "old instances serve" in preview

        # Narrower, the reason column goes (no sideways scroll); the cursor stays on its deploy.
        await pilot.resize_terminal(120, 30)
        await wait_for(pilot, lambda: "reason" not in screen.table.columns, "the narrow table")
        assert screen.cursor_record is not None
        assert screen.cursor_record.id == ALICE_ROLLED_BACK.id
        assert shown_ids(screen) == NEWEST_FIRST
        assert {"enter", "slash", "t", "r", "escape"} <= set(screen.active_bindings)


async def test_each_filter_narrows_the_rows(store_path: Path) -> None:
    async with history_open(store_path) as (screen, pilot):
        await type_filter(pilot, screen, "bob", typed=True)
        assert shown_ids(screen) == ids_of(BOB_NEW, BOB_PROD1)
        assert "filter: by bob" in title_text(screen)

        await type_filter(pilot, screen, "storefront")
        assert shown_ids(screen) == ids_of(ALICE_CANCELLED, ALICE_ROLLED_BACK, ALICE_OLD)
        assert "filter: project storefront" in title_text(screen)

        await type_filter(pilot, screen, "storefront prod1")
        assert shown_ids(screen) == ids_of(ALICE_ROLLED_BACK)
        assert "filter: project storefront · cluster prod1" in title_text(screen)

        await type_filter(pilot, screen, "failed")
        assert shown_ids(screen) == ids_of(CAROL_FAILED)
        assert "outcome failed" in title_text(screen)

        await type_filter(pilot, screen, "dave")
        assert shown_ids(screen) == []
        assert "No deploy matches this filter" in text_of(
            screen.query_one("#history-empty", Static)
        )

        # Escape clears the filter: every deploy again.
        count = screen.read_count
        await pilot.press("escape")
        await wait_for(pilot, lambda: screen.read_count > count, "every deploy")
        assert shown_ids(screen) == NEWEST_FIRST
        assert "filter: none, every deploy" in title_text(screen)

        # A word that cannot be used is said so, and left out.
        await type_filter(pilot, screen, "outcome:great storefront")
        assert "✖ outcome:great: not an outcome" in title_text(screen)
        assert shown_ids(screen) == ids_of(ALICE_CANCELLED, ALICE_ROLLED_BACK, ALICE_OLD)

        # With no filter left, Escape goes back.
        await pilot.press("escape")
        await wait_for(pilot, lambda: not screen.filter.active, "the filter cleared")
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, DashboardScreen), "dashboard")


async def test_the_time_range_narrows_to_recent_deploys(store_path: Path) -> None:
    async with history_open(store_path) as (screen, pilot):
        expected = {
            "1h": ids_of(BOB_NEW, ALICE_CANCELLED),
            "24h": ids_of(BOB_NEW, ALICE_CANCELLED, CAROL_FAILED),
            "7d": NEWEST_FIRST[:5],
            None: NEWEST_FIRST,
        }
        for last, ids in expected.items():
            await pilot.press("t")
            await wait_for(pilot, lambda: not screen.reading, f"the range {last}")
            assert screen.filter.last == last
            assert shown_ids(screen) == ids, last
            if last is not None:
                assert f"filter: last {last}" in title_text(screen)

        # Typed days (UTC, each day whole): 2026-11-23 to 2026-11-25.
        await type_filter(pilot, screen, "2026-11-23..2026-11-25")
        assert shown_ids(screen) == ids_of(ALICE_ROLLED_BACK, BOB_PROD1)
        await type_filter(pilot, screen, "since:2026-11-25T06:00 until:2026-11-26T07:30")
        assert shown_ids(screen) == ids_of(CAROL_FAILED, ALICE_ROLLED_BACK)


async def test_enter_shows_the_steps_with_seconds_and_the_audit_log(store_path: Path) -> None:
    async with history_open(store_path) as (screen, pilot):
        detail = await shown_detail(pilot, "down", "down", "down", "enter")

        title = text_of(detail.query_one("#detail-title", Static))
        assert f"deploy {ALICE_ROLLED_BACK.id}  storefront → prod1 🔒" in title
        header = header_text(detail)
        assert "release  2.15.0 · previous 2.14.1 · image ami-0b1e2c3d4e5f60718" in header
        assert "actor    alice" in header
        assert "outcome  rolled back in 14.6s" in header
        assert "reason   health command failed on i-0a1b2c3d4e5f60718 for 12 s" in header
        assert (
            "created 2026-11-25 06:00:00 · started 2026-11-25 06:00:00 · "
            "finished 2026-11-25 06:00:14 (UTC)" in header
        )

        table = detail.steps_table
        steps = [
            [cell.plain.strip() for cell in table.get_row_at(n)] for n in range(table.row_count)
        ]
        assert [row[:3] for row in steps] == [
            ["lock", "✔ succeeded", "0.0s"],
            ["resolve", "✔ succeeded", "0.2s"],
            ["launch", "✔ succeeded", "0.3s"],
            ["configure", "✖ failed", "14.0s"],
            ["rollback", "✔ succeeded", "0.1s"],
        ]
        assert steps[3][4] == "health command failed on i-0a1b2c3d4e5f60718 (exit 1)"

        log = [strip.text for strip in detail.log_widget.lines]
        log = [line.rstrip() for line in log]
        assert log[0] == "06:00:00 deploy.step lock started"
        assert log[7] == (
            "06:00:14 deploy.step configure failed: health command failed on "
            "i-0a1b2c3d4e5f60718 (exit 1)"
        )
        assert log[10].startswith("06:00:14 deploy.finished rolled_back: health command failed")
        assert len([line for line in log if " deploy.step " in line]) == 10

        await pilot.press("escape")
        await wait_for(pilot, lambda: pilot.app.screen is screen, "the history again")
        assert screen.cursor_record is not None
        assert screen.cursor_record.id == ALICE_ROLLED_BACK.id


@pytest.mark.usefixtures("quick_refresh")
async def test_another_consoles_deploys_appear_and_the_cursor_stays(store_path: Path) -> None:
    async with history_open(store_path) as (screen, pilot):
        await pilot.press("down", "down")
        assert screen.cursor_record is not None and screen.cursor_record.id == CAROL_FAILED.id

        # Another console, its own connection to the same file: one deploy running, one queued.
        other_clock = SteppingClock(FROZEN_NOW - timedelta(minutes=2))
        running_seed = Seed(
            timedelta(minutes=2),
            "search-api",
            "prod2",
            "b7e0d13",
            "c0ffee1",
            "dave",
            "running",
            steps=SUCCEEDED_STEPS[:2],
        )
        async with await Store.open(store_path, clock=other_clock, create=False) as other:
            await record(other, other_clock, running_seed)
            await wait_for(
                pilot, lambda: shown_ids(screen)[:1] == [running_seed.id], "the new deploy"
            )
            assert screen.cursor_record is not None
            assert screen.cursor_record.id == CAROL_FAILED.id
            assert screen.table.cursor_row == 3
            assert row_text(screen, running_seed.id)[5:8] == ["running", "11-26 11:58", "2m 00s"]

            # It ends: the row changes in place.
            await other.set_deploy_state(running_seed.id, "succeeded", reason="c0ffee1 serves")
            await wait_for(
                pilot,
                lambda: row_text(screen, running_seed.id)[5] == "succeeded",
                "the deploy's end",
            )
        assert shown_ids(screen) == [running_seed.id, *NEWEST_FIRST]
        assert screen.cursor_record is not None
        assert screen.cursor_record.id == CAROL_FAILED.id


async def test_a_long_history_loads_page_by_page(tmp_path: Path) -> None:
    path = tmp_path / "long.db"
    clock = SteppingClock(FROZEN_NOW - timedelta(days=30))
    async with await Store.open(path, clock=clock) as store:
        for n in range(230):
            clock.advance(600)
            await store.create_deploy(
                DeployRecord(
                    id=f"d-{n:04d}",
                    project="storefront",
                    cluster="staging",
                    release=f"1.{n}.0",
                    actor="alice",
                    state="succeeded",
                    created_at=clock.now,
                )
            )
        async with running(store) as (_app, pilot):
            await pilot.press("h")
            screen = await shown_history(pilot)
            assert shown_ids(screen)[:2] == ["d-0229", "d-0228"]
            assert screen.table.row_count == history.PAGE_SIZE
            assert "more load at the end" in title_text(screen)

            await pilot.press("ctrl+end")  # the last row loaded: the next page comes
            await wait_for(pilot, lambda: screen.table.row_count == 200, "the second page")
            await pilot.press("ctrl+end")
            await wait_for(pilot, lambda: screen.table.row_count == 230, "the last page")
            await wait_for(pilot, lambda: screen.complete, "the end of the history")
            assert shown_ids(screen) == [f"d-{n:04d}" for n in range(229, -1, -1)]
            assert "230 deploys, newest first" in title_text(screen)
            assert "more" not in title_text(screen)


async def test_the_deploys_output_lines_join_its_log_in_time_order(store_path: Path) -> None:
    at = FROZEN_NOW - ALICE_CANCELLED.ago + timedelta(seconds=0.4)
    async with await Store.open(store_path, create=False) as store:
        await store.append_log(
            ALICE_CANCELLED.id,
            [
                (at, "i-0a1b2c3d4e5f60718", "stdout", "[web] migrations: nothing to do"),
                (at, "i-0a1b2c3d4e5f60718", "stderr", "warn: DATABASE_PASSWORD=********"),
            ],
        )
        async with running(store) as (_app, pilot):
            await pilot.press("h")
            screen = await shown_history(pilot)
            detail = await shown_detail(pilot, "down", "enter")
            log = [strip.text.rstrip() for strip in detail.log_widget.lines]
            assert screen.records[1].id == ALICE_CANCELLED.id
            # Between the resolve step's end (0.2 s) and the launch step's end (0.5 s).
            assert log[3:8] == [
                "11:20:00 deploy.step resolve succeeded: 2.16.0 is ami-0b1e2c3d4e5f60718",
                "11:20:00 deploy.step launch started",
                "11:20:00 i-0a1b2c3d4e5f60718 │ [web] migrations: nothing to do",
                "11:20:00 i-0a1b2c3d4e5f60718 │ warn: DATABASE_PASSWORD=********",
                "11:20:00 deploy.step launch succeeded: i-0a1b2c3d4e5f60718",
            ]


async def test_from_the_project_screen_h_shows_that_project(store_path: Path) -> None:
    async with await Store.open(store_path, create=False) as store, running(store) as (app, pilot):
        app.post_message(ProjectChosen("checkout-api", None))
        await wait_for(pilot, lambda: isinstance(app.screen, ProjectScreen), "the project")
        await pilot.press("h")
        screen = await shown_history(pilot)
        assert screen.filter.project == "checkout-api"
        assert shown_ids(screen) == ids_of(BOB_NEW, BOB_PROD1)
        await pilot.press("escape", "escape")  # clear the filter, then back
        await wait_for(pilot, lambda: isinstance(app.screen, ProjectScreen), "the project again")


async def test_without_a_store_h_says_there_is_no_history(tmp_path: Path) -> None:
    async with running(None) as (app, pilot):
        # h is on the footer and in the help all the same: it says why there is nothing.
        assert "h" in app.screen.active_bindings
        help_screen = await open_help(pilot)
        assert ("dashboard", "h", "History", "history.open") in help_screen.rows
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen), "the dashboard")

        await pilot.press("h")
        await wait_for(pilot, lambda: app._notifications, "a notification")
        (note,) = list(app._notifications)
        assert note.message == "No deploy history here: this console runs without a deploy store."
        assert isinstance(app.screen, DashboardScreen)

    missing = tmp_path / "nothing-here" / "deploy-console.db"
    async with running(missing) as (app, pilot):
        await pilot.press("h")
        await wait_for(pilot, lambda: app._notifications, "a notification")
        (note,) = list(app._notifications)
        assert note.message.startswith(f"No deploy history here: no store at {missing}")
        assert isinstance(app.screen, DashboardScreen)
    assert not missing.exists() and not missing.parent.exists()


async def test_a_store_path_is_opened_on_h_and_closed_with_the_app(store_path: Path) -> None:
    async with running(store_path) as (app, pilot):
        await pilot.press("h")
        screen = await shown_history(pilot)
        assert shown_ids(screen) == NEWEST_FIRST
        assert isinstance(app.history, Store)
        opened = app.history
    with pytest.raises(ValueError):  # aiosqlite: "no active connection"
        await opened.deploys()


# -- snapshots (pytest tests/screens/ui/test_history.py --snapshot-update, then look) ---------


@pytest.fixture
def snapshot_app(store_path: Path) -> Iterator[DeployConsoleApp]:
    # A path: the app opens the store on its own event loop, which snap_compare runs.
    yield make_app(store_path)


async def _open_history(pilot: Pilot[None]) -> None:
    await wait_for(pilot, lambda: pilot.app.refresh_count >= 1, "the first refresh")  # type: ignore[attr-defined]
    await pilot.press("h")
    await shown_history(pilot)


def test_snapshot_history(snap_compare: SnapCompare, snapshot_app: DeployConsoleApp) -> None:
    """The list at 120x30, the cursor on the rolled back deploy: its reason under the table."""

    async def run_before(pilot: Pilot[None]) -> None:
        await _open_history(pilot)
        await pilot.press("down", "down", "down")

    assert snap_compare(snapshot_app, terminal_size=SIZE, run_before=run_before)


def test_snapshot_history_detail(snap_compare: SnapCompare, snapshot_app: DeployConsoleApp) -> None:
    async def run_before(pilot: Pilot[None]) -> None:
        await _open_history(pilot)
        await shown_detail(pilot, "down", "down", "down", "enter")

    assert snap_compare(snapshot_app, terminal_size=SIZE, run_before=run_before)
