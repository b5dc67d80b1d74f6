"""Many processes enqueue and claim on one store at random: no pair ever runs two deploys at
once, the global limit holds, and every deploy is claimed exactly once."""

from __future__ import annotations

import asyncio
import itertools
import multiprocessing
import random
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

from console.config import load_config
from console.model import DeployRequest
from console.queue.release_queue import DeployQueue
from console.store import Store
from tests.console.queue.test_queue import DEMO

PROCESSES = 4
ROUNDS = 1000  # in all, shared between the processes
PAIRS = [
    ("storefront", "staging"),
    ("storefront", "qaprod1"),
    ("checkout-api", "staging"),
    ("search-api", "prod1"),
    ("admin-portal", "prod1"),
    ("media-service", "staging"),
]
PROCESS_TIMEOUT = 240.0


async def _finish(queue: DeployQueue, record: Any, rng: random.Random) -> None:
    store = queue.store
    await store.step_finished(record.id, "lock", "succeeded")
    await store.set_deploy_state(record.id, rng.choice(["succeeded", "failed", "rolled_back"]))
    await store.release_lock(record.project, record.cluster, record.id)


async def _race(path: str, name: str, rounds: int, seed: int) -> dict[str, int]:
    rng = random.Random(seed)
    done: Counter[str] = Counter()
    async with await Store.open(Path(path), busy_timeout=30.0) as store:
        queue = DeployQueue(store, load_config(DEMO))
        held: list[Any] = []
        for n in range(rounds):
            roll = rng.random()
            if held and roll < 0.35:
                await _finish(queue, held.pop(rng.randrange(len(held))), rng)
                done["finished"] += 1
            elif roll < 0.7:
                project, cluster = rng.choice(PAIRS)
                request = DeployRequest(project, cluster, f"1.{n}", name)
                await queue.enqueue(request, f"d-{name}-{n}")
                done["enqueued"] += 1
            else:
                record = await queue.claim(name)
                if record is not None:
                    await store.step_started(record.id, "lock")
                    held.append(record)
                    done["claimed"] += 1
        for record in held:
            await _finish(queue, record, rng)
            done["finished"] += 1
    return dict(done)


def _racer(path: str, name: str, rounds: int, seed: int, barrier: Any, results: Any) -> None:
    barrier.wait()
    results.put((name, asyncio.run(_race(path, name, rounds, seed))))


def test_random_enqueues_and_claims_never_overlap_a_pair(tmp_path: Path) -> None:
    path = tmp_path / "console.db"
    asyncio.run(_create(path))
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(PROCESSES)
    results = context.Queue()
    processes = [
        context.Process(
            target=_racer,
            args=(str(path), f"r{n}", ROUNDS // PROCESSES, 1000 + n, barrier, results),
        )
        for n in range(PROCESSES)
    ]
    for process in processes:
        process.start()
    counts = [results.get(timeout=PROCESS_TIMEOUT) for _ in processes]
    for process in processes:
        process.join(timeout=PROCESS_TIMEOUT)
    assert [process.exitcode for process in processes] == [0] * PROCESSES
    claimed = sum(c.get("claimed", 0) for _, c in counts)
    assert claimed >= 50, counts  # the race really raced

    asyncio.run(_check(path))


async def _create(path: Path) -> None:
    async with await Store.open(path):
        pass


async def _check(path: Path) -> None:
    config = load_config(DEMO)
    async with await Store.open(path) as store:
        queue = DeployQueue(store, config)
        # Drain what is still queued, one at a time, the way a runner would.
        while (record := await queue.claim("drain")) is not None:
            await store.step_started(record.id, "lock")
            await _finish(queue, record, random.Random(0))
        deploys = await store.deploys(limit=100_000)
        assert deploys and all(d.state not in ("queued", "running") for d in deploys)

        intervals: dict[tuple[str, str], list[tuple[datetime, datetime, str]]] = {}
        everything: list[tuple[datetime, datetime, str]] = []
        for record in deploys:
            steps = await store.steps(record.id)
            if record.state == "cancelled":
                assert steps == []
                continue
            (step,) = steps
            assert step.finished_at is not None
            span = (step.started_at, step.finished_at, record.id)
            intervals.setdefault((record.project, record.cluster), []).append(span)
            everything.append(span)
        for pair, spans in intervals.items():
            spans.sort()
            for before, after in itertools.pairwise(spans):
                assert after[0] >= before[1], f"{pair}: {before[2]} and {after[2]} overlap"
        # The global limit: never more deploys running at once than config allows.
        moments = sorted([(s, 1) for s, _, _ in everything] + [(f, -1) for _, f, _ in everything])
        running = peak = 0
        for _, change in moments:
            running += change
            peak = max(peak, running)
        assert peak <= config.queue.parallel

        claims = Counter(
            row.deploy_id for row in await store.audit_rows() if row.action == "queue.claim"
        )
        assert set(claims.values()) == {1}, "a deploy was claimed twice"
        assert set(claims) == {d.id for d in deploys if d.state != "cancelled"}
        assert await store.verify_audit() is None
