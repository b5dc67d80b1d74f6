"""The audit repository: the append-only, hash-chained audit table, its reads, the walk that
verifies the chain, and the store's notes of where its head was anchored."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping
from datetime import datetime

from console.store import chain
from console.store.connection import Tx, columns, filtered, insert, marks, record, text, where
from console.store.records import AnchorRecord, AuditCheck, AuditRow

# The stored fields (the actor's generated fields are derived from `actor`, which is hashed).
AUDIT_COLUMNS = ", ".join(columns(AuditRow))


async def append(tx: Tx, values: Mapping[str, object]) -> int:
    """Append one row (Store.audit's fields; instance_ids an iterable) chained to the last one;
    its id. Inside a BEGIN IMMEDIATE transaction: no other writer, in this process or another,
    can append between our reading the last hash and inserting the row chained to it."""
    last = await tx.one("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1")
    row_id, prev_hash = (last["id"] + 1, last["hash"]) if last else (1, chain.GENESIS_HASH)
    row: dict[str, object] = dict.fromkeys(chain.AUDIT_HASHED) | {"reason": ""} | dict(values)
    if row["ticket"] is None and row["deploy_id"] is not None:
        row["ticket"] = await _deploy_ticket(tx, str(row["deploy_id"]))
    row["instance_ids"] = json.dumps(list(values.get("instance_ids", ())))  # type: ignore[call-overload]
    row |= {"id": row_id, "at": text(tx.now), "prev_hash": prev_hash}
    row["hash"] = chain.audit_hash(prev_hash, row)
    await tx.execute(insert("audit", row), row)
    return row_id


async def _deploy_ticket(tx: Tx, deploy_id: str) -> str | None:
    """The change ticket of a deploy, which every audit row about it carries."""
    found = await tx.one("SELECT ticket FROM deploys WHERE id = ?", (deploy_id,))
    return None if found is None else found["ticket"]


async def record_config(tx: Tx, actor: str, digest: str, rules: str, source: str) -> bool:
    """A `config` row if the rules' digest is not the last one recorded; whether one was."""
    last = await tx.one("SELECT config FROM audit WHERE action = 'config' ORDER BY id DESC LIMIT 1")
    if last is not None and last[0] == digest:
        return False
    row = {
        "action": "config",
        "actor": actor,
        "outcome": "first" if last is None else "changed",
        "reason": f"{rules} · {source}",
        "config": digest,
    }
    await append(tx, row)
    return True


async def rows(
    tx: Tx,
    *,
    deploy_id: str | None = None,
    project: str | None = None,
    before: int | None = None,
    limit: int | None = None,
) -> list[AuditRow]:
    """Rows in id order; with limit, the latest ones; before (a row id) pages back."""
    clause, parameters = where(
        {"deploy_id = ?": deploy_id, "project = ?": project, "id < ?": before}
    )
    found = await tx.records(
        AuditRow,
        f"SELECT {AUDIT_COLUMNS} FROM audit {clause} ORDER BY id DESC LIMIT ?",
        [*parameters, -1 if limit is None else limit],
    )
    return found[::-1]


async def config_changes(tx: Tx, limit: int) -> list[AuditRow]:
    """The latest `config` rows, newest first."""
    return await tx.records(
        AuditRow,
        f"SELECT {AUDIT_COLUMNS} FROM audit WHERE action = 'config' ORDER BY id DESC LIMIT ?",
        [limit],
    )


# Store.audit_page's filters: `at` is stored as UTC ISO text of one fixed width (text order
# is time order); since is inclusive, until exclusive.
PAGE_FILTERS = {
    "project": "project = ?",
    "cluster": "cluster = ?",
    "actor": "actor_user = ?",
    "outcome": "outcome = ?",
    "since": "at >= ?",
    "until": "at < ?",
}


async def page(tx: Tx, *, after: int, limit: int, **filters: object) -> list[AuditRow]:
    """Up to limit rows with ids above `after`, oldest first, filtered (keyset paging)."""
    clause, parameters = where({"id > ?": after} | filtered(PAGE_FILTERS, filters))
    return await tx.records(
        AuditRow,
        f"SELECT {AUDIT_COLUMNS} FROM audit {clause} ORDER BY id LIMIT ?",
        [*parameters, limit],
    )


async def check_after(tx: Tx, after: int, head: str) -> AuditCheck:
    """Walk the chain from row `after` on, taking `head` as that row's hash (see
    Store.check_audit_after); rows counts from the first row."""
    count, prev_id, prev_hash = after, after, head
    async with tx.cursor("SELECT * FROM audit WHERE id > ? ORDER BY id", (after,)) as cursor:
        async for row in cursor:
            row_id = int(row["id"])
            if row_id != prev_id + 1:
                return AuditCheck(count, prev_hash, chain.missing(prev_id, row_id))
            if row["prev_hash"] != prev_hash:
                follows = await _row_with_hash(tx, row["prev_hash"], prev_id)
                return AuditCheck(count, prev_hash, chain.unchained(row, prev_id, follows))
            if row["hash"] != chain.audit_hash(prev_hash, row):
                return AuditCheck(count, prev_hash, chain.changed(row_id))
            count, prev_id, prev_hash = count + 1, row_id, row["hash"]
    return AuditCheck(count, prev_hash, None)


async def _row_with_hash(tx: Tx, hash_: str, other_than: int) -> int | None:
    if hash_ == chain.GENESIS_HASH:
        return None
    found = await tx.one(
        "SELECT id FROM audit WHERE hash = ? AND id != ? LIMIT 1", (hash_, other_than)
    )
    return None if found is None else int(found["id"])


async def hashes(tx: Tx, ids: Iterable[int]) -> dict[int, str]:
    """The hash of each of these rows that exists, by row id."""
    wanted = sorted(set(ids))
    found: dict[int, str] = {}
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        for row in await tx.all(f"SELECT id, hash FROM audit WHERE id IN ({marks(chunk)})", chunk):
            found[int(row["id"])] = str(row["hash"])
    return found


async def record_anchor(tx: Tx, location: str, rows: int, head: str, at: datetime) -> None:
    """Note that row `rows` (hash `head`) was anchored at `location`; a note of a later row is
    never replaced by an earlier one."""
    await tx.execute(
        """INSERT INTO audit_anchors (location, rows, head, anchored_at)
           VALUES (?, ?, ?, ?)
           ON CONFLICT (location) DO UPDATE SET
               rows = excluded.rows, head = excluded.head,
               anchored_at = excluded.anchored_at
           WHERE excluded.rows >= audit_anchors.rows""",
        (location, rows, head, text(at)),
    )


async def anchor_record(tx: Tx, location: str) -> AnchorRecord | None:
    """The last anchor noted for `location`; None when none was (or the store predates the
    note: then only the anchors in S3 say what must hold)."""
    try:
        row = await tx.one(
            "SELECT location, rows, head, anchored_at FROM audit_anchors WHERE location = ?",
            (location,),
        )
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return None
        raise
    return None if row is None else record(AnchorRecord, row)
