"""The holds people put on the queue: manual locks (on everything, a cluster, a project or a
pair) and frozen clusters; each change one transaction with its audit row."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Unpack

from console.access import Access, Action
from console.config import Config
from console.queue.rules import QueueError, plain_reason
from console.store import (
    ConsoleStore,
    DeployRecord,
    Freeze,
    ManualLock,
    NewManualLock,
    QueueTransaction,
)


class QueueHolds:
    """Freezes and manual locks over the store (the base of console.queue.DeployQueue)."""

    def __init__(self, store: ConsoleStore, config: Config) -> None:
        self.store = store
        self.config = config
        self.access = Access(config)

    async def freeze(self, cluster: str, actor: str, reason: str) -> Freeze:
        self.config.cluster(cluster)
        self.access.check(actor, Action.FREEZE, cluster)
        if not reason.strip():
            raise QueueError("a freeze needs a reason (--reason)")
        plain_reason(reason)
        async with self.store.transaction() as tx:
            already = await tx.freeze(cluster, actor, reason)
            if already is not None:
                raise QueueError(f"already {already.describe()}")
            await tx.audit(
                "queue.freeze", actor=actor, cluster=cluster, outcome="frozen", reason=reason
            )
            return Freeze(cluster, actor, reason, tx.now)

    async def unfreeze(self, cluster: str, actor: str) -> None:
        self.config.cluster(cluster)
        self.access.check(actor, Action.FREEZE, cluster)
        async with self.store.transaction() as tx:
            if not await tx.unfreeze(cluster):
                raise QueueError(f"{cluster} is not frozen")
            await tx.audit("queue.unfreeze", actor=actor, cluster=cluster, outcome="unfrozen")

    async def lock(self, **lock: Unpack[NewManualLock]) -> ManualLock:
        owner, reason = lock["owner"], lock["reason"]
        project, cluster = lock.get("project"), lock.get("cluster")
        if project is not None:
            self.config.project(project)
        if cluster is not None:
            self.config.cluster(cluster)
        self.access.check(owner, Action.LOCK, cluster, project=project)
        if not reason.strip():
            raise QueueError("a lock needs a reason (--reason)")
        plain_reason(reason)
        async with self.store.transaction() as tx:
            expires_at = lock.get("expires_at")
            if expires_at is not None and expires_at <= tx.now:
                raise QueueError("the lock's expiry is already past")
            added = await tx.add_manual_lock(**lock)
            outcome = "warning" if lock.get("warning") else "locked"
            await audit_change(tx, "lock.add", owner, added, outcome, _lock_reason(added))
            return added

    async def unlock(self, lock_id: int, actor: str) -> ManualLock:
        async with self.store.transaction() as tx:
            lock = await tx.manual_lock(lock_id)
            if lock is None:
                raise QueueError(f"no lock #{lock_id}")
            self.access.check(actor, Action.LOCK, lock.cluster, project=lock.project)
            await tx.remove_manual_lock(lock_id)
            await audit_change(tx, "lock.remove", actor, lock, "unlocked", _lock_reason(lock))
            return lock


async def drop_expired_locks(tx: QueueTransaction) -> None:
    """Manual locks whose expiry came are removed, each with its audit row."""
    for lock in await tx.expired_manual_locks():
        await tx.remove_manual_lock(lock.id)
        await audit_change(tx, "lock.expired", "queue", lock, "expired", _lock_reason(lock))


async def audit_change(
    tx: QueueTransaction,
    action: str,
    actor: str,
    subject: DeployRecord | ManualLock,
    outcome: str,
    reason: str,
    *,
    instance_ids: Iterable[str] = (),
    config: str | None = None,
) -> None:
    """The audit row of a change to one deploy (its pair and id) or one manual lock (its
    scope), in the change's transaction."""
    await tx.audit(
        action,
        actor=actor,
        project=subject.project,
        cluster=subject.cluster,
        deploy_id=subject.id if isinstance(subject, DeployRecord) else None,
        instance_ids=instance_ids,
        outcome=outcome,
        reason=reason,
        config=config,
    )


def _lock_reason(lock: ManualLock) -> str:
    return f"#{lock.id} {lock.describe()}"
