"""The SQLite store (console.store.interface.ConsoleStore): each method one transaction over
the repositories, a change and its audit row committed together."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Unpack

from console.closing import Closing
from console.errors import LockBusy
from console.store import approvals, audit_log, deploys, locks, poller, queue_order
from console.store.chain import GENESIS_HASH
from console.store.connection import BUSY_TIMEOUT, Connection, Tx
from console.store.drift import DriftStore
from console.store.outbox import Outbox
from console.store.records import (
    AnchorRecord,
    Approval,
    AuditCheck,
    AuditFields,
    AuditFilters,
    AuditRow,
    DeployFilters,
    DeployRecord,
    Freeze,
    LockInfo,
    LogLine,
    ManualLock,
    NewApproval,
    NewManualLock,
    PollerLease,
    StepRecord,
    utc_now,
)
from console.store.stack_changes import StackChanges


class Transaction:
    """One transaction of the release queue (console.store.interface.QueueTransaction)."""

    def __init__(self, tx: Tx) -> None:
        self._tx = tx

    @property
    def now(self) -> datetime:
        return self._tx.now

    async def queue(self) -> list[DeployRecord]:
        return await queue_order.in_queue(self._tx)

    async def deploy(self, deploy_id: str) -> DeployRecord | None:
        return await deploys.get(self._tx, deploy_id)

    async def deploys_by_id(self, ids: Iterable[str]) -> list[DeployRecord]:
        return await queue_order.by_ids(self._tx, ids)

    async def queued_in_pair(self, project: str, cluster: str) -> list[DeployRecord]:
        return await queue_order.queued_in_pair(self._tx, project, cluster)

    async def unsettled(self) -> list[DeployRecord]:
        return await queue_order.unsettled(self._tx)

    async def insert_deploy(self, record: DeployRecord) -> None:
        await deploys.insert_deploy(self._tx, record)

    async def cancel_queued(self, deploy_id: str, reason: str) -> None:
        await queue_order.cancel_queued(self._tx, deploy_id, reason)

    async def request_cancel(self, deploy_id: str, actor: str) -> None:
        await queue_order.request_cancel(self._tx, deploy_id, actor)

    async def request_bake(self, deploy_id: str, request: str) -> None:
        await queue_order.request_bake(self._tx, deploy_id, request)

    async def set_positions(self, positions: Sequence[tuple[str, float | None]]) -> None:
        await queue_order.set_positions(self._tx, positions)

    async def override_window(self, deploy_id: str, reason: str, actor: str) -> None:
        await queue_order.override_window(self._tx, deploy_id, reason, actor)

    async def start(self, record: DeployRecord, runner: str) -> None:
        await queue_order.start(self._tx, record.id, runner)
        await locks.take(self._tx, record.project, record.cluster, record.id, record.actor)

    async def interrupt(self, deploy_id: str, reason: str) -> bool:
        return await deploys.interrupt_unfinished(self._tx, deploy_id, reason)

    async def take_over(self, record: DeployRecord, runner: str) -> None:
        actor = f"reconcile by {runner}"
        await locks.hold(self._tx, record.project, record.cluster, record.id, actor, self._tx.now)
        await queue_order.set_runner(self._tx, record.id, runner)

    async def reconciled(self, record: DeployRecord, summary: str) -> None:
        await queue_order.reconciled(self._tx, record.id, summary)
        await locks.release(self._tx, record.project, record.cluster, record.id)

    async def execution_locks(self) -> list[LockInfo]:
        return await locks.every(self._tx)

    async def manual_locks(self) -> list[ManualLock]:
        return await locks.manual_locks(self._tx)

    async def manual_lock(self, lock_id: int) -> ManualLock | None:
        return await locks.manual_lock(self._tx, lock_id)

    async def expired_manual_locks(self) -> list[ManualLock]:
        return await locks.expired_manual_locks(self._tx)

    async def add_manual_lock(self, **lock: Unpack[NewManualLock]) -> ManualLock:
        return await locks.add_manual_lock(self._tx, lock)

    async def remove_manual_lock(self, lock_id: int) -> None:
        await locks.remove_manual_lock(self._tx, lock_id)

    async def freezes(self) -> list[Freeze]:
        return await locks.freezes(self._tx)

    async def freeze(self, cluster: str, actor: str, reason: str) -> Freeze | None:
        return await locks.freeze(self._tx, cluster, actor, reason)

    async def unfreeze(self, cluster: str) -> bool:
        return await locks.unfreeze(self._tx, cluster)

    async def approvals(self, deploy_ids: Iterable[str]) -> dict[str, tuple[Approval, ...]]:
        return await approvals.of_deploys(self._tx, deploy_ids)

    async def add_approval(self, **approval: Unpack[NewApproval]) -> Approval:
        return await approvals.add(self._tx, approval)

    async def pin_image(self, deploy_id: str, image_id: str) -> None:
        await approvals.pin_image(self._tx, deploy_id, image_id)

    async def audit(self, action: str, *, actor: str, **fields: Unpack[AuditFields]) -> int:
        """Append an audit row in this transaction (fields as Store.audit takes them)."""
        return await audit_log.append(self._tx, {"action": action, "actor": actor, **fields})

    async def record_config(self, actor: str, digest: str, rules: str, source: str) -> bool:
        """Store.record_config in this transaction."""
        return await audit_log.record_config(self._tx, actor, digest, rules, source)


class Store(Closing):
    """The console's SQLite store: one connection to the store file; every write is one
    BEGIN IMMEDIATE transaction (console/store/connection.py)."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self.path: Path = connection.path

    @classmethod
    async def open(
        cls,
        path: Path,
        *,
        clock: Callable[[], datetime] = utc_now,
        busy_timeout: float = BUSY_TIMEOUT,
        create: bool = True,
        read_only: bool = False,
    ) -> Store:
        """Open (creating if needed) and migrate the store; StoreError if it cannot be used.

        With create=False a missing file, or a file that is not a deploy-console store (an
        empty or foreign SQLite database), is refused and left exactly as it was. read_only
        (never creates) opens it as SQLite's mode=ro: no journal mode set, no migration, works
        on a copy nobody may write; a store that needs a migration is refused.
        """
        connection = await Connection.open(
            path, clock=clock, busy_timeout=busy_timeout, create=create, read_only=read_only
        )
        return cls(connection)

    async def close(self) -> None:
        await self._connection.close()

    @property
    def outbox(self) -> Outbox:
        """The notification outbox and its deliveries (console/store/outbox.py)."""
        return Outbox(self._connection)

    @property
    def drift(self) -> DriftStore:
        """(drift) Findings seen, baselined, acknowledged (console/store/drift.py)."""
        return DriftStore(self._connection)

    @property
    def stack_changes(self) -> StackChanges:
        """Changes to pairs' stacks (console/store/stack_changes.py)."""
        return StackChanges(self._connection)

    def _write(self) -> AbstractAsyncContextManager[Tx]:
        return self._connection.write()

    def _read(self) -> AbstractAsyncContextManager[Tx]:
        return self._connection.read()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        """One BEGIN IMMEDIATE transaction for the release queue (see Transaction)."""
        async with self._connection.write() as tx:
            yield Transaction(tx)

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[Transaction]:
        """A read-only transaction: one consistent view of the store (WAL readers never wait
        for the writer, nor hold it up)."""
        async with self._connection.snapshot() as tx:
            yield Transaction(tx)

    # Execution locks

    async def acquire_lock(
        self, project: str, cluster: str, deploy_id: str, actor: str, *, stale_after: float = 30.0
    ) -> None:
        """Take the lock, or take it over when the holder's heartbeat is older than stale_after;
        LockBusy while another deploy holds it. The holder itself may acquire again."""
        async with self._write() as tx:
            await _hold(tx, project, cluster, deploy_id, actor, stale_after)

    async def begin_deploy(
        self, record: DeployRecord, *, stale_after: float, audit: Mapping[str, Any]
    ) -> None:
        """A deploy that bypasses the queue: its pair's lock (as acquire_lock: LockBusy while
        another deploy holds it), its running record and its audit row, in one transaction."""
        deploys.check_state(record.state)
        async with self._write() as tx:
            await _hold(tx, record.project, record.cluster, record.id, record.actor, stale_after)
            await deploys.insert_deploy(tx, record)
            await _audit_with(tx, audit)

    async def heartbeat(self, project: str, cluster: str, deploy_id: str) -> bool:
        """Refresh the holder's heartbeat; False when this deploy no longer holds the lock."""
        async with self._write() as tx:
            return await locks.heartbeat(tx, project, cluster, deploy_id)

    async def release_lock(self, project: str, cluster: str, deploy_id: str) -> None:
        """Release the lock if this deploy holds it; anyone else's lock stays."""
        async with self._write() as tx:
            await locks.release(tx, project, cluster, deploy_id)

    async def lock_holder(self, project: str, cluster: str) -> LockInfo | None:
        async with self._read() as tx:
            return await locks.holder(tx, project, cluster)

    # The fleet poller lease (console/fleet/share.py)

    async def poller_lease(self) -> PollerLease | None:
        async with self._read() as tx:
            return await poller.lease(tx)

    async def take_poller_lease(self, holder: str, *, stale_after: float) -> PollerLease:
        """Hold (or renew) the poller lease when it is free, ours, or not renewed for
        stale_after seconds; the lease as it is now (compare its holder with ours)."""
        async with self._read() as tx:
            current = await poller.lease(tx)
            if (
                current is not None
                and current.holder != holder
                and current.fresh(tx.now, stale_after)
            ):
                return current  # held elsewhere: no write transaction for a look
        async with self._write() as tx:
            return await poller.take(tx, holder, stale_after)

    async def write_fleet_snapshot(self, holder: str, body: bytes) -> int | None:
        """Store the holder's new snapshot; its generation, or None when `holder` lost the
        lease (nothing is written)."""
        async with self._write() as tx:
            return await poller.write_snapshot(tx, holder, body)

    async def fleet_poll_failed(self, holder: str, error: str) -> None:
        """The holder's poll failed: readers say so, over the last snapshot."""
        async with self._write() as tx:
            await poller.poll_failed(tx, holder, error)

    async def read_fleet_snapshot(
        self, known: int | None
    ) -> tuple[PollerLease | None, bytes | None]:
        """The lease, and the snapshot when its generation is not `known` (else None)."""
        async with self._read() as tx:
            return await poller.read_snapshot(tx, known)

    async def release_poller_lease(self, holder: str) -> None:
        """Give the lease up (the snapshot stays): the next console to look takes it."""
        async with self._write() as tx:
            await poller.release(tx, holder)

    # Deploys, their steps and output

    async def create_deploy(self, record: DeployRecord) -> None:
        deploys.check_state(record.state)
        async with self._write() as tx:
            await deploys.insert_deploy(tx, record)

    async def set_deploy_state(
        self,
        deploy_id: str,
        state: str,
        *,
        reason: str = "",
        image_id: str | None = None,
        previous_release: str | None = None,
        audit: Mapping[str, Any] | None = None,
        release: tuple[str, str] | None = None,
    ) -> None:
        """Set a deploy's state (and reason, image id when given); running stamps started_at
        once, a final state stamps finished_at. With `audit` (Store.audit's fields), its row
        commits with the change; with `release` (project, cluster), the pair's lock is let go
        in the same transaction."""
        deploys.check_state(state)
        async with self._write() as tx:
            await deploys.set_state(
                tx,
                deploy_id,
                state,
                reason=reason,
                image_id=image_id,
                previous_release=previous_release,
            )
            if release is not None:
                await locks.release(tx, *release, deploy_id)
            await _audit_with(tx, audit)

    async def step_started(
        self,
        deploy_id: str,
        step: str,
        *,
        detail: str = "",
        audit: Mapping[str, Any] | None = None,
    ) -> None:
        async with self._write() as tx:
            await deploys.step_started(tx, deploy_id, step, detail)
            await _audit_with(tx, audit)

    async def step_finished(
        self,
        deploy_id: str,
        step: str,
        state: str,
        *,
        detail: str = "",
        audit: Mapping[str, Any] | None = None,
    ) -> None:
        """Finish the step's latest run and store its seconds; a step that never started
        (skipped) gets a row of its own with 0 seconds. An empty detail keeps the one it had.
        With `audit`, its row commits with the step."""
        deploys.check_step_state(state)
        async with self._write() as tx:
            await _audit_with(tx, audit)
            await deploys.step_finished(tx, deploy_id, step, state, detail)

    async def deploy(self, deploy_id: str) -> DeployRecord | None:
        async with self._read() as tx:
            return await deploys.get(tx, deploy_id)

    async def steps(self, deploy_id: str) -> list[StepRecord]:
        """Every step run of a deploy, in the order they started."""
        async with self._read() as tx:
            return await deploys.steps(tx, deploy_id)

    async def deploys(
        self, *, limit: int = 50, **filters: Unpack[DeployFilters]
    ) -> list[DeployRecord]:
        """The latest deploys, newest first, narrowed by whichever filters are given
        (DeployFilters; keyset paging with `before`, never OFFSET)."""
        async with self._read() as tx:
            return await deploys.history(tx, limit=limit, **filters)

    async def unfinished_deploys(self) -> list[DeployRecord]:
        """Queued and running deploys, oldest first (the order they were queued in)."""
        async with self._read() as tx:
            return await deploys.unfinished(tx)

    async def cancel_requested(self, deploy_id: str) -> str | None:
        """Who asked this deploy to cancel from another console (None: nobody)."""
        async with self._read() as tx:
            return await queue_order.cancel_requested(tx, deploy_id)

    async def bake_requested(self, deploy_id: str) -> str | None:
        """A decision on a baking deploy asked from any console ("end:ACTOR" or
        "rollback:ACTOR"), or None."""
        async with self._read() as tx:
            return await queue_order.bake_requested(tx, deploy_id)

    async def append_log(
        self, deploy_id: str, lines: Sequence[tuple[datetime, str, str, str]]
    ) -> None:
        """Keep output lines of a deploy: (at, source, stream, line), secrets already masked."""
        if not lines:
            return
        async with self._write() as tx:
            await deploys.append_log(tx, deploy_id, lines)

    async def deploy_log(self, deploy_id: str) -> list[LogLine]:
        """A deploy's output lines in the order they were printed."""
        async with self._read() as tx:
            return await deploys.log(tx, deploy_id)

    # Audit: append-only, each row chained to the one before by its hash (console/store/chain.py)

    async def audit(self, action: str, *, actor: str, **fields: Unpack[AuditFields]) -> int:
        """Append one audit row and return its id. Takes no secrets: say only that one changed."""
        async with self._write() as tx:
            return await audit_log.append(tx, {"action": action, "actor": actor, **fields})

    async def record_config(self, actor: str, digest: str, rules: str, source: str) -> bool:
        """A `config` audit row if the rules' digest is not the last one recorded (who started
        a console on them, what they say); whether one was written."""
        async with self._write() as tx:
            return await audit_log.record_config(tx, actor, digest, rules, source)

    async def record_denial(
        self, actor: str, refusal: str, *, cluster: str | None, project: str | None
    ) -> int:
        """A refusal on record: who tried what, where (nothing else changes)."""
        return await self.audit(
            "denied",
            actor=actor,
            project=project,
            cluster=cluster,
            outcome="refused",
            reason=refusal,
        )

    async def audit_rows(
        self,
        *,
        deploy_id: str | None = None,
        project: str | None = None,
        before: int | None = None,
        limit: int | None = None,
    ) -> list[AuditRow]:
        """Audit rows in id order; with limit, the latest ones; before (a row id) pages back."""
        async with self._read() as tx:
            return await audit_log.rows(
                tx, deploy_id=deploy_id, project=project, before=before, limit=limit
            )

    async def config_changes(self, limit: int = 20) -> list[AuditRow]:
        """The latest `config` audit rows, newest first (see record_config)."""
        async with self._read() as tx:
            return await audit_log.config_changes(tx, limit)

    async def audit_page(
        self, *, after: int = 0, limit: int = 1000, **filters: Unpack[AuditFilters]
    ) -> list[AuditRow]:
        """Up to limit audit rows with ids above `after`, oldest first, filtered (AuditFilters):
        the next page starts after the last id (keyset paging)."""
        async with self._read() as tx:
            return await audit_log.page(tx, after=after, limit=limit, **filters)

    async def iter_audit(
        self, *, page_size: int = 1000, **filters: Unpack[AuditFilters]
    ) -> AsyncIterator[AuditRow]:
        """Every audit row matching the filters of audit_page, oldest first, one page in memory."""
        after = 0
        while True:
            page = await self.audit_page(after=after, limit=page_size, **filters)
            for row in page:
                yield row
            if len(page) < page_size:
                return
            after = page[-1].id

    async def verify_audit(self) -> int | None:
        """None when every row chains to the one before it; else the first row id that does not
        (for a gap, the first missing id)."""
        problem = (await self.check_audit()).problem
        return None if problem is None else problem.id

    async def check_audit(self) -> AuditCheck:
        """Recompute the chain from the first row: how many rows verify, the head hash and the
        first row that does not match (changed, missing or out of order).

        Rows removed from the end, or a chain recomputed from a changed row onwards, still
        verify: only an anchor kept outside the store (a head hash published elsewhere) shows
        those.
        """
        return await self.check_audit_after(0, GENESIS_HASH)

    async def check_audit_after(self, after: int, head: str) -> AuditCheck:
        """check_audit from row `after` on, taking `head` as that row's hash (0 and the genesis
        hash: the whole chain): an anchor's row and hash, so that only the rows written since
        are recomputed. rows counts from the first row, as check_audit does.

        Whether row `after` still has that hash is the caller's to check (console.audit.anchor).
        """
        async with self._read() as tx:
            return await audit_log.check_after(tx, after, head)

    async def audit_hashes(self, ids: Iterable[int]) -> dict[int, str]:
        """The hash of each of these audit rows that exists, by row id."""
        async with self._read() as tx:
            return await audit_log.hashes(tx, ids)

    async def record_anchor(self, location: str, rows: int, head: str, at: datetime) -> None:
        """Note that row `rows` (hash `head`) was anchored at `location`; a note of a later row
        is never replaced by an earlier one."""
        async with self._write() as tx:
            await audit_log.record_anchor(tx, location, rows, head, at)

    async def anchor_record(self, location: str) -> AnchorRecord | None:
        """The last anchor noted for `location`; None when none was (or the store predates the
        note: then only the anchors in S3 say what must hold)."""
        async with self._read() as tx:
            return await audit_log.anchor_record(tx, location)


async def _audit_with(tx: Tx, audit: Mapping[str, Any] | None) -> None:
    """The audit row of a change, in the change's own transaction."""
    if audit is not None:
        await audit_log.append(tx, audit)


async def _hold(
    tx: Tx, project: str, cluster: str, deploy_id: str, actor: str, stale_after: float
) -> None:
    """Hold the pair's lock for deploy_id, or take it over from a holder whose heartbeat is
    older than stale_after; LockBusy while another deploy holds it (its holder may again)."""
    holder = await locks.holder(tx, project, cluster)
    if holder is not None and holder.deploy_id != deploy_id:
        if holder.heartbeat_at > tx.now - timedelta(seconds=stale_after):
            raise LockBusy.held_by(
                project, cluster, holder.deploy_id, holder.actor, holder.acquired_at
            )
        await _take_over(tx, holder, deploy_id, actor)
    acquired_at = holder.acquired_at if holder and holder.deploy_id == deploy_id else tx.now
    await locks.hold(tx, project, cluster, deploy_id, actor, acquired_at)


async def _take_over(tx: Tx, holder: LockInfo, deploy_id: str, actor: str) -> None:
    """The stale holder's deploy is interrupted, in the transaction that takes its lock."""
    reason = (
        f"no heartbeat since {holder.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC; "
        f"lock taken over by deploy {deploy_id}"
    )
    interrupted = await deploys.interrupt_unfinished(tx, holder.deploy_id, reason)
    await audit_log.append(
        tx,
        {
            "action": "lock.taken_over",
            "actor": actor,
            "project": holder.project,
            "cluster": holder.cluster,
            "deploy_id": holder.deploy_id,
            "outcome": "interrupted" if interrupted else "stale",
            "reason": reason,
        },
    )
