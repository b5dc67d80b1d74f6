"""The metrics benchmark (`make bench-metrics`): what serving Prometheus metrics costs a deploy,
and how long a scrape takes.

Against a world of its own (the demo, registering and draining in 1 s), one runner in this
process (runner_service, as `deploy-console runner` runs it) deploys one pair back and forth:
one deploy not counted (boto3 loads), then in turns without metrics, with them installed and
served on 127.0.0.1 but not scraped (the hooks' cost), and scraped every second by a child
process (fifteen times Prometheus's default rate), the order reversed every other round. For
each mode: the median wall time of a deploy and this process's CPU time during it (the waits
on AWS, SSH and timers are the same in all). Then the median time of a scrape of the runner's
/metrics once its deploys are counted. All modes run in the same invocation.

    .venv/bin/python -m tests.bench.metrics_overhead [--runs N]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from console.config import Config
from console.events import DeployFinished
from console.metrics.address import MetricsAddress
from console.metrics.serve import serving_metrics
from console.model import DeployRequest, DeployState
from console.servers.runner_service import runner_service
from tests.deploy_world import quick_seed, running_versions, world_process

PROJECT, CLUSTER, RELEASES = "storefront", "staging", ("2.14.1", "2.15.0")
SCRAPER = """
import sys, time, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
while True:
    with opener.open(sys.argv[1], timeout=10) as answer:
        answer.read()
    time.sleep(1.0)
"""
DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@contextlib.contextmanager
def scraped(url: str) -> Iterator[None]:
    """A child process scraping `url` every second (its CPU is not this process's)."""
    child = subprocess.Popen([sys.executable, "-c", SCRAPER, url], stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        child.terminate()
        child.wait()


async def deploy(config: Config, store: Path, release: str) -> tuple[float, float]:
    """One deploy through a runner service: (wall s, this process's CPU s)."""
    async with runner_service(config, store) as service:
        runner = service.runner
        wall, cpu = time.perf_counter(), time.process_time()
        record = await runner.enqueue(DeployRequest(PROJECT, CLUSTER, release, "bench"))
        state = None
        async for event in runner.follow(record.id):
            if isinstance(event, DeployFinished):
                state = event.state
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if state != DeployState.SUCCEEDED:
        raise SystemExit(f"deploy of {release} ended {state}: no figure")
    return wall, cpu


async def bench(config: Config, workdir: Path, runs: int) -> None:
    store = workdir / "store.db"
    (current,) = running_versions(config, PROJECT, CLUSTER)
    release = RELEASES[0] if current != RELEASES[0] else RELEASES[1]
    modes = ("without", "unscraped", "scraped")
    figures: dict[str, list[tuple[float, float]]] = {mode: [] for mode in modes}
    url = ""
    with serving_metrics(MetricsAddress("127.0.0.1", 0)) as (_, bound):
        url = f"http://{bound}/metrics"
        from console.metrics.current import install, installed

        metrics = installed()
        install(None)  # a first deploy, not counted: boto3's clients and models load
        await deploy(config, store, release)
        release = RELEASES[1] if release == RELEASES[0] else RELEASES[0]
        for run in range(runs):
            for mode in modes if run % 2 == 0 else modes[::-1]:
                install(None if mode == "without" else metrics)
                with scraped(url) if mode == "scraped" else contextlib.nullcontext():
                    figures[mode].append(await deploy(config, store, release))
                release = RELEASES[1] if release == RELEASES[0] else RELEASES[0]
        install(metrics)
        scrapes = []
        for _ in range(50):
            started = time.perf_counter()
            with DIRECT.open(url, timeout=10) as answer:
                size = len(answer.read())
            scrapes.append((time.perf_counter() - started) * 1000)
    print(
        f"python {platform.python_version()}, medians of {runs} deploys of {PROJECT} in "
        f"{CLUSTER} per mode (scraped: every second)"
    )
    cpu = {mode: statistics.median(p[1] for p in pairs) for mode, pairs in figures.items()}
    wall = {mode: statistics.median(p[0] for p in pairs) for mode, pairs in figures.items()}
    for mode in modes:
        extra = ""
        if mode != "without":
            extra = (
                f"  ({(cpu[mode] - cpu['without']) * 1000:+.0f} ms CPU, "
                f"{wall[mode] - wall['without']:+.2f} s wall)"
            )
        print(
            f"  metrics {mode:9}: deploy {wall[mode]:5.2f} s wall, "
            f"{cpu[mode] * 1000:4.0f} ms CPU{extra}"
        )
    print(
        f"  scrape of /metrics ({size} bytes): {statistics.median(scrapes):.1f} ms median, "
        f"{max(scrapes):.1f} ms max over {len(scrapes)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="deploys per mode (3)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-metrics-") as folder:
        workdir = Path(folder)
        with world_process(quick_seed(workdir, 1), workdir) as config:
            asyncio.run(bench(config, workdir, args.runs))


if __name__ == "__main__":
    main()
