"""Online copies of the store through SQLite's backup API, what a copy holds, and the schedule."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import aiosqlite

from console.config.paths import private_dir
from console.errors import StoreError
from console.store import files
from console.store.records import utc_now

log = logging.getLogger(__name__)

# A scheduled copy's name: <store name>-<UTC time>.db, so that name order is time order.
SCHEDULED_NAME = re.compile(r"-(\d{8}T\d{6}Z)\.db$")


@dataclass(frozen=True)
class CopySummary:
    """What a copy of the store holds: deploys, audit rows, the last row's id and hash."""

    path: Path
    deploys: int
    audit_rows: int
    last_id: int
    last_hash: str | None
    size: int
    seconds: float = 0.0

    @property
    def described(self) -> str:
        head = f"last #{self.last_id} {self.last_hash[:16]}…" if self.last_hash else "no audit"
        return (
            f"{self.deploys} deploy{'' if self.deploys == 1 else 's'}, {self.audit_rows} audit "
            f"entr{'y' if self.audit_rows == 1 else 'ies'} ({head})"
        )


def _destination_problem(destination: Path, force: bool) -> str | None:
    if destination.is_dir():
        return f"{destination} is a folder: name the copy's file"
    if not destination.parent.is_dir():
        return f"{destination.parent} is not a folder"
    if destination.exists() and not force:
        return f"{destination} exists: pass --force to replace it"
    return None


async def copy_database(path: Path, target: Path) -> None:
    """Copy the SQLite database at `path` (read only) into the new file `target` with the
    backup API (one read transaction: a consistent copy, writers never wait), as one file
    (journal mode DELETE: no -wal beside it), synced; StoreError when it cannot."""
    try:
        await _copy(files.read_only_uri(path), target)
    except sqlite3.Error as error:
        if "not a database" in str(error):
            raise StoreError(f"{path} is not a deploy-console store (not SQLite)") from None
        raise StoreError(f"cannot copy {path}: {error}") from None
    await asyncio.to_thread(_sync, target)


async def _copy(source: str, target: Path) -> None:
    reader = await aiosqlite.connect(source, uri=True)
    try:
        writer = await aiosqlite.connect(str(target), isolation_level=None)
        try:
            await reader.backup(writer)
            await writer.execute("PRAGMA journal_mode = DELETE")
        finally:
            await writer.close()
    finally:
        await reader.close()


def _sync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sync_folder(folder: Path) -> None:
    with contextlib.suppress(OSError):  # some filesystems cannot sync a folder
        _sync(folder)


def temporary_beside(destination: Path) -> Path:
    """A new private file beside `destination` (same filesystem: os.replace is atomic)."""
    for attempt in range(100):
        candidate = destination.with_name(f".{destination.name}.{os.getpid()}-{attempt}.tmp")
        try:
            fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            continue
        except OSError as error:
            raise StoreError(f"cannot write beside {destination}: {error.strerror}") from None
        os.close(fd)
        return candidate
    raise StoreError(f"cannot make a temporary file beside {destination}")


async def fold_wal(path: Path) -> None:
    """Fold the store's -wal into the file (no writer may hold it): the file is then the
    whole store, to be renamed into place."""
    async with aiosqlite.connect(str(path)) as db:
        await db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def remove_database(path: Path) -> None:
    files.remove_store(path)


async def take_backup(store: Path, destination: Path, *, force: bool = False) -> CopySummary:
    """An online, consistent copy of `store` at `destination`, written to a temporary file
    beside it and renamed into place; refused (StoreError) when `destination` exists (unless
    `force`) or cannot be written."""
    started = time.monotonic()
    store = Path(store).expanduser().absolute()
    destination = Path(destination).expanduser().absolute()
    if not store.is_file():
        raise StoreError(f"no store at {store}")
    if destination == store:
        raise StoreError(f"{destination} is the store itself: choose another file")
    problem = _destination_problem(destination, force)
    if problem is not None:
        raise StoreError(problem)
    temporary = temporary_beside(destination)
    try:
        await copy_database(store, temporary)
        summary = await summarize(temporary)
        os.replace(temporary, destination)
    except BaseException:
        remove_database(temporary)
        raise
    _sync_folder(destination.parent)
    return CopySummary(
        destination,
        summary.deploys,
        summary.audit_rows,
        summary.last_id,
        summary.last_hash,
        summary.size,
        time.monotonic() - started,
    )


async def summarize(path: Path) -> CopySummary:
    """What the SQLite file at `path` holds (StoreError when it is no deploy-console store)."""
    try:
        async with aiosqlite.connect(files.read_only_uri(path), uri=True) as db:
            async with db.execute("SELECT count(*) FROM deploys") as cursor:
                deploys = (await cursor.fetchone() or (0,))[0]
            async with db.execute("SELECT count(*), max(id) FROM audit") as cursor:
                count, last = await cursor.fetchone() or (0, None)
            head = None
            if last is not None:
                async with db.execute("SELECT hash FROM audit WHERE id = ?", (last,)) as cursor:
                    row = await cursor.fetchone()
                    head = None if row is None else str(row[0])
    except sqlite3.Error as error:
        reason = "not SQLite" if "not a database" in str(error) else str(error)
        raise StoreError(f"{path} is not a deploy-console store ({reason})") from None
    return CopySummary(path, int(deploys), int(count), int(last or 0), head, path.stat().st_size)


# -- the runner's schedule ----------------------------------------------------------------


def scheduled_name(store: Path, at: datetime) -> str:
    return f"{store.stem}-{at.astimezone(UTC):%Y%m%dT%H%M%SZ}.db"


def taken_at(copy: Path) -> datetime:
    """When a copy was taken: the time in a scheduled copy's name, else the file's mtime."""
    named = SCHEDULED_NAME.search(copy.name)
    if named is not None:
        return datetime.strptime(named.group(1), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    return datetime.fromtimestamp(copy.stat().st_mtime, UTC)


def scheduled_copies(folder: Path, store: Path) -> list[Path]:
    """The schedule's copies of `store` in `folder`, oldest first (other files are not its)."""
    if not folder.is_dir():
        return []
    found = [
        path
        for path in folder.iterdir()
        if path.name.startswith(f"{store.stem}-") and SCHEDULED_NAME.search(path.name)
    ]
    return sorted(found, key=lambda path: path.name)


def prune(folder: Path, store: Path, keep: int) -> list[Path]:
    """Delete all but the newest `keep` scheduled copies; the ones deleted."""
    copies = scheduled_copies(folder, store)
    gone = copies[: max(0, len(copies) - keep)]
    for path in gone:
        path.unlink(missing_ok=True)
    return gone


class BackupSchedule:
    """A copy of the store into `folder` every `every` seconds, keeping the newest `keep`.

    A copy is no change of the fleet: it is logged, not audited (a restore is audited, in the
    restored store)."""

    def __init__(
        self,
        store: Path,
        folder: Path,
        every: float,
        keep: int,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.store = store
        self.folder = folder
        self.every = every
        self.keep = keep
        self.clock = clock
        self.taken: list[CopySummary] = []

    async def once(self) -> CopySummary:
        private_dir(self.folder)
        destination = self.folder / scheduled_name(self.store, self.clock())
        summary = await take_backup(self.store, destination, force=True)
        gone = await asyncio.to_thread(prune, self.folder, self.store, self.keep)
        log.info(
            "store backup %s (%d bytes in %.2f s): %s; pruned %d",
            destination,
            summary.size,
            summary.seconds,
            summary.described,
            len(gone),
        )
        self.taken.append(summary)
        del self.taken[:-3]
        return summary

    async def run(self) -> None:
        """Copy, then wait; a failed copy is logged and tried again at the next round."""
        while True:
            await asyncio.sleep(self.every)
            try:
                await self.once()
            except (StoreError, OSError) as error:
                log.warning("store backup into %s failed: %s", self.folder, error)


@asynccontextmanager
async def scheduled_backups(
    store: Path, folder: Path | None, every: float, keep: int
) -> AsyncIterator[BackupSchedule | None]:
    """The schedule running in the background while inside (None when no folder is set)."""
    if folder is None:
        yield None
        return
    schedule = BackupSchedule(store, folder, every, keep)
    task = asyncio.create_task(schedule.run())
    try:
        yield schedule
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
