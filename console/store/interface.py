"""What the rest of the core needs from the store, as typed interfaces a second engine can
implement (a store shared beyond one host); console.store.Store is the SQLite one.

Each interface is one family of tables. Every write is one transaction with its audit row:
a method that takes `audit` (Store.audit's fields) appends that row in the change's own
transaction, and QueueTransaction's writes and audit rows commit together or not at all.
The SQLite dialect (pragmas, BEGIN IMMEDIATE, busy retries) stays in console/store/connection.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, Unpack

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
)


class DeployStore(Protocol):
    """The deploy engine's: deploys, their steps and output, and each pair's execution lock."""

    async def create_deploy(self, record: DeployRecord) -> None: ...

    async def begin_deploy(
        self, record: DeployRecord, *, stale_after: float, audit: Mapping[str, Any]
    ) -> None: ...

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
    ) -> None: ...

    async def step_started(
        self, deploy_id: str, step: str, *, detail: str = "", audit: Mapping[str, Any] | None = None
    ) -> None: ...

    async def step_finished(
        self,
        deploy_id: str,
        step: str,
        state: str,
        *,
        detail: str = "",
        audit: Mapping[str, Any] | None = None,
    ) -> None: ...

    async def acquire_lock(
        self, project: str, cluster: str, deploy_id: str, actor: str, *, stale_after: float = 30.0
    ) -> None: ...

    async def heartbeat(self, project: str, cluster: str, deploy_id: str) -> bool: ...

    async def release_lock(self, project: str, cluster: str, deploy_id: str) -> None: ...

    async def lock_holder(self, project: str, cluster: str) -> LockInfo | None: ...

    async def cancel_requested(self, deploy_id: str) -> str | None: ...

    async def bake_requested(self, deploy_id: str) -> str | None: ...

    async def append_log(
        self, deploy_id: str, lines: Sequence[tuple[datetime, str, str, str]]
    ) -> None: ...

    async def deploy(self, deploy_id: str) -> DeployRecord | None: ...

    async def steps(self, deploy_id: str) -> list[StepRecord]: ...

    async def deploy_log(self, deploy_id: str) -> list[LogLine]: ...

    async def deploys(
        self, *, limit: int = 50, **filters: Unpack[DeployFilters]
    ) -> list[DeployRecord]: ...

    async def unfinished_deploys(self) -> list[DeployRecord]: ...


class AuditStore(Protocol):
    """The audit chain's: append, read, walk the chain, and note where its head was anchored."""

    @property
    def path(self) -> Path: ...

    async def audit(self, action: str, *, actor: str, **fields: Unpack[AuditFields]) -> int: ...

    async def record_config(self, actor: str, digest: str, rules: str, source: str) -> bool: ...

    async def record_denial(
        self, actor: str, refusal: str, *, cluster: str | None, project: str | None
    ) -> int:
        """A refusal on record (the "denied" row): who tried what, where."""

    async def audit_rows(
        self,
        *,
        deploy_id: str | None = None,
        project: str | None = None,
        before: int | None = None,
        limit: int | None = None,
    ) -> list[AuditRow]: ...

    async def audit_page(
        self, *, after: int = 0, limit: int = 1000, **filters: Unpack[AuditFilters]
    ) -> list[AuditRow]: ...

    def iter_audit(
        self, *, page_size: int = 1000, **filters: Unpack[AuditFilters]
    ) -> AsyncIterator[AuditRow]: ...

    async def check_audit(self) -> AuditCheck: ...

    async def check_audit_after(self, after: int, head: str) -> AuditCheck: ...

    async def audit_hashes(self, ids: Iterable[int]) -> dict[int, str]: ...

    async def record_anchor(self, location: str, rows: int, head: str, at: datetime) -> None: ...

    async def anchor_record(self, location: str) -> AnchorRecord | None: ...


class PollerStore(Protocol):
    """The shared fleet poller's (console/fleet/share.py): its lease and last snapshot."""

    async def poller_lease(self) -> PollerLease | None: ...

    async def take_poller_lease(self, holder: str, *, stale_after: float) -> PollerLease: ...

    async def write_fleet_snapshot(self, holder: str, body: bytes) -> int | None: ...

    async def fleet_poll_failed(self, holder: str, error: str) -> None: ...

    async def read_fleet_snapshot(
        self, known: int | None
    ) -> tuple[PollerLease | None, bytes | None]: ...

    async def release_poller_lease(self, holder: str) -> None: ...


class QueueTransaction(Protocol):
    """One transaction of the release queue (console/queue/): what it reads stays true until it
    commits, and its writes and their audit rows commit together or not at all."""

    @property
    def now(self) -> datetime: ...

    async def queue(self) -> list[DeployRecord]:
        """Queued, running, and interrupted deploys not yet reconciled, in queue order."""

    async def deploy(self, deploy_id: str) -> DeployRecord | None: ...

    async def deploys_by_id(self, ids: Iterable[str]) -> list[DeployRecord]: ...

    async def queued_in_pair(self, project: str, cluster: str) -> list[DeployRecord]: ...

    async def unsettled(self) -> list[DeployRecord]:
        """Running deploys, and interrupted ones not yet reconciled, oldest first."""

    async def insert_deploy(self, record: DeployRecord) -> None: ...

    async def cancel_queued(self, deploy_id: str, reason: str) -> None: ...

    async def request_cancel(self, deploy_id: str, actor: str) -> None: ...

    async def request_bake(self, deploy_id: str, request: str) -> None: ...
    async def override_window(self, deploy_id: str, reason: str, actor: str) -> None:
        """The deploy may start outside its cluster's deploy windows (an admin's reason)."""

    async def set_positions(self, positions: Sequence[tuple[str, float | None]]) -> None: ...

    async def start(self, record: DeployRecord, runner: str) -> None:
        """The deploy runs on `runner`, holding its pair's execution lock."""

    async def interrupt(self, deploy_id: str, reason: str) -> bool: ...

    async def take_over(self, record: DeployRecord, runner: str) -> None:
        """`runner` holds the pair's lock to reconcile this interrupted deploy."""

    async def reconciled(self, record: DeployRecord, summary: str) -> None:
        """The interrupted deploy was put right; its pair's lock is let go."""

    async def execution_locks(self) -> list[LockInfo]: ...

    async def manual_locks(self) -> list[ManualLock]: ...

    async def manual_lock(self, lock_id: int) -> ManualLock | None: ...

    async def expired_manual_locks(self) -> list[ManualLock]: ...

    async def add_manual_lock(self, **lock: Unpack[NewManualLock]) -> ManualLock: ...

    async def remove_manual_lock(self, lock_id: int) -> None: ...

    async def freezes(self) -> list[Freeze]: ...

    async def freeze(self, cluster: str, actor: str, reason: str) -> Freeze | None:
        """None when frozen now; else the freeze the cluster already has."""

    async def unfreeze(self, cluster: str) -> bool:
        """Whether the cluster was frozen."""

    async def approvals(self, deploy_ids: Iterable[str]) -> dict[str, tuple[Approval, ...]]:
        """Each deploy's verdicts (approve, reject, break-glass), oldest first."""

    async def add_approval(self, **approval: Unpack[NewApproval]) -> Approval: ...

    async def pin_image(self, deploy_id: str, image_id: str) -> None:
        """A queued deploy without an image yet runs this one (its first approval's)."""

    async def audit(self, action: str, *, actor: str, **fields: Unpack[AuditFields]) -> int: ...

    async def record_config(self, actor: str, digest: str, rules: str, source: str) -> bool: ...


class QueueStore(Protocol):
    """The release queue's: its transactions (one write, one consistent read)."""

    def transaction(self) -> AbstractAsyncContextManager[QueueTransaction]: ...

    def snapshot(self) -> AbstractAsyncContextManager[QueueTransaction]: ...


class ConsoleStore(DeployStore, AuditStore, PollerStore, QueueStore, Protocol):
    """Everything the core asks of a store."""

    async def close(self) -> None: ...
