"""Audit queries at 1,000,000 rows: the last 50 events of one project, paging back, a deploy's
rows, and `audit verify`, each against the same query made by a full scan (the baseline).

    .venv/bin/python -m tests.bench.audit_query [--rows 1000000] [--store PATH]

The store is built once with a valid hash chain (rows written in one transaction, hashed as
Store.audit hashes them), then read through Store, as the console and the CLI read it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sqlite3
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from console.store import AUDIT_HASHED, GENESIS_HASH, Store, audit_hash
from tests.bench.common import create, timed

PROJECTS = [f"svc-{n:03d}" for n in range(200)]
CLUSTERS = ("staging", "qaprod1", "prod1", "prod2")
STEPS = ("lock", "resolve", "launch", "configure", "register", "health-gate", "terminate")
GOAL_MS = 5.0
# A project that went quiet: its rows are the first ones. A scan for its latest reads them all.
DORMANT = "legacy-billing"
DORMANT_ROWS = 200


def build(path: Path, rows: int, seed: int = 7) -> float:
    """A store of `rows` audit rows over 200 projects; seconds it took."""
    started = time.perf_counter()
    asyncio.run(create(path))
    rng = random.Random(seed)
    db = sqlite3.connect(path)
    db.execute("PRAGMA synchronous = OFF")  # building the fixture, not measuring writes
    at = datetime(2025, 1, 1, tzinfo=UTC)
    prev = GENESIS_HASH
    columns = [*AUDIT_HASHED, "hash"]
    insert = f"INSERT INTO audit ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    batch: list[tuple[Any, ...]] = []
    for row_id in range(1, rows + 1):
        at += timedelta(seconds=rng.randint(1, 30))
        project = DORMANT if row_id <= DORMANT_ROWS else rng.choice(PROJECTS)
        deploy = f"d-{row_id // 12:07d}"
        row: dict[str, Any] = {
            "id": row_id,
            "at": at.isoformat(timespec="microseconds"),
            "actor": rng.choice(("alice", "bob", "ci", "root")),
            "action": "deploy.step",
            "project": project,
            "cluster": rng.choice(CLUSTERS),
            "deploy_id": deploy,
            "image_id": f"ami-{row_id % 9973:017x}",
            "instance_ids": "[]",
            "step": rng.choice(STEPS),
            "outcome": rng.choice(("succeeded", "succeeded", "succeeded", "failed")),
            "reason": "",
            "ticket": None,
            "config": None,
            "prev_hash": prev,
        }
        row["hash"] = prev = audit_hash(prev, row)
        batch.append(tuple(row[name] for name in columns))
        if len(batch) == 50_000:
            db.executemany(insert, batch)
            batch.clear()
    db.executemany(insert, batch)
    db.commit()
    db.close()
    return time.perf_counter() - started


def scan(path: Path, query: str, parameters: tuple[Any, ...]) -> Callable[[], Awaitable[Any]]:
    """The baseline: the same query with the indexes ignored (NOT INDEXED: a full scan)."""

    async def call() -> Any:
        def run() -> list[Any]:
            db = sqlite3.connect(path)
            try:
                return db.execute(query, parameters).fetchall()
            finally:
                db.close()

        return await asyncio.to_thread(run)

    return call


async def measure(path: Path, rows: int) -> dict[str, Any]:
    figures: dict[str, Any] = {"rows": rows}
    async with await Store.open(path) as store:
        project = PROJECTS[17]
        last_ms, last = await timed(lambda: store.audit_rows(project=project, limit=50), 20)
        assert len(last) == 50 and all(row.project == project for row in last)
        before = last[0].id
        back_ms, page = await timed(
            lambda: store.audit_rows(project=project, before=before, limit=50), 20
        )
        assert len(page) == 50 and page[-1].id < before
        deploy = last[-1].deploy_id
        deploy_ms, of_deploy = await timed(lambda: store.audit_rows(deploy_id=deploy), 20)
        assert of_deploy and all(row.deploy_id == deploy for row in of_deploy)
        scan_ms, scanned = await timed(
            scan(
                path,
                "SELECT id FROM audit NOT INDEXED WHERE project = ? ORDER BY id DESC LIMIT 50",
                (project,),
            ),
            3,
        )
        assert [r[0] for r in scanned] == [row.id for row in reversed(last)]
        dormant_ms, dormant = await timed(lambda: store.audit_rows(project=DORMANT, limit=50), 20)
        assert [row.id for row in dormant] == list(range(DORMANT_ROWS - 49, DORMANT_ROWS + 1))
        dormant_scan_ms, _ = await timed(
            scan(
                path,
                "SELECT id FROM audit NOT INDEXED WHERE project = ? ORDER BY id DESC LIMIT 50",
                (DORMANT,),
            ),
            3,
        )
        verify_started = time.perf_counter()
        check = await store.check_audit()
        verify_s = time.perf_counter() - verify_started
        assert check.problem is None and check.rows == rows
    figures.update(
        last_50_of_a_project_ms=last_ms,
        page_back_ms=back_ms,
        rows_of_a_deploy_ms=deploy_ms,
        full_scan_baseline_ms=scan_ms,
        index_speedup=scan_ms / last_ms,
        last_50_of_a_dormant_project_ms=dormant_ms,
        dormant_full_scan_baseline_ms=dormant_scan_ms,
        dormant_index_speedup=dormant_scan_ms / dormant_ms,
        verify_seconds=verify_s,
        goal_ms=GOAL_MS,
    )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--store", type=Path, help="reuse (or build) the store at this path")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="audit-bench-") as scratch:
        path = args.store or Path(scratch) / "audit.db"
        built = None
        if not path.exists():
            built = build(path, args.rows)
        figures = asyncio.run(measure(path, args.rows))
    figures["build_seconds"] = built
    verdict = "meets" if figures["last_50_of_a_project_ms"] <= GOAL_MS else "MISSES"
    lines = [
        f"audit at {figures['rows']:,} rows (200 projects)"
        + (f", built in {built:.1f} s" if built else ""),
        f"  last 50 events of one project   {figures['last_50_of_a_project_ms']:.2f} ms median "
        f"({verdict} the goal <= {GOAL_MS:.0f} ms)",
        f"  baseline, the same by full scan {figures['full_scan_baseline_ms']:.1f} ms "
        f"({figures['index_speedup']:.0f}x slower: its 50 are among the newest rows)",
        f"  last 50 of a project quiet since its first {DORMANT_ROWS} rows "
        f"{figures['last_50_of_a_dormant_project_ms']:.2f} ms; by full scan "
        f"{figures['dormant_full_scan_baseline_ms']:.0f} ms "
        f"({figures['dormant_index_speedup']:.0f}x slower)",
        f"  the 50 before those (keyset)    {figures['page_back_ms']:.2f} ms",
        f"  every row of one deploy         {figures['rows_of_a_deploy_ms']:.2f} ms",
        f"  audit verify (whole chain)      {figures['verify_seconds']:.1f} s",
    ]
    print("\n".join(lines))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
