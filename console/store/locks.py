"""The locks repository: each pair's execution lock (held by the deploy that runs there),
the locks people put on the fleet, and frozen clusters."""

from __future__ import annotations

import sqlite3
from datetime import datetime

from console.store.connection import Tx, text
from console.store.records import Freeze, LockInfo, ManualLock, NewManualLock

# Execution locks


async def holder(tx: Tx, project: str, cluster: str) -> LockInfo | None:
    found = await tx.records(
        LockInfo, "SELECT * FROM locks WHERE project = ? AND cluster = ?", (project, cluster)
    )
    return found[0] if found else None


async def every(tx: Tx) -> list[LockInfo]:
    return await tx.records(LockInfo, "SELECT * FROM locks")


async def hold(
    tx: Tx, project: str, cluster: str, deploy_id: str, actor: str, acquired_at: datetime
) -> None:
    """The pair's lock is deploy_id's (whoever held it before), with a heartbeat of now."""
    await tx.execute(
        "INSERT OR REPLACE INTO locks VALUES (?, ?, ?, ?, ?, ?)",
        (project, cluster, deploy_id, actor, text(acquired_at), text(tx.now)),
    )


async def take(tx: Tx, project: str, cluster: str, deploy_id: str, actor: str) -> None:
    """The free pair's lock is deploy_id's from now (the transaction fails if it is held)."""
    await tx.execute(
        "INSERT INTO locks VALUES (?, ?, ?, ?, ?, ?)",
        (project, cluster, deploy_id, actor, text(tx.now), text(tx.now)),
    )


async def heartbeat(tx: Tx, project: str, cluster: str, deploy_id: str) -> bool:
    """Refresh the holder's heartbeat; False when this deploy no longer holds the lock."""
    cursor = await tx.execute(
        "UPDATE locks SET heartbeat_at = ? WHERE project = ? AND cluster = ? AND deploy_id = ?",
        (text(tx.now), project, cluster, deploy_id),
    )
    return cursor.rowcount == 1


async def release(tx: Tx, project: str, cluster: str, deploy_id: str) -> None:
    """Release the lock if this deploy holds it; anyone else's lock stays."""
    await tx.execute(
        "DELETE FROM locks WHERE project = ? AND cluster = ? AND deploy_id = ?",
        (project, cluster, deploy_id),
    )


# Manual locks


async def manual_locks(tx: Tx) -> list[ManualLock]:
    return await tx.records(ManualLock, "SELECT * FROM manual_locks ORDER BY id")


async def manual_lock(tx: Tx, lock_id: int) -> ManualLock | None:
    found = await tx.records(ManualLock, "SELECT * FROM manual_locks WHERE id = ?", (lock_id,))
    return found[0] if found else None


async def expired_manual_locks(tx: Tx) -> list[ManualLock]:
    return await tx.records(
        ManualLock,
        "SELECT * FROM manual_locks WHERE expires_at IS NOT NULL AND expires_at <= ?",
        (text(tx.now),),
    )


# What a lock leaves out: every project, every cluster, a lock that blocks.
_UNSCOPED = {"project": None, "cluster": None, "warning": False}


async def add_manual_lock(tx: Tx, lock: NewManualLock) -> ManualLock:
    cursor = await tx.execute(
        "INSERT INTO manual_locks (project, cluster, owner, reason, warning, created_at, "
        "expires_at) VALUES (:project, :cluster, :owner, :reason, :warning, :created_at, "
        ":expires_at)",
        {
            **_UNSCOPED,
            **lock,
            "created_at": text(tx.now),
            "expires_at": text(lock.get("expires_at")),
        },
    )
    added = await manual_lock(tx, int(cursor.lastrowid or 0))
    assert added is not None
    return added


async def remove_manual_lock(tx: Tx, lock_id: int) -> None:
    await tx.execute("DELETE FROM manual_locks WHERE id = ?", (lock_id,))


# Freezes


async def freezes(tx: Tx) -> list[Freeze]:
    return await tx.records(Freeze, "SELECT * FROM freezes ORDER BY cluster")


async def freeze(tx: Tx, cluster: str, actor: str, reason: str) -> Freeze | None:
    """Freeze a cluster; None when done, else the freeze it already has."""
    try:
        await tx.execute(
            "INSERT INTO freezes VALUES (?, ?, ?, ?)", (cluster, actor, reason, text(tx.now))
        )
    except sqlite3.IntegrityError:
        (found,) = await tx.records(Freeze, "SELECT * FROM freezes WHERE cluster = ?", (cluster,))
        return found
    return None


async def unfreeze(tx: Tx, cluster: str) -> bool:
    """Whether the cluster was frozen."""
    cursor = await tx.execute("DELETE FROM freezes WHERE cluster = ?", (cluster,))
    return bool(cursor.rowcount)
