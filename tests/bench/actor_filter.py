"""`history --actor USER` at 100,000 deploys by 30 users over three doors: the indexed filter
on the actor's user (store schema 5) against the same query forced to scan (the baseline).

    .venv/bin/python -m tests.bench.actor_filter [--deploys 100000] [--repeat 30]

A user matches whatever door they came by ("alice", "alice (ssh SHA256:... from ...)",
"alice (web from ...)"); "dormant" deployed only in the first 50 rows, so a scan for their
latest reads the whole table.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from console.store import Store
from tests.bench.common import create, median_ms

USERS = [f"user{n:02d}" for n in range(30)]
DOORS = ("{u}", "{u} (ssh SHA256:abcdefgh from 127.0.0.1:50412)", "{u} (web from 127.0.0.1:8000)")


def fill(path: Path, deploys: int) -> None:
    rng = random.Random(5)
    at = datetime(2025, 1, 1, tzinfo=UTC)
    rows = []
    for n in range(deploys):
        at += timedelta(minutes=3)
        user = "dormant" if n < 50 else rng.choice(USERS)
        actor = rng.choice(DOORS).format(u=user)
        stamp = at.isoformat(timespec="microseconds")
        rows.append((f"h-{n:07d}", "storefront", "prod1", "2.14.1", actor, "succeeded", stamp, n))
    with sqlite3.connect(path) as db:
        db.executemany(
            "INSERT INTO deploys (id, project, cluster, release, actor, state, created_at, "
            "position) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )


async def measure(path: Path, repeat: int) -> list[tuple[str, float, float]]:
    figures = []
    async with await Store.open(path, create=False) as store:
        for user in ("user07", "dormant"):
            found = await store.deploys(actor=user, limit=20)
            assert found and all(r.actor.partition(" (")[0] == user for r in found)

            async def indexed(user: str = user) -> object:
                return await store.deploys(actor=user, limit=20)

            def scan(user: str = user) -> object:
                with sqlite3.connect(path) as db:
                    return db.execute(
                        "SELECT id FROM deploys NOT INDEXED WHERE actor_user = ? "
                        "ORDER BY seq DESC LIMIT 20",
                        (user,),
                    ).fetchall()

            async def scanned(user: str = user) -> object:
                return scan(user)

            figures.append(
                (user, await median_ms(indexed, repeat), await median_ms(scanned, repeat))
            )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deploys", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "history.db"
        asyncio.run(create(path))
        fill(path, args.deploys)
        figures = asyncio.run(measure(path, args.repeat))
    print(f"history --actor USER --limit 20 at {args.deploys:,} deploys; median of {args.repeat}")
    print(f"{'user':<10} {'indexed':>10} {'scan':>10}   ratio")
    for user, indexed, scanned in figures:
        print(f"{user:<10} {indexed:>7.2f} ms {scanned:>7.2f} ms {scanned / indexed:>6.0f}x")


if __name__ == "__main__":
    main()
