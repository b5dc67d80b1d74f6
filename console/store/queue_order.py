"""The queue's repository: the deploys table as the release queue sees it (order within a
pair, who runs a deploy, cancels asked from elsewhere, reconciled interruptions)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from console.store.connection import Tx, marks, text
from console.store.deploys import select
from console.store.records import CANCELLED, INTERRUPTED, QUEUED, RUNNING, DeployRecord


async def in_queue(tx: Tx) -> list[DeployRecord]:
    """Queued, running, and interrupted deploys not yet reconciled, in queue order."""
    return await select(
        tx,
        "WHERE state IN (?, ?) OR (state = ? AND reconciled_at IS NULL) ORDER BY position, seq",
        (QUEUED, RUNNING, INTERRUPTED),
    )


async def by_ids(tx: Tx, ids: Iterable[str]) -> list[DeployRecord]:
    wanted = sorted(set(ids))
    return await select(tx, f"WHERE id IN ({marks(wanted)})", wanted)


async def queued_in_pair(tx: Tx, project: str, cluster: str) -> list[DeployRecord]:
    """The queued deploys of one pair, in queue order."""
    return await select(
        tx,
        "WHERE project = ? AND cluster = ? AND state = ? ORDER BY position, seq",
        (project, cluster, QUEUED),
    )


async def unsettled(tx: Tx) -> list[DeployRecord]:
    """Running deploys, and interrupted ones not yet reconciled, oldest first."""
    return await select(
        tx,
        "WHERE state = ? OR (state = ? AND reconciled_at IS NULL) ORDER BY seq",
        (RUNNING, INTERRUPTED),
    )


async def cancel_queued(tx: Tx, deploy_id: str, reason: str) -> None:
    """A queued entry cancelled; a stack change it would have applied ends cancelled with it
    (the caller's `queue.cancel` audit row, in this transaction, says who and why)."""
    await tx.execute(
        "UPDATE deploys SET state = ?, finished_at = ?, reason = ? WHERE id = ? AND state = ?",
        (CANCELLED, text(tx.now), reason, deploy_id, QUEUED),
    )
    await tx.execute(
        "UPDATE stack_changes SET state = ?, finished_at = ?, reason = ? "
        "WHERE deploy_id = ? AND state IN ('planned', 'queued')",
        (CANCELLED, text(tx.now), reason, deploy_id),
    )


async def request_cancel(tx: Tx, deploy_id: str, actor: str) -> None:
    await tx.execute("UPDATE deploys SET cancel_requested = ? WHERE id = ?", (actor, deploy_id))


async def cancel_requested(tx: Tx, deploy_id: str) -> str | None:
    row = await tx.one("SELECT cancel_requested FROM deploys WHERE id = ?", (deploy_id,))
    return None if row is None else row[0]


async def request_bake(tx: Tx, deploy_id: str, request: str) -> None:
    await tx.execute("UPDATE deploys SET bake_request = ? WHERE id = ?", (request, deploy_id))


async def bake_requested(tx: Tx, deploy_id: str) -> str | None:
    row = await tx.one("SELECT bake_request FROM deploys WHERE id = ?", (deploy_id,))
    return None if row is None else row[0]


async def override_window(tx: Tx, deploy_id: str, reason: str, actor: str) -> None:
    await tx.execute(
        "UPDATE deploys SET window_override = ?, window_override_by = ? WHERE id = ?",
        (reason, actor, deploy_id),
    )


async def set_positions(tx: Tx, positions: Sequence[tuple[str, float | None]]) -> None:
    """Each (deploy id, position): lower runs first within its pair."""
    for deploy_id, position in positions:
        await tx.execute("UPDATE deploys SET position = ? WHERE id = ?", (position, deploy_id))


async def start(tx: Tx, deploy_id: str, runner: str) -> None:
    """The deploy runs now, on `runner`."""
    await tx.execute(
        "UPDATE deploys SET state = ?, runner = ?, started_at = ? WHERE id = ?",
        (RUNNING, runner, text(tx.now), deploy_id),
    )


async def set_runner(tx: Tx, deploy_id: str, runner: str) -> None:
    await tx.execute("UPDATE deploys SET runner = ? WHERE id = ?", (runner, deploy_id))


async def reconciled(tx: Tx, deploy_id: str, summary: str) -> None:
    await tx.execute(
        "UPDATE deploys SET reconciled_at = ?, reason = reason || ? WHERE id = ?",
        (text(tx.now), f"; reconciled: {summary}", deploy_id),
    )
