"""The kiosk's change-to-wall time at the default settings (`refresh_seconds = 10`): how long
after a change in AWS or in the store a tile on the wall shows it.

Against the demo world (config/demo.toml) in its own process (`deploy-console world`); in this
process, the real kiosk (KioskApp, headless 160x48) on a SharedFleet as `deploy-console kiosk`
makes it (its polls in the fleet worker process):

- shared: a server's poller (SharedFleet.keep_polling, as `deploy-console sshd` runs it)
  polls AWS and writes each snapshot to the store; the kiosk reads them from there;
- alone: no other poller: the kiosk holds the lease and polls AWS itself.

A change retags one pair's instances with a new Version at a random moment (uniform over one
interval, so every phase of the poll cadence is met); its time is until that pair's tile
shows the new version. The baseline, in the same run: the pacing before (each read
`refresh_seconds` after the last one ended, the server's poller sleeping `refresh_seconds`
after each poll, the kiosk looking at the store only on that timer). Store changes (a
freeze, a lock, a deploy queued) are read by the kiosk's deploy board every 2 s: until the
tile says ❄ frozen, ⊘ locked, ◷ queued.

    .venv/bin/python -m tests.bench.bench_kiosk_latency [--samples 8] [--quick] [--only fleet|store]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path, PurePath
from typing import Any, ClassVar

from console.config import Config
from console.fleet.process import ProcessFleet
from console.fleet.share import SharedFleet, shared_fleet
from console.model import DeployRequest
from console.queue.board import DeployBoard, read_board
from console.queue.release_queue import DeployQueue
from console.queue.wall import PairNotes, read_pair_notes
from console.store import Store
from screens.kiosk.screen import KioskApp, build_kiosk
from screens.kiosk.tile import KioskTile
from tests.deploy_world import client, world_process

ROOT = Path(__file__).resolve().parents[2]
DEMO_CONFIG = ROOT / "config" / "demo.toml"
PAIR = ("storefront", "staging")
SIZE = (160, 48)
DEADLINE = 120.0


# -- the change, and what the wall shows ------------------------------------------------------


def retag(config: Config, project: str, cluster: str, version: str) -> list[str]:
    """Every running instance of the pair gets Version=`version` (its ids)."""
    ec2 = client(config, cluster, "ec2")
    tags = config.tags
    pages = ec2.get_paginator("describe_instances").paginate(
        Filters=[
            {"Name": f"tag:{tags.project}", "Values": [project]},
            {"Name": f"tag:{tags.environment}", "Values": [cluster]},
            {"Name": "instance-state-name", "Values": ["running"]},
        ]
    )
    ids = [i["InstanceId"] for page in pages for r in page["Reservations"] for i in r["Instances"]]
    ec2.create_tags(Resources=ids, Tags=[{"Key": tags.version, "Value": version}])
    return ids


def tile_text(app: KioskApp, project: str, cluster: str) -> str:
    """The text of the pair's tile on the page shown ("" when it is on another page)."""
    for tile in app.screen.query(KioskTile):
        visual = tile.visual
        plain = getattr(visual, "plain", "")
        if tile.display and tile.border_title == project and plain.split()[:1] == [cluster]:
            return str(plain)
    return ""


async def until_shown(
    app: KioskApp, project: str, cluster: str, words: str, *, gone: bool = False
) -> float:
    """Seconds until the pair's tile says `words` (or, `gone`, no longer does): checked every
    20 ms, as a person would see it within a frame."""
    started = time.monotonic()
    while (words in tile_text(app, project, cluster)) is gone:
        if time.monotonic() - started > DEADLINE:
            raise AssertionError(
                f"{project}/{cluster}: {words!r} never {'went' if gone else 'came'}"
            )
        await asyncio.sleep(0.02)
    return time.monotonic() - started


async def change_to_wall(app: KioskApp, config: Config, version: str) -> float:
    """Retag the pair now; seconds until its tile shows the version."""
    started = time.monotonic()
    await asyncio.to_thread(retag, config, *PAIR, version)
    await until_shown(app, *PAIR, version)
    return time.monotonic() - started


# -- the old pacing, for the baseline ----------------------------------------------------------


class BaselineKiosk(KioskApp):
    """The kiosk as it paced its reads before: `refresh_seconds` after each read ended,
    shown whether new or not, whoever polls."""

    # A subclass's relative CSS path is read from its own module's folder.
    CSS_PATH: ClassVar[list[str | PurePath]] = [ROOT / "screens" / "styles" / "kiosk.tcss"]

    def read_pace(self) -> tuple[float, bool]:
        return self.config.refresh_seconds, False


async def baseline_polling(fleet: SharedFleet) -> None:
    """The server's poller before: poll, then sleep `refresh_seconds`."""
    while True:
        with contextlib.suppress(Exception):
            await fleet.poll_if_holder()
        await asyncio.sleep(fleet.config.refresh_seconds)


# -- one kiosk, with or without a poller beside it --------------------------------------------


@contextlib.asynccontextmanager
async def wall(
    config: Config, store_file: Path, *, shared: bool, baseline: bool
) -> AsyncIterator[KioskApp]:
    """The kiosk (as `deploy-console kiosk` builds it) on the store; with `shared`, a server's
    poller beside it holds the lease first."""
    async with await Store.open(store_file) as store:
        server: SharedFleet | None = None
        polling: asyncio.Task[None] | None = None
        if shared:
            server = shared_fleet(config, store_file, "sshd")
            assert await server.hold()
            polling = asyncio.create_task(
                baseline_polling(server) if baseline else server.keep_polling()
            )
        pairs = [(p.name, c) for p in config.projects for c in p.clusters]

        async def board() -> DeployBoard:
            return await read_board(store, DeployQueue(store, config))

        async def notes() -> PairNotes:
            return await read_pair_notes(DeployQueue(store, config), pairs)

        fleet = shared_fleet(config, store_file, "kiosk", create_store=False)
        kind = BaselineKiosk if baseline else build_kiosk
        app = kind(config, fleet, board, notes=notes)
        try:
            async with app.run_test(size=SIZE):
                await until_shown(app, *PAIR, "healthy")
                yield app
                if shared:
                    assert fleet.polls == 0, "the kiosk polled AWS while the server held the lease"
        finally:
            if polling is not None:
                polling.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await polling
            await fleet.aclose()
            if server is not None:
                await server.aclose()


async def fleet_samples(
    config: Config, workdir: Path, *, shared: bool, baseline: bool, samples: int, tag: str
) -> list[float]:
    """Change-to-wall seconds of `samples` retags, each at a random moment."""
    rng = random.Random(f"{tag}-{shared}-{baseline}")
    store_file = workdir / f"{tag}-{'shared' if shared else 'alone'}-{baseline}.db"
    times: list[float] = []
    async with wall(config, store_file, shared=shared, baseline=baseline) as app:
        for n in range(samples):
            await asyncio.sleep(rng.uniform(0, config.refresh_seconds))
            times.append(await change_to_wall(app, config, f"9.{tag}.{n}"))
    return times


async def store_samples(config: Config, workdir: Path, samples: int) -> dict[str, list[float]]:
    """Seconds until a freeze, a lock and a queued deploy show on the pair's tile."""
    rng = random.Random("store")
    project, cluster = PAIR
    found: dict[str, list[float]] = {"freeze": [], "lock": [], "queued deploy": []}
    store_file = workdir / "store-changes.db"
    async with (
        wall(config, store_file, shared=True, baseline=False) as app,
        await Store.open(store_file) as store,
    ):
        queue = DeployQueue(store, config)
        for n in range(samples):
            request = DeployRequest(project, cluster, "2.15.0", "ops")
            changes: list[tuple[str, Awaitable[Any], str]] = [
                ("freeze", queue.freeze(cluster, "ops", "bench"), "❄ frozen"),
                ("lock", queue.lock(owner="ops", reason="bench", project=project), "⊘ locked"),
                ("queued deploy", queue.enqueue(request, f"d-bench-{n:04d}"), "◷ queued"),
            ]
            for name, change, words in changes:
                await asyncio.sleep(rng.uniform(0, 2.0))
                started = time.monotonic()
                await change
                await until_shown(app, project, cluster, words)
                found[name].append(time.monotonic() - started)
                await undo(queue, name, cluster)
                await until_shown(app, project, cluster, words, gone=True)
    return found


async def undo(queue: DeployQueue, name: str, cluster: str) -> None:
    if name == "freeze":
        await queue.unfreeze(cluster, "ops")
    elif name == "lock":
        for lock in (await queue.view()).manual_locks:
            await queue.unlock(lock.id, "ops")
    else:
        for entry in await queue.entries():
            await queue.cancel(entry.record.id, "ops")


# -- the report ------------------------------------------------------------------------------


def figures(times: list[float]) -> str:
    ordered = sorted(times)
    return (
        f"median {statistics.median(ordered):5.2f} s, max {ordered[-1]:5.2f} s "
        f"(n={len(ordered)}: {', '.join(f'{t:.1f}' for t in ordered)})"
    )


async def poll_seconds(config: Config) -> float:
    """How long one poll of the whole demo fleet takes in the worker process (warm)."""
    fleet = ProcessFleet(config)
    try:
        await fleet.refresh()
        times = []
        for _ in range(3):
            started = time.monotonic()
            await fleet.refresh()
            times.append(time.monotonic() - started)
        return statistics.median(times)
    finally:
        fleet.close()


async def measure(config: Config, workdir: Path, samples: int, only: str | None) -> None:
    if only != "store":
        await measure_fleet(config, workdir, samples)
    if only != "fleet":
        for name, times in (await store_samples(config, workdir, max(2, samples // 2))).items():
            print(f"  store: {name:14} {figures(times)}")


async def measure_fleet(config: Config, workdir: Path, samples: int) -> None:
    interval = config.refresh_seconds
    poll = await poll_seconds(config)
    print(f"refresh_seconds = {interval:g} (the default); one poll of the demo fleet {poll:.2f} s")
    results: dict[tuple[bool, bool], list[float]] = {}
    for shared in (True, False):
        for baseline in (False, True):
            tag = f"{int(shared)}{int(baseline)}"
            times = await fleet_samples(
                config, workdir, shared=shared, baseline=baseline, samples=samples, tag=tag
            )
            results[(shared, baseline)] = times
            who = "a server polls, the kiosk reads the store" if shared else "the kiosk polls"
            which = "before (baseline)" if baseline else "now"
            print(f"  {who:42} {which:17} {figures(times)}")
    for shared in (True, False):
        now, before = results[(shared, False)], results[(shared, True)]
        worst, middle = max(before) / max(now), statistics.median(before) / statistics.median(now)
        print(
            f"  {'shared' if shared else 'alone'}: max {max(now):.2f} s against "
            f"{max(before):.2f} s before ({worst:.1f}x), median {statistics.median(now):.2f} s "
            f"against {statistics.median(before):.2f} s ({middle:.1f}x); "
            f"one interval + one poll = {interval + poll:.2f} s"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=8, help="changes per case (default 8)")
    parser.add_argument("--quick", action="store_true", help="3 changes per case")
    parser.add_argument("--only", choices=("fleet", "store"), help="one kind of change")
    args = parser.parse_args()
    samples = 3 if args.quick else args.samples
    with tempfile.TemporaryDirectory(prefix="bench-kiosk-") as tmp:
        workdir = Path(tmp)
        with world_process(DEMO_CONFIG, workdir) as config:
            assert config.refresh_seconds == Config.refresh_seconds == 10.0
            asyncio.run(measure(config, workdir, samples, args.only))


if __name__ == "__main__":
    main()
