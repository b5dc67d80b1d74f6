"""The store's SQLite connection: opening and migrating the file, and its transactions.

This is the one place with SQLite's dialect specifics: the file checks and URIs, the pragmas
(busy timeout, WAL, synchronous, foreign keys, user_version as the schema version), BEGIN
IMMEDIATE for writers and BEGIN DEFERRED for a consistent read, the retry while another
process holds the write lock, and how rows and times are stored (UTC ISO text). The
repositories (console/store/{locks,deploys,queue_order,audit_log,poller}.py) hold the SQL of
their tables and run it through a `Tx`; a second engine (a store shared beyond one host)
implements console.store.interface with its own connection and repositories.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence, Sized
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from console.config.paths import create_private_file, private_dir
from console.errors import StoreError
from console.store import files
from console.store.schema import MIGRATIONS, SCHEMA_VERSION

BUSY_TIMEOUT = 5.0
BEGIN_ATTEMPTS = 4

TIME_FIELDS = frozenset(
    {
        "at",
        "acquired_at",
        "heartbeat_at",
        "created_at",
        "started_at",
        "finished_at",
        "reconciled_at",
        "expires_at",
        "renewed_at",
        "written_at",
        "anchored_at",
        "not_before",
    }
)
T = TypeVar("T")
Parameters = Sequence[object] | Mapping[str, object]


def text(moment: datetime | None) -> str | None:
    """A time as stored: UTC ISO text of one fixed width, so that text order is time order."""
    return None if moment is None else moment.astimezone(UTC).isoformat(timespec="microseconds")


def columns(record_type: Any) -> list[str]:
    """A record's field names: the columns to select for it."""
    return [item.name for item in fields(record_type)]


def record(make: Callable[..., T], row: sqlite3.Row | Mapping[str, Any]) -> T:
    """A dataclass from a row selected by its field names (times parsed)."""
    values = dict(zip(row.keys(), row, strict=True)) if isinstance(row, sqlite3.Row) else dict(row)
    for name, value in values.items():
        if value is not None and name in TIME_FIELDS:
            values[name] = datetime.fromisoformat(value)
    if "instance_ids" in values:
        values["instance_ids"] = tuple(json.loads(values["instance_ids"]))
    if "warning" in values:
        values["warning"] = bool(values["warning"])
    return make(**values)


def insert(table: str, names: Iterable[str]) -> str:
    names = list(names)
    placeholders = ", ".join(f":{name}" for name in names)
    return f"INSERT INTO {table} ({', '.join(names)}) VALUES ({placeholders})"


def where(conditions: Mapping[str, object]) -> tuple[str, list[object]]:
    """A WHERE clause from {"column = ?": value}, skipping None values."""
    used = {condition: value for condition, value in conditions.items() if value is not None}
    return (f"WHERE {' AND '.join(used)}" if used else ""), list(used.values())


def filtered(conditions: Mapping[str, str], values: Mapping[str, object]) -> dict[str, object]:
    """{condition: value} for `where` from named filters (times as stored)."""
    return {
        conditions[name]: text(value) if isinstance(value, datetime) else value
        for name, value in values.items()
    }


def marks(values: Sized) -> str:
    """The placeholders of an IN list: "?, ?, ?"."""
    return ", ".join("?" * len(values))


def _is_busy(exc: sqlite3.Error) -> bool:
    return exc.sqlite_errorcode & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


class Tx:
    """The statements of one transaction (or of one read under the connection's lock), and its
    time: read from the clock when first asked, then every row it writes carries that time."""

    def __init__(self, db: aiosqlite.Connection, clock: Callable[[], datetime]) -> None:
        self.db = db
        self._clock = clock
        self._now: datetime | None = None

    @property
    def now(self) -> datetime:
        if self._now is None:
            self._now = self._clock()
        return self._now

    async def execute(self, query: str, parameters: Parameters = ()) -> aiosqlite.Cursor:
        """Run one statement; its cursor (rowcount, lastrowid)."""
        return await self.db.execute(query, parameters)

    async def one(self, query: str, parameters: Parameters = ()) -> sqlite3.Row | None:
        async with self.db.execute(query, parameters) as cursor:
            row: sqlite3.Row | None = await cursor.fetchone()
        return row

    async def all(self, query: str, parameters: Parameters = ()) -> list[sqlite3.Row]:
        async with self.db.execute(query, parameters) as cursor:
            return list(await cursor.fetchall())

    def cursor(
        self, query: str, parameters: Parameters = ()
    ) -> AbstractAsyncContextManager[aiosqlite.Cursor]:
        """`async with tx.cursor(...) as rows: async for row in rows`: the rows one at a time
        (a whole table need not be in memory)."""
        return self.db.execute(query, parameters)

    async def records(
        self, make: Callable[..., T], query: str, parameters: Parameters = ()
    ) -> list[T]:
        return [record(make, row) for row in await self.all(query, parameters)]


class Connection:
    """One aiosqlite connection to the store file; every write is one BEGIN IMMEDIATE
    transaction, and one lock keeps the transactions of this process's tasks apart."""

    def __init__(self, db: aiosqlite.Connection, path: Path, clock: Callable[[], datetime]) -> None:
        self._db = db
        self.path = path
        self.clock = clock
        self._lock = asyncio.Lock()

    @classmethod
    async def open(
        cls,
        path: Path,
        *,
        clock: Callable[[], datetime],
        busy_timeout: float = BUSY_TIMEOUT,
        create: bool = True,
        read_only: bool = False,
    ) -> Connection:
        """Open (creating if needed) and migrate the store; see Store.open."""
        path = Path(path).expanduser().absolute()
        real = files.real_path(path)
        refusal = files.filesystem_refusal(path, real, files.filesystem_type(real))
        if refusal is not None:
            raise StoreError(refusal)
        if read_only or not create:
            if not path.is_file():
                raise StoreError(f"no store at {path}")
        else:
            try:
                private_dir(path.parent)
                create_private_file(path)
            except OSError as exc:
                raise StoreError(f"cannot create the store {path}: {exc.strerror}") from None
        if read_only:
            target = files.read_only_uri(path)
        elif create:
            target = str(path)  # made above, 0600: SQLite's -wal and -shm copy its mode
        else:
            # mode=rw: SQLite itself refuses to create the file (no race with an exists check).
            target = f"{path.as_uri()}?mode=rw"
        db = await _connect(target, path)
        db.row_factory = sqlite3.Row
        connection = cls(db, path, clock)
        try:
            if read_only:
                await connection._check_read_only(busy_timeout)
            else:
                await connection._prepare(busy_timeout, create=create)
        except BaseException:
            await db.close()
            raise
        return connection

    async def _check_read_only(self, busy_timeout: float) -> None:
        """A read-only store must be at this console's schema: it cannot be migrated here."""
        try:
            await self._db.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
            version = await self._version()
        except sqlite3.DatabaseError as exc:
            if "not a database" in str(exc):
                raise StoreError(
                    f"{self.path} is not a deploy-console store (not SQLite)"
                ) from None
            raise StoreError(f"cannot read the store {self.path}: {exc}") from None
        if version == 0:
            raise StoreError(f"{self.path} is not a deploy-console store")
        self._refuse_newer(version)
        if version < SCHEMA_VERSION:
            raise StoreError(
                f"the store {self.path} has schema {version} and this console reads schema "
                f"{SCHEMA_VERSION}: this command only reads, so run a console that can write "
                "it first (`deploy-console` or `deploy-console runner` migrates it)"
            )

    def _refuse_newer(self, version: int) -> None:
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"the store {self.path} was made by a newer deploy-console "
                f"(schema {version}; this one knows up to {SCHEMA_VERSION})"
            )

    async def _version(self) -> int:
        row = await Tx(self._db, self.clock).one("PRAGMA user_version")
        return int(row[0]) if row else 0

    async def _prepare(self, busy_timeout: float, *, create: bool = True) -> None:
        # Switching to WAL and WAL recovery can answer SQLITE_BUSY without waiting on
        # busy_timeout while other processes open the same new file: retry until the deadline.
        deadline = time.monotonic() + busy_timeout
        delay = 0.01
        while True:
            try:
                await self._prepare_once(busy_timeout, create=create)
                return
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc) or time.monotonic() + delay > deadline:
                    raise StoreError(f"cannot open the store {self.path}: {exc}") from None
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.2)

    async def _prepare_once(self, busy_timeout: float, *, create: bool = True) -> None:
        try:
            await self._db.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
            # Checked before anything is written (WAL, migrations): a foreign file stays as is.
            if not create and await self._version() == 0:
                raise StoreError(f"{self.path} is not a deploy-console store")
            await self._db.execute("PRAGMA foreign_keys = ON")
            await self._db.execute("PRAGMA journal_mode = WAL")
            await self._db.execute("PRAGMA synchronous = FULL")
            async with self.write() as tx:
                await self._migrate(tx)
        except sqlite3.DatabaseError as exc:
            if "not a database" in str(exc):
                raise StoreError(
                    f"{self.path} is not a deploy-console store (not SQLite)"
                ) from None
            if isinstance(exc, sqlite3.OperationalError) and _is_busy(exc):
                raise  # _prepare retries
            raise StoreError(f"cannot open the store {self.path}: {exc}") from None

    async def _migrate(self, tx: Tx) -> None:
        # Read inside the transaction: another process may have just migrated.
        version = await self._version()
        self._refuse_newer(version)
        for number, statements in enumerate(MIGRATIONS[version:], start=version + 1):
            for statement in statements:
                await tx.execute(statement)
            await tx.execute(f"PRAGMA user_version = {number}")

    async def close(self) -> None:
        await self._db.close()

    @asynccontextmanager
    async def write(self) -> AsyncIterator[Tx]:
        """One write transaction, begun IMMEDIATE so it holds the write lock from its first read:
        its statements commit together or not at all (a failed one is a StoreError)."""
        async with self._lock:
            await self._begin()
            try:
                yield Tx(self._db, self.clock)
            except BaseException as error:
                if self._db.in_transaction:  # some errors make SQLite roll back by itself
                    await self._db.execute("ROLLBACK")
                if isinstance(error, sqlite3.Error):
                    raise StoreError(f"the store {self.path} did not record it: {error}") from error
                raise
            # Outside the rollback above: a COMMIT cancelled while aiosqlite's thread runs it
            # still commits there, and a ROLLBACK queued behind it would find no transaction.
            try:
                await self._db.execute("COMMIT")
            except sqlite3.Error as error:
                raise StoreError(f"the store {self.path} did not record it: {error}") from error

    async def _begin(self) -> None:
        for attempt in range(BEGIN_ATTEMPTS):
            try:
                await self._db.execute("BEGIN IMMEDIATE")
                return
            except asyncio.CancelledError:
                # The BEGIN still runs in aiosqlite's thread: undo it after it, or the
                # connection stays inside a transaction nobody will end.
                with contextlib.suppress(sqlite3.Error):
                    await self._db.execute("ROLLBACK")
                raise
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc):
                    raise
                if attempt == BEGIN_ATTEMPTS - 1:
                    raise StoreError(
                        f"the store {self.path} stayed locked by another process; try again"
                    ) from None
                await asyncio.sleep(0.05 * 2**attempt)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[Tx]:
        """Reads outside a transaction (each statement sees the store as it is then)."""
        async with self._lock:
            yield Tx(self._db, self.clock)

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[Tx]:
        """A read-only transaction: one consistent view of the store (WAL readers never wait
        for the writer, nor hold it up)."""
        async with self._lock:
            await self._db.execute("BEGIN DEFERRED")
            try:
                yield Tx(self._db, self.clock)
            finally:
                if self._db.in_transaction:
                    await self._db.execute("COMMIT")


async def _connect(target: str, path: Path) -> aiosqlite.Connection:
    connection = aiosqlite.connect(target, isolation_level=None, uri=target.startswith("file:"))
    try:
        return await connection
    except sqlite3.Error as exc:
        # aiosqlite stops its worker thread without waiting for it: wait here, or the thread
        # reports to a loop that asyncio.run has closed (a traceback after the error line).
        await asyncio.to_thread(connection._thread.join, 5.0)
        raise StoreError(f"cannot open the store {path}: {exc}") from None
