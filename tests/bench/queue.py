"""The release queue under load: how long enqueue, a claim and the queue's listing (with why
each deploy waits) take with a few deploys queued and with many, on a store that already
holds a long history.

    .venv/bin/python -m tests.bench.queue [--queued 1000] [--history 100000]

Each figure is the median of repeated calls through DeployQueue, as the consoles, the CLI
and the runner make them; the ratio is many queued against few (the baseline, same run).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from console.config import load_config
from console.model import DeployRequest
from console.queue.release_queue import DeployQueue
from console.store import Store
from tests.bench.common import create, median_ms

DEMO = Path(__file__).resolve().parents[2] / "config" / "demo.toml"
FEW = 10


def add_history(path: Path, deploys: int) -> None:
    """Finished deploys (the queue must not slow down as history grows)."""
    db = sqlite3.connect(path)
    db.execute("PRAGMA synchronous = OFF")
    at = datetime(2025, 1, 1, tzinfo=UTC)
    rows = []
    for n in range(deploys):
        at += timedelta(minutes=7)
        stamp = at.isoformat(timespec="microseconds")
        rows.append((f"h-{n:07d}", "storefront", "prod1", "2.14.1", "ci", "succeeded",
                     stamp, stamp, stamp, n))  # fmt: skip
    db.executemany(
        "INSERT INTO deploys (id, project, cluster, release, actor, state, created_at, "
        "started_at, finished_at, position) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    db.commit()
    db.close()


async def measure(path: Path, queued: int, repeat: int) -> dict[str, float]:
    config = load_config(DEMO)
    pairs = [(p.name, c) for p in config.projects for c in p.clusters]
    rng = random.Random(3)
    async with await Store.open(path) as store:
        queue = DeployQueue(store, config)
        for n in range(queued):
            project, cluster = rng.choice(pairs)
            await queue.enqueue(DeployRequest(project, cluster, "1.0", "bench"), f"q-{n:06d}")
        counter = iter(range(10**9))

        async def enqueue() -> None:
            project, cluster = rng.choice(pairs)
            n = next(counter)
            await queue.enqueue(DeployRequest(project, cluster, "1.0", "bench"), f"e-{n:06d}")

        async def claim_and_release() -> None:
            record = await queue.claim("bench")
            if record is not None:  # put it back as it was: the queue keeps its size
                await store.set_deploy_state(record.id, "succeeded")
                await store.release_lock(record.project, record.cluster, record.id)

        return {
            "entries (listing + why waiting)": await median_ms(queue.entries, repeat),
            "claim": await median_ms(claim_and_release, repeat),
            "enqueue": await median_ms(enqueue, repeat),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queued", type=int, default=1000)
    parser.add_argument("--history", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        figures = {}
        for label, queued in (("few", FEW), ("many", args.queued)):
            path = Path(folder) / f"{label}.db"
            asyncio.run(create(path))
            add_history(path, args.history)
            figures[label] = asyncio.run(measure(path, queued, args.repeat))
    print(f"queue with {args.history:,} finished deploys in the store; median of {args.repeat}")
    print(f"{'operation':<34} {FEW:>6} queued {args.queued:>7} queued   ratio")
    for name in figures["few"]:
        few, many = figures["few"][name], figures["many"][name]
        print(f"{name:<34} {few:>9.2f} ms {many:>11.2f} ms {many / few:>6.1f}x")


if __name__ == "__main__":
    main()
