"""The release queue: deploys wait their turn per project+cluster, say why, and are claimed by
one console's runner at a time (DEPLOY_SEMANTICS.md, "Queue and locks")."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from console.access import Access, AccessDenied, Action
from console.config import Config
from console.errors import ConsoleError
from console.identity import person
from console.model import DeployRequest
from console.safe_text import has_controls
from console.store import (
    QUEUED,
    RUNNING,
    DeployRecord,
    LockInfo,
    Store,
    Transaction,
    record_from_row,
    time_text,
)

INTERRUPTED = "interrupted"
CANCELLED = "cancelled"
SUCCEEDED = "succeeded"
SUPERSEDED = "superseded by a newer queued deploy"


class QueueError(ConsoleError):
    """A queue operation was refused (unknown deploy, not queued, not allowed)."""


@dataclass(frozen=True)
class ManualLock:
    """A lock a person put on the global fleet, a cluster, a project or one pair.

    A warning lock only warns; no lock blocks its owner; an expired lock is gone.
    """

    id: int
    project: str | None
    cluster: str | None
    owner: str
    reason: str
    warning: bool
    created_at: datetime
    expires_at: datetime | None

    @property
    def scope(self) -> str:
        if self.project and self.cluster:
            return f"{self.project} in {self.cluster}"
        if self.project:
            return f"project {self.project}"
        if self.cluster:
            return f"cluster {self.cluster}"
        return "everything"

    def covers(self, project: str, cluster: str) -> bool:
        return self.project in (None, project) and self.cluster in (None, cluster)

    def active(self, now: datetime) -> bool:
        return self.expires_at is None or self.expires_at > now

    def describe(self) -> str:
        until = f"until {self.expires_at:%Y-%m-%d %H:%M} UTC" if self.expires_at else "no expiry"
        kind = "warning lock" if self.warning else "locked"
        return f"{kind} on {self.scope} by {self.owner}: {self.reason} ({until})"


@dataclass(frozen=True)
class Freeze:
    """A cluster where queued deploys wait until someone unfreezes it."""

    cluster: str
    actor: str
    reason: str
    created_at: datetime

    def describe(self) -> str:
        return (
            f"{self.cluster} frozen by {self.actor} since {self.created_at:%Y-%m-%d %H:%M} UTC: "
            f"{self.reason}"
        )


@dataclass(frozen=True)
class QueueView:
    """What the queue decides on, read in one transaction.

    deploys: queued, running, and interrupted ones not yet reconciled, in queue order.
    prerequisites: the state of every deploy a queued one waits for (promotions).
    """

    deploys: tuple[DeployRecord, ...]
    locks: tuple[LockInfo, ...]
    manual_locks: tuple[ManualLock, ...]
    freezes: tuple[Freeze, ...]
    prerequisites: dict[str, DeployRecord]
    now: datetime
    parallel: int


@dataclass(frozen=True)
class QueueEntry:
    """One deploy in the queue and why it waits ("" when it runs or starts next)."""

    record: DeployRecord
    waiting: str

    @property
    def status(self) -> str:
        """Why it waits, or where it runs, in a few words for a person."""
        record = self.record
        if record.state == QUEUED:
            return self.waiting or "starts next"
        if record.state == RUNNING:
            asked = (
                f"; cancel asked by {record.cancel_requested}" if record.cancel_requested else ""
            )
            return f"running on {record.runner or 'a console'}{asked}"
        return f"interrupted; reconciling ({record.runner or 'next console'})"


# -- the rules (pure) ---------------------------------------------------------------------


def stopped_promotions(view: QueueView) -> dict[str, str]:
    """Queued deploys whose promotion cannot go on (the stage before did not succeed)."""
    stopped = {}
    for record in view.deploys:
        before = view.prerequisites.get(record.after_deploy or "")
        if (
            record.state == QUEUED
            and before is not None
            and before.state
            not in (
                QUEUED,
                RUNNING,
                SUCCEEDED,
            )
        ):
            ended = before.state.replace("_", " ")
            stopped[record.id] = f"promotion stopped: {before.id} ({before.cluster}) {ended}"
    return stopped


def waiting_reasons(view: QueueView) -> dict[str, str]:
    """Why each queued deploy waits; "" for those that may start now.

    In order: the promotion stage before it, a freeze, a blocking lock, the deploy ahead of
    it on its pair (running, being reconciled, or queued before it), the global limit.
    """
    reasons: dict[str, str] = {}
    ahead: dict[tuple[str, str], DeployRecord] = {}
    for lock in view.locks:
        ahead.setdefault(
            (lock.project, lock.cluster),
            DeployRecord(
                id=lock.deploy_id,
                project=lock.project,
                cluster=lock.cluster,
                release="?",
                actor=lock.actor,
                state=RUNNING,
            ),
        )
    for record in view.deploys:
        if record.state != QUEUED:
            ahead[(record.project, record.cluster)] = record
    running = sum(1 for record in view.deploys if record.state == RUNNING)
    startable = 0
    for record in view.deploys:
        if record.state != QUEUED:
            continue
        pair = (record.project, record.cluster)
        reason = _blocked(view, record)
        if not reason and pair in ahead:
            before = ahead[pair]
            what = "being reconciled" if before.state == INTERRUPTED else before.state
            reason = f"behind {before.id} ({what}) on {record.project} in {record.cluster}"
        if not reason and running + startable >= view.parallel:
            reason = f"global limit: {view.parallel} deploys at a time, {running} running"
        if not reason:
            startable += 1
        ahead[pair] = record  # the next one in this pair waits behind this one
        reasons[record.id] = reason
    return reasons


def _blocked(view: QueueView, record: DeployRecord) -> str:
    before = view.prerequisites.get(record.after_deploy or "")
    if before is not None and before.state != SUCCEEDED:
        return f"waits for {before.id} ({before.project} in {before.cluster}) to succeed"
    for freeze in view.freezes:
        if freeze.cluster == record.cluster:
            return freeze.describe()
    for lock in view.manual_locks:
        if (
            not lock.warning
            and person(lock.owner) != person(record.actor)
            and lock.active(view.now)
            and lock.covers(record.project, record.cluster)
        ):
            return lock.describe()
    return ""


def queue_entries(view: QueueView) -> list[QueueEntry]:
    """Every deploy of the view, in queue order, with why it waits (one read serves both the
    holds and the deploys of a screen)."""
    reasons = waiting_reasons(view)
    stopped = stopped_promotions(view)
    return [
        QueueEntry(record, stopped.get(record.id) or reasons.get(record.id, ""))
        for record in view.deploys
    ]


def next_to_claim(view: QueueView, only: Iterable[str] | None = None) -> DeployRecord | None:
    """The first queued deploy that may start now (among `only`, when given)."""
    wanted = None if only is None else set(only)
    reasons = waiting_reasons(view)
    for record in view.deploys:
        if reasons.get(record.id) == "" and (wanted is None or record.id in wanted):
            return record
    return None


def warnings_for(view: QueueView, project: str, cluster: str) -> list[str]:
    """Warning locks that cover a pair (shown, never blocking)."""
    return [
        lock.describe()
        for lock in view.manual_locks
        if lock.warning and lock.active(view.now) and lock.covers(project, cluster)
    ]


# -- the queue over the store -------------------------------------------------------------


def _plain_reason(reason: str) -> None:
    if has_controls(reason):
        raise QueueError(
            "a reason is one line of plain text: no newlines, escape sequences or other controls"
        )


class DeployQueue:
    """Queue operations on the store; each is one transaction with its audit rows."""

    def __init__(self, store: Store, config: Config) -> None:
        self.store = store
        self.config = config
        self.access = Access(config)

    @property
    def stale_after(self) -> float:
        return self.config.engine.lock_stale_seconds

    # reading

    async def view(self) -> QueueView:
        async with self.store.snapshot() as tx:
            return await self._view(tx)

    async def entries(self) -> list[QueueEntry]:
        """Every queued, running and unreconciled deploy, in queue order, with why it waits."""
        return queue_entries(await self.view())

    async def _view(self, tx: Transaction) -> QueueView:
        deploys = await tx.deploys(
            "WHERE state IN (?, ?) OR (state = ? AND reconciled_at IS NULL) ORDER BY position, seq",
            (QUEUED, RUNNING, INTERRUPTED),
        )
        after = sorted({d.after_deploy for d in deploys if d.after_deploy})
        prerequisites = {
            record.id: record
            for record in await tx.deploys(f"WHERE id IN ({', '.join('?' * len(after))})", after)
        }
        locks = [record_from_row(LockInfo, row) for row in await tx.rows("SELECT * FROM locks")]
        manual = [
            replace(record_from_row(ManualLock, row), warning=bool(row["warning"]))
            for row in await tx.rows("SELECT * FROM manual_locks ORDER BY id")
        ]
        freezes = [
            record_from_row(Freeze, row)
            for row in await tx.rows("SELECT * FROM freezes ORDER BY cluster")
        ]
        return QueueView(
            tuple(deploys),
            tuple(locks),
            tuple(lock for lock in manual if lock.active(tx.now)),
            tuple(freezes),
            prerequisites,
            tx.now,
            self.config.queue.parallel,
        )

    # enqueueing

    async def enqueue(
        self, request: DeployRequest, deploy_id: str, *, after: str | None = None
    ) -> DeployRecord:
        """Queue a deploy (it runs when its turn comes); a project with newest_wins cancels
        the older queued deploys of the pair."""
        async with self.store.transaction() as tx:
            return await self._enqueue(tx, request, deploy_id, after)

    async def _enqueue(
        self, tx: Transaction, request: DeployRequest, deploy_id: str, after: str | None
    ) -> DeployRecord:
        project = self.config.project(request.project)
        self.config.cluster(request.cluster)
        if request.cluster not in project.clusters:
            raise QueueError(f"{request.project} is not deployed to {request.cluster}")
        self.access.check(request.actor, Action.DEPLOY, request.cluster, project=request.project)
        record = DeployRecord(
            id=deploy_id,
            project=request.project,
            cluster=request.cluster,
            release=request.release,
            actor=request.actor,
            state=QUEUED,
            created_at=tx.now,
            rollback_of=request.rollback_of,
            after_deploy=after,
        )
        if project.newest_wins:
            older = await tx.deploys(
                "WHERE project = ? AND cluster = ? AND state = ?",
                (request.project, request.cluster, QUEUED),
            )
            for old in older:
                reason = f"{SUPERSEDED} ({deploy_id}, {request.release})"
                await self._cancel(tx, old, request.actor, reason)
        await tx.insert_deploy(record)
        if self.config.digest:  # the rules this deploy was queued under, on record
            await tx.record_config(
                request.actor, self.config.digest, self.config.rules, str(self.config.source)
            )
        await tx.audit(
            "queue.enqueue",
            actor=request.actor,
            config=self.config.digest or None,
            project=request.project,
            cluster=request.cluster,
            deploy_id=deploy_id,
            outcome=QUEUED,
            reason=" ".join(
                part
                for part in (
                    request.release,
                    f"(rollback of {request.rollback_of})" if request.rollback_of else "",
                    f"after {after}" if after else "",
                )
                if part
            ),
        )
        (stored,) = await tx.deploys("WHERE id = ?", (deploy_id,))
        return stored

    async def record_denial(
        self, actor: str, denied: AccessDenied, cluster: str | None, project: str | None
    ) -> None:
        """A refusal on record: who tried what, where (nothing else changes)."""
        await self.store.audit(
            "denied",
            actor=actor,
            project=project,
            cluster=cluster,
            outcome="refused",
            reason=denied.message,
        )

    async def promote(
        self, project: str, release: str, actor: str, ids: Sequence[str]
    ) -> list[DeployRecord]:
        """Queue `release` along the promotion chain: each stage's deploys wait for the stage
        before to succeed; `ids` gives one new deploy id per cluster, in chain order."""
        stages = [
            tuple(c for c in stage if c in self.config.project(project).clusters)
            for stage in self.config.promotion
        ]
        stages = [stage for stage in stages if stage]
        if not stages:
            raise QueueError(f"{project} is in no cluster of the promotion chain")
        queued: list[DeployRecord] = []
        ids = list(ids)
        async with self.store.transaction() as tx:
            after: str | None = None
            for stage in stages:
                made = [
                    await self._enqueue(
                        tx, DeployRequest(project, cluster, release, actor), ids.pop(0), after
                    )
                    for cluster in stage
                ]
                queued.extend(made)
                # Only the last stage may hold several clusters (config checks it).
                after = made[0].id
        return queued

    # changing the queue

    async def cancel(self, deploy_id: str, actor: str, reason: str = "") -> DeployRecord:
        """Cancel a queued deploy; a running one is asked to cancel (its console rolls it
        back at its next heartbeat)."""
        _plain_reason(reason)
        async with self.store.transaction() as tx:
            record = await self._get(tx, deploy_id)
            self.access.check(
                actor, Action.CANCEL, record.cluster, owner=record.actor, project=record.project
            )
            if record.state == QUEUED:
                await self._cancel(tx, record, actor, reason or f"cancelled by {actor}")
            elif record.state == RUNNING:
                await tx.execute(
                    "UPDATE deploys SET cancel_requested = ? WHERE id = ?", (actor, deploy_id)
                )
                await tx.audit(
                    "deploy.cancel_requested",
                    actor=actor,
                    project=record.project,
                    cluster=record.cluster,
                    deploy_id=deploy_id,
                    outcome="requested",
                    reason=reason or f"cancel asked by {actor}",
                )
            else:
                raise QueueError(
                    f"deploy {deploy_id} is {record.state.replace('_', ' ')}: nothing to cancel"
                )
            (stored,) = await tx.deploys("WHERE id = ?", (deploy_id,))
            return stored

    async def _cancel(self, tx: Transaction, record: DeployRecord, actor: str, reason: str) -> None:
        await tx.execute(
            "UPDATE deploys SET state = ?, finished_at = ?, reason = ? WHERE id = ? AND state = ?",
            (CANCELLED, time_text(tx.now), reason, record.id, QUEUED),
        )
        await tx.audit(
            "queue.cancel",
            actor=actor,
            project=record.project,
            cluster=record.cluster,
            deploy_id=record.id,
            outcome=CANCELLED,
            reason=reason,
        )

    async def move(self, deploy_id: str, steps: int, actor: str) -> DeployRecord:
        """Move a queued deploy up (steps < 0) or down among the queued deploys of its pair."""
        async with self.store.transaction() as tx:
            record = await self._get(tx, deploy_id)
            self.access.check(
                actor, Action.MOVE, record.cluster, owner=record.actor, project=record.project
            )
            if record.state != QUEUED:
                raise QueueError(f"deploy {deploy_id} is {record.state}: only queued deploys move")
            pair = await tx.deploys(
                "WHERE project = ? AND cluster = ? AND state = ? ORDER BY position, seq",
                (record.project, record.cluster, QUEUED),
            )
            index = [d.id for d in pair].index(deploy_id)
            target = max(0, min(len(pair) - 1, index + steps))
            if target == index:
                where = "first" if steps < 0 else "last"
                raise QueueError(
                    f"deploy {deploy_id} is already {where} of {record.project} in {record.cluster}"
                )
            positions = [d.position for d in pair]
            moved = pair.pop(index)
            pair.insert(target, moved)
            for item, position in zip(pair, positions, strict=True):
                await tx.execute(
                    "UPDATE deploys SET position = ? WHERE id = ?", (position, item.id)
                )
            await tx.audit(
                "queue.move",
                actor=actor,
                project=record.project,
                cluster=record.cluster,
                deploy_id=deploy_id,
                outcome="moved",
                reason=f"{'up' if steps < 0 else 'down'} from {index + 1} to {target + 1} "
                f"of {len(pair)} queued",
            )
            (stored,) = await tx.deploys("WHERE id = ?", (deploy_id,))
            return stored

    async def freeze(self, cluster: str, actor: str, reason: str) -> Freeze:
        self.config.cluster(cluster)
        self.access.check(actor, Action.FREEZE, cluster)
        if not reason.strip():
            raise QueueError("a freeze needs a reason (--reason)")
        _plain_reason(reason)
        async with self.store.transaction() as tx:
            try:
                await tx.execute(
                    "INSERT INTO freezes VALUES (?, ?, ?, ?)",
                    (cluster, actor, reason, time_text(tx.now)),
                )
            except sqlite3.IntegrityError:
                (row,) = await tx.rows("SELECT * FROM freezes WHERE cluster = ?", (cluster,))
                raise QueueError(f"already {record_from_row(Freeze, row).describe()}") from None
            await tx.audit(
                "queue.freeze", actor=actor, cluster=cluster, outcome="frozen", reason=reason
            )
            return Freeze(cluster, actor, reason, tx.now)

    async def unfreeze(self, cluster: str, actor: str) -> None:
        self.config.cluster(cluster)
        self.access.check(actor, Action.FREEZE, cluster)
        async with self.store.transaction() as tx:
            if not await tx.execute("DELETE FROM freezes WHERE cluster = ?", (cluster,)):
                raise QueueError(f"{cluster} is not frozen")
            await tx.audit("queue.unfreeze", actor=actor, cluster=cluster, outcome="unfrozen")

    async def lock(
        self,
        *,
        owner: str,
        reason: str,
        project: str | None = None,
        cluster: str | None = None,
        expires_at: datetime | None = None,
        warning: bool = False,
    ) -> ManualLock:
        if project is not None:
            self.config.project(project)
        if cluster is not None:
            self.config.cluster(cluster)
        self.access.check(owner, Action.LOCK, cluster, project=project)
        if not reason.strip():
            raise QueueError("a lock needs a reason (--reason)")
        _plain_reason(reason)
        async with self.store.transaction() as tx:
            if expires_at is not None and expires_at <= tx.now:
                raise QueueError("the lock's expiry is already past")
            await tx.execute(
                "INSERT INTO manual_locks (project, cluster, owner, reason, warning, created_at, "
                "expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    project,
                    cluster,
                    owner,
                    reason,
                    int(warning),
                    time_text(tx.now),
                    time_text(expires_at),
                ),
            )
            (row,) = await tx.rows("SELECT * FROM manual_locks WHERE id = last_insert_rowid()")
            lock = replace(record_from_row(ManualLock, row), warning=warning)
            await tx.audit(
                "lock.add",
                actor=owner,
                project=project,
                cluster=cluster,
                outcome="warning" if warning else "locked",
                reason=f"#{lock.id} {lock.describe()}",
            )
            return lock

    async def unlock(self, lock_id: int, actor: str) -> ManualLock:
        async with self.store.transaction() as tx:
            rows = await tx.rows("SELECT * FROM manual_locks WHERE id = ?", (lock_id,))
            if not rows:
                raise QueueError(f"no lock #{lock_id}")
            lock = replace(record_from_row(ManualLock, rows[0]), warning=bool(rows[0]["warning"]))
            self.access.check(actor, Action.LOCK, lock.cluster, project=lock.project)
            await tx.execute("DELETE FROM manual_locks WHERE id = ?", (lock_id,))
            await tx.audit(
                "lock.remove",
                actor=actor,
                project=lock.project,
                cluster=lock.cluster,
                outcome="unlocked",
                reason=f"#{lock.id} {lock.describe()}",
            )
            return lock

    # running

    async def claim(self, runner: str, *, only: Iterable[str] | None = None) -> DeployRecord | None:
        """Take the next deploy that may start: running, with its pair's execution lock held by
        this runner (the lease; the engine's heartbeat keeps it). Also cancels what can no
        longer run (stopped promotions) and drops expired locks."""
        async with self.store.transaction() as tx:
            await self._tidy(tx)
            view = await self._view(tx)
            stopped = stopped_promotions(view)
            for deploy_id, reason in stopped.items():
                ended = next(d for d in view.deploys if d.id == deploy_id)
                await self._cancel(tx, ended, "queue", reason)
            if stopped:
                view = await self._view(tx)
            record = next_to_claim(view, only)
            if record is None:
                return None
            now = time_text(tx.now)
            await tx.execute(
                "UPDATE deploys SET state = ?, runner = ?, started_at = ? WHERE id = ?",
                (RUNNING, runner, now, record.id),
            )
            await tx.execute(
                "INSERT INTO locks VALUES (?, ?, ?, ?, ?, ?)",
                (record.project, record.cluster, record.id, record.actor, now, now),
            )
            await tx.audit(
                "queue.claim",
                actor=record.actor,
                project=record.project,
                cluster=record.cluster,
                deploy_id=record.id,
                outcome=RUNNING,
                reason=f"run by {runner}",
            )
            (stored,) = await tx.deploys("WHERE id = ?", (record.id,))
            return stored

    async def _tidy(self, tx: Transaction) -> None:
        for row in await tx.rows(
            "SELECT * FROM manual_locks WHERE expires_at IS NOT NULL AND expires_at <= ?",
            (time_text(tx.now),),
        ):
            lock = replace(record_from_row(ManualLock, row), warning=bool(row["warning"]))
            await tx.execute("DELETE FROM manual_locks WHERE id = ?", (lock.id,))
            await tx.audit(
                "lock.expired",
                actor="queue",
                project=lock.project,
                cluster=lock.cluster,
                outcome="expired",
                reason=f"#{lock.id} {lock.describe()}",
            )

    async def take_interrupted(self, runner: str) -> list[DeployRecord]:
        """Deploys whose console stopped (no heartbeat for stale_after seconds, or no lock):
        marked interrupted, their pair's lock taken by this runner to reconcile them."""
        taken: list[DeployRecord] = []
        async with self.store.transaction() as tx:
            candidates = await tx.deploys(
                "WHERE state = ? OR (state = ? AND reconciled_at IS NULL) ORDER BY seq",
                (RUNNING, INTERRUPTED),
            )
            if not candidates:
                return []
            stale_before = tx.now - timedelta(seconds=self.stale_after)
            locks = {
                (lock.project, lock.cluster): lock
                for lock in (
                    record_from_row(LockInfo, row) for row in await tx.rows("SELECT * FROM locks")
                )
            }
            for record in candidates:
                lock = locks.get((record.project, record.cluster))
                if lock is not None and lock.deploy_id == record.id:
                    if lock.heartbeat_at > stale_before:
                        continue
                    since = lock.heartbeat_at
                elif lock is not None:
                    continue  # another deploy holds the pair: it will not touch these instances
                else:
                    since = record.started_at or record.created_at
                now = time_text(tx.now)
                if record.state == RUNNING:
                    reason = (
                        f"interrupted: its console ({record.runner or 'unknown'}) stopped; "
                        f"no heartbeat since {since:%Y-%m-%d %H:%M:%S} UTC"
                    )
                    await tx.execute(
                        "UPDATE deploys SET state = ?, finished_at = ?, reason = ? WHERE id = ?",
                        (INTERRUPTED, now, reason, record.id),
                    )
                    await tx.audit(
                        "deploy.interrupted",
                        actor="queue",
                        project=record.project,
                        cluster=record.cluster,
                        deploy_id=record.id,
                        outcome=INTERRUPTED,
                        reason=reason,
                    )
                await tx.execute(
                    "INSERT OR REPLACE INTO locks VALUES (?, ?, ?, ?, ?, ?)",
                    (record.project, record.cluster, record.id, f"reconcile by {runner}", now, now),
                )
                await tx.execute("UPDATE deploys SET runner = ? WHERE id = ?", (runner, record.id))
                (stored,) = await tx.deploys("WHERE id = ?", (record.id,))
                taken.append(stored)
        return taken

    async def reconciled(
        self, record: DeployRecord, runner: str, summary: str, instance_ids: Sequence[str]
    ) -> None:
        """Record that an interrupted deploy was put right, and free its pair."""
        async with self.store.transaction() as tx:
            await tx.execute(
                "UPDATE deploys SET reconciled_at = ?, reason = reason || ? WHERE id = ?",
                (time_text(tx.now), f"; reconciled: {summary}", record.id),
            )
            await tx.audit(
                "deploy.reconciled",
                actor=f"queue ({runner})",
                project=record.project,
                cluster=record.cluster,
                deploy_id=record.id,
                instance_ids=tuple(instance_ids),
                outcome="reconciled",
                reason=summary,
            )
            await tx.execute(
                "DELETE FROM locks WHERE project = ? AND cluster = ? AND deploy_id = ?",
                (record.project, record.cluster, record.id),
            )

    async def _get(self, tx: Transaction, deploy_id: str) -> DeployRecord:
        found = await tx.deploys("WHERE id = ?", (deploy_id,))
        if not found:
            raise QueueError(f"unknown deploy {deploy_id!r}")
        return found[0]
