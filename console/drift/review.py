"""The fleet's findings as people see them: each with whether it is baselined or acknowledged
(known: shown dimmed, not counted), read from the store beside the snapshot."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from console.config import Config
from console.drift.findings import Deployed, Finding, find
from console.model import FleetSnapshot
from console.store import Store
from console.store.desired import desired_count
from console.store.drift import ACKNOWLEDGED, BASELINE, FindingRow, KnownFinding

__all__ = ["Reviewed", "by_pair", "findings_json", "review", "row"]


@dataclass(frozen=True)
class Reviewed:
    """A finding, and what the store knows of it (None: never recorded)."""

    finding: Finding
    known: KnownFinding | None = None

    @property
    def state(self) -> str:
        """new (never recorded), open (recorded, told), baseline or acknowledged."""
        return "new" if self.known is None else self.known.state

    @property
    def counts(self) -> bool:
        """Whether it calls for attention (neither baselined nor acknowledged)."""
        return self.state not in (BASELINE, ACKNOWLEDGED)

    def json(self) -> dict[str, object]:
        """A finding in `drift --json` and `status --json` (docs/json.md)."""
        known = self.known if not self.counts else None
        return {
            "id": self.finding.id,
            "kind": self.finding.kind,
            "project": self.finding.project,
            "cluster": self.finding.cluster,
            "subject": self.finding.subject,
            "instances": list(self.finding.instances),
            "what": self.finding.what,
            "todo": self.finding.todo,
            "state": self.state,
            "known_by": known.known_by if known else None,
            "known_at": known.known_at.isoformat() if known and known.known_at else None,
            "reason": known.reason if known and known.reason else None,
        }


def row(finding: Finding) -> FindingRow:
    """A finding as the store keeps it."""
    return FindingRow(
        finding.id, finding.kind, finding.project, finding.cluster, finding.subject,
        finding.what, finding.instances,
    )  # fmt: skip


async def review(
    config: Config,
    snapshot: FleetSnapshot,
    store: Store | None,
    extra: Sequence[Finding] = (),
) -> list[Reviewed]:
    """Every finding in the snapshot (and `extra`: the stack findings, read from AWS apart),
    against the store's deploys and known findings (no store: every finding new)."""
    if store is None:
        return [Reviewed(finding) for finding in [*find(config, snapshot, ()), *extra]]
    history = [
        Deployed(d.project, d.cluster, d.release, d.image_id, d.state)
        for d in await store.drift.deployed()
    ]
    known = await store.drift.known()
    desired = {
        (project.name, cluster): await desired_count(store, config, project.name, cluster)
        for project in config.projects
        for cluster in project.clusters
    }
    found = [*find(config, snapshot, history, desired), *extra]
    return [Reviewed(f, known.get(f.id)) for f in found]


async def findings_json(
    config: Config, snapshot: FleetSnapshot, store: Store | None
) -> list[dict[str, object]]:
    """Every finding as `status --json` gives it (its pair's `findings`)."""
    return [item.json() for item in await review(config, snapshot, store)]


def by_pair(reviewed: list[Reviewed]) -> dict[tuple[str, str], list[Reviewed]]:
    """The findings of each pair that has any."""
    pairs: dict[tuple[str, str], list[Reviewed]] = {}
    for item in reviewed:
        pairs.setdefault(item.finding.pair, []).append(item)
    return pairs
