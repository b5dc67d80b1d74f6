"""The stack changes repository: each change to a pair's stack, its template, plan and outcome."""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from console.errors import StoreError
from console.store import audit_log
from console.store.connection import Connection, Tx, insert, text

# A change's states: planned (its template and plan stored), queued (a queue entry runs it),
# running, then applied, failed or cancelled (never queued, or its queue entry ended so).
PLANNED, QUEUED, RUNNING = "planned", "queued", "running"
APPLIED, FAILED, CANCELLED = "applied", "failed", "cancelled"
STATES = (PLANNED, QUEUED, RUNNING, APPLIED, FAILED, CANCELLED)
ENDED = (APPLIED, FAILED, CANCELLED)
# The audit action of each state a change reaches.
ACTIONS = {
    PLANNED: "stack.planned",
    QUEUED: "stack.queued",
    RUNNING: "stack.started",
    APPLIED: "stack.applied",
    FAILED: "stack.failed",
    CANCELLED: "stack.cancelled",
}
COLUMNS = (
    "id, project, cluster, stack_name, change_set, template, summary, actor, state, "
    "deploy_id, created_at, finished_at, reason, events"
)


@dataclass(frozen=True)
class StackChange:
    """One change to a pair's stack: the template it applies (JSON text), what its plan said,
    who asked, how it ended; `events` the CloudFormation events that made it fail."""

    id: str
    project: str
    cluster: str
    stack_name: str
    change_set: str
    template: str
    summary: str
    actor: str
    state: str
    deploy_id: str | None
    created_at: datetime
    finished_at: datetime | None
    reason: str
    events: str

    @property
    def failure_events(self) -> list[str]:
        found = json.loads(self.events)
        return [str(line) for line in found] if isinstance(found, list) else []

    @property
    def ended(self) -> bool:
        return self.state in ENDED


def new_change_id(now: datetime) -> str:
    return f"s-{now:%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


class StackChanges:
    """Stack changes in the store; each state change commits with its audit row."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    async def plan(
        self,
        project: str,
        cluster: str,
        stack_name: str,
        *,
        template: str,
        summary: str,
        actor: str,
        change_set: str = "",
    ) -> StackChange:
        """Record a planned change (its template and plan), with its stack.planned row."""
        async with self._connection.write() as tx:
            change_id = new_change_id(tx.now)
            values = {
                "id": change_id,
                "project": project,
                "cluster": cluster,
                "stack_name": stack_name,
                "change_set": change_set,
                "template": template,
                "summary": summary,
                "actor": actor,
                "state": PLANNED,
                "created_at": text(tx.now),
            }
            await tx.execute(insert("stack_changes", values), values)
            await _audit(tx, values, PLANNED, actor, summary)
            return await _get(tx, change_id)

    async def queued(self, change_id: str, deploy_id: str, actor: str) -> StackChange:
        """The queue entry that runs the change (a runner that started it already keeps its
        state: only the entry is noted)."""
        async with self._connection.write() as tx:
            await tx.execute(
                "UPDATE stack_changes SET deploy_id = ? WHERE id = ?", (deploy_id, change_id)
            )
            change = await _get(tx, change_id)
            if change.state != PLANNED:
                return change
            return await _moved(tx, change_id, QUEUED, actor, f"queued as {deploy_id}")

    async def started(self, change_id: str, actor: str, change_set: str) -> StackChange:
        async with self._connection.write() as tx:
            await tx.execute(
                "UPDATE stack_changes SET change_set = ? WHERE id = ?", (change_set, change_id)
            )
            return await _moved(tx, change_id, RUNNING, actor, f"change set {change_set}")

    async def finished(
        self, change_id: str, state: str, actor: str, reason: str, events: Sequence[str] = ()
    ) -> StackChange:
        """The change's end (applied, failed or cancelled), with the events that failed it."""
        if state not in ENDED:
            raise StoreError(f"a stack change ends applied, failed or cancelled, not {state!r}")
        async with self._connection.write() as tx:
            await tx.execute(
                "UPDATE stack_changes SET finished_at = ?, reason = ?, events = ? WHERE id = ?",
                (text(tx.now), reason, json.dumps(list(events)), change_id),
            )
            return await _moved(tx, change_id, state, actor, reason)

    async def get(self, change_id: str) -> StackChange | None:
        async with self._connection.read() as tx:
            found = await tx.records(
                StackChange, f"SELECT {COLUMNS} FROM stack_changes WHERE id = ?", (change_id,)
            )
        return found[0] if found else None

    async def of_pair(self, project: str, cluster: str, limit: int = 20) -> list[StackChange]:
        """The pair's changes, newest first."""
        async with self._connection.read() as tx:
            return await tx.records(
                StackChange,
                f"SELECT {COLUMNS} FROM stack_changes WHERE project = ? AND cluster = ? "
                "ORDER BY seq DESC LIMIT ?",
                (project, cluster, limit),
            )


async def _get(tx: Tx, change_id: str) -> StackChange:
    found = await tx.records(
        StackChange, f"SELECT {COLUMNS} FROM stack_changes WHERE id = ?", (change_id,)
    )
    if not found:
        raise StoreError(f"unknown stack change {change_id!r}")
    return found[0]


async def _moved(tx: Tx, change_id: str, state: str, actor: str, reason: str) -> StackChange:
    """The change moved to `state`, with its audit row, in the caller's transaction."""
    change = await _get(tx, change_id)
    if change.ended:
        raise StoreError(f"stack change {change_id} already {change.state}")
    await tx.execute("UPDATE stack_changes SET state = ? WHERE id = ?", (state, change_id))
    values = {"project": change.project, "cluster": change.cluster, "id": change_id}
    await _audit(tx, values, state, actor, reason, change.deploy_id)
    return await _get(tx, change_id)


async def _audit(
    tx: Tx,
    change: Mapping[str, str | None],
    state: str,
    actor: str,
    reason: str,
    deploy_id: str | None = None,
) -> None:
    await audit_log.append(
        tx,
        {
            "action": ACTIONS[state],
            "actor": actor,
            "project": change["project"],
            "cluster": change["cluster"],
            "deploy_id": deploy_id,
            "outcome": state,
            "reason": f"{change['id']}: {reason}" if reason else str(change["id"]),
        },
    )
