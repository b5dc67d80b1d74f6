"""What a wall shows of each pair besides its health and deploy in flight: its mark (frozen,
locked, last deploy failed...) and its last finished deploy (who, when, outcome)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from console.model import DeployState
from console.queue.marks import RECENT_DEPLOYS, Pair, PairMark, pair_marks
from console.queue.release_queue import DeployQueue
from console.store import DeployRecord


@dataclass(frozen=True)
class PairNotes:
    marks: dict[Pair, PairMark] = field(default_factory=dict)
    """What each pair's cell shows of deploys and holds (console.queue.marks)."""
    last: dict[Pair, DeployRecord] = field(default_factory=dict)
    """Each pair's last finished deploy, among the newest RECENT_DEPLOYS."""


async def read_pair_notes(queue: DeployQueue, pairs: Iterable[Pair]) -> PairNotes:
    """One read of the queue and of the recent deploys."""
    wanted = list(pairs)
    view = await queue.view()
    recent = await queue.store.deploys(limit=RECENT_DEPLOYS)
    finished = [r for r in recent if DeployState(r.state).finished]
    last: dict[Pair, DeployRecord] = {}
    for record in finished:
        last.setdefault((record.project, record.cluster), record)
    shown = set(wanted)
    # A mark without a badge only carries the pair's last deploy: the tile has that below.
    marks = {p: m for p, m in pair_marks(view, finished, wanted).items() if m.mark is not None}
    return PairNotes(marks, {p: r for p, r in last.items() if p in shown})
