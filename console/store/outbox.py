"""The notification outbox's repository: events to route, deliveries to claim, send and record
(console/notify/ delivers them; the trigger in notify_events fills the outbox)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from console.store.connection import Connection, text

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"


@dataclass(frozen=True)
class OutboxEvent:
    """One event from the outbox, with what its audit row (and its deploy) say."""

    outbox_id: int
    event: str
    audit_id: int
    at: datetime
    actor: str
    action: str
    project: str | None
    cluster: str | None
    deploy_id: str | None
    outcome: str | None
    reason: str
    ticket: str | None
    release: str | None
    key: str  # the idempotency key: the audit row's hash (stable across retries and restarts)


@dataclass(frozen=True)
class Delivery:
    """One event to one channel, and how its delivery goes."""

    id: int
    channel: str
    state: str
    attempts: int
    next_at: datetime
    last_error: str
    delivered_at: datetime | None
    event: OutboxEvent


_EVENT_COLUMNS = """o.id AS outbox_id, o.event, a.id AS audit_id, a.at, a.actor, a.action,
    a.project, a.cluster, a.deploy_id, a.outcome, a.reason, a.ticket, d.release,
    substr(a.hash, 1, 32) AS key"""
_EVENT_FROM = """notify_outbox o JOIN audit a ON a.id = o.audit_id
    LEFT JOIN deploys d ON d.id = a.deploy_id"""
_DELIVERY_SELECT = f"""SELECT n.id, n.channel, n.state, n.attempts, n.next_at, n.last_error,
    n.delivered_at, {_EVENT_COLUMNS}
    FROM notify_deliveries n JOIN notify_outbox o ON o.id = n.outbox_id
    JOIN audit a ON a.id = o.audit_id LEFT JOIN deploys d ON d.id = a.deploy_id"""


def _time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _event(row: sqlite3.Row) -> OutboxEvent:
    return OutboxEvent(
        outbox_id=row["outbox_id"],
        event=row["event"],
        audit_id=row["audit_id"],
        at=datetime.fromisoformat(row["at"]),
        actor=row["actor"],
        action=row["action"],
        project=row["project"],
        cluster=row["cluster"],
        deploy_id=row["deploy_id"],
        outcome=row["outcome"],
        reason=row["reason"],
        ticket=row["ticket"],
        release=row["release"],
        key=row["key"],
    )


def _delivery(row: sqlite3.Row) -> Delivery:
    next_at = _time(row["next_at"])
    assert next_at is not None
    return Delivery(
        id=row["id"],
        channel=row["channel"],
        state=row["state"],
        attempts=row["attempts"],
        next_at=next_at,
        last_error=row["last_error"],
        delivered_at=_time(row["delivered_at"]),
        event=_event(row),
    )


class Outbox:
    """The outbox on one store connection; each method one transaction."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    async def work_waiting(self) -> bool:
        """Whether an event waits to be routed or a delivery is due (a read, no write lock)."""
        async with self._connection.read() as tx:
            now = text(tx.now)
            row = await tx.one(
                """SELECT EXISTS (SELECT 1 FROM notify_outbox WHERE routed = 0)
                   OR EXISTS (SELECT 1 FROM notify_deliveries WHERE state = 'pending'
                              AND next_at <= ? AND (claimed_until IS NULL OR claimed_until < ?))""",
                (now, now),
            )
        return bool(row and row[0])

    async def route(
        self, channels: Callable[[OutboxEvent], Sequence[str]], limit: int = 200
    ) -> int:
        """Give each unrouted event its deliveries (one per channel `channels` names, due now),
        in one transaction; how many events were routed."""
        async with self._connection.write() as tx:
            rows = await tx.all(
                f"SELECT {_EVENT_COLUMNS} FROM {_EVENT_FROM} WHERE o.routed = 0 "
                "ORDER BY o.id LIMIT ?",
                (limit,),
            )
            for row in rows:
                event = _event(row)
                for channel in channels(event):
                    await tx.execute(
                        """INSERT OR IGNORE INTO notify_deliveries
                           (outbox_id, channel, state, created_at, next_at)
                           VALUES (?, ?, 'pending', ?, ?)""",
                        (event.outbox_id, channel, text(tx.now), text(tx.now)),
                    )
                await tx.execute(
                    "UPDATE notify_outbox SET routed = 1 WHERE id = ?", (event.outbox_id,)
                )
        return len(rows)

    async def claim_due(self, holder: str, lease_seconds: float, limit: int = 20) -> list[Delivery]:
        """Pending deliveries that are due and not claimed by a live sender, claimed for
        `lease_seconds` (a sender killed mid-send leaves its claim to run out)."""
        async with self._connection.write() as tx:
            now = text(tx.now)
            rows = await tx.all(
                f"""{_DELIVERY_SELECT} WHERE n.state = 'pending' AND n.next_at <= ?
                    AND (n.claimed_until IS NULL OR n.claimed_until < ?)
                    ORDER BY n.next_at, n.id LIMIT ?""",
                (now, now, limit),
            )
            until = text(tx.now + timedelta(seconds=lease_seconds))
            for row in rows:
                await tx.execute(
                    "UPDATE notify_deliveries SET claimed_by = ?, claimed_until = ? WHERE id = ?",
                    (holder, until, row["id"]),
                )
        return [_delivery(row) for row in rows]

    async def delivered(self, delivery_id: int) -> None:
        async with self._connection.write() as tx:
            await tx.execute(
                """UPDATE notify_deliveries SET state = 'delivered', delivered_at = ?,
                   attempts = attempts + 1, claimed_by = NULL, claimed_until = NULL
                   WHERE id = ?""",
                (text(tx.now), delivery_id),
            )

    async def attempt_failed(self, delivery_id: int, error: str, retry_after: float | None) -> None:
        """A failed attempt (error already masked): retried after `retry_after` seconds, or
        (None) failed for good."""
        async with self._connection.write() as tx:
            state = FAILED if retry_after is None else PENDING
            next_at = tx.now + timedelta(seconds=retry_after or 0.0)
            await tx.execute(
                """UPDATE notify_deliveries SET state = ?, attempts = attempts + 1,
                   last_error = ?, next_at = ?, claimed_by = NULL, claimed_until = NULL
                   WHERE id = ?""",
                (state, error, text(next_at), delivery_id),
            )

    async def unsettled(self, limit: int = 200) -> list[Delivery]:
        """Pending and failed deliveries, oldest first (`notify status`)."""
        async with self._connection.read() as tx:
            rows = await tx.all(
                f"{_DELIVERY_SELECT} WHERE n.state != 'delivered' ORDER BY n.id LIMIT ?",
                (limit,),
            )
        return [_delivery(row) for row in rows]

    async def counts(self) -> dict[str, int]:
        """Deliveries by state, and events not routed yet (`unrouted`)."""
        async with self._connection.read() as tx:
            rows = await tx.all("SELECT state, count(*) FROM notify_deliveries GROUP BY state")
            unrouted = await tx.one("SELECT count(*) FROM notify_outbox WHERE routed = 0")
        counts = {PENDING: 0, DELIVERED: 0, FAILED: 0} | {row[0]: row[1] for row in rows}
        counts["unrouted"] = int(unrouted[0]) if unrouted else 0
        return counts

    async def for_deploy(self, deploy_id: str) -> list[Delivery]:
        """Every delivery of a deploy's events, in order (the history screen's detail)."""
        async with self._connection.read() as tx:
            rows = await tx.all(
                f"{_DELIVERY_SELECT} WHERE a.deploy_id = ? ORDER BY n.id", (deploy_id,)
            )
        return [_delivery(row) for row in rows]

    async def delivered_between(self) -> list[tuple[str, datetime, datetime]]:
        """(event, audit time, delivered time) of every delivered delivery (the bench)."""
        async with self._connection.read() as tx:
            rows = await tx.all(
                """SELECT o.event, a.at, n.delivered_at FROM notify_deliveries n
                   JOIN notify_outbox o ON o.id = n.outbox_id JOIN audit a ON a.id = o.audit_id
                   WHERE n.state = 'delivered' ORDER BY n.id"""
            )
        return [
            (row[0], datetime.fromisoformat(row[1]), datetime.fromisoformat(row[2])) for row in rows
        ]

    async def busy(self) -> bool:
        """Whether events wait to be routed or deliveries are pending (a runner stays up)."""
        async with self._connection.read() as tx:
            row = await tx.one(
                """SELECT EXISTS (SELECT 1 FROM notify_outbox WHERE routed = 0)
                   OR EXISTS (SELECT 1 FROM notify_deliveries WHERE state = 'pending')"""
            )
        return bool(row and row[0])
