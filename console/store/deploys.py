"""The deploys repository: deploys, the runs of their steps, and their output lines."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime

from console.errors import StoreError
from console.store.connection import (
    TIME_FIELDS,
    Parameters,
    Tx,
    columns,
    filtered,
    insert,
    text,
    where,
)
from console.store.records import (
    DEPLOY_STATES,
    INTERRUPTED,
    STEP_STATES,
    UNFINISHED_STATES,
    DeployRecord,
    LogLine,
    StepRecord,
)

DEPLOY_COLUMNS = ", ".join(columns(DeployRecord))
STEP_COLUMNS = ", ".join(columns(StepRecord))


def check_state(state: str) -> None:
    if state not in DEPLOY_STATES:
        raise StoreError(f"unknown deploy state {state!r}")


def check_step_state(state: str) -> None:
    """A step's final state must be one the store knows."""
    if state not in STEP_STATES - {"running"}:
        raise StoreError(f"unknown final step state {state!r}")


async def select(tx: Tx, clause: str, parameters: Parameters = ()) -> list[DeployRecord]:
    """The deploys a clause picks ("WHERE ... ORDER BY ..."; the repositories' own SQL)."""
    return await tx.records(
        DeployRecord, f"SELECT {DEPLOY_COLUMNS} FROM deploys {clause}", parameters
    )


async def get(tx: Tx, deploy_id: str) -> DeployRecord | None:
    found = await select(tx, "WHERE id = ?", (deploy_id,))
    return found[0] if found else None


async def insert_deploy(tx: Tx, record: DeployRecord) -> None:
    """Insert a deploy; one without a position goes to the end of the queue (position = seq)."""
    check_state(record.state)
    values = {
        name: text(value) if name in TIME_FIELDS else value
        for name, value in asdict(record).items()
    }
    try:
        cursor = await tx.execute(insert("deploys", values), values)
    except sqlite3.IntegrityError:
        raise StoreError(f"deploy {record.id} is already in the store") from None
    if record.position is None:
        await tx.execute("UPDATE deploys SET position = seq WHERE seq = ?", (cursor.lastrowid,))


async def set_state(
    tx: Tx,
    deploy_id: str,
    state: str,
    *,
    reason: str,
    image_id: str | None,
    previous_release: str | None,
) -> None:
    """See Store.set_deploy_state."""
    check_state(state)
    cursor = await tx.execute(
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
            "now": text(tx.now),
            "final": state not in UNFINISHED_STATES,
            "id": deploy_id,
        },
    )
    if cursor.rowcount == 0:
        raise StoreError(f"deploy {deploy_id} is not in the store")


async def interrupt_unfinished(tx: Tx, deploy_id: str, reason: str) -> bool:
    """Mark a queued or running deploy interrupted; whether it was one."""
    cursor = await tx.execute(
        "UPDATE deploys SET state = ?, finished_at = ?, reason = ? "
        "WHERE id = ? AND state IN (?, ?)",
        (INTERRUPTED, text(tx.now), reason, deploy_id, *UNFINISHED_STATES),
    )
    return bool(cursor.rowcount)


# Store.deploys's filters: since (inclusive) and until (exclusive) bound created_at, which is
# UTC ISO text of one fixed width (text order is time order); before (a deploy id) pages back.
HISTORY_FILTERS = {
    "project": "project = ?",
    "cluster": "cluster = ?",
    "actor": "actor_user = ?",
    "state": "state = ?",
    "since": "created_at >= ?",
    "until": "created_at < ?",
    "before": "seq < (SELECT seq FROM deploys WHERE id = ?)",
}


async def history(tx: Tx, *, limit: int, **filters: object) -> list[DeployRecord]:
    """The latest deploys, newest first, narrowed by HISTORY_FILTERS (see Store.deploys)."""
    clause, parameters = where(filtered(HISTORY_FILTERS, filters))
    return await select(tx, f"{clause} ORDER BY seq DESC LIMIT ?", [*parameters, limit])


async def unfinished(tx: Tx) -> list[DeployRecord]:
    """Queued and running deploys, oldest first (the order they were queued in)."""
    return await select(tx, "WHERE state IN (?, ?) ORDER BY seq", UNFINISHED_STATES)


# Steps


async def step_started(tx: Tx, deploy_id: str, step: str, detail: str) -> None:
    await _insert_step(tx, deploy_id, step, "running", None, detail)


async def step_finished(tx: Tx, deploy_id: str, step: str, state: str, detail: str) -> None:
    """See Store.step_finished."""
    check_step_state(state)
    running = await tx.one(
        "SELECT seq, started_at FROM steps WHERE deploy_id = ? AND step = ? "
        "AND finished_at IS NULL ORDER BY seq DESC LIMIT 1",
        (deploy_id, step),
    )
    if running is None:
        await _insert_step(tx, deploy_id, step, state, tx.now, detail)
        return
    started_at = datetime.fromisoformat(running["started_at"])
    await tx.execute(
        "UPDATE steps SET state = ?, finished_at = ?, seconds = ?, "
        "detail = CASE WHEN ? = '' THEN detail ELSE ? END WHERE seq = ?",
        (state, text(tx.now), max(0.0, (tx.now - started_at).total_seconds()), detail, detail,
         running["seq"]),
    )  # fmt: skip


async def _insert_step(
    tx: Tx, deploy_id: str, step: str, state: str, finished_at: datetime | None, detail: str
) -> None:
    started_at = finished_at or tx.now
    try:
        await tx.execute(
            "INSERT INTO steps (deploy_id, step, state, started_at, finished_at, seconds, "
            "detail) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (deploy_id, step, state, text(started_at), text(finished_at),
             None if finished_at is None else 0.0, detail),
        )  # fmt: skip
    except sqlite3.IntegrityError:
        raise StoreError(f"deploy {deploy_id} is not in the store") from None


async def steps(tx: Tx, deploy_id: str) -> list[StepRecord]:
    """Every step run of a deploy, in the order they started."""
    return await tx.records(
        StepRecord,
        f"SELECT {STEP_COLUMNS} FROM steps WHERE deploy_id = ? ORDER BY seq",
        [deploy_id],
    )


# Output


async def append_log(
    tx: Tx, deploy_id: str, lines: Sequence[tuple[datetime, str, str, str]]
) -> None:
    await tx.db.executemany(
        "INSERT INTO deploy_log (deploy_id, at, source, stream, line) VALUES (?, ?, ?, ?, ?)",
        [(deploy_id, text(at), source, stream, line) for at, source, stream, line in lines],
    )


async def log(tx: Tx, deploy_id: str) -> list[LogLine]:
    """A deploy's output lines in the order they were printed."""
    return await tx.records(
        LogLine,
        "SELECT at, source, stream, line FROM deploy_log WHERE deploy_id = ? ORDER BY seq",
        [deploy_id],
    )
