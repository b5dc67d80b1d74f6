"""The approvals repository: verdicts people gave on queued deploys (console/queue/approvals.py)."""

from __future__ import annotations

from collections.abc import Iterable

from console.errors import StoreError
from console.store.connection import Tx, insert, text
from console.store.records import APPROVE, BREAK_GLASS, REJECT, Approval, NewApproval

VERDICTS = (APPROVE, REJECT, BREAK_GLASS)
COLUMNS = (
    "id, deploy_id, project, cluster, image_id, actor, verdict, comment, created_at, expires_at"
)


async def add(tx: Tx, approval: NewApproval) -> Approval:
    """Record a verdict, made now."""
    if approval["verdict"] not in VERDICTS:
        raise StoreError(f"unknown verdict {approval['verdict']!r}")
    values = {
        **approval,
        "expires_at": text(approval["expires_at"]),
        "created_at": text(tx.now),
    }
    cursor = await tx.execute(insert("approvals", values), values)
    found = await tx.records(
        Approval, f"SELECT {COLUMNS} FROM approvals WHERE id = ?", (cursor.lastrowid,)
    )
    return found[0]


async def of_deploys(tx: Tx, deploy_ids: Iterable[str]) -> dict[str, tuple[Approval, ...]]:
    """Each deploy's verdicts, oldest first (deploys without any are left out)."""
    ids = sorted(set(deploy_ids))
    found: dict[str, list[Approval]] = {}
    for start in range(0, len(ids), 500):  # SQLite's limit on parameters
        chunk = ids[start : start + 500]
        marks = ", ".join("?" for _ in chunk)
        for approval in await tx.records(
            Approval,
            f"SELECT {COLUMNS} FROM approvals WHERE deploy_id IN ({marks}) ORDER BY id",
            chunk,
        ):
            found.setdefault(approval.deploy_id, []).append(approval)
    return {deploy_id: tuple(rows) for deploy_id, rows in found.items()}


async def pin_image(tx: Tx, deploy_id: str, image_id: str) -> None:
    """The queued deploy runs this image (the one its first approval was given for)."""
    await tx.execute(
        "UPDATE deploys SET image_id = ? WHERE id = ? AND image_id IS NULL", (image_id, deploy_id)
    )
