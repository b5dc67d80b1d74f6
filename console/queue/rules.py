"""The queue's rules, pure: why each queued deploy waits, which one starts next, which
promotions stopped; read from one QueueView (DEPLOY_SEMANTICS.md, "Queue and locks")."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from console.config.windows import DeployWindow
from console.errors import ConsoleError
from console.identity import person
from console.queue.approvals import approval_wait
from console.queue.schedule import override_note, waits_for_time
from console.safe_text import has_controls
from console.store import (
    INTERRUPTED,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    Approval,
    DeployRecord,
    Freeze,
    LockInfo,
    ManualLock,
)


class QueueError(ConsoleError):
    """A queue operation was refused (unknown deploy, not queued, not allowed)."""


def plain_reason(reason: str) -> None:
    """A reason a person typed must be one line of plain text (QueueError otherwise)."""
    if has_controls(reason):
        raise QueueError(
            "a reason is one line of plain text: no newlines, escape sequences or other controls"
        )


@dataclass(frozen=True)
class QueueView:
    """What the queue decides on, read in one transaction.

    deploys: queued, running, and interrupted ones not yet reconciled, in queue order.
    prerequisites: the state of every deploy a queued one waits for (promotions).
    windows: each cluster's deploy windows (a cluster not named: deploys any time).
    approvals_needed: each cluster's `approvals` (a cluster not named: none); approvals: the
    verdicts given on the queued deploys (console/queue/approvals.py).
    """

    deploys: tuple[DeployRecord, ...]
    locks: tuple[LockInfo, ...]
    manual_locks: tuple[ManualLock, ...]
    freezes: tuple[Freeze, ...]
    prerequisites: dict[str, DeployRecord]
    now: datetime
    parallel: int
    windows: dict[str, tuple[DeployWindow, ...]] = field(default_factory=dict)
    approvals_needed: dict[str, int] = field(default_factory=dict)
    approvals: dict[str, tuple[Approval, ...]] = field(default_factory=dict)


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
            note = override_note(record)  # an admin's window override, shown while it waits
            return " · ".join(part for part in (self.waiting or "starts next", note) if part)
        if record.state == RUNNING:
            asked = (
                f"; cancel asked by {record.cancel_requested}" if record.cancel_requested else ""
            )
            return f"running on {record.runner or 'a console'}{asked}"
        return f"interrupted; reconciling ({record.runner or 'next console'})"


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

    In order: the promotion stage before it, the approvals it still needs, a freeze, its
    schedule, its cluster's deploy windows (unless an admin overrode them), a blocking lock,
    the deploy ahead of it on its pair (running, being reconciled, or queued before it), the
    global limit.
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
    needed = view.approvals_needed.get(record.cluster, 0)
    if needed and (
        waiting := approval_wait(record, needed, view.approvals.get(record.id, ()), view.now)
    ):
        return waiting
    for freeze in view.freezes:
        if freeze.cluster == record.cluster:
            return freeze.describe()
    timed = waits_for_time(record, view.windows.get(record.cluster, ()), view.now)
    if timed:  # its schedule (`deploy --at`), its cluster's windows unless an admin overrode them
        return timed
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
