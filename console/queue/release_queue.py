"""The release queue: deploys wait their turn per project+cluster, say why, and are claimed by
one console's runner at a time (DEPLOY_SEMANTICS.md, "Queue and locks").

The rules (why a deploy waits) are console/queue/rules.py's, the holds people put on the
queue (locks, freezes) console/queue/holds.py's; this module orders, claims and settles
deploys. Each operation is one store transaction with its audit rows.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from datetime import UTC, datetime, timedelta

from console.access import AccessDenied, Action
from console.config.tickets import TicketSettings
from console.gates.checks import GateRefused, Passed, needs_image, queue_checks
from console.model import DeployRequest
from console.queue.approving import QueueApprovals
from console.queue.holds import audit_change, drop_expired_locks
from console.queue.rules import (
    QueueEntry,
    QueueError,
    QueueView,
    next_to_claim,
    plain_reason,
    queue_entries,
    stopped_promotions,
)
from console.queue.schedule import override_note
from console.store import (
    CANCELLED,
    INTERRUPTED,
    QUEUED,
    RUNNING,
    DeployRecord,
    Freeze,
    ManualLock,
    QueueTransaction,
)

SUPERSEDED = "superseded by a newer queued deploy"
WINDOW_OVERRIDE = "window-override"  # the audit action of an admin's override of the windows

# What callers import from here: the queue, its records and states, and the rules' types.
__all__ = [
    "CANCELLED",
    "INTERRUPTED",
    "DeployQueue",
    "Freeze",
    "GateRefused",
    "ManualLock",
    "QueueEntry",
    "QueueError",
    "QueueView",
    "queue_entries",
]


class DeployQueue(QueueApprovals):
    """Queue operations on the store; each is one transaction with its audit rows."""

    # The AMI id a request's release resolves to, for a check that names {image_id} (a
    # runner sets it: it reads AWS); without it {image_id} is empty.
    images: Callable[[DeployRequest], Awaitable[str]] | None = None

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

    async def _view(self, tx: QueueTransaction) -> QueueView:
        deploys = await tx.queue()
        after = {d.after_deploy for d in deploys if d.after_deploy}
        prerequisites = {record.id: record for record in await tx.deploys_by_id(after)}
        manual = await tx.manual_locks()
        clusters = self.config.clusters
        return QueueView(
            tuple(deploys),
            tuple(await tx.execution_locks()),
            tuple(lock for lock in manual if lock.active(tx.now)),
            tuple(await tx.freezes()),
            prerequisites,
            tx.now,
            self.config.queue.parallel,
            {cluster.name: cluster.windows for cluster in clusters if cluster.windows},
            {cluster.name: cluster.approvals for cluster in clusters if cluster.approvals},
            await tx.approvals(d.id for d in deploys if d.state == QUEUED),
        )

    # enqueueing

    async def enqueue(
        self,
        request: DeployRequest,
        deploy_id: str,
        *,
        after: str | None = None,
        break_glass: str = "",
    ) -> DeployRecord:
        """Queue a deploy (it runs when its turn comes); a project with newest_wins cancels
        the older queued deploys of the pair. The cluster's checks (ticket check,
        require_build) are asked first: GateRefused, on record, when one says no.
        `break_glass`: an admin's rollback, with the reason it waits for no approval."""
        if break_glass:  # its own refusal first: "may not break glass" says more than "deploy"
            self.check_break_glass(request, break_glass)
        self._allowed(request)
        passed = await self.checks(request)
        async with self.store.transaction() as tx:
            return await self._enqueue(tx, request, deploy_id, after, passed, break_glass)

    def _allowed(self, request: DeployRequest) -> None:
        project = self.config.project(request.project)
        self.config.cluster(request.cluster)
        if request.cluster not in project.clusters:
            raise QueueError(f"{request.project} is not deployed to {request.cluster}")
        self.access.check(request.actor, Action.DEPLOY, request.cluster, project=request.project)

    async def checks(self, request: DeployRequest) -> Passed:
        """The checks outside the console (console/gates/checks.py), before anything is
        queued; a refusal is on record (a `gate.refused` audit row with the answer)."""
        image_id = ""
        needed = request.kind == "deploy" and needs_image(self.config, request.cluster)
        if self.images is not None and needed:
            image_id = await self.images(request)
        try:
            return await queue_checks(self.config, request, image_id)
        except GateRefused as refused:
            async with self.store.transaction() as tx:
                await tx.audit(
                    "gate.refused",
                    actor=request.actor,
                    project=request.project,
                    cluster=request.cluster,
                    outcome="refused",
                    reason=refused.message,
                    ticket=request.ticket,
                )
            raise

    async def _enqueue(
        self,
        tx: QueueTransaction,
        request: DeployRequest,
        deploy_id: str,
        after: str | None,
        passed: Passed | None = None,
        break_glass: str = "",
    ) -> DeployRecord:
        self._allowed(request)
        self._check_timing(request, tx.now)
        record = DeployRecord.new(deploy_id, request, tx.now, after_deploy=after)
        if self.config.project(request.project).newest_wins:
            reason = f"{SUPERSEDED} ({deploy_id}, {request.release})"
            for old in await tx.queued_in_pair(request.project, request.cluster):
                await _cancel(tx, old, request.actor, reason)
        await tx.insert_deploy(record)
        if self.config.digest:  # the rules this deploy was queued under, on record
            await tx.record_config(
                request.actor, self.config.digest, self.config.rules, str(self.config.source)
            )
        rollback = f"(rollback of {request.rollback_of})" if request.rollback_of else ""
        checked = passed.text() if passed is not None else ""
        at = (
            request.not_before
            and f"not before {request.not_before.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"
        )
        await audit_change(
            tx,
            "queue.enqueue",
            request.actor,
            record,
            QUEUED,
            " ".join(
                part
                for part in (request.release, rollback, after and f"after {after}", checked, at)
                if part
            ),
            config=self.config.digest or None,
        )
        if request.window_override:
            await audit_change(
                tx, WINDOW_OVERRIDE, request.actor, record, "overridden", request.window_override
            )
        await self.note_queued(tx, record, break_glass)
        return await _stored(tx, deploy_id)

    def _check_timing(self, request: DeployRequest, now: datetime) -> None:
        """A schedule must lie ahead; an override of the windows needs an admin, a reason,
        and a cluster that has windows (QueueError or AccessDenied otherwise)."""
        if request.not_before is not None and request.not_before <= now:
            raise QueueError(
                f"the deploy's time {request.not_before.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC "
                "is already past"
            )
        if request.window_override is not None:
            self._check_override(request.actor, request.cluster, request.project)
            _override_reason(request.window_override)

    def _check_override(self, actor: str, cluster: str, project: str) -> None:
        self.access.check(actor, Action.DEPLOY_OUTSIDE_WINDOW, cluster, project=project)
        if not self.config.cluster(cluster).windows:
            raise QueueError(f"{cluster} has no deploy windows: there is nothing to override")

    async def override_window(self, deploy_id: str, actor: str, reason: str) -> DeployRecord:
        """An admin lets a queued deploy start outside its cluster's deploy windows (its
        schedule, a freeze, a lock and its turn still hold); with its audit row."""
        _override_reason(reason)
        async with self.store.transaction() as tx:
            record = await _stored(tx, deploy_id)
            self._check_override(actor, record.cluster, record.project)
            if record.state != QUEUED:
                raise QueueError(
                    f"deploy {deploy_id} is {record.state.replace('_', ' ')}: only a queued "
                    "deploy waits for a window"
                )
            if record.window_override:
                raise QueueError(
                    f"deploy {deploy_id} may already start outside its window "
                    f"({override_note(record)})"
                )
            await tx.override_window(deploy_id, reason, actor)
            await audit_change(tx, WINDOW_OVERRIDE, actor, record, "overridden", reason)
            return await _stored(tx, deploy_id)

    async def record_denial(
        self, actor: str, denied: AccessDenied, cluster: str | None, project: str | None
    ) -> None:
        """A refusal on record: who tried what, where (nothing else changes)."""
        await self.store.record_denial(actor, denied.message, cluster=cluster, project=project)

    async def promote(
        self,
        project: str,
        release: str,
        actor: str,
        ids: Sequence[str],
        *,
        skip: Collection[str] = (),
        ticket: str | None = None,
    ) -> list[DeployRecord]:
        """Queue `release` along the promotion chain: each stage's deploys wait for the stage
        before to succeed; `ids` gives one new deploy id per cluster, in chain order. The
        clusters in `skip` (they run the release already) get no deploy: the next stage waits
        for the last stage queued. Every stage carries `ticket`, and each stage's cluster's
        ticket rule holds before anything is queued."""
        stages = [
            tuple(c for c in stage if c in self.config.project(project).clusters)
            for stage in self.config.promotion
        ]
        stages = [stage for stage in stages if stage]
        if not stages:
            raise QueueError(f"{project} is in no cluster of the promotion chain")
        for cluster in (c for stage in stages for c in stage if c not in skip):
            settings = self.config.cluster(cluster).ticket or TicketSettings()
            problem = settings.problem(ticket, cluster)
            if problem is not None:
                raise QueueError(f"{problem}: nothing promoted")
        passed: dict[str, Passed] = {}
        for cluster in (c for stage in stages for c in stage if c not in skip):
            stage_request = DeployRequest(project, cluster, release, actor, ticket=ticket)
            self._allowed(stage_request)
            passed[cluster] = await self.checks(stage_request)
        queued: list[DeployRecord] = []
        ids = list(ids)
        async with self.store.transaction() as tx:
            after: str | None = None
            for stage in stages:
                made = [
                    await self._enqueue(
                        tx,
                        DeployRequest(project, cluster, release, actor, ticket=ticket),
                        ids.pop(0),
                        after,
                        passed[cluster],
                    )
                    for cluster in stage
                    if cluster not in skip
                ]
                if not made:
                    continue
                queued.extend(made)
                # Only the last stage may hold several clusters (config checks it).
                after = made[0].id
        return queued

    # changing the queue

    async def cancel(self, deploy_id: str, actor: str, reason: str = "") -> DeployRecord:
        """Cancel a queued deploy; a running one is asked to cancel (its console rolls it
        back at its next heartbeat)."""
        plain_reason(reason)
        async with self.store.transaction() as tx:
            record = await _stored(tx, deploy_id)
            self.access.check(
                actor, Action.CANCEL, record.cluster, owner=record.actor, project=record.project
            )
            if record.state == QUEUED:
                await _cancel(tx, record, actor, reason or f"cancelled by {actor}")
            elif record.state == RUNNING:
                await tx.request_cancel(deploy_id, actor)
                asked = reason or f"cancel asked by {actor}"
                await audit_change(tx, "deploy.cancel_requested", actor, record, "requested", asked)
            else:
                raise QueueError(
                    f"deploy {deploy_id} is {record.state.replace('_', ' ')}: nothing to cancel"
                )
            return await _stored(tx, deploy_id)

    async def move(self, deploy_id: str, steps: int, actor: str) -> DeployRecord:
        """Move a queued deploy up (steps < 0) or down among the queued deploys of its pair."""
        async with self.store.transaction() as tx:
            record = await _stored(tx, deploy_id)
            self.access.check(
                actor, Action.MOVE, record.cluster, owner=record.actor, project=record.project
            )
            if record.state != QUEUED:
                raise QueueError(f"deploy {deploy_id} is {record.state}: only queued deploys move")
            pair = await tx.queued_in_pair(record.project, record.cluster)
            index = [d.id for d in pair].index(deploy_id)
            target = max(0, min(len(pair) - 1, index + steps))
            if target == index:
                where = "first" if steps < 0 else "last"
                raise QueueError(
                    f"deploy {deploy_id} is already {where} of {record.project} in {record.cluster}"
                )
            positions = [d.position for d in pair]
            pair.insert(target, pair.pop(index))
            await tx.set_positions([(d.id, p) for d, p in zip(pair, positions, strict=True)])
            direction = "up" if steps < 0 else "down"
            moved = f"{direction} from {index + 1} to {target + 1} of {len(pair)} queued"
            await audit_change(tx, "queue.move", actor, record, "moved", moved)
            return await _stored(tx, deploy_id)

    # running

    async def claim(self, runner: str, *, only: Iterable[str] | None = None) -> DeployRecord | None:
        """Take the next deploy that may start: running, with its pair's execution lock held by
        this runner (the lease; the engine's heartbeat keeps it). Also cancels what can no
        longer run (stopped promotions) and drops expired locks."""
        async with self.store.transaction() as tx:
            await drop_expired_locks(tx)
            view = await self._view(tx)
            stopped = stopped_promotions(view)
            for deploy_id, reason in stopped.items():
                ended = next(d for d in view.deploys if d.id == deploy_id)
                await _cancel(tx, ended, "queue", reason)
            if stopped:
                view = await self._view(tx)
            record = next_to_claim(view, only)
            if record is None:
                return None
            await tx.start(record, runner)
            await audit_change(tx, "queue.claim", record.actor, record, RUNNING, f"run by {runner}")
            return await _stored(tx, record.id)

    async def take_interrupted(self, runner: str) -> list[DeployRecord]:
        """Deploys whose console stopped (no heartbeat for stale_after seconds, or no lock):
        marked interrupted, their pair's lock taken by this runner to reconcile them."""
        taken: list[DeployRecord] = []
        async with self.store.transaction() as tx:
            candidates = await tx.unsettled()
            if not candidates:
                return []
            stale_before = tx.now - timedelta(seconds=self.stale_after)
            locks = {(lock.project, lock.cluster): lock for lock in await tx.execution_locks()}
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
                if record.state == RUNNING:
                    reason = (
                        f"interrupted: its console ({record.runner or 'unknown'}) stopped; "
                        f"no heartbeat since {since:%Y-%m-%d %H:%M:%S} UTC"
                    )
                    await tx.interrupt(record.id, reason)
                    await audit_change(
                        tx, "deploy.interrupted", "queue", record, INTERRUPTED, reason
                    )
                await tx.take_over(record, runner)
                taken.append(await _stored(tx, record.id))
        return taken

    async def reconciled(
        self, record: DeployRecord, runner: str, summary: str, instance_ids: Sequence[str]
    ) -> None:
        """Record that an interrupted deploy was put right, and free its pair."""
        async with self.store.transaction() as tx:
            await tx.reconciled(record, summary)
            await audit_change(
                tx,
                "deploy.reconciled",
                f"queue ({runner})",
                record,
                "reconciled",
                summary,
                instance_ids=tuple(instance_ids),
            )


def _override_reason(reason: str) -> None:
    if not reason.strip():
        raise QueueError("deploying outside the window needs a reason (everyone sees it)")
    plain_reason(reason)


async def _stored(tx: QueueTransaction, deploy_id: str) -> DeployRecord:
    found = await tx.deploy(deploy_id)
    if found is None:
        raise QueueError(f"unknown deploy {deploy_id!r}")
    return found


async def _cancel(tx: QueueTransaction, record: DeployRecord, actor: str, reason: str) -> None:
    await tx.cancel_queued(record.id, reason)
    await audit_change(tx, "queue.cancel", actor, record, CANCELLED, reason)
