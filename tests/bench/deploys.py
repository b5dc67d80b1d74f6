"""The deploy benchmark (`make bench-deploys`): the engine's own time, concurrency, SSH latency.

Against the demo world (config/demo.toml) in its own process (`deploy-console world`, with its
SSH jump host), one engine in this process (as the console runs it) measures:

1. the engine's own time per deploy: DeployFinished.own_seconds, the deploy's wall time
   minus the time spent waiting on AWS, SSH and timers (Deployment.io()); median over
   several deploys of one pair back and forth between two releases, with this process's
   CPU time and the part spent writing to the SQLite store for comparison;
2. nine deploys of nine different project+cluster pairs at once against each of them alone
   (measured first, in the same run): the wall time of the nine together over the slowest
   alone, and each pair's own ratio; with the cadence of the engine's load balancer reads
   (health gate, draining) alone and at once, against its poll interval;
3. SSH connect + run `true` per host, through the world's jump host (shared, as the engine
   shares it), one host after another, then all at once.

Figures and ratios come from runs in the same invocation; nothing here is a pass/fail test.

    .venv/bin/python -m tests.bench.deploys [--runs N] [--quick] [--verbose]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import itertools
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import boto3

from console.aws.gateway import AwsGateway
from console.config import Config
from console.deploy.engine import DeployEngine
from console.deploy.services import DeployServices, deploy_services
from console.events import DeployFinished, StepFinished, StepStarted
from console.model import DeployRequest, DeployState, Step
from console.ssh.client import JumpHosts, open_host
from console.store import Store
from tests.deploy_world import world_process

ROOT = Path(__file__).resolve().parents[2]
DEMO_CONFIG = ROOT / "config" / "demo.toml"

# The pair deployed back and forth for the engine's own time.
REPEATED = ("storefront", "staging", ("2.14.1", "2.15.0"))
# Nine pairs, none protected, each with instances to replace (search-api has none outside
# production); the release each is deployed to alone, then back to the one it runs (all at
# once): both deploys of a pair replace as many instances, in the same load balancers.
PAIRS = (
    ("storefront", "qaprod1", "2.14.1", "2.15.0"),
    ("checkout-api", "staging", "5.2.0", "5.2.3"),
    ("checkout-api", "qaprod1", "5.2.0", "5.2.3"),
    ("admin-portal", "staging", "3.8.0", "3.9.0"),
    ("media-service", "staging", "1.5.0", "1.6.0"),
    ("partner-gateway", "staging", "1.0.0", "1.0.1"),
    ("marketing-site", "staging", "24.11.0", "24.11.2"),
    ("notifications-worker", "qaprod1", "7.1.0", "7.1.1"),
    ("billing-worker", "qaprod1", "2024.10", "2024.11"),
)
# Steps during which the engine polls the load balancers on its cadence.
POLLING_STEPS = (Step.HEALTH_GATE, Step.DEREGISTER)

T = TypeVar("T")
VERBOSE = False  # --verbose: each pair's step times, alone and at once


# -- instruments -----------------------------------------------------------------------------


class Reads:
    """When the engine read each load balancer's health (perf_counter), by balancer."""

    def __init__(self) -> None:
        self.at: dict[str, list[float]] = defaultdict(list)

    def install(self) -> None:
        original_target = AwsGateway.target_health
        original_classic = AwsGateway.classic_health

        @functools.wraps(original_target)
        async def target_health(gateway: AwsGateway, arn: str) -> list[dict[str, Any]]:
            self.at[arn].append(time.perf_counter())
            return await original_target(gateway, arn)

        @functools.wraps(original_classic)
        async def classic_health(gateway: AwsGateway, name: str) -> list[dict[str, Any]]:
            self.at[f"{gateway.region}/{name}"].append(time.perf_counter())
            return await original_classic(gateway, name)

        AwsGateway.target_health = target_health  # type: ignore[method-assign]
        AwsGateway.classic_health = classic_health  # type: ignore[method-assign]

    def intervals(self, windows: list[tuple[float, float]]) -> list[float]:
        """Gaps between consecutive reads of one balancer, both inside one window."""
        gaps: list[float] = []
        for times in self.at.values():
            for earlier, later in itertools.pairwise(times):
                if any(start <= earlier and later <= end for start, end in windows):
                    gaps.append(later - earlier)
        return gaps


class StoreClock:
    """Time spent in the store's writes that a deploy awaits (not the background heartbeat)."""

    METHODS = (
        "acquire_lock", "release_lock", "create_deploy", "set_deploy_state", "audit",
        "step_started", "step_finished",
    )  # fmt: skip

    def __init__(self) -> None:
        self.seconds = 0.0

    def install(self) -> None:
        for name in self.METHODS:
            original = getattr(Store, name)

            def timed(
                original: Callable[..., Awaitable[Any]],
            ) -> Callable[..., Awaitable[Any]]:
                @functools.wraps(original)
                async def wrapper(*args: Any, **kwargs: Any) -> Any:
                    started = time.perf_counter()
                    try:
                        return await original(*args, **kwargs)
                    finally:
                        self.seconds += time.perf_counter() - started

                return wrapper

            setattr(Store, name, timed(original))


def world_pid() -> int:
    """The world's process: this process's only child (tests.deploy_world starts it)."""
    children = [
        int(pid)
        for task in Path("/proc/self/task").iterdir()
        for pid in (task / "children").read_text().split()
    ]
    if len(children) != 1:
        raise RuntimeError(f"expected one child process (the world), found {children}")
    return children[0]


def process_cpu(pid: int) -> float:
    """CPU seconds a running process has used (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Cpu:
    """CPU seconds of this process (the console) and of the world over a stretch of time."""

    def __init__(self, world: int) -> None:
        self.world = world
        self.console_seconds = 0.0
        self.world_seconds = 0.0

    def __enter__(self) -> Cpu:
        self._console = time.process_time()
        self._world = process_cpu(self.world)
        return self

    def __exit__(self, *_: object) -> None:
        self.console_seconds = time.process_time() - self._console
        self.world_seconds = process_cpu(self.world) - self._world


# -- one deploy --------------------------------------------------------------------------------


@dataclass
class Run:
    project: str
    cluster: str
    release: str
    state: str = ""
    reason: str = ""
    wall: float = 0.0
    seconds: float = 0.0
    own: float = 0.0
    cpu: float = 0.0
    store: float = 0.0
    windows: list[tuple[float, float]] = field(default_factory=list)
    steps: dict[str, float] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.project}/{self.cluster}"


async def deploy(
    engine: DeployEngine, project: str, cluster: str, release: str, store: StoreClock | None = None
) -> Run:
    run = Run(project, cluster, release)
    began: dict[Step, float] = {}
    store_before = store.seconds if store else 0.0
    cpu_before = time.process_time()
    started = time.perf_counter()
    async for event in engine.run(DeployRequest(project, cluster, release, "bench")):
        now = time.perf_counter()
        if isinstance(event, StepStarted):
            began[event.step] = now
        elif isinstance(event, StepFinished):
            run.steps[event.step.value] = event.seconds
            if event.step in POLLING_STEPS:
                run.windows.append((began.get(event.step, started), now))
        elif isinstance(event, DeployFinished):
            run.state = event.state.value
            run.reason = event.reason
            run.seconds = event.seconds
            run.own = event.own_seconds
    run.wall = time.perf_counter() - started
    run.cpu = time.process_time() - cpu_before
    run.store = (store.seconds - store_before) if store else 0.0
    if run.state != DeployState.SUCCEEDED.value:
        raise RuntimeError(f"deploy {run.label} {release}: {run.state}: {run.reason}")
    return run


# -- the three measures --------------------------------------------------------------------------


@dataclass
class Figures:
    own: list[Run] = field(default_factory=list)
    alone: list[Run] = field(default_factory=list)
    together: list[Run] = field(default_factory=list)
    together_wall: float = 0.0
    alone_cpu: Cpu | None = None
    together_cpu: Cpu | None = None
    cadence_alone: list[float] = field(default_factory=list)
    cadence_together: list[float] = field(default_factory=list)
    poll_seconds: float = 0.0
    first_jump_ms: float = 0.0
    ssh_ms: list[float] = field(default_factory=list)
    ssh_parallel_ms: float = 0.0
    hosts: int = 0
    world_ready: float = 0.0


async def measure_own(services: DeployServices, runs: int, clock: StoreClock) -> list[Run]:
    project, cluster, releases = REPEATED
    results: list[Run] = []
    for index in range(runs):
        run = await deploy(services.engine, project, cluster, releases[index % 2], clock)
        results.append(run)
        print(
            f"  {run.label} -> {run.release}: {run.wall:.2f} s wall, own {run.own * 1000:.0f} ms "
            f"(store {run.store * 1000:.0f} ms), CPU {run.cpu * 1000:.0f} ms",
            flush=True,
        )
    return results


async def measure_concurrency(
    services: DeployServices, figures: Figures, pairs: tuple[tuple[str, str, str, str], ...]
) -> None:
    alone: list[Run] = []
    with Cpu(world_pid()) as figures.alone_cpu:
        for project, cluster, release, _back in pairs:
            run = await deploy(services.engine, project, cluster, release)
            alone.append(run)
            print(f"  alone    {run.label:<30} {run.wall:6.2f} s", flush=True)
    started = time.perf_counter()
    with Cpu(world_pid()) as figures.together_cpu:
        together = list(
            await asyncio.gather(
                *(deploy(services.engine, p, c, back) for p, c, _release, back in pairs)
            )
        )
    wall = time.perf_counter() - started
    for run, single in zip(together, alone, strict=True):
        print(
            f"  together {run.label:<30} {run.wall:6.2f} s ({run.wall / single.wall:.2f}x alone)"
            + (f" steps {run.steps} alone {single.steps}" if VERBOSE else ""),
            flush=True,
        )
    figures.alone, figures.together, figures.together_wall = alone, together, wall


async def measure_ssh(config: Config, hosts: list[tuple[str, str]]) -> tuple[float, list[float]]:
    """(first connection incl. the jump host, ms; then connect + run per host, ms)."""
    settings = {name: config.cluster(name).ssh for name in {c for c, _ in hosts}}

    async def once(jumps: JumpHosts, cluster: str, address: str) -> float:
        ssh = settings[cluster]
        assert ssh is not None
        started = time.perf_counter()
        async with open_host(ssh, address, jumps=jumps) as host:
            status = await host.run("true", timeout=30)
        if status != 0:
            raise RuntimeError(f"`true` exited {status} on {address}")
        return (time.perf_counter() - started) * 1000

    async with JumpHosts() as jumps:
        first = await once(jumps, *hosts[0])
        per_host = [await once(jumps, cluster, address) for cluster, address in hosts]
    return first, per_host


async def measure_ssh_parallel(config: Config, hosts: list[tuple[str, str]]) -> float:
    async with JumpHosts() as jumps:
        ssh = config.cluster(hosts[0][0]).ssh
        assert ssh is not None
        async with open_host(ssh, hosts[0][1], jumps=jumps) as host:  # the jump host, once
            await host.run("true", timeout=30)

        async def one(cluster: str, address: str) -> None:
            settings = config.cluster(cluster).ssh
            assert settings is not None
            async with open_host(settings, address, jumps=jumps) as host:
                await host.run("true", timeout=30)

        started = time.perf_counter()
        await asyncio.gather(*(one(c, a) for c, a in hosts))
        return (time.perf_counter() - started) * 1000


def bench_hosts(config: Config) -> list[tuple[str, str]]:
    """(cluster, address) of every running instance a bench deploy launched."""
    found: list[tuple[str, str]] = []
    seen: set[str] = set()
    for cluster in config.clusters:
        if cluster.region in seen:
            continue
        seen.add(cluster.region)
        ec2 = boto3.client(
            "ec2",
            region_name=cluster.region,
            endpoint_url=cluster.endpoint_url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        pages = ec2.describe_instances(
            Filters=[
                {"Name": "tag-key", "Values": ["DeployId"]},
                {"Name": "instance-state-name", "Values": ["running"]},
            ]
        )
        for reservation in pages["Reservations"]:
            for instance in reservation["Instances"]:
                tags = {t["Key"]: t["Value"] for t in instance.get("Tags", [])}
                found.append((tags["Environment"], instance["PrivateIpAddress"]))
    return sorted(found)


async def measure(config: Config, store: Path, args: argparse.Namespace) -> Figures:
    figures = Figures(poll_seconds=config.engine.poll_seconds)
    reads = Reads()
    reads.install()
    clock = StoreClock()
    clock.install()
    pairs = PAIRS[:3] if args.quick else PAIRS
    async with deploy_services(config, store) as services:
        print(f"1. engine's own time: {args.runs} deploys of {'/'.join(REPEATED[:2])}", flush=True)
        figures.own = await measure_own(services, args.runs, clock)
        print(f"2. {len(pairs)} pairs alone, then all at once", flush=True)
        await measure_concurrency(services, figures, pairs)
    figures.cadence_alone = reads.intervals([w for run in figures.alone for w in run.windows])
    figures.cadence_together = reads.intervals([w for run in figures.together for w in run.windows])
    hosts = bench_hosts(config)
    figures.hosts = len(hosts)
    print(f"3. SSH connect + run `true` on {len(hosts)} hosts", flush=True)
    figures.first_jump_ms, figures.ssh_ms = await measure_ssh(config, hosts)
    figures.ssh_parallel_ms = await measure_ssh_parallel(config, hosts)
    return figures


# -- report --------------------------------------------------------------------------------------


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def machine() -> str:
    cores = len(os.sched_getaffinity(0))
    return (
        f"{platform.system()} {platform.machine()}, {cores} cores, "
        f"Python {platform.python_version()}"
    )


def report(figures: Figures, command: str, total: float) -> str:
    own = figures.own
    later = own[1:] or own
    slowest_alone = max(figures.alone, key=lambda r: r.wall)
    ratios = [t.wall / a.wall for t, a in zip(figures.together, figures.alone, strict=True)]
    poll = figures.poll_seconds
    alone_cpu, together_cpu = figures.alone_cpu, figures.together_cpu
    assert alone_cpu is not None and together_cpu is not None

    def cadence(gaps: list[float]) -> str:
        if not gaps:
            return "no polls"
        return (
            f"p50 {statistics.median(gaps):.2f} s, p95 {percentile(gaps, 0.95):.2f} s, "
            f"max {max(gaps):.2f} s over {len(gaps)} intervals"
        )

    lines = [
        f"Measured with {command} ({total:.0f} s) on {machine()}; the demo world "
        f"(config/demo.toml: registration 3 s, drain 5 s, engine poll {poll:g} s) in its own "
        f"process, one engine in the bench's process.",
        "",
        "| measure | figure |",
        "|---|---|",
        f"| engine's own time per deploy (wall minus waiting on AWS, SSH, timers), median of "
        f"{len(own)} deploys of {'/'.join(REPEATED[:2])} | "
        f"**{statistics.median(r.own for r in own) * 1000:.0f} ms** "
        f"(first deploy {own[0].own * 1000:.0f} ms, creating boto3 clients; the others "
        f"{min(r.own for r in later) * 1000:.0f}-{max(r.own for r in later) * 1000:.0f} ms) of "
        f"{statistics.median(r.wall for r in own):.1f} s wall; of it SQLite store writes "
        f"{statistics.median(r.store for r in own) * 1000:.0f} ms; process CPU "
        f"{statistics.median(r.cpu for r in own) * 1000:.0f} ms (boto3 and SSH included) |",
        f"| {len(figures.together)} deploys of {len(figures.together)} pairs at once vs each "
        f"alone | **{figures.together_wall:.1f} s** together vs {slowest_alone.wall:.1f} s for the "
        f"slowest alone ({slowest_alone.label}): **{figures.together_wall / slowest_alone.wall:.2f}"
        f"x**; per pair {min(ratios):.2f}-{max(ratios):.2f}x its own time alone |",
        f"| CPU: the same {len(figures.alone)} deploys one after another "
        f"({sum(r.wall for r in figures.alone):.0f} s) vs at once | console "
        f"{alone_cpu.console_seconds:.1f} s vs {together_cpu.console_seconds:.1f} s, world "
        f"(moto + its SSH side) {alone_cpu.world_seconds:.1f} s vs "
        f"{together_cpu.world_seconds:.1f} s; the engine's own time per deploy, median: "
        f"{statistics.median(r.own for r in figures.alone) * 1000:.0f} ms alone, "
        f"{statistics.median(r.own for r in figures.together) * 1000:.0f} ms at once |",
        f"| load balancer reads during health gate and draining (poll {poll:g} s) | alone "
        f"{cadence(figures.cadence_alone)}; {len(figures.together)} at once "
        f"{cadence(figures.cadence_together)} |",
        f"| SSH connect + run `true`, per host through the shared jump host "
        f"({len(figures.ssh_ms)} hosts, one after another) | **p50 "
        f"{statistics.median(figures.ssh_ms):.0f} ms**, p95 "
        f"{percentile(figures.ssh_ms, 0.95):.0f} ms, max {max(figures.ssh_ms):.0f} ms; the first "
        f"(with the jump host's own handshake) {figures.first_jump_ms:.0f} ms; all "
        f"{figures.hosts} at once {figures.ssh_parallel_ms:.0f} ms |",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="deploys for the engine's own time")
    parser.add_argument("--quick", action="store_true", help="3 deploys, 3 pairs at once")
    parser.add_argument("--verbose", action="store_true", help="each pair's step times")
    args = parser.parse_args()
    global VERBOSE
    VERBOSE = args.verbose
    if args.quick:
        args.runs = min(args.runs, 3)
    command = "`" + shlex.join([".venv/bin/python", "-m", "tests.bench.deploys", *sys.argv[1:]])
    command += "`"
    if len(sys.argv) == 1:
        command = f"`make bench-deploys` ({command})"
    load = Path("/proc/loadavg").read_text().split()[:3]
    print(f"{machine()}; load average {' '.join(load)}", flush=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="deploy-console-bench-deploys-") as temp:
        workdir = Path(temp)
        world_started = time.perf_counter()
        with world_process(DEMO_CONFIG, workdir) as config:
            print(f"world ready in {time.perf_counter() - world_started:.1f} s", flush=True)
            figures = asyncio.run(measure(config, workdir / "bench.db", args))
    total = time.perf_counter() - started
    print("\n--- markdown for the README (Performance, Deploys) ---\n")
    print(report(figures, command, total))


if __name__ == "__main__":
    main()
