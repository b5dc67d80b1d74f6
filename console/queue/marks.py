"""What each project x cluster cell shows of deploys and holds: deploying, queued, frozen,
locked, or a last deploy that failed or rolled back, and who did its last deploy, when, and how
it ended; pure, from one queue view."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING

from console.deploy.entry import entry_text
from console.model import DeployState

if TYPE_CHECKING:  # the marks themselves stay light: `status`'s table imports them
    from console.queue.release_queue import DeployQueue
    from console.queue.rules import QueueView
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
class LastDeploy:
    """A pair's last finished deploy: who, which release, when it ended and how."""

    id: str
    release: str
    actor: str
    state: DeployState
    at: datetime
    """When it finished (when it started or was asked for, if the store has no end)."""
    reason: str = ""

    @property
    def outcome(self) -> str:
        """How it ended, in words: succeeded, failed, rolled back, cancelled, interrupted."""
        return self.state.value.replace("_", " ")

    @classmethod
    def of(cls, record: DeployRecord) -> LastDeploy:
        at = record.finished_at or record.started_at or record.created_at
        state = DeployState(record.state)
        release = entry_text(record.kind, record.release)
        return cls(record.id, release, record.actor, state, at, record.reason)


@dataclass(frozen=True)
class PairMark:
    """What the console knows of one pair's deploys and holds. `mark` is the badge its cell
    shows (None: none, the cell shows its health; the pair is here for its last deploy)."""

    mark: Mark | None
    release: str | None
    """The release of the deploy the mark is about (None for a freeze or a lock)."""
    why: str
    """One line for a person: the deploy and its reason, who froze or locked it and why."""
    last: LastDeploy | None = None
    """Its last finished deploy among the recent ones read (None: none there)."""

    @property
    def words(self) -> str:
        if self.mark is None:
            return ""
        return f"{self.mark} {self.release}" if self.release else str(self.mark)


def last_deploys(finished: Iterable[DeployRecord]) -> dict[Pair, LastDeploy]:
    """Each pair's last finished deploy; `finished` is newest first."""
    last: dict[Pair, LastDeploy] = {}
    for record in finished:
        pair = (record.project, record.cluster)
        if pair not in last:
            last[pair] = LastDeploy.of(record)
    return last


def pair_marks(
    view: QueueView, finished: Iterable[DeployRecord], pairs: Iterable[Pair]
) -> dict[Pair, PairMark]:
    """What each of `pairs` shows, for those with a mark or a last deploy. `finished` is newest
    first: a pair's first one there is its last deploy."""
    from console.queue.rules import queue_entries

    live: dict[Pair, PairMark] = {}
    for entry in queue_entries(view):
        record = entry.record
        pair = (record.project, record.cluster)
        if record.state == DeployState.RUNNING:
            what = entry_text(record.kind, record.release)
            live[pair] = PairMark(Mark.DEPLOYING, what, f"{record.id} by {record.actor}")
        elif record.state == DeployState.QUEUED and pair not in live:
            why = f"{record.id} by {record.actor}: {entry.status}"
            live[pair] = PairMark(Mark.QUEUED, record.release, why)
    last = last_deploys(finished)
    marks: dict[Pair, PairMark] = {}
    for pair in pairs:
        ended = last.get(pair)
        mark = live.get(pair) or _held(view, pair) or _last_failed(ended)
        if mark is not None:
            marks[pair] = replace(mark, last=ended)
        elif ended is not None:
            marks[pair] = PairMark(None, None, "", ended)
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


def _last_failed(last: LastDeploy | None) -> PairMark | None:
    if last is None:
        return None
    kinds = {DeployState.FAILED: Mark.FAILED, DeployState.ROLLED_BACK: Mark.ROLLED_BACK}
    mark = kinds.get(last.state)
    if mark is None:
        return None
    why = f"last deploy {last.id} by {last.actor}: {last.reason or last.state.value}"
    return PairMark(mark, last.release, why)


async def read_marks(queue: DeployQueue, pairs: Iterable[Pair]) -> dict[Pair, PairMark]:
    """One read of the queue and of the recent deploys; every pair's mark and last deploy."""
    view = await queue.view()
    recent = await queue.store.deploys(limit=RECENT_DEPLOYS)
    finished = [r for r in recent if DeployState(r.state).finished]
    return pair_marks(view, finished, pairs)
