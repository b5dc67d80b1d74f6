"""The fleet poller repository: the one row saying which console polls the fleet for every
console on the store (its lease), and the last snapshot it wrote (console/fleet/share.py)."""

from __future__ import annotations

from console.store.connection import Tx, record, text
from console.store.records import PollerLease

LEASE_COLUMNS = "holder, renewed_at, generation, written_at, error"


async def lease(tx: Tx) -> PollerLease | None:
    row = await tx.one(f"SELECT {LEASE_COLUMNS} FROM fleet_poller")
    return None if row is None else record(PollerLease, row)


async def take(tx: Tx, holder: str, stale_after: float) -> PollerLease:
    """Hold (or renew) the lease when it is free, ours, or stale; the lease as it is now."""
    current = await lease(tx)
    if current is None:
        await tx.execute(
            "INSERT INTO fleet_poller (id, holder, renewed_at) VALUES (1, ?, ?)",
            (holder, text(tx.now)),
        )
    elif current.holder == holder or not current.fresh(tx.now, stale_after):
        await tx.execute(
            "UPDATE fleet_poller SET holder = ?, renewed_at = ? WHERE id = 1",
            (holder, text(tx.now)),
        )
    else:
        return current
    taken = await lease(tx)
    assert taken is not None
    return taken


async def write_snapshot(tx: Tx, holder: str, body: bytes) -> int | None:
    """Store the holder's new snapshot; its generation, or None when `holder` lost the lease."""
    cursor = await tx.execute(
        "UPDATE fleet_poller SET generation = generation + 1, written_at = ?, "
        "renewed_at = ?, error = NULL, snapshot = ? WHERE id = 1 AND holder = ?",
        (text(tx.now), text(tx.now), body, holder),
    )
    if cursor.rowcount != 1:
        return None
    row = await tx.one("SELECT generation FROM fleet_poller WHERE id = 1")
    return None if row is None else int(row[0])


async def poll_failed(tx: Tx, holder: str, error: str) -> None:
    await tx.execute(
        "UPDATE fleet_poller SET error = ?, renewed_at = ? WHERE id = 1 AND holder = ?",
        (error, text(tx.now), holder),
    )


async def read_snapshot(tx: Tx, known: int | None) -> tuple[PollerLease | None, bytes | None]:
    """The lease, and the snapshot when its generation is not `known` (else None)."""
    row = await tx.one(
        f"SELECT {LEASE_COLUMNS}, "
        "CASE WHEN generation IS NOT ? THEN snapshot END AS snapshot FROM fleet_poller",
        (known,),
    )
    if row is None:
        return None, None
    values = dict(zip(row.keys(), row, strict=True))
    body = values.pop("snapshot")
    return record(PollerLease, values), body


async def release(tx: Tx, holder: str) -> None:
    """Give the lease up (the snapshot stays): the next console to look takes it."""
    await tx.execute("UPDATE fleet_poller SET holder = '' WHERE id = 1 AND holder = ?", (holder,))
