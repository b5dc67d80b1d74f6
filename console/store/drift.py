"""The drift repository: findings seen, baselined or acknowledged (console/drift/), each change
committed with its audit row; and the deploy history drift reads."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from console.errors import StoreError
from console.store import audit_log
from console.store.connection import Connection, Tx, text

OPEN, BASELINE, ACKNOWLEDGED = "open", "baseline", "acknowledged"


@dataclass(frozen=True)
class FindingRow:
    """A finding as the store takes it (console.drift.Finding's stored fields)."""

    id: str
    kind: str
    project: str
    cluster: str
    subject: str
    what: str
    instances: tuple[str, ...] = ()


@dataclass(frozen=True)
class KnownFinding:
    """A stored finding: when first seen, and whether (and by whom, why) it is known."""

    id: str
    kind: str
    project: str
    cluster: str
    subject: str
    what: str
    first_seen: datetime
    state: str
    known_by: str | None
    known_at: datetime | None
    reason: str


@dataclass(frozen=True)
class DeployedRow:
    """A deploy of a release to a pair that succeeded or runs now (what provenance reads)."""

    project: str
    cluster: str
    release: str
    image_id: str | None
    state: str


def _known(row: object) -> KnownFinding:
    values = dict(row)  # type: ignore[call-overload]
    values["first_seen"] = datetime.fromisoformat(values["first_seen"])
    if values["known_at"] is not None:
        values["known_at"] = datetime.fromisoformat(values["known_at"])
    return KnownFinding(**values)


_COLUMNS = (
    "id, kind, project, cluster, subject, what, first_seen, state, known_by, known_at, reason"
)


class DriftStore:
    """The drift tables on one store connection; each method one transaction."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    async def deployed(self) -> list[DeployedRow]:
        """Every distinct release deployed successfully, or deploying now, to each pair."""
        async with self._connection.read() as tx:
            rows = await tx.all(
                "SELECT DISTINCT project, cluster, release, image_id, state FROM deploys "
                "WHERE kind = 'deploy' AND state IN ('succeeded', 'running')"
            )
        return [DeployedRow(*row) for row in rows]

    async def known(self) -> dict[str, KnownFinding]:
        """Every stored finding, by id."""
        async with self._connection.read() as tx:
            rows = await tx.all(f"SELECT {_COLUMNS} FROM drift_findings ORDER BY first_seen, id")
        return {found.id: found for found in map(_known, rows)}

    async def record_new(self, findings: Sequence[FindingRow], actor: str) -> list[str]:
        """Store the findings not stored yet, each with its `drift.found` audit row (a
        notification event); the ids of those that were new."""
        new: list[str] = []
        async with self._connection.write() as tx:
            for finding in findings:
                if await _insert(tx, finding, OPEN):
                    new.append(finding.id)
                    await audit_log.append(tx, _found_audit(finding, actor))
        return new

    async def baseline(self, findings: Sequence[FindingRow], actor: str) -> int:
        """Take today's findings as known (a fleet first taken over): each one not
        acknowledged is stored as baselined; one `drift.baseline` audit row. How many."""
        async with self._connection.write() as tx:
            for finding in findings:
                await _insert(tx, finding, OPEN)
                await tx.execute(
                    "UPDATE drift_findings SET state = ?, known_by = ?, known_at = ? "
                    "WHERE id = ? AND state = ?",
                    (BASELINE, actor, text(tx.now), finding.id, OPEN),
                )
            await audit_log.append(
                tx,
                {
                    "action": "drift.baseline",
                    "actor": actor,
                    "outcome": str(len(findings)),
                    "reason": f"{len(findings)} finding{'s' if len(findings) != 1 else ''} "
                    "taken as known: "
                    + (", ".join(f.id for f in findings[:20]) or "none")
                    + (" …" if len(findings) > 20 else ""),
                },
            )
        return len(findings)

    async def acknowledge(self, finding: FindingRow, actor: str, reason: str) -> None:
        """Acknowledge one finding with a reason, its `drift.ack` audit row in the same
        transaction."""
        if not reason.strip():
            raise StoreError("an acknowledgement needs a reason")
        async with self._connection.write() as tx:
            await _insert(tx, finding, OPEN)
            await tx.execute(
                "UPDATE drift_findings SET state = ?, known_by = ?, known_at = ?, reason = ? "
                "WHERE id = ?",
                (ACKNOWLEDGED, actor, text(tx.now), reason, finding.id),
            )
            await audit_log.append(
                tx,
                {
                    "action": "drift.ack",
                    "actor": actor,
                    "project": finding.project,
                    "cluster": finding.cluster,
                    "instance_ids": finding.instances,
                    "outcome": finding.id,
                    "reason": f"{finding.kind}: {reason}",
                },
            )


async def _insert(tx: Tx, finding: FindingRow, state: str) -> bool:
    """The finding's row, if it has none yet; whether it was inserted."""
    cursor = await tx.execute(
        "INSERT OR IGNORE INTO drift_findings "
        "(id, kind, project, cluster, subject, what, first_seen, state) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            finding.id, finding.kind, finding.project, finding.cluster, finding.subject,
            finding.what, text(tx.now), state,
        ),
    )  # fmt: skip
    return bool(cursor.rowcount)


def _found_audit(finding: FindingRow, actor: str) -> dict[str, object]:
    return {
        "action": "drift.found",
        "actor": actor,
        "project": finding.project,
        "cluster": finding.cluster,
        "instance_ids": finding.instances,
        "outcome": finding.kind,
        "reason": f"{finding.kind} {finding.id}: {finding.what}",
    }
