"""Approvals on the queue: approve or reject another person's queued deploy, and a break-glass
rollback that waits for no approval; each one transaction with its audit row."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from console.access import AccessDenied, Action, Role
from console.identity import person
from console.model import DeployRequest
from console.queue.approvals import REJECTED_BY, approval_wait, approvers
from console.queue.holds import QueueHolds, audit_change
from console.queue.rules import QueueError, plain_reason
from console.store import (
    APPROVE,
    BREAK_GLASS,
    CANCELLED,
    QUEUED,
    REJECT,
    DeployRecord,
    QueueTransaction,
)

# The audit's action for a deploy queued that waits for approval (notifications read it).
APPROVAL_WAIT = "approval-wait"


class OwnDeploy(AccessDenied):
    """A requester approving or rejecting their own deploy (it takes another person)."""


@dataclass(frozen=True)
class Verdict:
    """What an approval left: the deploy, who approved it so far, how many it needs."""

    record: DeployRecord
    approvers: tuple[str, ...]
    needed: int

    @property
    def waiting(self) -> str:
        """What it still waits for ("" when its approvals are complete)."""
        missing = self.needed - len(self.approvers)
        if missing <= 0:
            return ""
        return f"{missing} more approval{'s' if missing != 1 else ''}"


class QueueApprovals(QueueHolds):
    """Approve, reject, and break glass (the base of console.queue.DeployQueue)."""

    def needs_approval(self, cluster: str) -> int:
        return self.config.cluster(cluster).approvals

    async def approve(
        self, deploy_id: str, actor: str, image_id: str, comment: str = ""
    ) -> Verdict:
        """`actor` approves the queued deploy, as running `image_id` (the image they were shown);
        the approval counts until the cluster's approval_expires."""
        plain_reason(comment)
        async with self.store.transaction() as tx:
            record = await self._judged(tx, deploy_id, actor, "approve")
            if record.image_id is not None and record.image_id != image_id:
                raise QueueError(
                    f"deploy {deploy_id} runs {record.image_id}, not {image_id}: nothing approved"
                )
            if record.image_id is None:
                await tx.pin_image(deploy_id, image_id)
            cluster = self.config.cluster(record.cluster)
            await tx.add_approval(
                deploy_id=deploy_id,
                project=record.project,
                cluster=record.cluster,
                image_id=image_id,
                actor=actor,
                verdict=APPROVE,
                comment=comment,
                expires_at=tx.now + timedelta(seconds=cluster.approval_expires),
            )
            pinned = await _stored(tx, deploy_id)
            given = (await tx.approvals([deploy_id])).get(deploy_id, ())
            counted = approvers(pinned, given, tx.now)
            said = f"{pinned.release} ({image_id}); {len(counted)} of {cluster.approvals}"
            await tx.audit(
                APPROVE,
                actor=actor,
                project=pinned.project,
                cluster=pinned.cluster,
                deploy_id=deploy_id,
                image_id=image_id,
                outcome="approved",
                reason=f"{said}{': ' + comment if comment else ''}",
            )
            return Verdict(pinned, tuple(counted), cluster.approvals)

    async def reject(self, deploy_id: str, actor: str, reason: str) -> DeployRecord:
        """`actor` rejects the queued deploy: it ends cancelled, with the reason."""
        if not reason.strip():
            raise QueueError("a rejection needs a reason (--reason)")
        plain_reason(reason)
        async with self.store.transaction() as tx:
            record = await self._judged(tx, deploy_id, actor, "reject")
            await tx.add_approval(
                deploy_id=deploy_id,
                project=record.project,
                cluster=record.cluster,
                image_id=record.image_id,
                actor=actor,
                verdict=REJECT,
                comment=reason,
                expires_at=None,
            )
            ended = f"{REJECTED_BY}{person(actor)}: {reason}"
            await tx.cancel_queued(deploy_id, ended)
            await audit_change(tx, REJECT, actor, record, CANCELLED, ended)
            return await _stored(tx, deploy_id)

    async def _judged(
        self, tx: QueueTransaction, deploy_id: str, actor: str, verb: str
    ) -> DeployRecord:
        record = await _stored(tx, deploy_id)
        self.check_judge(record, actor, verb)
        return record

    def check_judge(self, record: DeployRecord, actor: str, verb: str) -> None:
        """Whether `actor` may approve or reject (`verb`) the deploy: QueueError when it is not
        queued or needs no approval, OwnDeploy when it is theirs, AccessDenied without the
        `approve` permission on its cluster."""
        if record.state != QUEUED:
            state = record.state.replace("_", " ")
            raise QueueError(f"deploy {record.id} is {state}: only a queued deploy is {verb}d")
        if not self.needs_approval(record.cluster):
            raise QueueError(
                f"{record.cluster} needs no approval: deploy {record.id} waits for none"
            )
        if person(actor) == person(record.actor):
            raise OwnDeploy(
                f"{person(actor)} may not {verb} their own deploy {record.id}: another user "
                f"with approve on {record.cluster} does"
            )
        self.access.check(
            actor, Action.APPROVE, record.cluster, owner=record.actor, project=record.project
        )

    async def break_glass(self, deploy_id: str, actor: str, reason: str) -> DeployRecord:
        """An admin breaks glass on a queued rollback that waits for approval (one rolled back
        from the console's history): it waits for no approval from now on."""
        async with self.store.transaction() as tx:
            record = await _stored(tx, deploy_id)
            if record.state != QUEUED:
                state = record.state.replace("_", " ")
                raise QueueError(f"deploy {deploy_id} is {state}: only a queued rollback")
            request = DeployRequest(
                record.project, record.cluster, record.release, actor, record.rollback_of
            )
            self.check_break_glass(request, reason)
            await self._glass(tx, record, actor, reason)
            return await _stored(tx, deploy_id)

    def check_break_glass(self, request: DeployRequest, reason: str) -> None:
        """A break-glass deploy is an admin's rollback with a reason (refused otherwise)."""
        if request.rollback_of is None:
            raise QueueError("break glass is for a rollback only (rollback --break-glass REASON)")
        if not reason.strip():
            raise QueueError("breaking glass needs a reason (--break-glass REASON)")
        plain_reason(reason)
        role = self.access.role(request.actor, request.cluster, request.project)
        if role is not Role.ADMIN:
            raise AccessDenied(
                f"{person(request.actor)} is a {role} in {request.cluster}: may not break glass "
                "(needs admin)"
            )

    async def note_queued(self, tx: QueueTransaction, record: DeployRecord, glass: str) -> None:
        """In the deploy's queueing transaction: a break-glass verdict and its loud audit row,
        or, when it waits for approval, the `approval-wait` row (notifications read both)."""
        needed = self.needs_approval(record.cluster)
        if glass:
            await self._glass(tx, record, record.actor, glass)
        elif needed:
            why = approval_wait(record, needed, (), tx.now)
            await audit_change(tx, APPROVAL_WAIT, record.actor, record, QUEUED, why)

    async def _glass(
        self, tx: QueueTransaction, record: DeployRecord, actor: str, reason: str
    ) -> None:
        """The break-glass verdict and its loud audit row, in the change's transaction."""
        await tx.add_approval(
            deploy_id=record.id,
            project=record.project,
            cluster=record.cluster,
            image_id=None,
            actor=actor,
            verdict=BREAK_GLASS,
            comment=reason,
            expires_at=None,
        )
        needed = self.needs_approval(record.cluster)
        skipped = f"; no approval waited for ({needed} needed)" if needed else ""
        said = f"BREAK GLASS: rollback of {record.rollback_of}: {reason}{skipped}"
        await audit_change(tx, BREAK_GLASS, actor, record, QUEUED, said)


async def _stored(tx: QueueTransaction, deploy_id: str) -> DeployRecord:
    found = await tx.deploy(deploy_id)
    if found is None:
        raise QueueError(f"unknown deploy {deploy_id!r}")
    return found
