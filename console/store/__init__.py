"""The console's SQLite store: execution locks, deploys and their steps, the hash-chained audit."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import aiosqlite

from console.config.paths import create_private_file, private_dir
from console.errors import LockBusy, StoreError
from console.store.files import filesystem_refusal, filesystem_type, read_only_uri, real_path

# Values shared with console.model.DeployState; the store keeps its own copy (adapters stand alone).
QUEUED, RUNNING = "queued", "running"
DEPLOY_STATES = frozenset(
    {QUEUED, RUNNING, "succeeded", "failed", "rolled_back", "cancelled", "interrupted"}
)
UNFINISHED_STATES = (QUEUED, RUNNING)
STEP_STATES = frozenset({"running", "succeeded", "failed", "skipped"})

GENESIS_HASH = "0" * 64
BUSY_TIMEOUT = 5.0
BEGIN_ATTEMPTS = 4


def _actor_fields(table: str, order: str) -> tuple[str, ...]:
    """Generated columns that split a table's actor text ("alice (ssh SHA256:... from
    127.0.0.1:5000)", see console.identity) into user, door, key and source; indexed by user."""
    opened = "instr(actor, ' (')"
    inner = f"(CASE WHEN {opened} > 0 THEN rtrim(substr(actor, {opened} + 2), ')') ELSE '' END)"
    first = f"instr({inner}, ' ')"
    rest = f"(CASE WHEN {first} > 0 THEN substr({inner}, {first} + 1) ELSE '' END)"
    key_end = f"instr({rest}, ' ')"
    columns = {
        "actor_user": f"CASE WHEN {opened} > 0 THEN substr(actor, 1, {opened} - 1) ELSE actor END",
        "actor_door": f"CASE WHEN {opened} = 0 THEN 'local' WHEN {first} > 0 "
        f"THEN substr({inner}, 1, {first} - 1) ELSE {inner} END",
        "actor_key": f"CASE WHEN {rest} NOT LIKE 'SHA256:%' THEN '' WHEN {key_end} > 0 "
        f"THEN substr({rest}, 1, {key_end} - 1) ELSE {rest} END",
        "actor_source": f"CASE WHEN instr({inner}, ' from ') > 0 "
        f"THEN substr({inner}, instr({inner}, ' from ') + 6) ELSE '' END",
    }
    return (
        *(
            f"ALTER TABLE {table} ADD COLUMN {name} TEXT GENERATED ALWAYS AS ({expression}) VIRTUAL"
            for name, expression in columns.items()
        ),
        f"CREATE INDEX {table}_by_actor ON {table} (actor_user, {order})",
    )


# One tuple of statements per schema version; user_version is how many have run.
# (Statements one by one: sqlite3's executescript would commit the migration's transaction.)
MIGRATIONS: list[tuple[str, ...]] = [
    (
        """CREATE TABLE locks (
            project TEXT NOT NULL,
            cluster TEXT NOT NULL,
            deploy_id TEXT NOT NULL,
            actor TEXT NOT NULL,
            acquired_at TEXT NOT NULL,
            heartbeat_at TEXT NOT NULL,
            PRIMARY KEY (project, cluster)
        )""",
        # seq orders deploys newest first; the deploy id's time prefix has only second resolution.
        """CREATE TABLE deploys (
            seq INTEGER PRIMARY KEY,
            id TEXT NOT NULL UNIQUE,
            project TEXT NOT NULL,
            cluster TEXT NOT NULL,
            release TEXT NOT NULL,
            image_id TEXT,
            actor TEXT NOT NULL,
            state TEXT NOT NULL,
            created_at TEXT NOT NULL,
            started_at TEXT,
            finished_at TEXT,
            reason TEXT NOT NULL DEFAULT '',
            rollback_of TEXT
        )""",
        "CREATE INDEX deploys_by_key ON deploys (project, cluster, seq)",
        "CREATE INDEX deploys_by_state ON deploys (state, seq)",
        """CREATE TABLE steps (
            seq INTEGER PRIMARY KEY,
            deploy_id TEXT NOT NULL REFERENCES deploys (id),
            step TEXT NOT NULL,
            state TEXT NOT NULL,
            started_at TEXT NOT NULL,
            finished_at TEXT,
            seconds REAL,
            detail TEXT NOT NULL DEFAULT ''
        )""",
        "CREATE INDEX steps_by_deploy ON steps (deploy_id, seq)",
        """CREATE TABLE audit (
            id INTEGER PRIMARY KEY,
            at TEXT NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            project TEXT,
            cluster TEXT,
            deploy_id TEXT,
            image_id TEXT,
            instance_ids TEXT NOT NULL,
            step TEXT,
            outcome TEXT,
            reason TEXT NOT NULL,
            ticket TEXT,
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL
        )""",
        "CREATE INDEX audit_by_project ON audit (project, id)",
        "CREATE INDEX audit_by_deploy ON audit (deploy_id, id)",
        """CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
           BEGIN SELECT RAISE(ABORT, 'audit rows are append-only'); END""",
        """CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
           BEGIN SELECT RAISE(ABORT, 'audit rows are append-only'); END""",
    ),
    # 2: what a deploy replaced, so that rolling it back is a deploy of that release.
    ("ALTER TABLE deploys ADD COLUMN previous_release TEXT",),
    # 3: the release queue (console/queue/release_queue.py): order within a pair, promotion
    # chains, who
    # runs a deploy, cancels asked from elsewhere, reconciled interruptions; manual locks,
    # freezes, and each deploy's output.
    (
        "ALTER TABLE deploys ADD COLUMN position REAL",
        "ALTER TABLE deploys ADD COLUMN after_deploy TEXT",
        "ALTER TABLE deploys ADD COLUMN runner TEXT",
        "ALTER TABLE deploys ADD COLUMN cancel_requested TEXT",
        "ALTER TABLE deploys ADD COLUMN reconciled_at TEXT",
        "UPDATE deploys SET position = seq",
        # AUTOINCREMENT: a removed lock's number is never given to another.
        """CREATE TABLE manual_locks (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            project TEXT,
            cluster TEXT,
            owner TEXT NOT NULL,
            reason TEXT NOT NULL,
            warning INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL,
            expires_at TEXT
        )""",
        """CREATE TABLE freezes (
            cluster TEXT PRIMARY KEY,
            actor TEXT NOT NULL,
            reason TEXT NOT NULL,
            created_at TEXT NOT NULL
        )""",
        """CREATE TABLE deploy_log (
            seq INTEGER PRIMARY KEY,
            deploy_id TEXT NOT NULL,
            at TEXT NOT NULL,
            source TEXT NOT NULL,
            stream TEXT NOT NULL,
            line TEXT NOT NULL
        )""",
        "CREATE INDEX deploy_log_by_deploy ON deploy_log (deploy_id, seq)",
    ),
    # 4: one fleet poller per host (console/fleet/share.py): who holds the poller lease (an
    # empty holder: released), and the last snapshot it wrote for every other console.
    (
        """CREATE TABLE fleet_poller (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            holder TEXT NOT NULL,
            renewed_at TEXT NOT NULL,
            generation INTEGER NOT NULL DEFAULT 0,
            written_at TEXT,
            error TEXT,
            snapshot BLOB
        )""",
    ),
    # 5: the actor's fields (console.identity), derived from the actor text the audit's hash
    # covers, so that they cannot drift from it: filters match the user whatever the door.
    (
        *_actor_fields("audit", "id"),
        *_actor_fields("deploys", "seq"),
        # The config's digest (console.config) on the rows it ruled: a deploy's queueing, and
        # a `config` row whenever a console starts on rules that changed.
        "ALTER TABLE audit ADD COLUMN config TEXT",
        "CREATE INDEX audit_by_action ON audit (action, id)",
    ),
    # 6 (audit anchor): the last head this store anchored at each anchor location, so that
    # `audit verify` knows an anchor must exist there and may not be older than this head.
    (
        """CREATE TABLE audit_anchors (
            location TEXT PRIMARY KEY,
            rows INTEGER NOT NULL,
            head TEXT NOT NULL,
            anchored_at TEXT NOT NULL
        )""",
    ),
]

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
    }
)
T = TypeVar("T")


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class LockInfo:
    """Who holds the execution lock of one project in one cluster."""

    project: str
    cluster: str
    deploy_id: str
    actor: str
    acquired_at: datetime
    heartbeat_at: datetime


@dataclass(frozen=True)
class PollerLease:
    """Who polls the fleet for every console on the store, and what they last wrote."""

    holder: str  # "" once released
    renewed_at: datetime
    generation: int  # snapshots written so far; 0: none yet
    written_at: datetime | None
    error: str | None  # the holder's last poll failed with this (its snapshot stays)

    def fresh(self, now: datetime, stale_after: float) -> bool:
        """Held, and renewed within stale_after seconds."""
        return bool(self.holder) and self.renewed_at > now - timedelta(seconds=stale_after)


@dataclass(frozen=True, kw_only=True)
class DeployRecord:
    id: str
    project: str
    cluster: str
    release: str
    actor: str
    image_id: str | None = None
    state: str = QUEUED
    created_at: datetime = field(default_factory=utc_now)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    reason: str = ""
    rollback_of: str | None = None
    previous_release: str | None = None
    # The queue's: order within the pair (lower runs first), the deploy that must succeed
    # first (a promotion), the console running it, who asked a running deploy to cancel, and
    # when an interrupted deploy was put right against AWS.
    position: float | None = None
    after_deploy: str | None = None
    runner: str | None = None
    cancel_requested: str | None = None
    reconciled_at: datetime | None = None


@dataclass(frozen=True)
class LogLine:
    """One line of a deploy's output (secrets already masked by the engine)."""

    at: datetime
    source: str
    stream: str
    line: str


@dataclass(frozen=True)
class StepRecord:
    deploy_id: str
    step: str
    state: str
    started_at: datetime
    finished_at: datetime | None
    seconds: float | None
    detail: str


@dataclass(frozen=True)
class AuditRow:
    id: int
    at: datetime
    actor: str
    action: str
    project: str | None
    cluster: str | None
    deploy_id: str | None
    image_id: str | None
    instance_ids: tuple[str, ...]
    step: str | None
    outcome: str | None
    reason: str
    ticket: str | None
    prev_hash: str
    hash: str
    config: str | None = None  # since schema 5; hashed only when set (older rows keep theirs)


@dataclass(frozen=True)
class AnchorRecord:
    """The store's own note of its last anchor at `location`: row `rows` had hash `head`."""

    location: str
    rows: int
    head: str
    anchored_at: datetime


@dataclass(frozen=True)
class AuditProblem:
    """The first audit row that does not match: its id, what is wrong (changed, missing,
    out of order) and a sentence saying how."""

    id: int
    kind: str
    detail: str


@dataclass(frozen=True)
class AuditCheck:
    """The result of walking the audit chain: rows verified, the head hash, the first problem."""

    rows: int
    head: str
    problem: AuditProblem | None


def _columns(record_type: Any) -> list[str]:
    return [item.name for item in fields(record_type)]


AUDIT_HASHED = [name for name in _columns(AuditRow) if name != "hash"]
# Fields added after rows were first chained: left out of a row's hash when empty, so that
# the rows written before them keep verifying.
OPTIONAL_HASHED = frozenset({"config"})
# The stored fields (the actor's generated fields are derived from `actor`, which is hashed).
AUDIT_COLUMNS = ", ".join(_columns(AuditRow))


def audit_hash(prev_hash: str, row: Mapping[str, object] | sqlite3.Row) -> str:
    """sha256 of the previous hash + the canonical JSON of the row's stored fields but its hash."""
    hashed = {
        name: row[name]
        for name in AUDIT_HASHED
        if name not in OPTIONAL_HASHED or row[name] is not None
    }
    canonical = json.dumps(hashed, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256((prev_hash + canonical).encode()).hexdigest()


async def _connect(target: str, path: Path) -> aiosqlite.Connection:
    connection = aiosqlite.connect(target, isolation_level=None, uri=target.startswith("file:"))
    try:
        return await connection
    except sqlite3.Error as exc:
        # aiosqlite stops its worker thread without waiting for it: wait here, or the thread
        # reports to a loop that asyncio.run has closed (a traceback after the error line).
        await asyncio.to_thread(connection._thread.join, 5.0)
        raise StoreError(f"cannot open the store {path}: {exc}") from None


def _text(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat(timespec="microseconds")


def _time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _record(make: Callable[..., T], row: sqlite3.Row) -> T:
    """A dataclass from a row selected by its field names (times parsed)."""
    values: dict[str, Any] = {}
    for name, value in zip(row.keys(), row, strict=True):
        values[name] = (
            datetime.fromisoformat(value) if value is not None and name in TIME_FIELDS else value
        )
    if "instance_ids" in values:
        values["instance_ids"] = tuple(json.loads(values["instance_ids"]))
    return make(**values)


# For the store's other users (the queue), which read its tables in a Transaction.
record_from_row = _record
time_text = _text


def _insert(table: str, names: Iterable[str]) -> str:
    names = list(names)
    placeholders = ", ".join(f":{name}" for name in names)
    return f"INSERT INTO {table} ({', '.join(names)}) VALUES ({placeholders})"


def _is_busy(exc: sqlite3.Error) -> bool:
    return exc.sqlite_errorcode & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def _where(conditions: Mapping[str, object]) -> tuple[str, list[object]]:
    """A WHERE clause from {"column = ?": value}, skipping None values."""
    used = {condition: value for condition, value in conditions.items() if value is not None}
    return (f"WHERE {' AND '.join(used)}" if used else ""), list(used.values())


async def _insert_deploy(db: aiosqlite.Connection, record: DeployRecord) -> None:
    """Insert a deploy; one without a position goes to the end of the queue (position = seq)."""
    if record.state not in DEPLOY_STATES:
        raise StoreError(f"unknown deploy state {record.state!r}")
    values = {
        name: _text(value) if name in TIME_FIELDS else value
        for name, value in asdict(record).items()
    }
    try:
        cursor = await db.execute(_insert("deploys", values), values)
    except sqlite3.IntegrityError:
        raise StoreError(f"deploy {record.id} is already in the store") from None
    if record.position is None:
        await db.execute("UPDATE deploys SET position = seq WHERE seq = ?", (cursor.lastrowid,))


async def _record_config(
    store: Store,
    db: aiosqlite.Connection,
    now: datetime,
    actor: str,
    digest: str,
    rules: str,
    source: str,
) -> bool:
    async with db.execute(
        "SELECT config FROM audit WHERE action = 'config' ORDER BY id DESC LIMIT 1"
    ) as cursor:
        last = await cursor.fetchone()
    if last is not None and last[0] == digest:
        return False
    row = {
        "action": "config",
        "actor": actor,
        "outcome": "first" if last is None else "changed",
        "reason": f"{rules} · {source}",
        "config": digest,
    }
    await store._append_audit(db, row, now)
    return True


class Transaction:
    """One write transaction for the store's other users (the queue): what they read stays
    true until it commits, and their writes and audit rows commit together or not at all."""

    def __init__(self, store: Store, db: aiosqlite.Connection, now: datetime) -> None:
        self._store = store
        self._db = db
        self.now = now

    async def execute(
        self, query: str, parameters: Sequence[object] | Mapping[str, object] = ()
    ) -> int:
        """Run one statement; the number of rows it changed."""
        cursor = await self._db.execute(query, parameters)
        return cursor.rowcount

    async def rows(self, query: str, parameters: Sequence[object] = ()) -> list[sqlite3.Row]:
        async with self._db.execute(query, parameters) as cursor:
            return list(await cursor.fetchall())

    async def deploys(self, clause: str, parameters: Sequence[object] = ()) -> list[DeployRecord]:
        columns = ", ".join(_columns(DeployRecord))
        rows = await self.rows(f"SELECT {columns} FROM deploys {clause}", parameters)
        return [_record(DeployRecord, row) for row in rows]

    async def insert_deploy(self, record: DeployRecord) -> None:
        await _insert_deploy(self._db, record)

    async def record_config(self, actor: str, digest: str, rules: str, source: str) -> bool:
        """Store.record_config in this transaction."""
        return await _record_config(self._store, self._db, self.now, actor, digest, rules, source)

    async def audit(self, action: str, *, actor: str, **values: object) -> int:
        """Append an audit row in this transaction (fields as Store.audit takes them)."""
        row: dict[str, object] = {"action": action, "actor": actor, **values}
        row["instance_ids"] = json.dumps(list(values.get("instance_ids", ())))  # type: ignore[call-overload]
        return await self._store._append_audit(self._db, row, self.now)


class Store:
    """One connection to the store file; every write is one BEGIN IMMEDIATE transaction."""

    def __init__(self, db: aiosqlite.Connection, path: Path, clock: Callable[[], datetime]) -> None:
        self._db = db
        self.path = path
        self._clock = clock
        # One aiosqlite connection serves every task: this keeps their transactions apart.
        self._lock = asyncio.Lock()

    @classmethod
    async def open(
        cls,
        path: Path,
        *,
        clock: Callable[[], datetime] = utc_now,
        busy_timeout: float = BUSY_TIMEOUT,
        create: bool = True,
        read_only: bool = False,
    ) -> Store:
        """Open (creating if needed) and migrate the store; StoreError if it cannot be used.

        With create=False a missing file, or a file that is not a deploy-console store (an
        empty or foreign SQLite database), is refused and left exactly as it was. read_only
        (never creates) opens it as SQLite's mode=ro: no journal mode set, no migration, works
        on a copy nobody may write; a store that needs a migration is refused.
        """
        path = Path(path).expanduser().absolute()
        real = real_path(path)
        refusal = filesystem_refusal(path, real, filesystem_type(real))
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
            target = read_only_uri(path)
        elif create:
            target = str(path)  # made above, 0600: SQLite's -wal and -shm copy its mode
        else:
            # mode=rw: SQLite itself refuses to create the file (no race with an exists check).
            target = f"{path.as_uri()}?mode=rw"
        db = await _connect(target, path)
        db.row_factory = sqlite3.Row
        store = cls(db, path, clock)
        try:
            if read_only:
                await store._check_read_only(busy_timeout)
            else:
                await store._prepare(busy_timeout, create=create)
        except BaseException:
            await db.close()
            raise
        return store

    async def _check_read_only(self, busy_timeout: float) -> None:
        """A read-only store must be at this console's schema: it cannot be migrated here."""
        try:
            await self._db.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
            row = await self._one("PRAGMA user_version")
        except sqlite3.DatabaseError as exc:
            if "not a database" in str(exc):
                raise StoreError(
                    f"{self.path} is not a deploy-console store (not SQLite)"
                ) from None
            raise StoreError(f"cannot read the store {self.path}: {exc}") from None
        version = int(row[0]) if row else 0
        if version == 0:
            raise StoreError(f"{self.path} is not a deploy-console store")
        if version > len(MIGRATIONS):
            raise StoreError(
                f"the store {self.path} was made by a newer deploy-console "
                f"(schema {version}; this one knows up to {len(MIGRATIONS)})"
            )
        if version < len(MIGRATIONS):
            raise StoreError(
                f"the store {self.path} has schema {version} and this console reads schema "
                f"{len(MIGRATIONS)}: this command only reads, so run a console that can write "
                "it first (`deploy-console` or `deploy-console runner` migrates it)"
            )

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
            if not create:
                # Checked before anything is written (WAL, migrations): a foreign file stays as is.
                row = await self._one("PRAGMA user_version")
                if row is None or int(row[0]) == 0:
                    raise StoreError(f"{self.path} is not a deploy-console store")
            await self._db.execute("PRAGMA foreign_keys = ON")
            await self._db.execute("PRAGMA journal_mode = WAL")
            await self._db.execute("PRAGMA synchronous = FULL")
            async with self._write() as db:
                # Read inside the transaction: another process may have just migrated.
                row = await self._one("PRAGMA user_version")
                version = int(row[0]) if row else 0
                if version > len(MIGRATIONS):
                    raise StoreError(
                        f"the store {self.path} was made by a newer deploy-console "
                        f"(schema {version}; this one knows up to {len(MIGRATIONS)})"
                    )
                for number, statements in enumerate(MIGRATIONS[version:], start=version + 1):
                    for statement in statements:
                        await db.execute(statement)
                    await db.execute(f"PRAGMA user_version = {number}")
        except sqlite3.DatabaseError as exc:
            if "not a database" in str(exc):
                raise StoreError(
                    f"{self.path} is not a deploy-console store (not SQLite)"
                ) from None
            if isinstance(exc, sqlite3.OperationalError) and _is_busy(exc):
                raise  # _prepare retries
            raise StoreError(f"cannot open the store {self.path}: {exc}") from None

    async def close(self) -> None:
        await self._db.close()

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[aiosqlite.Connection]:
        """One write transaction, begun IMMEDIATE so it holds the write lock from its first read."""
        async with self._lock:
            for attempt in range(BEGIN_ATTEMPTS):
                try:
                    await self._db.execute("BEGIN IMMEDIATE")
                    break
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
            try:
                yield self._db
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

    async def _one(self, query: str, parameters: Sequence[object] = ()) -> sqlite3.Row | None:
        async with self._db.execute(query, parameters) as cursor:
            row: sqlite3.Row | None = await cursor.fetchone()
        return row

    async def _all(self, query: str, parameters: Sequence[object] = ()) -> list[sqlite3.Row]:
        async with self._lock, self._db.execute(query, parameters) as cursor:
            return list(await cursor.fetchall())

    # Execution locks

    async def acquire_lock(
        self, project: str, cluster: str, deploy_id: str, actor: str, *, stale_after: float = 30.0
    ) -> None:
        """Take the lock, or take it over when the holder's heartbeat is older than stale_after;
        LockBusy while another deploy holds it. The holder itself may acquire again."""
        async with self._write() as db:
            now = self._clock()
            holder = await self._lock_holder(project, cluster)
            if holder is not None and holder.deploy_id != deploy_id:
                if holder.heartbeat_at > now - timedelta(seconds=stale_after):
                    raise LockBusy(holder)
                await self._interrupt(db, holder, deploy_id, actor, now)
            acquired_at = holder.acquired_at if holder and holder.deploy_id == deploy_id else now
            await db.execute(
                "INSERT OR REPLACE INTO locks VALUES (?, ?, ?, ?, ?, ?)",
                (project, cluster, deploy_id, actor, _text(acquired_at), _text(now)),
            )

    async def _interrupt(
        self, db: aiosqlite.Connection, holder: LockInfo, deploy_id: str, actor: str, now: datetime
    ) -> None:
        """The stale holder's deploy is interrupted, in the transaction that takes its lock."""
        reason = (
            f"no heartbeat since {holder.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC; "
            f"lock taken over by deploy {deploy_id}"
        )
        cursor = await db.execute(
            "UPDATE deploys SET state = 'interrupted', finished_at = ?, reason = ? "
            "WHERE id = ? AND state IN (?, ?)",
            (_text(now), reason, holder.deploy_id, *UNFINISHED_STATES),
        )
        await self._append_audit(
            db,
            {
                "action": "lock.taken_over",
                "actor": actor,
                "project": holder.project,
                "cluster": holder.cluster,
                "deploy_id": holder.deploy_id,
                "outcome": "interrupted" if cursor.rowcount else "stale",
                "reason": reason,
            },
            now,
        )

    async def heartbeat(self, project: str, cluster: str, deploy_id: str) -> bool:
        """Refresh the holder's heartbeat; False when this deploy no longer holds the lock."""
        async with self._write() as db:
            cursor = await db.execute(
                "UPDATE locks SET heartbeat_at = ? "
                "WHERE project = ? AND cluster = ? AND deploy_id = ?",
                (_text(self._clock()), project, cluster, deploy_id),
            )
            return cursor.rowcount == 1

    async def release_lock(self, project: str, cluster: str, deploy_id: str) -> None:
        """Release the lock if this deploy holds it; anyone else's lock stays."""
        async with self._write() as db:
            await db.execute(
                "DELETE FROM locks WHERE project = ? AND cluster = ? AND deploy_id = ?",
                (project, cluster, deploy_id),
            )

    # The fleet poller lease (console/fleet/share.py)

    async def poller_lease(self) -> PollerLease | None:
        async with self._lock:
            return await self._poller_lease()

    async def _poller_lease(self) -> PollerLease | None:
        row = await self._one(
            "SELECT holder, renewed_at, generation, written_at, error FROM fleet_poller"
        )
        return None if row is None else _record(PollerLease, row)

    async def take_poller_lease(self, holder: str, *, stale_after: float) -> PollerLease:
        """Hold (or renew) the poller lease when it is free, ours, or not renewed for
        stale_after seconds; the lease as it is now (compare its holder with ours)."""
        current = await self.poller_lease()
        now = self._clock()
        if current is not None and current.holder != holder and current.fresh(now, stale_after):
            return current  # held elsewhere: no write transaction for a look
        async with self._write() as db:
            current = await self._poller_lease()
            now = self._clock()
            if current is None:
                await db.execute(
                    "INSERT INTO fleet_poller (id, holder, renewed_at) VALUES (1, ?, ?)",
                    (holder, _text(now)),
                )
            elif current.holder == holder or not current.fresh(now, stale_after):
                await db.execute(
                    "UPDATE fleet_poller SET holder = ?, renewed_at = ? WHERE id = 1",
                    (holder, _text(now)),
                )
            else:
                return current
            lease = await self._poller_lease()
        assert lease is not None
        return lease

    async def write_fleet_snapshot(self, holder: str, body: bytes) -> int | None:
        """Store the holder's new snapshot; its generation, or None when `holder` lost the
        lease (nothing is written)."""
        async with self._write() as db:
            cursor = await db.execute(
                "UPDATE fleet_poller SET generation = generation + 1, written_at = ?, "
                "renewed_at = ?, error = NULL, snapshot = ? WHERE id = 1 AND holder = ?",
                (_text(self._clock()), _text(self._clock()), body, holder),
            )
            if cursor.rowcount != 1:
                return None
            row = await self._one("SELECT generation FROM fleet_poller WHERE id = 1")
        return None if row is None else int(row[0])

    async def fleet_poll_failed(self, holder: str, error: str) -> None:
        """The holder's poll failed: readers say so, over the last snapshot."""
        async with self._write() as db:
            await db.execute(
                "UPDATE fleet_poller SET error = ?, renewed_at = ? WHERE id = 1 AND holder = ?",
                (error, _text(self._clock()), holder),
            )

    async def read_fleet_snapshot(
        self, known: int | None
    ) -> tuple[PollerLease | None, bytes | None]:
        """The lease, and the snapshot when its generation is not `known` (else None)."""
        async with self._lock:
            row = await self._one(
                "SELECT holder, renewed_at, generation, written_at, error, "
                "CASE WHEN generation IS NOT ? THEN snapshot END FROM fleet_poller",
                (known,),
            )
        if row is None:
            return None, None
        lease = PollerLease(
            row[0], datetime.fromisoformat(row[1]), int(row[2]), _time(row[3]), row[4]
        )
        return lease, row[5]

    async def release_poller_lease(self, holder: str) -> None:
        """Give the lease up (the snapshot stays): the next console to look takes it."""
        async with self._write() as db:
            await db.execute(
                "UPDATE fleet_poller SET holder = '' WHERE id = 1 AND holder = ?", (holder,)
            )

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        """One BEGIN IMMEDIATE transaction for the store's other users (see Transaction)."""
        async with self._write() as db:
            yield Transaction(self, db, self._clock())

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[Transaction]:
        """A read-only transaction: one consistent view of the store (WAL readers never wait
        for the writer, nor hold it up)."""
        async with self._lock:
            await self._db.execute("BEGIN DEFERRED")
            try:
                yield Transaction(self, self._db, self._clock())
            finally:
                if self._db.in_transaction:
                    await self._db.execute("COMMIT")

    async def cancel_requested(self, deploy_id: str) -> str | None:
        """Who asked this deploy to cancel from another console (None: nobody)."""
        async with self._lock:
            row = await self._one("SELECT cancel_requested FROM deploys WHERE id = ?", (deploy_id,))
        return None if row is None else row[0]

    async def append_log(
        self, deploy_id: str, lines: Sequence[tuple[datetime, str, str, str]]
    ) -> None:
        """Keep output lines of a deploy: (at, source, stream, line), secrets already masked."""
        if not lines:
            return
        async with self._write() as db:
            await db.executemany(
                "INSERT INTO deploy_log (deploy_id, at, source, stream, line) "
                "VALUES (?, ?, ?, ?, ?)",
                [
                    (deploy_id, _text(at), source, stream, line)
                    for at, source, stream, line in lines
                ],
            )

    async def deploy_log(self, deploy_id: str) -> list[LogLine]:
        """A deploy's output lines in the order they were printed."""
        rows = await self._all(
            "SELECT at, source, stream, line FROM deploy_log WHERE deploy_id = ? ORDER BY seq",
            [deploy_id],
        )
        return [_record(LogLine, row) for row in rows]

    async def lock_holder(self, project: str, cluster: str) -> LockInfo | None:
        async with self._lock:
            return await self._lock_holder(project, cluster)

    async def _lock_holder(self, project: str, cluster: str) -> LockInfo | None:
        row = await self._one(
            "SELECT * FROM locks WHERE project = ? AND cluster = ?", (project, cluster)
        )
        return None if row is None else _record(LockInfo, row)

    # Deploys and their steps

    async def create_deploy(self, record: DeployRecord) -> None:
        if record.state not in DEPLOY_STATES:
            raise StoreError(f"unknown deploy state {record.state!r}")
        async with self._write() as db:
            await _insert_deploy(db, record)

    async def set_deploy_state(
        self,
        deploy_id: str,
        state: str,
        *,
        reason: str = "",
        image_id: str | None = None,
        previous_release: str | None = None,
        audit: Mapping[str, Any] | None = None,
        release: tuple[str, str] | None = None,
    ) -> None:
        """Set a deploy's state (and reason, image id when given); running stamps started_at
        once, a final state stamps finished_at. With `audit` (Store.audit's fields), its row
        commits with the change; with `release` (project, cluster), the pair's lock is let go
        in the same transaction."""
        if state not in DEPLOY_STATES:
            raise StoreError(f"unknown deploy state {state!r}")
        final = state not in UNFINISHED_STATES
        async with self._write() as db:
            cursor = await db.execute(
                "UPDATE deploys SET state = :state, "
                "reason = CASE WHEN :reason = '' THEN reason ELSE :reason END, "
                "image_id = COALESCE(:image_id, image_id), "
                "previous_release = COALESCE(:previous_release, previous_release), "
                "started_at = CASE WHEN :state = 'running' THEN COALESCE(started_at, :now) "
                "ELSE started_at END, "
                "finished_at = CASE WHEN :final THEN :now END "
                "WHERE id = :id",
                {
                    "state": state,
                    "reason": reason,
                    "image_id": image_id,
                    "previous_release": previous_release,
                    "now": _text(self._clock()),
                    "final": final,
                    "id": deploy_id,
                },
            )
            if cursor.rowcount == 0:
                raise StoreError(f"deploy {deploy_id} is not in the store")
            if release is not None:
                await db.execute(
                    "DELETE FROM locks WHERE project = ? AND cluster = ? AND deploy_id = ?",
                    (*release, deploy_id),
                )
            await self._audit_with(db, audit)

    async def step_started(
        self,
        deploy_id: str,
        step: str,
        *,
        detail: str = "",
        audit: Mapping[str, Any] | None = None,
    ) -> None:
        async with self._write() as db:
            await self._insert_step(db, deploy_id, step, "running", None, detail)
            await self._audit_with(db, audit)

    async def _audit_with(self, db: aiosqlite.Connection, audit: Mapping[str, Any] | None) -> None:
        """The audit row of a change, in the change's own transaction."""
        if audit is not None:
            values = dict(audit)
            values["instance_ids"] = json.dumps(list(values.get("instance_ids", ())))
            await self._append_audit(db, values, self._clock())

    async def step_finished(
        self,
        deploy_id: str,
        step: str,
        state: str,
        *,
        detail: str = "",
        audit: Mapping[str, Any] | None = None,
    ) -> None:
        """Finish the step's latest run and store its seconds; a step that never started
        (skipped) gets a row of its own with 0 seconds. An empty detail keeps the one it had.
        With `audit`, its row commits with the step."""
        if state not in STEP_STATES - {"running"}:
            raise StoreError(f"unknown final step state {state!r}")
        async with self._write() as db:
            await self._audit_with(db, audit)
            now = self._clock()
            running = await self._one(
                "SELECT seq, started_at FROM steps WHERE deploy_id = ? AND step = ? "
                "AND finished_at IS NULL ORDER BY seq DESC LIMIT 1",
                (deploy_id, step),
            )
            if running is None:
                await self._insert_step(db, deploy_id, step, state, now, detail)
                return
            started_at = datetime.fromisoformat(running["started_at"])
            await db.execute(
                "UPDATE steps SET state = ?, finished_at = ?, seconds = ?, "
                "detail = CASE WHEN ? = '' THEN detail ELSE ? END WHERE seq = ?",
                (state, _text(now), max(0.0, (now - started_at).total_seconds()), detail, detail,
                 running["seq"]),
            )  # fmt: skip

    async def _insert_step(
        self,
        db: aiosqlite.Connection,
        deploy_id: str,
        step: str,
        state: str,
        finished_at: datetime | None,
        detail: str,
    ) -> None:
        started_at = finished_at or self._clock()
        try:
            await db.execute(
                "INSERT INTO steps (deploy_id, step, state, started_at, finished_at, seconds, "
                "detail) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (deploy_id, step, state, _text(started_at), _text(finished_at),
                 None if finished_at is None else 0.0, detail),
            )  # fmt: skip
        except sqlite3.IntegrityError:
            raise StoreError(f"deploy {deploy_id} is not in the store") from None

    async def deploy(self, deploy_id: str) -> DeployRecord | None:
        records = await self._deploys("WHERE id = ?", [deploy_id])
        return records[0] if records else None

    async def steps(self, deploy_id: str) -> list[StepRecord]:
        """Every step run of a deploy, in the order they started."""
        rows = await self._all(
            f"SELECT {', '.join(_columns(StepRecord))} FROM steps WHERE deploy_id = ? ORDER BY seq",
            [deploy_id],
        )
        return [_record(StepRecord, row) for row in rows]

    async def deploys(
        self,
        *,
        project: str | None = None,
        cluster: str | None = None,
        actor: str | None = None,
        state: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        before: str | None = None,
        limit: int = 50,
    ) -> list[DeployRecord]:
        """The latest deploys, newest first, narrowed by whichever filters are given.

        since (inclusive) and until (exclusive) bound created_at; before, a deploy id, pages
        back: only the deploys recorded before that one (keyset paging, never OFFSET).
        """
        where, parameters = _where(
            {
                "project = ?": project,
                "cluster = ?": cluster,
                "actor_user = ?": actor,
                "state = ?": state,
                # created_at is UTC ISO text of one fixed width: text order is time order.
                "created_at >= ?": _text(since),
                "created_at < ?": _text(until),
                "seq < (SELECT seq FROM deploys WHERE id = ?)": before,
            }
        )
        return await self._deploys(f"{where} ORDER BY seq DESC LIMIT ?", [*parameters, limit])

    async def unfinished_deploys(self) -> list[DeployRecord]:
        """Queued and running deploys, oldest first (the order they were queued in)."""
        return await self._deploys("WHERE state IN (?, ?) ORDER BY seq", UNFINISHED_STATES)

    async def _deploys(self, clause: str, parameters: Sequence[object]) -> list[DeployRecord]:
        columns = ", ".join(_columns(DeployRecord))
        rows = await self._all(f"SELECT {columns} FROM deploys {clause}", parameters)
        return [_record(DeployRecord, row) for row in rows]

    # Audit: append-only, each row chained to the one before by its hash

    async def audit(
        self,
        action: str,
        *,
        actor: str,
        project: str | None = None,
        cluster: str | None = None,
        deploy_id: str | None = None,
        image_id: str | None = None,
        instance_ids: Iterable[str] = (),
        step: str | None = None,
        outcome: str | None = None,
        reason: str = "",
        ticket: str | None = None,
        config: str | None = None,
    ) -> int:
        """Append one audit row and return its id. Takes no secrets: say only that one changed."""
        row = {
            "action": action,
            "actor": actor,
            "project": project,
            "cluster": cluster,
            "deploy_id": deploy_id,
            "image_id": image_id,
            "instance_ids": json.dumps(list(instance_ids)),
            "step": step,
            "outcome": outcome,
            "reason": reason,
            "ticket": ticket,
            "config": config,
        }
        async with self._write() as db:
            return await self._append_audit(db, row, self._clock())

    async def record_config(self, actor: str, digest: str, rules: str, source: str) -> bool:
        """A `config` audit row if the rules' digest is not the last one recorded (who started
        a console on them, what they say); whether one was written."""
        async with self._write() as db:
            return await _record_config(self, db, self._clock(), actor, digest, rules, source)

    async def _append_audit(
        self, db: aiosqlite.Connection, values: Mapping[str, object], now: datetime
    ) -> int:
        # Inside a BEGIN IMMEDIATE transaction: no other writer, in this process or another,
        # can append between our reading the last hash and inserting the row chained to it.
        last = await self._one("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1")
        row_id, prev_hash = (last["id"] + 1, last["hash"]) if last else (1, GENESIS_HASH)
        row: dict[str, object] = dict.fromkeys(AUDIT_HASHED) | {"reason": "", "instance_ids": "[]"}
        row |= dict(values) | {"id": row_id, "at": _text(now), "prev_hash": prev_hash}
        row["hash"] = audit_hash(prev_hash, row)
        await db.execute(_insert("audit", row), row)
        return row_id

    async def audit_rows(
        self,
        *,
        deploy_id: str | None = None,
        project: str | None = None,
        before: int | None = None,
        limit: int | None = None,
    ) -> list[AuditRow]:
        """Audit rows in id order; with limit, the latest ones; before (a row id) pages back."""
        where, parameters = _where(
            {"deploy_id = ?": deploy_id, "project = ?": project, "id < ?": before}
        )
        rows = await self._all(
            f"SELECT {AUDIT_COLUMNS} FROM audit {where} ORDER BY id DESC LIMIT ?",
            [*parameters, -1 if limit is None else limit],
        )
        return [_record(AuditRow, row) for row in reversed(rows)]

    async def config_changes(self, limit: int = 20) -> list[AuditRow]:
        """The latest `config` audit rows, newest first (see record_config)."""
        rows = await self._all(
            f"SELECT {AUDIT_COLUMNS} FROM audit WHERE action = 'config' ORDER BY id DESC LIMIT ?",
            [limit],
        )
        return [_record(AuditRow, row) for row in rows]

    async def verify_audit(self) -> int | None:
        """None when every row chains to the one before it; else the first row id that does not
        (for a gap, the first missing id)."""
        problem = (await self.check_audit()).problem
        return None if problem is None else problem.id

    async def check_audit(self) -> AuditCheck:
        """Recompute the chain from the first row: how many rows verify, the head hash and the
        first row that does not match (changed, missing or out of order).

        Rows removed from the end, or a chain recomputed from a changed row onwards, still
        verify: only an anchor kept outside the store (a head hash published elsewhere) shows
        those.
        """
        return await self.check_audit_after(0, GENESIS_HASH)

    async def _unchained(
        self, row_id: int, row: sqlite3.Row, prev_id: int, prev_hash: str
    ) -> AuditProblem:
        """Why a row's prev_hash is not the hash of the row before it (the lock is held)."""
        before = f"row {prev_id}" if prev_id else "the start of the chain"
        if row["prev_hash"] == GENESIS_HASH:
            return AuditProblem(row_id, "out of order", "it claims to be the first row")
        found = await self._one(
            "SELECT id FROM audit WHERE hash = ? AND id != ? LIMIT 1", (row["prev_hash"], prev_id)
        )
        if found is not None:
            return AuditProblem(
                row_id, "out of order", f"it follows row {found['id']}, not {before}"
            )
        if row["hash"] != audit_hash(row["prev_hash"], row):
            return AuditProblem(row_id, "changed", "its contents do not match its hash")
        return AuditProblem(
            row_id,
            "changed",
            f"it does not chain to {before}: one of them was rewritten with a new hash",
        )

    async def audit_page(
        self,
        *,
        after: int = 0,
        limit: int = 1000,
        project: str | None = None,
        cluster: str | None = None,
        actor: str | None = None,
        outcome: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[AuditRow]:
        """Up to limit audit rows with ids above `after`, oldest first, filtered (since is
        inclusive, until exclusive): the next page starts after the last id (keyset paging)."""
        where, parameters = _where(
            {
                "id > ?": after,
                "project = ?": project,
                "cluster = ?": cluster,
                "actor_user = ?": actor,
                "outcome = ?": outcome,
                # `at` is stored as UTC ISO text of one fixed width: text order is time order.
                "at >= ?": _text(since),
                "at < ?": _text(until),
            }
        )
        rows = await self._all(
            f"SELECT {AUDIT_COLUMNS} FROM audit {where} ORDER BY id LIMIT ?", [*parameters, limit]
        )
        return [_record(AuditRow, row) for row in rows]

    async def iter_audit(self, *, page_size: int = 1000, **filters: Any) -> AsyncIterator[AuditRow]:
        """Every audit row matching the filters of audit_page, oldest first, one page in memory."""
        after = 0
        while True:
            page = await self.audit_page(after=after, limit=page_size, **filters)
            for row in page:
                yield row
            if len(page) < page_size:
                return
            after = page[-1].id

    async def check_audit_after(self, after: int, head: str) -> AuditCheck:
        """check_audit from row `after` on, taking `head` as that row's hash (0 and the genesis
        hash: the whole chain): an anchor's row and hash, so that only the rows written since
        are recomputed. rows counts from the first row, as check_audit does.

        Whether row `after` still has that hash is the caller's to check (console.audit.anchor).
        """
        count, prev_id, prev_hash = after, after, head
        async with (
            self._lock,
            self._db.execute("SELECT * FROM audit WHERE id > ? ORDER BY id", (after,)) as cursor,
        ):
            async for row in cursor:
                row_id = int(row["id"])
                if row_id != prev_id + 1:
                    gap = (
                        f"{prev_id + 1}" if row_id == prev_id + 2 else f"{prev_id + 1}-{row_id - 1}"
                    )
                    last = f"row {prev_id}" if prev_id else "the start"
                    problem = AuditProblem(
                        prev_id + 1, "missing", f"ids jump from {last} to {row_id} ({gap} gone)"
                    )
                    return AuditCheck(count, prev_hash, problem)
                if row["prev_hash"] != prev_hash:
                    problem = await self._unchained(row_id, row, prev_id, prev_hash)
                    return AuditCheck(count, prev_hash, problem)
                if row["hash"] != audit_hash(prev_hash, row):
                    problem = AuditProblem(row_id, "changed", "its contents do not match its hash")
                    return AuditCheck(count, prev_hash, problem)
                count, prev_id, prev_hash = count + 1, row_id, row["hash"]
        return AuditCheck(count, prev_hash, None)

    async def record_anchor(self, location: str, rows: int, head: str, at: datetime) -> None:
        """Note that row `rows` (hash `head`) was anchored at `location`; a note of a later row
        is never replaced by an earlier one."""
        async with self._write() as db:
            await db.execute(
                """INSERT INTO audit_anchors (location, rows, head, anchored_at)
                   VALUES (?, ?, ?, ?)
                   ON CONFLICT (location) DO UPDATE SET
                       rows = excluded.rows, head = excluded.head,
                       anchored_at = excluded.anchored_at
                   WHERE excluded.rows >= audit_anchors.rows""",
                (location, rows, head, _text(at)),
            )

    async def anchor_record(self, location: str) -> AnchorRecord | None:
        """The last anchor noted for `location`; None when none was (or the store predates the
        note: then only the anchors in S3 say what must hold)."""
        try:
            rows = await self._all(
                "SELECT location, rows, head, anchored_at FROM audit_anchors WHERE location = ?",
                (location,),
            )
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return None
            raise
        if not rows:
            return None
        row = rows[0]
        at = _time(row["anchored_at"])
        assert at is not None
        return AnchorRecord(row["location"], int(row["rows"]), str(row["head"]), at)

    async def audit_hashes(self, ids: Iterable[int]) -> dict[int, str]:
        """The hash of each of these audit rows that exists, by row id."""
        wanted = sorted(set(ids))
        found: dict[int, str] = {}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            rows = await self._all(f"SELECT id, hash FROM audit WHERE id IN ({marks})", chunk)
            found.update((int(row["id"]), str(row["hash"])) for row in rows)
        return found
