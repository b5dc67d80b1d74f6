"""Crash loop: a writer process killed with SIGKILL at random points, 200 times, loses no row
it saw committed and leaves a store that passes integrity_check and whose audit chain verifies."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import random
import signal
import sqlite3
import time
from contextlib import closing
from multiprocessing.connection import Connection
from pathlib import Path

from console.store import DeployRecord, Store

KILLS = 200
# The most rows a writer is let commit before it is killed (0: killed while it starts).
MOST_ROWS = 8
TIMEOUT = 30.0
STEPS = ("launch", "register")


def write_until_killed(path: str, report: Connection, seed: int) -> None:
    """The child: append audit rows (and now and then a deploy with its steps) for ever,
    reporting each one only once its transaction has committed."""
    asyncio.run(_write(Path(path), report, random.Random(seed)))


async def _write(path: Path, report: Connection, rng: random.Random) -> None:
    async with await Store.open(path) as store:
        for n in range(1_000_000):
            if rng.random() < 0.2:
                deploy_id = f"d-{os.getpid()}-{n}"
                await store.create_deploy(
                    DeployRecord(
                        id=deploy_id,
                        project="storefront",
                        cluster="prod1",
                        release=f"1.{n}",
                        actor="writer",
                    )
                )
                for step in STEPS:
                    await store.step_started(deploy_id, step)
                    await store.step_finished(deploy_id, step, "succeeded")
                report.send_bytes(f"deploy {deploy_id}".encode())
            # Rows of a few bytes to a few pages: a kill lands inside writes of every size.
            row_id = await store.audit(
                "crash.append",
                actor="writer",
                project="storefront",
                instance_ids=[f"i-{n:08x}"],
                reason="x" * rng.choice((0, 10, 500, 5000, 12000)),
            )
            report.send_bytes(f"row {row_id}".encode())


class Reported:
    """What the children said they committed."""

    def __init__(self) -> None:
        self.rows: set[int] = set()
        self.deploys: set[str] = set()

    def take(self, message: bytes) -> None:
        kind, _, value = message.decode().partition(" ")
        if kind == "row":
            self.rows.add(int(value))
        else:
            self.deploys.add(value)


def drain(reader: Connection, reported: Reported) -> None:
    """Whatever a dead child had sent (it cannot send any more)."""
    while reader.poll(0):
        try:
            reported.take(reader.recv_bytes())
        except EOFError:
            return


async def _check(path: Path, reported: Reported, where: str) -> int:
    """integrity_check, the chain, and every committed row and deploy still there."""
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)], where
        deploys = {row[0] for row in db.execute("SELECT id FROM deploys")}
        steps = dict(db.execute("SELECT deploy_id, COUNT(*) FROM steps GROUP BY deploy_id"))
    async with await Store.open(path) as store:
        check = await store.check_audit()
    assert check.problem is None, f"{where}: {check.problem}"
    # check_audit walked ids 1..rows without a gap: every committed id must be in that range.
    missing = sorted(row_id for row_id in reported.rows if row_id > check.rows)
    assert not missing, f"{where}: committed rows {missing} are gone ({check.rows} rows)"
    assert reported.deploys <= deploys, f"{where}: deploys {reported.deploys - deploys} are gone"
    for deploy_id in reported.deploys:
        assert steps.get(deploy_id) == len(STEPS), f"{where}: deploy {deploy_id} lost steps"
    return check.rows


def test_a_writer_killed_at_random_points_loses_nothing_it_committed(tmp_path: Path) -> None:
    path = tmp_path / "crash.db"
    seed = int(os.environ.get("CRASH_SEED", time.time_ns() % 2**32))
    rng = random.Random(seed)
    # Children are forked from a server that imported the store once: no interpreter start-up
    # per kill, and no fork of this (threaded) test process. Each child still re-runs the main
    # script (multiprocessing's "prepare"; Python 3.11 never preloads it): under the `pytest`
    # script that imports pytest, so the server imports it too (~200 ms a kill otherwise).
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["pytest", __name__])
    reported = Reported()
    rows = 0
    killed_early = 0
    for kill in range(1, KILLS + 1):
        where = f"kill {kill} (CRASH_SEED={seed})"
        wanted = rng.randint(0, MOST_ROWS)
        reader, writer = context.Pipe(duplex=False)
        child = context.Process(
            target=write_until_killed, args=(str(path), writer, rng.randrange(2**32))
        )
        child.start()
        writer.close()
        before = len(reported.rows)
        deadline = time.monotonic() + TIMEOUT
        try:
            while len(reported.rows) - before < wanted:
                left = deadline - time.monotonic()
                assert left > 0 and reader.poll(left), f"{where}: the writer stopped reporting"
                reported.take(reader.recv_bytes())
        finally:
            child.kill()
            child.join(TIMEOUT)
        assert child.exitcode == -signal.SIGKILL, f"{where}: exit code {child.exitcode}"
        drain(reader, reported)
        reader.close()
        killed_early += len(reported.rows) == before
        if path.exists():
            rows = asyncio.run(_check(path, reported, where))
    # The loop did what it says: rows were committed, and some kills came before any row.
    assert rows >= len(reported.rows) >= KILLS * MOST_ROWS // 4
    assert killed_early > 0
