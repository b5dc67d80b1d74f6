"""`store backup` and `store restore` without a fleet: a consistent copy while another
connection writes, the copy's chain checked on restore, a served store refused, the runner's
schedule and its pruning, and the [backup] table."""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from console.config import BackupSettings, load_config
from console.errors import ConfigError
from console.servers.runner_service import Presence
from console.store import Store
from console.store.backup import BackupSchedule, scheduled_backups, scheduled_copies, take_backup
from screens.main import run
from tests.conftest import DEMO_CONFIG
from tests.screens.cli.test_cli_audit import tamper
from tests.waiting import await_until


async def fill(path: Path, rows: int) -> None:
    async with await Store.open(path) as store:
        for n in range(rows):
            await store.audit("deploy.queued", actor="alice", project="storefront", reason=str(n))


@pytest.fixture
def store(tmp_path: Path) -> Path:
    path = tmp_path / "console.db"
    asyncio.run(fill(path, 5))
    return path


def error_line(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    assert lines[0].startswith("deploy-console: error: "), lines[0]
    return lines[0]


def audit_of(path: Path) -> list[tuple[int, str, str]]:
    with closing(sqlite3.connect(path)) as db:
        return list(db.execute("SELECT id, action, reason FROM audit ORDER BY id"))


async def test_a_backup_taken_while_a_writer_appends_is_consistent_and_verifies(
    tmp_path: Path, store: Path
) -> None:
    stop = asyncio.Event()

    async def writer() -> int:
        written = 0
        async with await Store.open(store) as opened:
            while not stop.is_set():
                await opened.audit("deploy.step", actor="bob", reason=str(written))
                written += 1
                await asyncio.sleep(0)
        return written

    writing = asyncio.create_task(writer())
    copies = []
    try:
        for n in range(4):
            await await_until(lambda n=n: len(audit_of(store)) > 5 + 20 * n, "rows written")
            copies.append(await take_backup(store, tmp_path / f"copy{n}.db"))
    finally:
        stop.set()
        await writing
    for summary in copies:
        assert not Path(f"{summary.path}-wal").exists()  # one self-contained file
        async with await Store.open(summary.path, read_only=True) as copy:
            check = await copy.check_audit()
        assert check.problem is None
        assert (check.rows, check.head) == (summary.audit_rows, summary.last_hash)
        assert summary.last_id == summary.audit_rows
    assert copies[-1].audit_rows > copies[0].audit_rows > 5


def test_backup_prints_what_it_copied_and_never_overwrites_without_force(
    tmp_path: Path, store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = tmp_path / "copy.db"
    assert run(["store", "backup", str(copy), "--store", str(store)]) == 0
    out = capsys.readouterr().out
    assert f"store backup: {copy} (" in out and "0 deploys, 5 audit entries (last #5 " in out
    assert run(["store", "backup", str(copy), "--store", str(store)]) == 2
    assert error_line(capsys).endswith(f"{copy} exists: pass --force to replace it")
    assert run(["store", "backup", str(copy), "--store", str(store), "--force"]) == 0
    capsys.readouterr()
    assert run(["store", "backup", str(tmp_path / "no" / "c.db"), "--store", str(store)]) == 2
    assert error_line(capsys).endswith(f"{tmp_path / 'no'} is not a folder")
    assert run(["store", "backup", str(tmp_path), "--store", str(store)]) == 2
    assert "is a folder" in error_line(capsys)
    assert run(["store", "backup", str(copy), "--store", str(tmp_path / "none.db")]) == 2
    assert "no store at" in error_line(capsys)
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary file left behind


def test_restore_puts_the_copy_back_audits_it_and_keeps_the_replaced_store(
    tmp_path: Path, store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = tmp_path / "copy.db"
    assert run(["store", "backup", str(copy), "--store", str(store)]) == 0
    asyncio.run(fill(store, 3))  # written after the copy: lost by the restore
    assert run(["store", "restore", str(copy), "--into", str(store)]) == 2
    assert "exists: pass --force to replace it" in error_line(capsys)
    assert run(["store", "restore", str(copy), "--into", str(store), "--force"]) == 0
    out = capsys.readouterr().out
    assert f"store restore: {copy} → {store}: 0 deploys, 5 audit entries" in out
    [aside] = tmp_path.glob("console.db.replaced-*")
    assert f"the store it replaced is kept at {aside}" in out
    assert len(audit_of(aside)) == 8  # the replaced store, whole
    rows = audit_of(store)
    assert [row[0] for row in rows] == [1, 2, 3, 4, 5, 6]
    assert rows[-1][1] == "store.restored"
    assert rows[-1][2].startswith("restored from backup copy.db taken at ")
    assert "entries written after #5, if any, were lost" in rows[-1][2]
    assert run(["audit", "verify", "--store", str(store)]) == 0


def test_restore_refuses_a_tampered_copy_and_changes_nothing(
    tmp_path: Path, store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = tmp_path / "copy.db"
    assert run(["store", "backup", str(copy), "--store", str(store)]) == 0
    tamper(copy, "UPDATE audit SET reason = 'nothing happened' WHERE id = 2")
    into = tmp_path / "fresh" / "console.db"
    assert run(["store", "restore", str(copy), "--into", str(into)]) == 2
    line = error_line(capsys)
    assert "the copy's audit chain does not verify: row 2 " in line and line.endswith(
        "not restored"
    )
    assert not into.exists()
    assert [p.name for p in into.parent.iterdir()] == ["console.db.runners"]


def test_restore_refuses_a_store_a_runner_serves(
    tmp_path: Path, store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = tmp_path / "copy.db"
    assert run(["store", "backup", str(copy), "--store", str(store)]) == 0
    presence = Presence(store)  # what a serving runner holds
    presence.hold()
    try:
        assert run(["store", "restore", str(copy), "--into", str(store), "--force"]) == 2
        assert f"a runner serves {store}: stop it first" in error_line(capsys)
    finally:
        presence.release()
    assert len(audit_of(store)) == 5 and not list(tmp_path.glob("*.replaced-*"))


def test_restore_of_a_file_that_is_no_copy_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    into = tmp_path / "console.db"
    assert run(["store", "restore", str(tmp_path / "none.db"), "--into", str(into)]) == 2
    assert "no copy at" in error_line(capsys)
    notes = tmp_path / "notes.db"
    notes.write_text("not a database\n" * 100)
    assert run(["store", "restore", str(notes), "--into", str(into)]) == 2
    assert "is not a deploy-console store" in error_line(capsys)
    assert not into.exists()


async def test_the_schedule_copies_and_keeps_the_newest(tmp_path: Path, store: Path) -> None:
    folder = tmp_path / "backups"
    moments = iter(datetime(2026, 12, 5, 3, 0, tzinfo=UTC) + timedelta(hours=n) for n in range(9))
    schedule = BackupSchedule(store, folder, 3600.0, 3, clock=lambda: next(moments))
    for _ in range(5):
        await schedule.once()
    names = [path.name for path in scheduled_copies(folder, store)]
    assert names == [f"console-20261205T0{h}0000Z.db" for h in (5, 6, 7)]
    (folder / "notes.txt").write_text("not the schedule's")
    await schedule.once()
    assert (folder / "notes.txt").exists() and len(scheduled_copies(folder, store)) == 3


async def test_the_runner_schedule_runs_in_the_background(tmp_path: Path, store: Path) -> None:
    folder = tmp_path / "backups"
    async with scheduled_backups(store, folder, 0.05, 2) as schedule:
        assert schedule is not None
        await await_until(lambda: len(schedule.taken) >= 3, "three scheduled copies", 30)
    assert len(scheduled_copies(folder, store)) <= 2
    async with scheduled_backups(store, None, 0.05, 2) as none:
        assert none is None


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ('dir = "b"\nevery = "soon"', "backup.every: must be a duration (30m, 1h, 1d)"),
        ('dir = "b"\nevery = "10s"', "backup.every: must be at least 1m"),
        ('dir = "b"\nkeep = 0', "backup.keep: "),
        ("every = '1h'", "backup.every: needs dir"),
    ],
)
def test_a_bad_backup_table_names_the_file_and_line(
    tmp_path: Path, table: str, expected: str
) -> None:
    path = tmp_path / "console.toml"
    path.write_text(DEMO_CONFIG.read_text() + f"\n[backup]\n{table}\n")
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert f"{path}:" in error.value.message and expected in error.value.message


def test_the_backup_table_is_read(tmp_path: Path) -> None:
    path = tmp_path / "console.toml"
    path.write_text(DEMO_CONFIG.read_text() + '\n[backup]\ndir = "copies"\nevery = "2h"\n')
    backup = load_config(path).backup
    assert (backup.dir, backup.every_seconds, backup.keep) == (tmp_path / "copies", 7200.0, 24)
    assert load_config(DEMO_CONFIG).backup.dir is None


async def test_a_runner_with_a_backup_dir_copies_its_store(tmp_path: Path, store: Path) -> None:
    from console.servers.runner_service import runner_service

    folder = tmp_path / "backups"
    config = replace(load_config(DEMO_CONFIG), backup=BackupSettings(folder, 0.05, 2))
    async with runner_service(config, store):
        await await_until(
            lambda: len(scheduled_copies(folder, store)) >= 1, "the runner's first copy", 30
        )
    [copy, *_] = scheduled_copies(folder, store)
    assert len(audit_of(copy)) >= 5
