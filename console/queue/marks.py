"""What each project x cluster cell shows of deploys and holds: deploying, queued, frozen,
locked, or a last deploy that failed or rolled back; pure, from one queue view."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from console.model import DeployState
from console.queue.release_queue import DeployQueue
from console.queue.rules import QueueView, queue_entries
from console.store import DeployRecord

# The finished deploys read to find each pair's last one: the newest this many.
RECENT_DEPLOYS = 500

Pair = tuple[str, str]


class Mark(StrEnum):
    """In the order a cell shows them: the first that applies wins."""

    DEPLOYING = "deploying"
    QUEUED = "queued"
    FROZEN = "frozen"
    LOCKED = "locked"
    FAILED = "failed"
    ROLLED_BACK = "rolled back"


@dataclass(frozen=True)
class PairMark:
    mark: Mark
    release: str | None
    """The release of the deploy the mark is about (None for a freeze or a lock)."""
    why: str
    """One line for a person: the deploy and its reason, who froze or locked it and why."""

    @property
    def words(self) -> str:
        return f"{self.mark} {self.release}" if self.release else str(self.mark)


def pair_marks(
    view: QueueView, finished: Iterable[DeployRecord], pairs: Iterable[Pair]
) -> dict[Pair, PairMark]:
    """The mark of each of `pairs` that has one. `finished` is newest first: a pair's first
    one there is its last deploy."""
    live: dict[Pair, PairMark] = {}
    for entry in queue_entries(view):
        record = entry.record
        pair = (record.project, record.cluster)
        if record.state == DeployState.RUNNING:
            live[pair] = PairMark(Mark.DEPLOYING, record.release, f"{record.id} by {record.actor}")
        elif record.state == DeployState.QUEUED and pair not in live:
            why = f"{record.id} by {record.actor}: {entry.status}"
            live[pair] = PairMark(Mark.QUEUED, record.release, why)
    last: dict[Pair, DeployRecord] = {}
    for record in finished:
        last.setdefault((record.project, record.cluster), record)
    marks: dict[Pair, PairMark] = {}
    for pair in pairs:
        mark = live.get(pair) or _held(view, pair) or _last_failed(last.get(pair))
        if mark is not None:
            marks[pair] = mark
    return marks


def _held(view: QueueView, pair: Pair) -> PairMark | None:
    project, cluster = pair
    for freeze in view.freezes:
        if freeze.cluster == cluster:
            return PairMark(Mark.FROZEN, None, freeze.describe())
    for lock in view.manual_locks:
        if not lock.warning and lock.active(view.now) and lock.covers(project, cluster):
            return PairMark(Mark.LOCKED, None, lock.describe())
    return None


def _last_failed(record: DeployRecord | None) -> PairMark | None:
    if record is None:
        return None
    kinds = {DeployState.FAILED: Mark.FAILED, DeployState.ROLLED_BACK: Mark.ROLLED_BACK}
    mark = kinds.get(DeployState(record.state))
    if mark is None:
        return None
    why = f"last deploy {record.id} by {record.actor}: {record.reason or record.state}"
    return PairMark(mark, record.release, why)


async def read_marks(queue: DeployQueue, pairs: Iterable[Pair]) -> dict[Pair, PairMark]:
    """One read of the queue and of the recent deploys; every pair's mark."""
    view = await queue.view()
    recent = await queue.store.deploys(limit=RECENT_DEPLOYS)
    finished = [r for r in recent if DeployState(r.state).finished]
    return pair_marks(view, finished, pairs)
