"""The store: schema versions, execution locks across processes, deploys, steps, the audit chain."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import sqlite3
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import console.store
from console.errors import LockBusy, StoreError
from console.store import GENESIS_HASH, MIGRATIONS, DeployRecord, Store, filesystem_type

START = datetime(2026, 11, 26, 16, 23, 1, tzinfo=UTC)
PROCESS_TIMEOUT = 60.0


class Clock:
    """A clock the test moves, so that staleness and step seconds need no waiting."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "deploy-console" / "console.db"


@pytest.fixture
async def store(path: Path, clock: Clock) -> AsyncIterator[Store]:
    async with await Store.open(path, clock=clock) as opened:
        yield opened


def deploy_record(deploy_id: str, **changes: Any) -> DeployRecord:
    values: dict[str, Any] = {
        "id": deploy_id,
        "project": "storefront",
        "cluster": "prod1",
        "release": "2.4.1",
        "actor": "alice",
        "created_at": START,
    }
    return DeployRecord(**(values | changes))


def raw(path: Path) -> sqlite3.Connection:
    """A plain sqlite3 connection, as another program (or an intruder) would open the file."""
    return sqlite3.connect(path, isolation_level=None)


# Opening and schema versions


async def test_open_creates_folders_and_migrates_an_empty_file(path: Path) -> None:
    async with await Store.open(path):
        pass
    with raw(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        plan = db.execute(
            "EXPLAIN QUERY PLAN SELECT * FROM audit WHERE project = 'x' ORDER BY id DESC LIMIT 50"
        ).fetchall()
        assert any("audit_by_project" in step[-1] for step in plan)
        plan = db.execute(
            "EXPLAIN QUERY PLAN SELECT * FROM deploys WHERE project = 'x' AND cluster = 'y' "
            "ORDER BY seq DESC LIMIT 50"
        ).fetchall()
        assert any("deploys_by_key" in step[-1] for step in plan)


async def test_reopening_keeps_everything(path: Path, clock: Clock) -> None:
    async with await Store.open(path, clock=clock) as store:
        await store.create_deploy(deploy_record("d-1"))
        await store.acquire_lock("storefront", "prod1", "d-1", "alice")
        await store.step_started("d-1", "lock")
        audit_id = await store.audit("deploy.queued", actor="alice", deploy_id="d-1")
    async with await Store.open(path, clock=clock) as store:
        assert await store.deploy("d-1") == deploy_record("d-1", position=1.0)
        holder = await store.lock_holder("storefront", "prod1")
        assert holder is not None and holder.deploy_id == "d-1"
        assert [step.step for step in await store.steps("d-1")] == ["lock"]
        assert [row.id for row in await store.audit_rows()] == [audit_id]
        assert await store.verify_audit() is None


async def test_a_store_from_a_newer_console_is_refused(path: Path) -> None:
    async with await Store.open(path):
        pass
    with raw(path) as db:
        db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    with pytest.raises(StoreError, match="made by a newer deploy-console") as raised:
        await Store.open(path)
    assert "\n" not in str(raised.value)


async def test_a_file_that_is_not_sqlite_is_refused_and_left_alone(path: Path) -> None:
    path.parent.mkdir(parents=True)
    path.write_text("[deploy]\nthis is a TOML file, not a database\n" * 100)
    before = path.read_bytes()
    with pytest.raises(StoreError, match="not a deploy-console store") as raised:
        await Store.open(path)
    assert "\n" not in str(raised.value) and "Traceback" not in str(raised.value)
    assert path.read_bytes() == before


async def test_open_without_create_refuses_what_is_not_a_store_and_changes_nothing(
    path: Path, tmp_path: Path
) -> None:
    with pytest.raises(StoreError, match="no store at") as raised:
        await Store.open(path, create=False)
    assert "\n" not in str(raised.value)
    assert not path.exists() and not path.parent.exists()
    foreign = tmp_path / "other app.db"  # a blank: the URI must be quoted
    with raw(foreign) as db:
        db.execute("CREATE TABLE notes (body TEXT)")
    empty = tmp_path / "empty.db"
    empty.touch()
    for candidate in (foreign, empty):
        before = candidate.read_bytes()
        with pytest.raises(StoreError, match="is not a deploy-console store"):
            await Store.open(candidate, create=False)
        assert candidate.read_bytes() == before
        assert not Path(f"{candidate}-wal").exists()
    async with await Store.open(path) as store:
        await store.audit("deploy.queued", actor="alice")
    async with await Store.open(path, create=False) as store:
        assert [row.actor for row in await store.audit_rows()] == ["alice"]


def test_filesystem_type_takes_the_longest_mount_point() -> None:
    mounts = (
        "/dev/vda / ext4 rw 0 0\n"
        "server:/export /srv/shared nfs4 rw 0 0\n"
        "//nas/team /srv/team\\040drive cifs rw 0 0\n"
        "/dev/vdb /srv/shared/local ext4 rw 0 0\n"
    )
    assert filesystem_type(Path("/srv/shared/console/console.db"), mounts) == "nfs4"
    assert filesystem_type(Path("/srv/team drive/console.db"), mounts) == "cifs"
    assert filesystem_type(Path("/srv/shared/local/console.db"), mounts) == "ext4"
    assert filesystem_type(Path("/srv/sharedness/console.db"), mounts) == "ext4"


async def test_a_store_on_a_network_filesystem_is_refused(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(console.store.files, "filesystem_type", lambda folder: "nfs4")
    with pytest.raises(StoreError, match=r"network filesystem \(nfs4\)"):
        await Store.open(path)
    assert not path.exists()


# Execution locks


async def test_a_held_lock_is_busy_for_another_deploy(store: Store) -> None:
    await store.acquire_lock("storefront", "prod1", "d-1", "alice")
    with pytest.raises(LockBusy) as raised:
        await store.acquire_lock("storefront", "prod1", "d-2", "bob")
    assert raised.value.deploy_id == "d-1"
    assert str(raised.value) == (
        "storefront in prod1 is locked by deploy d-1 (alice, since 2026-11-26 16:23:01 UTC)"
    )
    # Another cluster or project is another lock; the holder may acquire again.
    await store.acquire_lock("storefront", "staging", "d-3", "bob")
    await store.acquire_lock("media", "prod1", "d-4", "bob")
    await store.acquire_lock("storefront", "prod1", "d-1", "alice")
    holder_now = await store.lock_holder("storefront", "prod1")
    assert holder_now is not None and holder_now.deploy_id == "d-1"


async def test_only_the_holder_releases_the_lock(store: Store) -> None:
    await store.acquire_lock("storefront", "prod1", "d-1", "alice")
    await store.release_lock("storefront", "prod1", "d-2")
    holder = await store.lock_holder("storefront", "prod1")
    assert holder is not None and holder.deploy_id == "d-1"
    await store.release_lock("storefront", "prod1", "d-1")
    assert await store.lock_holder("storefront", "prod1") is None
    await store.acquire_lock("storefront", "prod1", "d-2", "bob")


async def test_heartbeats_keep_a_lock_and_a_stale_one_is_taken_over(
    store: Store, clock: Clock
) -> None:
    await store.create_deploy(deploy_record("d-1", state="running"))
    await store.acquire_lock("storefront", "prod1", "d-1", "alice")
    for _ in range(3):
        clock.advance(25)
        assert await store.heartbeat("storefront", "prod1", "d-1")
        with pytest.raises(LockBusy):
            await store.acquire_lock("storefront", "prod1", "d-2", "bob", stale_after=30)
    clock.advance(31)
    await store.acquire_lock("storefront", "prod1", "d-2", "bob", stale_after=30)

    holder = await store.lock_holder("storefront", "prod1")
    assert holder is not None
    assert (holder.deploy_id, holder.actor, holder.acquired_at) == ("d-2", "bob", clock.now)
    interrupted = await store.deploy("d-1")
    assert interrupted is not None
    assert (interrupted.state, interrupted.finished_at) == ("interrupted", clock.now)
    assert "lock taken over by deploy d-2" in interrupted.reason
    [row] = await store.audit_rows(deploy_id="d-1")
    assert (row.action, row.actor, row.outcome) == ("lock.taken_over", "bob", "interrupted")
    # The old holder learns it lost the lock and cannot release the new holder's.
    assert not await store.heartbeat("storefront", "prod1", "d-1")
    await store.release_lock("storefront", "prod1", "d-1")
    assert await store.lock_holder("storefront", "prod1") == holder


def _race_for_the_lock(path: str, deploy_id: str, barrier: Any, results: Any) -> None:
    async def race() -> None:
        async with await Store.open(Path(path)) as store:
            barrier.wait(timeout=PROCESS_TIMEOUT)
            try:
                await store.acquire_lock("storefront", "prod1", deploy_id, "racer")
            except LockBusy as busy:
                results.put((deploy_id, busy.deploy_id))
            else:
                results.put((deploy_id, deploy_id))

    asyncio.run(race())


def _append_audit_rows(path: str, actor: str, count: int, barrier: Any, results: Any) -> None:
    async def append() -> None:
        async with await Store.open(Path(path)) as store:
            barrier.wait(timeout=PROCESS_TIMEOUT)
            ids = [
                await store.audit("test.append", actor=actor, reason=str(n)) for n in range(count)
            ]
            results.put((actor, ids))

    asyncio.run(append())


def _open_a_new_store(path: str, name: str, barrier: Any, results: Any) -> None:
    async def open_it() -> None:
        barrier.wait(timeout=PROCESS_TIMEOUT)
        async with await Store.open(Path(path)) as store:
            results.put((name, await store.audit("test.opened", actor=name)))

    asyncio.run(open_it())


def run_processes(
    target: Callable[..., None], argument_lists: list[tuple[Any, ...]]
) -> list[tuple[Any, ...]]:
    """Run target in one real process per argument list, all released at once by a barrier."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(len(argument_lists))
    results = context.Queue()
    processes = [
        context.Process(target=target, args=(*arguments, barrier, results))
        for arguments in argument_lists
    ]
    for process in processes:
        process.start()
    # The results are far smaller than a pipe's buffer: children exit before the queue is read.
    for process in processes:
        process.join(timeout=PROCESS_TIMEOUT)
        if process.is_alive():
            process.kill()
    assert [process.exitcode for process in processes] == [0] * len(processes)
    return [results.get(timeout=PROCESS_TIMEOUT) for _ in processes]


def run(coroutine: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coroutine)


def test_processes_racing_for_one_lock_have_exactly_one_winner(path: Path) -> None:
    racers = [f"d-{n}" for n in range(4)]
    results = run_processes(_race_for_the_lock, [(str(path), racer) for racer in racers])

    winners = {deploy_id for deploy_id, holder in results if deploy_id == holder}
    assert len(winners) == 1
    assert {holder for _, holder in results} == winners
    assert sorted(deploy_id for deploy_id, _ in results) == racers

    async def holder() -> str | None:
        async with await Store.open(path) as store:
            info = await store.lock_holder("storefront", "prod1")
            return None if info is None else info.deploy_id

    assert run(holder()) == winners.pop()


def test_processes_appending_at_once_keep_one_chain(path: Path) -> None:
    count = 150
    results = run_processes(
        _append_audit_rows, [(str(path), "first", count), (str(path), "second", count)]
    )

    ids = {actor: row_ids for actor, row_ids in results}
    assert sorted(ids["first"] + ids["second"]) == list(range(1, 2 * count + 1))

    async def check() -> None:
        async with await Store.open(path) as store:
            rows = await store.audit_rows()
            assert [row.id for row in rows] == list(range(1, 2 * count + 1))
            for actor, row_ids in ids.items():
                mine = [row for row in rows if row.actor == actor]
                assert [row.id for row in mine] == row_ids
                assert [row.reason for row in mine] == [str(n) for n in range(count)]
            assert await store.verify_audit() is None

    run(check())


async def test_a_write_that_stays_locked_out_fails_in_one_line(path: Path) -> None:
    async with await Store.open(path, busy_timeout=0.01) as store:
        other = raw(path)
        other.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(StoreError, match="stayed locked by another process"):
                await store.audit("deploy.queued", actor="alice")
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert await store.audit("deploy.queued", actor="alice") == 1


# Deploys and steps


async def test_deploy_states_stamp_their_times(store: Store, clock: Clock) -> None:
    await store.create_deploy(deploy_record("d-1"))
    clock.advance(5)
    await store.set_deploy_state("d-1", "running", image_id="ami-0abc")
    started_at = clock.now
    clock.advance(60)
    await store.set_deploy_state("d-1", "failed", reason="health gate timed out after 95 s")

    record = await store.deploy("d-1")
    assert record == deploy_record(
        "d-1",
        image_id="ami-0abc",
        position=1.0,
        state="failed",
        started_at=started_at,
        finished_at=clock.now,
        reason="health gate timed out after 95 s",
    )
    assert await store.deploy("d-unknown") is None
    with pytest.raises(StoreError, match="d-unknown is not in the store"):
        await store.set_deploy_state("d-unknown", "running")
    with pytest.raises(StoreError, match="already in the store"):
        await store.create_deploy(deploy_record("d-1"))
    with pytest.raises(StoreError, match="unknown deploy state"):
        await store.set_deploy_state("d-1", "exploded")


async def test_deploys_list_newest_first_and_unfinished_oldest_first(store: Store) -> None:
    for n, (project, cluster, state) in enumerate(
        [
            ("storefront", "prod1", "succeeded"),
            ("storefront", "staging", "running"),
            ("media", "prod1", "queued"),
            ("storefront", "prod1", "queued"),
            ("storefront", "prod1", "cancelled"),
        ]
    ):
        await store.create_deploy(
            deploy_record(f"d-{n}", project=project, cluster=cluster, state=state)
        )

    assert [record.id for record in await store.deploys()] == ["d-4", "d-3", "d-2", "d-1", "d-0"]
    assert [record.id for record in await store.deploys(limit=2)] == ["d-4", "d-3"]
    storefront_prod1 = await store.deploys(project="storefront", cluster="prod1")
    assert [record.id for record in storefront_prod1] == ["d-4", "d-3", "d-0"]
    assert [record.id for record in await store.deploys(cluster="prod1")] == [
        "d-4",
        "d-3",
        "d-2",
        "d-0",
    ]
    assert [record.id for record in await store.unfinished_deploys()] == ["d-1", "d-2", "d-3"]


async def test_steps_record_their_seconds(store: Store, clock: Clock) -> None:
    await store.create_deploy(deploy_record("d-1"))
    await store.step_started("d-1", "lock")
    clock.advance(0.25)
    await store.step_finished("d-1", "lock", "succeeded")
    await store.step_started("d-1", "launch", detail="2 instances")
    clock.advance(42.5)
    await store.step_finished("d-1", "launch", "failed", detail="InsufficientInstanceCapacity")
    await store.step_finished("d-1", "terminate", "skipped")

    steps = await store.steps("d-1")
    assert [(step.step, step.state, step.seconds) for step in steps] == [
        ("lock", "succeeded", 0.25),
        ("launch", "failed", 42.5),
        ("terminate", "skipped", 0.0),
    ]
    assert steps[0].started_at == START
    assert steps[1].finished_at == START + timedelta(seconds=42.75)
    assert steps[1].detail == "InsufficientInstanceCapacity"

    await store.step_started("d-1", "configure", detail="10.0.1.5")
    [*_, running] = await store.steps("d-1")
    assert (running.state, running.finished_at, running.seconds) == ("running", None, None)
    assert running.detail == "10.0.1.5"
    with pytest.raises(StoreError, match="d-unknown is not in the store"):
        await store.step_started("d-unknown", "lock")


# Audit


async def test_audit_rows_chain_and_read_back(store: Store, clock: Clock) -> None:
    first = await store.audit(
        "deploy.step",
        actor="alice",
        project="storefront",
        cluster="prod1",
        deploy_id="d-1",
        image_id="ami-0abc",
        instance_ids=["i-1", "i-2"],
        step="launch",
        outcome="succeeded",
        reason="2 launched",
        ticket="CHG-42",
    )
    clock.advance(1)
    second = await store.audit("lock.created", actor="bob", reason="freeze for the sale")

    rows = await store.audit_rows()
    assert [row.id for row in rows] == [first, second] == [1, 2]
    assert rows[0].prev_hash == GENESIS_HASH and rows[1].prev_hash == rows[0].hash
    assert (rows[0].at, rows[0].instance_ids, rows[0].ticket) == (START, ("i-1", "i-2"), "CHG-42")
    assert (rows[1].project, rows[1].instance_ids, rows[1].step) == (None, (), None)
    assert await store.verify_audit() is None


async def test_audit_rows_filter_and_page_back_by_id(store: Store) -> None:
    for n in range(10):
        project = "storefront" if n % 2 else "media"
        await store.audit("deploy.step", actor="alice", project=project, deploy_id=f"d-{n % 3}")

    assert [row.id for row in await store.audit_rows(limit=3)] == [8, 9, 10]
    assert [row.id for row in await store.audit_rows(before=8, limit=3)] == [5, 6, 7]
    assert [row.id for row in await store.audit_rows(deploy_id="d-1")] == [2, 5, 8]
    assert [row.id for row in await store.audit_rows(project="media", limit=2)] == [7, 9]


async def test_tasks_sharing_one_store_keep_one_chain(store: Store) -> None:
    ids = await asyncio.gather(*(store.audit("test", actor=f"task-{n}") for n in range(50)))
    assert sorted(ids) == list(range(1, 51))
    assert await store.verify_audit() is None


async def test_audit_rows_refuse_update_and_delete(store: Store, path: Path) -> None:
    await store.audit("deploy.queued", actor="alice")
    with raw(path) as db:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            db.execute("UPDATE audit SET actor = 'mallory'")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            db.execute("DELETE FROM audit")
    [row] = await store.audit_rows()
    assert row.actor == "alice"


@pytest.mark.parametrize(
    ("tamper", "first_bad"),
    [
        ("UPDATE audit SET reason = 'nothing to see' WHERE id = 3", 3),
        ("UPDATE audit SET at = '2026-01-01T00:00:00.000000+00:00' WHERE id = 2", 2),
        ("DELETE FROM audit WHERE id = 2", 2),  # the first missing id
    ],
)
async def test_verify_audit_names_the_first_tampered_row(
    store: Store, path: Path, tamper: str, first_bad: int
) -> None:
    for n in range(5):
        await store.audit("deploy.step", actor="alice", reason=f"step {n}")
    with raw(path) as db:
        db.execute("DROP TRIGGER audit_no_update")
        db.execute("DROP TRIGGER audit_no_delete")
        db.execute(tamper)
    assert await store.verify_audit() == first_bad


async def test_a_store_of_schema_1_is_migrated_forward_keeping_its_deploys(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        for statement in MIGRATIONS[0]:
            db.execute(statement)
        db.execute("PRAGMA user_version = 1")
        db.execute(
            "INSERT INTO deploys (id, project, cluster, release, actor, state, created_at) "
            "VALUES ('d-old', 'storefront', 'staging', '2.14.0', 'alice', 'succeeded', "
            "'2026-11-01T10:00:00+00:00')"
        )
    async with await Store.open(path) as store:
        record = await store.deploy("d-old")
        assert record is not None and record.release == "2.14.0"
        assert record.previous_release is None
        assert record.position == 1.0  # an old deploy takes its place in the queue order
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)


def test_processes_creating_one_new_store_at_once_all_open_it(path: Path) -> None:
    """Deploys started together from several terminals on a fresh machine all get the store:
    the WAL switch and the first migration race, and no process sees "database is locked"."""
    names = [f"terminal-{n}" for n in range(6)]
    results = run_processes(_open_a_new_store, [(str(path), name) for name in names])

    assert sorted(name for name, _ in results) == names
    assert sorted(row_id for _, row_id in results) == list(range(1, len(names) + 1))


async def _tampered(store: Store, path: Path, *statements: str) -> None:
    for n in range(6):
        await store.audit("deploy.step", actor="alice", reason=f"step {n}")
    with raw(path) as db:
        db.execute("DROP TRIGGER audit_no_update")
        db.execute("DROP TRIGGER audit_no_delete")
        for statement in statements:
            db.execute(statement)


async def test_check_audit_counts_the_rows_and_gives_the_head(store: Store) -> None:
    assert await store.check_audit() == console.store.AuditCheck(0, GENESIS_HASH, None)
    for n in range(3):
        await store.audit("deploy.step", actor="alice", reason=f"step {n}")
    check = await store.check_audit()
    assert (check.rows, check.head, check.problem) == (3, (await store.audit_rows())[-1].hash, None)


@pytest.mark.parametrize(
    ("statements", "problem"),
    [
        (["UPDATE audit SET actor = 'mallory' WHERE id = 4"], (4, "changed")),
        (["DELETE FROM audit WHERE id IN (3, 4)"], (3, "missing")),
        (["DELETE FROM audit WHERE id = 1"], (1, "missing")),
        # Two rows swap places: each keeps its contents and hash under the other's id.
        (
            [
                "UPDATE audit SET id = -3 WHERE id = 3",
                "UPDATE audit SET id = 3 WHERE id = 4",
                "UPDATE audit SET id = 4 WHERE id = -3",
            ],
            (3, "out of order"),
        ),
    ],
)
async def test_check_audit_says_what_is_wrong_with_the_first_bad_row(
    store: Store, path: Path, statements: list[str], problem: tuple[int, str]
) -> None:
    await _tampered(store, path, *statements)
    check = await store.check_audit()
    assert check.problem is not None
    assert (check.problem.id, check.problem.kind) == problem
    assert check.rows == problem[0] - 1
    assert "\n" not in check.problem.detail


async def test_a_row_rewritten_with_its_hash_breaks_the_next_link(store: Store, path: Path) -> None:
    await _tampered(store, path)
    rows = {row.id: row for row in await store.audit_rows()}
    changed = {**{n: getattr(rows[3], n) for n in console.store.AUDIT_HASHED}, "actor": "mallory"}
    changed |= {"at": rows[3].at.isoformat(timespec="microseconds"), "instance_ids": "[]"}
    new_hash = console.store.audit_hash(rows[3].prev_hash, changed)
    with raw(path) as db:
        db.execute("UPDATE audit SET actor = 'mallory', hash = ? WHERE id = 3", (new_hash,))
    problem = (await store.check_audit()).problem
    assert problem is not None
    assert (problem.id, problem.kind) == (4, "changed")
    assert "does not chain to row 3" in problem.detail


async def test_audit_pages_filter_and_follow_ids(store: Store, clock: Clock) -> None:
    for n in range(10):
        await store.audit(
            "deploy.step",
            actor=("alice", "bob")[n % 2],
            project=("storefront", "media")[n // 5],
            cluster="prod1" if n % 3 else "staging",
            outcome="failed" if n == 7 else "succeeded",
        )
        clock.advance(60)
    assert [r.id for r in await store.audit_page(limit=4)] == [1, 2, 3, 4]
    assert [r.id for r in await store.audit_page(after=4, limit=4)] == [5, 6, 7, 8]
    assert [r.id for r in await store.audit_page(actor="bob", project="media")] == [6, 8, 10]
    assert [r.id for r in await store.audit_page(cluster="staging")] == [1, 4, 7, 10]
    assert [r.id for r in await store.audit_page(outcome="failed")] == [8]
    since, until = START + timedelta(minutes=2), START + timedelta(minutes=5)
    assert [r.id for r in await store.audit_page(since=since, until=until)] == [3, 4, 5]
    everything = [row.id async for row in store.iter_audit(page_size=3)]
    assert everything == list(range(1, 11))
    bobs = [row.id async for row in store.iter_audit(page_size=2, actor="bob")]
    assert bobs == [2, 4, 6, 8, 10]


async def test_a_write_cancelled_while_it_begins_leaves_the_store_usable(store: Store) -> None:
    # A task cancelled while aiosqlite's thread runs its BEGIN (the fleet poller's lease
    # renewer was): the next write must not find the connection inside a transaction.
    for steps in range(40):
        writer = asyncio.create_task(store.release_poller_lease("sshd"))
        for _ in range(steps % 4):
            await asyncio.sleep(0)
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writer
        lease = await store.take_poller_lease("console", stale_after=0.0)
        assert lease.holder == "console"


async def test_a_step_and_its_audit_row_commit_together_or_not_at_all(
    store: Store, path: Path
) -> None:
    """When the audit row cannot be written (here a trigger refuses it, as a full disk
    would), the step's change is not kept either, and the caller hears of it."""
    await store.create_deploy(
        DeployRecord(
            id="d-1", project="storefront", cluster="staging", release="2.15.0", actor="alice"
        )
    )
    audit = {"action": "deploy.step", "actor": "alice", "deploy_id": "d-1", "step": "launch"}
    await store.step_started("d-1", "launch", audit={**audit, "outcome": "started"})
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TRIGGER audit_full BEFORE INSERT ON audit "
            "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
        )
    with pytest.raises(StoreError, match="did not record it: database or disk is full"):
        await store.step_finished(
            "d-1", "launch", "succeeded", detail="i-1", audit={**audit, "outcome": "succeeded"}
        )
    with pytest.raises(StoreError, match="did not record it"):
        await store.set_deploy_state(
            "d-1", "succeeded", release=("storefront", "staging"), audit={**audit, "step": None}
        )
    (step,) = await store.steps("d-1")
    assert (step.state, step.finished_at) == ("running", None)  # the step was not finished
    record = await store.deploy("d-1")
    assert record is not None and record.state == "queued"
    rows = await store.audit_rows()
    assert [(row.action, row.outcome) for row in rows] == [("deploy.step", "started")]
