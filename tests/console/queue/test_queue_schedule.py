"""Scheduled deploys and window overrides on a real store: the migration that adds them, the
queue's checks (a past time, a non-admin's override, a cluster without windows), the
`window-override` audit row committed with the override, and the runner starting a scheduled
deploy when the store's clock reaches its time."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from console.access import AccessDenied
from console.config import Config, load_config
from console.deploy.engine import DeployEngine
from console.model import DeployRequest
from console.queue.release_queue import DeployQueue, QueueError
from console.queue.runner import Runner
from console.store import MIGRATIONS, Store
from tests.console.queue.test_queue import DEMO
from tests.screens.ui import SteppingClock

# Friday 2026-11-27 11:50 UTC: staging's window (09:00-12:00 Berlin) closed at 11:00 UTC.
NOW = datetime(2026, 11, 27, 11, 50, tzinfo=UTC)
CLOSED = "outside deploy windows of staging until Mon 09:00 Europe/Berlin (08:00 UTC)"


def team_config(tmp_path: Path) -> Config:
    """The demo with windows on staging, carol the only admin, everyone else a deployer."""
    text = DEMO.read_text()
    staging = 'name = "staging"\n'
    assert staging in text and 'admins = ["*"]' in text
    text = text.replace(staging, f'{staging}windows = ["Mon-Fri 09:00-12:00 Europe/Berlin"]\n')
    text = text.replace('admins = ["*"]', 'admins = ["carol"]\ndeployers = ["*"]')
    source = tmp_path / "team.toml"
    source.write_text(text)
    return load_config(source)


@pytest.fixture
async def queue(tmp_path: Path) -> AsyncIterator[tuple[DeployQueue, SteppingClock]]:
    clock = SteppingClock(NOW)
    async with await Store.open(tmp_path / "console.db", clock=clock) as store:
        yield DeployQueue(store, team_config(tmp_path)), clock


def request(actor: str = "alice", **changes: object) -> DeployRequest:
    return DeployRequest("storefront", "staging", "2.15.0", actor, **changes)  # type: ignore[arg-type]


async def waiting(queue: DeployQueue) -> dict[str, str]:
    return {entry.record.id: entry.status for entry in await queue.entries()}


async def test_a_store_before_the_schedule_migration_gets_its_columns(tmp_path: Path) -> None:
    ours = next(
        index
        for index, statements in enumerate(MIGRATIONS)
        if any("not_before" in statement for statement in statements)
    )
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        for statements in MIGRATIONS[:ours]:
            for statement in statements:
                db.execute(statement)
        db.execute(f"PRAGMA user_version = {ours}")
        db.execute(
            "INSERT INTO deploys (id, project, cluster, release, actor, state, created_at) "
            "VALUES ('d-old', 'storefront', 'staging', '2.14.0', 'alice', 'queued', "
            "'2026-11-01T10:00:00+00:00')"
        )
    async with await Store.open(path) as store:
        old = await store.deploy("d-old")
        assert old is not None and old.release == "2.14.0"
        assert (old.not_before, old.window_override, old.window_override_by) == (None, None, None)
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)


async def test_a_scheduled_deploy_is_stored_and_waits_for_its_time(
    queue: tuple[DeployQueue, SteppingClock],
) -> None:
    deploys, clock = queue
    at = NOW + timedelta(minutes=5)
    other = DeployRequest("storefront", "qaprod1", "2.15.0", "alice", not_before=at)
    stored = await deploys.enqueue(other, "d-1")
    assert stored.not_before == at
    assert await waiting(deploys) == {"d-1": "scheduled for Fri 11:55 UTC (in 5m 00s)"}
    assert await deploys.claim("runner-a") is None
    clock.now = at
    claimed = await deploys.claim("runner-a")
    assert claimed is not None and claimed.id == "d-1"
    rows = await deploys.store.audit_rows()
    enqueued = next(row for row in rows if row.action == "queue.enqueue")
    assert enqueued.reason == "2.15.0 not before 2026-11-27 11:55:00 UTC"


async def test_a_time_already_past_is_refused(queue: tuple[DeployQueue, SteppingClock]) -> None:
    deploys, _ = queue
    with pytest.raises(QueueError, match="already past"):
        await deploys.enqueue(request(not_before=NOW - timedelta(seconds=1)), "d-1")
    assert await deploys.entries() == []


async def test_an_admin_overrides_at_queueing_with_its_audit_row(
    queue: tuple[DeployQueue, SteppingClock],
) -> None:
    deploys, _ = queue
    await deploys.enqueue(request("carol", window_override="hotfix CHG-7"), "d-1")
    assert await waiting(deploys) == {
        "d-1": "starts next · outside its window by carol: hotfix CHG-7"
    }
    rows = [row for row in await deploys.store.audit_rows() if row.action == "window-override"]
    assert [(r.actor, r.deploy_id, r.cluster, r.outcome, r.reason) for r in rows] == [
        ("carol", "d-1", "staging", "overridden", "hotfix CHG-7")
    ]


async def test_an_admin_overrides_a_waiting_deploy(
    queue: tuple[DeployQueue, SteppingClock],
) -> None:
    deploys, _ = queue
    await deploys.enqueue(request("alice"), "d-1")
    assert await waiting(deploys) == {"d-1": CLOSED}
    assert await deploys.claim("runner-a") is None
    record = await deploys.override_window("d-1", "carol", "the sale starts at noon")
    assert (record.window_override, record.window_override_by) == (
        "the sale starts at noon",
        "carol",
    )
    assert await waiting(deploys) == {
        "d-1": "starts next · outside its window by carol: the sale starts at noon"
    }
    (row,) = [r for r in await deploys.store.audit_rows() if r.action == "window-override"]
    assert (row.actor, row.deploy_id, row.reason) == ("carol", "d-1", "the sale starts at noon")
    with pytest.raises(QueueError, match="may already start outside its window"):
        await deploys.override_window("d-1", "carol", "again")
    claimed = await deploys.claim("runner-a")
    assert claimed is not None and claimed.id == "d-1"
    with pytest.raises(QueueError, match="is running: only a queued deploy"):
        await deploys.override_window("d-1", "carol", "late")


async def test_a_non_admin_may_not_override_and_nothing_changes(
    queue: tuple[DeployQueue, SteppingClock],
) -> None:
    deploys, _ = queue
    with pytest.raises(AccessDenied) as refused:
        await deploys.enqueue(request("alice", window_override="I am in a hurry"), "d-1")
    assert refused.value.message == (
        "alice is a deployer in staging: may not deploy outside its window (needs admin)"
    )
    assert await deploys.entries() == []
    await deploys.enqueue(request("alice"), "d-2")
    with pytest.raises(AccessDenied):
        await deploys.override_window("d-2", "alice", "I am in a hurry")
    assert await waiting(deploys) == {"d-2": CLOSED}
    actions = [row.action for row in await deploys.store.audit_rows()]
    assert "window-override" not in actions


@pytest.mark.parametrize(
    ("reason", "cluster", "message"),
    [
        ("", "staging", "needs a reason"),
        ("two\nlines", "staging", "one line of plain text"),
        ("fine", "qaprod1", "qaprod1 has no deploy windows: there is nothing to override"),
    ],
)
async def test_an_override_needs_a_reason_and_windows(
    queue: tuple[DeployQueue, SteppingClock], reason: str, cluster: str, message: str
) -> None:
    deploys, _ = queue
    await deploys.enqueue(DeployRequest("storefront", cluster, "2.15.0", "alice"), "d-1")
    with pytest.raises(QueueError, match=message):
        await deploys.override_window("d-1", "carol", reason)


def _no_aws(_cluster: str) -> object:
    raise AssertionError("not reached in this test")


async def test_the_runner_starts_a_scheduled_deploy_at_its_time(
    queue: tuple[DeployQueue, SteppingClock],
) -> None:
    deploys, clock = queue
    engine = DeployEngine(deploys.config, _no_aws, deploys.store, _no_aws, clock=clock)  # type: ignore[arg-type]
    runner = Runner(engine, deploys, name="this-console", reconcile=False)
    at = NOW + timedelta(minutes=1)
    await deploys.enqueue(request("carol", not_before=at, window_override="hotfix"), "d-1")
    try:
        clock.now = at - timedelta(seconds=1)
        await runner.tick()
        assert runner.running_here == []
        clock.now = at
        await runner.tick()
        started = await deploys.store.deploy("d-1")
        assert started is not None and started.state != "queued"
        assert started.runner == "this-console" and started.started_at == at
    finally:
        await runner.stop()
