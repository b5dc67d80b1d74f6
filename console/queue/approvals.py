"""Approvals, pure: whose approval of a queued deploy counts, and why a deploy still waits for
approval (console/queue/rules.py asks; console/queue/approving.py records verdicts)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from console.identity import person
from console.store import APPROVE, BREAK_GLASS, REJECT, Approval, DeployRecord

REJECTED_BY = "rejected by "  # how a rejected deploy's reason begins


def approvers(record: DeployRecord, approvals: Iterable[Approval], now: datetime) -> list[str]:
    """The people whose approval counts, in the order they gave it: another person than the
    requester, given for this deploy's project, cluster and image, and not expired."""
    counted: list[str] = []
    for approval in approvals:
        who = person(approval.actor)
        if (
            approval.verdict == APPROVE
            and approval.deploy_id == record.id
            and (approval.project, approval.cluster) == (record.project, record.cluster)
            and approval.image_id is not None
            and approval.image_id == record.image_id
            and who != person(record.actor)
            and approval.active(now)
            and who not in counted
        ):
            counted.append(who)
    return counted


def break_glass(approvals: Iterable[Approval]) -> Approval | None:
    """The break-glass verdict a deploy was queued with (it waits for no approval)."""
    return next((a for a in approvals if a.verdict == BREAK_GLASS), None)


def rejection(approvals: Iterable[Approval]) -> Approval | None:
    return next((a for a in approvals if a.verdict == REJECT), None)


def approval_wait(
    record: DeployRecord, needed: int, approvals: Iterable[Approval], now: datetime
) -> str:
    """Why the deploy waits for approval, from whom; "" when it has enough (or needs none)."""
    approvals = tuple(approvals)
    if needed <= 0 or break_glass(approvals) is not None:
        return ""
    counted = approvers(record, approvals, now)
    missing = needed - len(counted)
    if missing <= 0:
        return ""
    users = "user" if missing == 1 else "users"
    more = "more" if counted else "other"
    words = f"waiting for approval by {missing} {more} {users} with approve on {record.cluster}"
    if counted:
        words += f" ({', '.join(counted)} approved)"
    expired = sorted(
        {
            person(a.actor)
            for a in approvals
            if a.verdict == APPROVE and not a.active(now) and person(a.actor) not in counted
        }
    )
    if expired:
        words += f"; expired: {', '.join(expired)}'s"
    return words
