"""What reading the pairs' Route 53 records costs a fleet refresh: AWS calls and time, with
the config's DNS names and without them, on the demo fleet and a scaled one.

    .venv/bin/python -m tests.bench.dns_reading [--projects 100] [--refreshes 7]

Each fleet is seeded in this process (the embedded world); the first refresh of each Fleet is
not timed (its clients made, the zones listed); the others are, with their calls counted by
the gateways themselves (console/aws/gateway.py)."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

from console.config import Config, load_config, write_world_config
from console.fleet.inventory import Fleet
from console.world.server import World
from tests.bench import scaled_world
from tests.conftest import DEMO_CONFIG


def without_dns(config: Config) -> Config:
    projects = tuple(
        dataclasses.replace(
            project,
            dns=None,
            clusters={
                name: dataclasses.replace(settings, dns=None)
                for name, settings in project.clusters.items()
            },
        )
        for project in config.projects
    )
    return dataclasses.replace(config, projects=projects)


async def measure(config: Config, refreshes: int) -> tuple[Counter[str], Counter[str], float]:
    """(calls of the first refresh, calls per later refresh, median seconds of a later one)."""
    fleet = Fleet(config)
    try:
        await fleet.refresh()
        first = Counter(fleet.call_count())
        times = []
        for _ in range(refreshes):
            started = time.perf_counter()
            await fleet.refresh()
            times.append(time.perf_counter() - started)
        later = Counter(fleet.call_count()) - first
        per_refresh = Counter({op: n // refreshes for op, n in later.items()})
        reads = []
        for _ in range(refreshes if any(p.dns for p in config.projects) else 0):
            started = time.perf_counter()
            await fleet._dns.read()  # alone: in a refresh it runs beside the group reads
            reads.append(time.perf_counter() - started)
        if reads:
            print(f"  the DNS reading alone: median {statistics.median(reads) * 1000:.0f} ms")
        return first, per_refresh, statistics.median(times)
    finally:
        fleet.close()


def report(label: str, config: Config, refreshes: int) -> None:
    pairs = sum(len(p.clusters) for p in config.projects)
    print(f"\n== {label}: {len(config.projects)} projects, {pairs} pairs ==", flush=True)
    # Alternating, twice each: the shared machine's load drifts.
    results: dict[str, list[tuple[Counter[str], Counter[str], float]]] = {"off": [], "on": []}
    for _ in range(2):
        results["off"].append(asyncio.run(measure(without_dns(config), refreshes)))
        results["on"].append(asyncio.run(measure(config, refreshes)))
    for mode, runs in results.items():
        first, per_refresh, _ = runs[-1]
        median = statistics.median(seconds for *_, seconds in runs)
        print(
            f"  DNS {mode:3}: first refresh {sum(first.values())} calls, then "
            f"{sum(per_refresh.values())} per refresh; median refresh {median * 1000:.0f} ms"
        )
        print("           " + ", ".join(f"{op} {n}" for op, n in sorted(per_refresh.items())))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=int, default=100, help="projects of the scaled fleet")
    parser.add_argument("--refreshes", type=int, default=7, help="timed refreshes per run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dns-bench-") as folder:
        for label, source in (
            ("demo fleet", DEMO_CONFIG),
            ("scaled fleet", Path(folder) / "scaled.toml"),
        ):
            if label == "scaled fleet":
                scaled_world.write(source, args.projects)
            world = World(load_config(source))
            started = time.perf_counter()
            world.start()
            print(f"world seeded in {time.perf_counter() - started:.1f} s", flush=True)
            try:
                path = Path(folder) / f"{label.split()[0]}-world.toml"
                write_world_config(source, world.endpoint_url, path)
                report(label, load_config(path), args.refreshes)
            finally:
                world.stop()


if __name__ == "__main__":
    main()
