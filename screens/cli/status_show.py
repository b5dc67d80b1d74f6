"""How `status` shows a snapshot (the JSON document or the table, the data's age, the clusters
that could not be read), light to import: the runner fast path (screens/entry.py) uses it too."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from console.model import FleetSnapshot
from screens import PROG


def show(
    snapshot: FleetSnapshot,
    projects: tuple[str, ...] | None,
    clusters: tuple[str, ...] | None,
    *,
    as_json: bool,
    from_runner: bool,
    findings: Sequence[Mapping[str, Any]] = (),
) -> int:
    """Print the snapshot; exit 2 when a shown cluster could not be read."""
    from console.fleet.report import snapshot_json

    note = f"as of {age(snapshot.generated_at)}, from the runner" if from_runner else ""
    if as_json:
        from screens.cli.json_out import emit

        emit("status", **snapshot_json(snapshot, projects, clusters, findings))
        if note:  # stdout stays JSON alone
            print(note, file=sys.stderr)
    else:
        from screens.cli.status_table import print_status

        if note:
            print(note)
        print_status(snapshot, projects, clusters)
    failed = [
        cluster
        for cluster in snapshot.clusters
        if cluster.error and (clusters is None or cluster.name in clusters)
    ]
    for cluster in failed:
        print(f"{PROG}: error: cluster {cluster.name}: {cluster.error}", file=sys.stderr)
    return 2 if failed else 0


def age(moment: datetime, now: datetime | None = None) -> str:
    """How long ago, for a person: "12 s ago", "4 min ago", "2 h ago"."""
    seconds = max(0, round(((now or datetime.now(UTC)) - moment).total_seconds()))
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 7200:
        return f"{seconds // 60} min ago"
    return f"{seconds // 3600} h ago"
