"""The benchmark (`make bench`): `deploy-console status --json --fresh` against the aws-cli
script, and plain `status --json` answered from a running runner's snapshot.

For each fleet (seed: config/demo.toml, 9 projects x 4 clusters; large: 200 projects x 4
clusters, 800 load balancers, 2,000 instances) it runs one world in its own process
(`deploy-console world`), then:

- times `deploy-console status --json --fresh` (cold: a new process polling AWS itself) as a
  subprocess (wall time of the real command, Python start-up included; one untimed run
  first, as a user's install has byte-code and the model cache: its time is shown) and
  counts the AWS requests it made on the server side (moto's request recorder, the same
  ruler for both contenders), against the minimum computed from the config;
  `Fleet.call_count()` in-process cross-checks the count;
- times the script a person would write with the AWS CLI (tests/bench/aws_cli_script.sh, in
  full at seed scale, on a fixed sample of project+cluster pairs at large scale, extrapolated
  linearly and said so) and counts its requests the same way;
- checks both produced the same facts: per project+cluster the instance ids, per instance
  its state and its state in each load balancer;
- starts `deploy-console runner` with its door (a Unix socket) on the world and times plain
  `status --json` answered from its snapshot (warm), beside `deploy-console --help` (the floor:
  Python start-up and the command line's imports);
- at large scale, times the dashboard headless (tests/bench/ui_timing.py).

Figures and ratios come from runs in the same invocation; nothing here is a pass/fail test.

    .venv/bin/python -m tests.bench.run [--scale seed|large|all] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import platform
import random
import re
import resource
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from console.config import Config, load_config
from tests.bench import scaled_world, ui_timing

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DEPLOY_CONSOLE = BIN / "deploy-console"
BENCH_VENV = ROOT / ".venv-bench"
AWS = BENCH_VENV / "bin" / "aws"
# awscli pins its own botocore, which conflicts with the console's: it lives in .venv-bench.
AWSCLI_VERSION = "1.46.2"
SCRIPT = Path(__file__).with_name("aws_cli_script.sh")
DEMO_CONFIG = ROOT / "config" / "demo.toml"

LARGE_PROJECTS = 200
SAMPLE_PAIRS = 40
SAMPLE_SEED = 20261102
WORLD_READY_TIMEOUT = 900.0
COMMAND_TIMEOUT = 900.0
SEED_CLI_RE = re.compile(
    r"(\d+) instances, (\d+) load balancers seeded in ([\d.]+) s", re.MULTILINE
)


# -- the environment every child gets: loopback only, no person's AWS settings --------------


def bench_env(workdir: Path) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("AWS_") and key.lower() not in ("http_proxy", "https_proxy")
    }
    env.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_EC2_METADATA_DISABLED="true",
        AWS_PAGER="",
        # Never a person's ~/.aws: both contenders see the same empty settings.
        AWS_CONFIG_FILE=str(workdir / "aws-config-none"),
        AWS_SHARED_CREDENTIALS_FILE=str(workdir / "aws-credentials-none"),
        NO_PROXY="127.0.0.1,localhost",
    )
    env.pop("DEPLOY_CONSOLE_CONFIG", None)
    # As on a user's install, byte-code is cached (pip compiles it; an editable install writes
    # it on first use): without, every run recompiles the console's own modules (~0.1 s).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["DEPLOY_CONSOLE_CACHE_DIR"] = str(workdir / "cache")
    return env


def ensure_awscli() -> str:
    """The aws CLI in .venv-bench, installed the first time; returns its version line."""
    if not AWS.exists():
        python = os.environ.get("PYTHON", "python3")
        print(f"installing awscli=={AWSCLI_VERSION} into {BENCH_VENV.name} (once)...", flush=True)
        made = subprocess.run([python, "-m", "venv", str(BENCH_VENV)], check=False)
        if made.returncode != 0:
            # As the Makefile does for .venv: no ensurepip here, so virtualenv from PyPI.
            subprocess.run([python, "-m", "pip", "install", "--quiet", "--user", "virtualenv"])
            subprocess.run([python, "-m", "virtualenv", "--quiet", str(BENCH_VENV)], check=True)
        subprocess.run(
            [
                str(BENCH_VENV / "bin" / "python"), "-m", "pip", "install", "--quiet",
                f"awscli=={AWSCLI_VERSION}",
            ],
            check=True,
        )  # fmt: skip
    result = subprocess.run([str(AWS), "--version"], capture_output=True, text=True, check=True)
    return (result.stdout or result.stderr).strip()


# -- the world process and the server-side request count -----------------------------------


class WorldFailed(RuntimeError):
    pass


@dataclass
class Requests:
    """AWS requests the world received, by operation."""

    by_operation: Counter[str] = field(default_factory=Counter)
    unreadable: int = 0

    @property
    def total(self) -> int:
        return sum(self.by_operation.values()) + self.unreadable


WORLD_NICENESS = 10


class WorldProcess:
    """`deploy-console world` in its own process group."""

    def __init__(self, source: Path, workdir: Path) -> None:
        self.source = source
        self.workdir = workdir
        self.config_path = workdir / "world.toml"
        self.recording = workdir / "requests.jsonl"
        self.process: subprocess.Popen[bytes] | None = None
        self.endpoint = ""
        self.ready_seconds = 0.0
        self.seed_line = ""
        self.seed_requests = 0

    def command(self) -> list[str]:
        return [
            str(DEPLOY_CONSOLE), "world", "--config", str(self.source), "--port", "0",
            "--write-config", str(self.config_path),
        ]  # fmt: skip

    def start(self) -> None:
        env = bench_env(self.workdir)
        # moto's recorder logs every request it serves; on from the start to count the seed.
        env.update(MOTO_RECORDER_FILEPATH=str(self.recording), MOTO_ENABLE_RECORDING="true")
        stderr_path = self.workdir / "world.stderr"
        started = time.perf_counter()
        with stderr_path.open("wb") as stderr:
            self.process = start_child(
                self.command(),
                env,
                stderr=stderr,
                # The world plays AWS, which runs on other machines: it takes the CPU only
                # when the console under test does not need it (all its threads inherit this).
                preexec_fn=lambda: os.nice(WORLD_NICENESS),
            )
        line = self._read_ready_line(started + WORLD_READY_TIMEOUT)
        self.ready_seconds = time.perf_counter() - started
        if not line.startswith("world ready: "):
            self.stop()
            tail = stderr_path.read_text(errors="replace").strip().splitlines()[-5:]
            raise WorldFailed(f"{' '.join(self.command()[:2])} failed: " + " | ".join(tail))
        self.endpoint = line.removeprefix("world ready: ").strip()
        deadline = time.perf_counter() + 5
        while time.perf_counter() < deadline and not self.seed_line:
            match = SEED_CLI_RE.search(stderr_path.read_text(errors="replace"))
            self.seed_line = match.group(0) if match else ""
            time.sleep(0.05)
        self.seed_requests = self.requests().total
        self.reset_requests()

    def _read_ready_line(self, deadline: float) -> str:
        assert self.process is not None and self.process.stdout is not None
        import selectors

        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            while time.perf_counter() < deadline:
                if selector.select(timeout=1.0):
                    return self.process.stdout.readline().decode(errors="replace")
                if self.process.poll() is not None:
                    return ""
        return ""

    def _post(self, path: str) -> None:
        request = urllib.request.Request(self.endpoint + path, method="POST", data=b"")
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()

    def cpu(self) -> float:
        assert self.process is not None
        return process_cpu(self.process.pid)

    def reset_requests(self) -> None:
        self._post("/moto-api/recorder/reset-recording")

    def requests(self) -> Requests:
        """What the recorder logged since the last reset, by AWS operation."""
        counted = Requests()
        if not self.recording.exists():
            return counted
        for line in self.recording.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                counted.unreadable += 1
                continue
            if "/moto-api/" in entry.get("url", ""):
                continue
            body = entry.get("body") or ""
            if entry.get("body_encoded"):
                body = base64.b64decode(body).decode(errors="replace")
            action = parse_qs(body).get("Action", [None])[0]
            counted.by_operation[action or f"{entry.get('method')} (REST)"] += 1
        return counted

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        if process.stdout is not None:
            process.stdout.close()


def children_cpu() -> float:
    """CPU seconds of every child process waited for so far (their children included)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def process_cpu(pid: int) -> float:
    """CPU seconds a running process has used (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_child(command: list[str], env: dict[str, str], **options: Any) -> subprocess.Popen[Any]:
    """Start a command from the repository root in a process group of its own (so that a kill
    reaches its children too), stdin closed, stdout piped; `options` go to Popen."""
    return subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        start_new_session=True,
        **options,
    )


def run_child(command: list[str], env: dict[str, str]) -> tuple[float, str]:
    """Run a command in its own process group; (wall seconds, stdout). Killed on Ctrl-C."""
    started = time.perf_counter()
    process = start_child(command, env, stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = process.communicate(timeout=COMMAND_TIMEOUT)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        raise
    wall = time.perf_counter() - started
    if process.returncode != 0:
        raise RuntimeError(
            f"{shlex.join(command[:3])}... exited {process.returncode}: {stderr.strip()[-500:]}"
        )
    return wall, stdout


# -- what the config says --------------------------------------------------------------------


@dataclass(frozen=True)
class Pair:
    project: str
    cluster: str
    region: str
    classic: tuple[str, ...]
    groups: tuple[str, ...]

    @property
    def cli_calls(self) -> int:
        """describe-instances, then per classic ELB one call, per target group two."""
        return 1 + len(self.classic) + 2 * len(self.groups)


def pairs_of(config: Config) -> list[Pair]:
    return [
        Pair(
            project.name,
            name,
            config.cluster(name).region,
            settings.classic_elbs,
            settings.target_groups,
        )
        for project in config.projects
        for name, settings in project.clusters.items()
    ]


@dataclass
class Minimum:
    total: int
    groups: int
    by_operation: Counter[str]


def minimum_calls(config: Config) -> Minimum:
    """Per account+region: one DescribeInstances, one listing per kind of load balancer in
    use there, one health call per load balancer. (Pages beyond the first are counted apart.)"""
    groups: dict[tuple[Any, ...], set[str]] = {}
    for cluster in config.clusters:
        groups.setdefault(cluster.account_key, set()).add(cluster.name)
    wanted: Counter[str] = Counter()
    for names in groups.values():
        classic = {
            lb
            for project in config.projects
            for name, settings in project.clusters.items()
            if name in names
            for lb in settings.classic_elbs
        }
        target_groups = {
            lb
            for project in config.projects
            for name, settings in project.clusters.items()
            if name in names
            for lb in settings.target_groups
        }
        wanted["DescribeInstances"] += 1
        # (dns) With a record to judge, every classic ELB and ALB is listed.
        dns = any(
            settings.dns for project in config.projects for settings in project.clusters.values()
        )
        if classic or dns:
            wanted["DescribeLoadBalancers"] += 1
        if dns:
            wanted["DescribeLoadBalancers"] += 1
        if classic:
            wanted["DescribeInstanceHealth"] += len(classic)
        if target_groups:
            wanted["DescribeTargetGroups"] += 1
            wanted["DescribeTargetHealth"] += len(target_groups)
    # (dns) Route 53 (REST): a new process lists each account's zones, then reads one page of
    # records per zone (the bench worlds have one).
    accounts = {cluster.account_key[:-1] for cluster in config.clusters}
    if any(s.dns for project in config.projects for s in project.clusters.values()):
        wanted["GET (REST)"] += 2 * len(accounts)
    return Minimum(sum(wanted.values()), len(groups), wanted)


# -- facts: what each contender found out -----------------------------------------------------

# (project, cluster) -> instance id -> (instance state, {(load balancer, state)})
Facts = dict[tuple[str, str], dict[str, tuple[str, frozenset[tuple[str, str]]]]]


def console_facts(status: dict[str, Any], pairs: list[Pair]) -> Facts:
    wanted = {(pair.project, pair.cluster) for pair in pairs}
    facts: Facts = {}
    for project in status["projects"]:
        for cluster, env in project["clusters"].items():
            if (project["name"], cluster) not in wanted:
                continue
            facts[(project["name"], cluster)] = {
                instance["id"]: (
                    instance["state"],
                    frozenset((lb["name"], lb["state"]) for lb in instance["load_balancers"]),
                )
                for instance in env["instances"]
            }
    return facts


def cli_facts(out: Path, pairs: list[Pair]) -> Facts:
    facts: Facts = {}
    for pair in pairs:
        base = f"{pair.project}@{pair.cluster}"
        described = json.loads((out / f"{base}.instances.json").read_text())
        states = {
            instance["InstanceId"]: instance["State"]["Name"]
            for reservation in described["Reservations"]
            for instance in reservation["Instances"]
            if instance["State"]["Name"] != "terminated"
        }
        per_instance: dict[str, set[tuple[str, str]]] = {iid: set() for iid in states}
        for name in pair.classic:
            health = json.loads((out / f"{base}.classic.{name}.json").read_text())
            for item in health["InstanceStates"]:
                if item["InstanceId"] in per_instance:
                    per_instance[item["InstanceId"]].add((name, item["State"]))
        for name in pair.groups:
            health = json.loads((out / f"{base}.target-group.{name}.json").read_text())
            for item in health["TargetHealthDescriptions"]:
                if item["Target"]["Id"] in per_instance:
                    per_instance[item["Target"]["Id"]].add((name, item["TargetHealth"]["State"]))
        facts[(pair.project, pair.cluster)] = {
            iid: (states[iid], frozenset(lbs)) for iid, lbs in per_instance.items()
        }
    return facts


def compare_facts(console: Facts, cli: Facts) -> list[str]:
    differences: list[str] = []
    for key in sorted(set(console) | set(cli)):
        ours, theirs = console.get(key, {}), cli.get(key, {})
        if ours != theirs:
            differences.append(f"{key[0]}@{key[1]}: console {ours} != aws-cli {theirs}")
    return differences


def fact_counts(facts: Facts) -> tuple[int, int, Counter[str]]:
    instances = sum(len(per_pair) for per_pair in facts.values())
    lb_states: Counter[str] = Counter(
        state
        for per_pair in facts.values()
        for _state, lbs in per_pair.values()
        for _name, state in lbs
    )
    return len(facts), instances, lb_states


# -- the measurements -------------------------------------------------------------------------


@dataclass
class StatusFigures:
    walls: list[float]
    requests: Requests
    per_run_totals: list[int]
    status: dict[str, Any]
    world_cpu: float  # per run, on average
    client_cpu: float
    fleet_calls: Counter[str] = field(default_factory=Counter)
    refreshes: list[float] = field(default_factory=list)
    first_run: float = 0.0  # the untimed run: byte-code and the model cache written

    @property
    def median(self) -> float:
        return statistics.median(self.walls)


def measure_status(
    world: WorldProcess, env: dict[str, str], runs: int, refreshes: int
) -> StatusFigures:
    command = [
        str(DEPLOY_CONSOLE), "status", "--json", "--fresh", "--config", str(world.config_path),
    ]  # fmt: skip
    walls: list[float] = []
    totals: list[int] = []
    requests = Requests()
    stdout = ""
    world_cpu = client_cpu = 0.0
    first_run, _ = run_child(command, env)
    for _ in range(runs):
        world.reset_requests()
        world_before, client_before = world.cpu(), children_cpu()
        wall, stdout = run_child(command, env)
        world_cpu += world.cpu() - world_before
        client_cpu += children_cpu() - client_before
        walls.append(wall)
        requests = world.requests()
        totals.append(requests.total)
    figures = StatusFigures(
        walls, requests, totals, json.loads(stdout), world_cpu / runs, client_cpu / runs
    )
    figures.first_run = first_run
    # Cross-check, in this process: the same code path, counted by the gateways themselves.
    from console.fleet.inventory import Fleet

    world.reset_requests()
    fleet = Fleet(load_config(world.config_path))
    try:
        for index in range(refreshes):
            started = time.perf_counter()
            asyncio.run(fleet.refresh())
            figures.refreshes.append(time.perf_counter() - started)
            if index == 0:
                figures.fleet_calls = Counter(fleet.call_count())
    finally:
        fleet.close()
    world.reset_requests()
    return figures


@dataclass
class WarmFigures:
    """Plain `status --json` answered by a runner's snapshot, and the command line's floor."""

    walls: list[float]
    requests: int  # AWS requests the runner made meanwhile (its own refreshes)
    note: str  # what the command said on stderr ("as of 3 s ago, from the runner")
    floor: list[float]
    client_cpu: float

    @property
    def median(self) -> float:
        return statistics.median(self.walls)


def measure_warm(world: WorldProcess, env: dict[str, str], runs: int) -> WarmFigures:
    socket_path = world.workdir / "runner.sock"
    served = world.workdir / "served.toml"
    served.write_text(world.config_path.read_text() + f'\n[runner]\nsocket = "{socket_path}"\n')
    runner_env = dict(env, DEPLOY_CONSOLE_DATA_DIR=str(world.workdir / "runner-data"))
    runner = start_child(
        [str(DEPLOY_CONSOLE), "runner", "--config", str(served),
         "--store", str(world.workdir / "runner.db")],
        runner_env, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.perf_counter() + WORLD_READY_TIMEOUT
        while not socket_path.is_socket():
            if runner.poll() is not None or time.perf_counter() > deadline:
                raise RuntimeError("deploy-console runner did not open its door")
            time.sleep(0.05)
        command = [str(DEPLOY_CONSOLE), "status", "--json", "--config", str(served)]
        first = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True)
        if "from the runner" not in first.stderr:  # the first ask waits for one refresh
            raise RuntimeError(f"status did not answer from the runner: {first.stderr[-300:]}")
        world.reset_requests()
        walls: list[float] = []
        note = ""
        client_before = children_cpu()
        for _ in range(runs):
            started = time.perf_counter()
            done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True)
            walls.append(time.perf_counter() - started)
            note = done.stderr.strip()
        client_cpu = (children_cpu() - client_before) / runs
        requests = world.requests().total
        floor = [run_child([str(DEPLOY_CONSOLE), "--help"], env)[0] for _ in range(runs)]
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(runner.pid, signal.SIGTERM)
        runner.wait(timeout=30)
        if runner.stdout is not None:
            runner.stdout.close()
    world.reset_requests()
    return WarmFigures(walls, requests, note, floor, client_cpu)


@dataclass
class CliFigures:
    wall: float
    pairs: int
    total_pairs: int
    invocations: int
    requests: Requests
    full_calls: int
    facts: Facts
    world_cpu: float
    client_cpu: float

    @property
    def extrapolated(self) -> bool:
        return self.pairs < self.total_pairs

    @property
    def full_wall(self) -> float:
        return self.wall * self.total_pairs / self.pairs


def measure_cli(
    world: WorldProcess, config: Config, env: dict[str, str], sample: int | None
) -> CliFigures:
    pairs = pairs_of(config)
    chosen = pairs
    if sample is not None and sample < len(pairs):
        picked = set(random.Random(SAMPLE_SEED).sample(range(len(pairs)), sample))
        chosen = [pair for index, pair in enumerate(pairs) if index in picked]
    pairs_file = world.workdir / "pairs.tsv"
    pairs_file.write_text(
        "".join(
            "\t".join(
                [
                    pair.project,
                    pair.cluster,
                    pair.region,
                    ",".join(pair.classic) or "-",
                    ",".join(pair.groups) or "-",
                ]
            )
            + "\n"
            for pair in chosen
        )
    )
    out = world.workdir / "aws-cli-out"
    script_env = dict(
        env,
        ENDPOINT_URL=world.endpoint,
        AWS=str(AWS),
        TAG_PROJECT=config.tags.project,
        TAG_ENVIRONMENT=config.tags.environment,
    )
    world.reset_requests()
    world_before, client_before = world.cpu(), children_cpu()
    wall, _ = run_child(["bash", str(SCRIPT), str(pairs_file), str(out)], script_env)
    world_cpu, client_cpu = world.cpu() - world_before, children_cpu() - client_before
    requests = world.requests()
    world.reset_requests()
    invocations = len((out / "invocations.log").read_text().splitlines())
    return CliFigures(
        wall=wall,
        pairs=len(chosen),
        total_pairs=len(pairs),
        invocations=invocations,
        requests=requests,
        full_calls=sum(pair.cli_calls for pair in pairs),
        facts=cli_facts(out, chosen),
        world_cpu=world_cpu,
        client_cpu=client_cpu,
    )


def measure_ui(
    world: WorldProcess, env: dict[str, str], presses: int, refreshes: int
) -> dict[str, Any]:
    command = [
        sys.executable, "-m", "tests.bench.ui_timing", "--config", str(world.config_path),
        "--presses", str(presses), "--refreshes", str(refreshes),
    ]  # fmt: skip
    _, stdout = run_child(command, env)
    figures: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    world.reset_requests()
    return figures


# -- one fleet, start to end -------------------------------------------------------------------


@dataclass
class ScaleResult:
    label: str
    source: Path
    config: Config
    world_ready: float
    seed_line: str
    seed_requests: int
    minimum: Minimum
    status: StatusFigures
    cli: CliFigures
    differences: list[str]
    warm: WarmFigures | None = None
    ui: dict[str, Any] | None = None

    @property
    def lbs_and_instances(self) -> tuple[int, int]:
        return scaled_world.expected_totals(self.config)


def run_scale(
    label: str, source: Path, workdir: Path, args: argparse.Namespace, stack: contextlib.ExitStack
) -> ScaleResult:
    config = load_config(source)
    instances, lbs = scaled_world.expected_totals(config)
    print(
        f"\n== {label}: {source.name}: {len(config.projects)} projects x {len(config.clusters)} "
        f"clusters, {lbs} load balancers, {instances} instances ==",
        flush=True,
    )
    print("  seeding the world in its own process...", flush=True)
    world = WorldProcess(source, workdir)
    world.start()
    stack.callback(world.stop)
    print(
        f"  world ready in {world.ready_seconds:.1f} s ({world.seed_line or 'no seed report'}; "
        f"{world.seed_requests} requests to seed it)",
        flush=True,
    )
    env = bench_env(workdir)
    runs = 1 if args.quick else 3
    print(f"  deploy-console status --json --fresh x{runs}...", flush=True)
    status = measure_status(world, env, runs, refreshes=1 if label == "large" else 2)
    warm_runs = 3 if args.quick else 9
    print(f"  plain status --json from a runner's snapshot x{warm_runs}...", flush=True)
    warm = measure_warm(world, env, warm_runs)
    sample = None
    if label == "large":
        sample = args.sample if not args.quick else max(4, args.sample // 4)
    total_pairs = len(pairs_of(config))
    what = f"all {total_pairs}" if sample is None else f"a sample of {sample} of the {total_pairs}"
    print(f"  aws-cli script over {what} project+cluster pairs...", flush=True)
    cli = measure_cli(world, config, env, sample)
    compared = [pair for pair in pairs_of(config) if (pair.project, pair.cluster) in cli.facts]
    differences = compare_facts(console_facts(status.status, compared), cli.facts)
    result = ScaleResult(
        label=label,
        source=source,
        config=config,
        world_ready=world.ready_seconds,
        seed_line=world.seed_line,
        seed_requests=world.seed_requests,
        minimum=minimum_calls(config),
        status=status,
        cli=cli,
        differences=differences,
        warm=warm,
    )
    if label == "large" and not args.no_ui:
        if (ROOT / "screens" / "app.py").exists():
            presses, refreshes = (30, 1) if args.quick else (100, 3)
            print(
                f"  dashboard, headless ({presses} key presses over {refreshes} refreshes)...",
                flush=True,
            )
            result.ui = measure_ui(world, env, presses, refreshes)
        else:
            print("  (screens/app.py does not exist yet: no dashboard timings)", flush=True)
    world.stop()
    print_scale(result)
    return result


# -- printing ----------------------------------------------------------------------------------


def seconds(value: float) -> str:
    if value < 10:
        return f"{value:.2f} s"
    if value < 120:
        return f"{value:.1f} s"
    return f"{value / 60:.0f} min ({value:,.0f} s)"


def pages_note(result: ScaleResult) -> str:
    """Calls beyond the minimum, by operation (pages of a paginated listing)."""
    made = result.status.requests.by_operation
    extra = {
        operation: made[operation] - wanted
        for operation, wanted in result.minimum.by_operation.items()
        if made[operation] != wanted
    }
    others = {op: n for op, n in made.items() if op not in result.minimum.by_operation}
    parts = [f"{op} {n:+d}" for op, n in extra.items()]
    parts += [f"{op} +{n} (unexpected)" for op, n in others.items()]
    return ", ".join(parts)


def print_scale(result: ScaleResult) -> None:
    status, cli = result.status, result.cli
    made = status.requests.total
    cli_calls = cli.full_calls if cli.extrapolated else cli.requests.total
    print(f"\n  {'':36}{'AWS calls':>10}{'wall time':>12}{'endpoint CPU':>14}{'client CPU':>12}")

    def compact(value: float) -> str:
        return seconds(value) if value < 120 else f"{value / 60:.1f} min"

    def row(label: str, calls: int, wall: float, world_cpu: float, client_cpu: float) -> None:
        print(
            f"  {label:36}{calls:>10,}{compact(wall):>12}{compact(world_cpu):>14}"
            f"{compact(client_cpu):>12}"
        )

    row("status --json --fresh (cold)", made, status.median, status.world_cpu, status.client_cpu)
    if cli.extrapolated:
        row("aws-cli script, sample", cli.requests.total, cli.wall, cli.world_cpu, cli.client_cpu)
        scale = cli.total_pairs / cli.pairs
        row(
            "aws-cli script, all (extrapolated)",
            cli.full_calls,
            cli.full_wall,
            cli.world_cpu * scale,
            cli.client_cpu * scale,
        )
        print(
            f"  (the sample: {cli.pairs} of {cli.total_pairs} project+cluster pairs, fixed "
            f"seed; the whole fleet extrapolated linearly in pairs, calls computed exactly)"
        )
    else:
        row("aws-cli script", cli.requests.total, cli.wall, cli.world_cpu, cli.client_cpu)
    print(
        f"  {'ratio (aws-cli / deploy-console)':36}{cli_calls / made:>9.1f}x"
        f"{cli.full_wall / status.median:>11.1f}x"
        f"{'   (extrapolated)' if cli.extrapolated else ''}"
    )
    walls = ", ".join(seconds(w) for w in status.walls)
    print(
        f"  status --fresh wall times: {walls} (median shown; Python start-up included); the "
        f"untimed first run (byte-code and model cache written): {seconds(status.first_run)}"
    )
    if result.warm is not None:
        warm = result.warm
        print(
            f"  plain status --json from the runner's snapshot (warm): median "
            f"{warm.median * 1000:.0f} ms (min {min(warm.walls) * 1000:.0f} ms, max "
            f"{max(warm.walls) * 1000:.0f} ms; {warm.client_cpu * 1000:.0f} ms CPU) over "
            f"{len(warm.walls)} runs, {cli.full_wall / warm.median:,.0f}x faster than the aws-cli "
            f"script; `deploy-console --help` (start-up floor): median "
            f"{statistics.median(warm.floor) * 1000:.0f} ms; it said {warm.note!r}"
        )
    note = pages_note(result)
    print(
        f"\n  calls: {made} (minimum {result.minimum.total}"
        f"{'; beyond it, pages: ' + note if note else ''})"
    )
    print(
        "  by operation: "
        + ", ".join(f"{op} {n}" for op, n in sorted(status.requests.by_operation.items()))
        + f"; {result.minimum.groups} account+region groups"
    )
    if len(set(status.per_run_totals)) > 1:
        print(f"  calls differed between runs: {status.per_run_totals}")
    same = "=" if status.fleet_calls.total() == made else "!="
    refreshes = ", then ".join(seconds(r) for r in status.refreshes)
    print(
        f"  in-process Fleet.refresh() (no start-up; new clients first): {refreshes}; "
        f"Fleet.call_count() {status.fleet_calls.total()} {same} {made} counted by the endpoint"
    )
    expected_cli = sum(
        pair.cli_calls
        for pair in pairs_of(result.config)
        if (pair.project, pair.cluster) in cli.facts
    )
    print(
        f"  aws-cli: {cli.invocations} invocations, {cli.requests.total} requests at the "
        f"endpoint (expected {expected_cli}); {cli.wall / max(1, cli.invocations) * 1000:.0f} "
        f"ms per invocation"
    )
    pairs, instances, lb_states = fact_counts(cli.facts)
    states = ", ".join(f"{state} {n}" for state, n in sorted(lb_states.items()))
    if result.differences:
        print(f"  facts DIFFER in {len(result.differences)} of {pairs} pairs:")
        for line in result.differences[:10]:
            print(f"    {line}")
    else:
        print(
            f"  facts: the same for {pairs} project+cluster pairs: {instances} instances, "
            f"{sum(lb_states.values())} load balancer states ({states})"
        )
    if result.ui is not None:
        print()
        for line in ui_timing.report(ui_timing.from_summary(result.ui)).splitlines():
            print(f"  {line}")


def machine() -> str:
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return (
        f"{platform.system()} {platform.machine()}, nproc {os.cpu_count()}"
        f"{', ' + cpu if cpu else ''}, Python {platform.python_version()}"
    )


def markdown(results: list[ScaleResult], command: str, awscli: str, total: float) -> str:
    from importlib.metadata import version

    lines = [
        "### Performance",
        "",
        f"Measured with {command} on {datetime.now(UTC):%Y-%m-%d} ({machine()}; the AWS "
        f"endpoint: moto {version('moto')}, the embedded world, in its own process on "
        f"127.0.0.1; {awscli.split()[0]}). The whole run took {total / 60:.0f} min.",
        "",
        "| fleet | `deploy-console status --json --fresh` | aws-cli script | aws-cli / console "
        "| plain `status --json`, runner up |",
        "|---|---|---|---|---|",
    ]
    for result in results:
        instances, lbs = result.lbs_and_instances
        status, cli = result.status, result.cli
        made = status.requests.total
        note = pages_note(result)
        minimum = f"minimum {result.minimum.total}" + (f"; more pages: {note}" if note else "")
        fleet = (
            f"{result.label}: {len(result.config.projects)} projects x "
            f"{len(result.config.clusters)} clusters ({lbs:,} load balancers, "
            f"{instances:,} instances)"
        )
        if cli.extrapolated:
            cli_cell = (
                f"{cli.full_calls:,} calls, ~{seconds(cli.full_wall)} (extrapolated from "
                f"{cli.pairs} of {cli.total_pairs} project+cluster pairs, {seconds(cli.wall)})"
            )
            cli_calls = cli.full_calls
        else:
            cli_cell = f"{cli.requests.total:,} calls, {seconds(cli.wall)}"
            cli_calls = cli.requests.total
        warm = (
            f"{result.warm.median * 1000:.0f} ms (start-up floor "
            f"{statistics.median(result.warm.floor) * 1000:.0f} ms)"
            if result.warm is not None
            else "-"
        )
        lines.append(
            f"| {fleet} | {made:,} calls ({minimum}), {seconds(status.median)} | {cli_cell} | "
            f"{cli.full_wall / status.median:.0f}x the time, {cli_calls / made:.1f}x the calls "
            f"| {warm} |"
        )
    lines += [
        "",
        "Wall time of the real command, Python start-up included (median of its runs). Calls "
        "are counted by the endpoint (moto's request recorder) for both and cross-checked "
        "with `Fleet.call_count()`; both report the same instances and load balancer "
        "states. Where the time goes (CPU seconds during one run):",
        "",
    ]
    for result in results:
        status, cli = result.status, result.cli
        scale = cli.total_pairs / cli.pairs
        lines.append(
            f"- {result.label}: `status --json` {seconds(status.median)} wall, endpoint "
            f"{seconds(status.world_cpu)} CPU, console {seconds(status.client_cpu)} CPU; "
            f"aws-cli {seconds(cli.full_wall)} wall, endpoint {seconds(cli.world_cpu * scale)}"
            f" CPU, aws processes {seconds(cli.client_cpu * scale)} CPU "
            f"({cli.wall / max(1, cli.invocations) * 1000:.0f} ms per invocation)."
        )
    for result in results:
        if result.label == "large":
            lines.append(
                f"- seeding the {result.label} world: {result.seed_requests:,} requests, ready "
                f"{seconds(result.world_ready)} after start."
            )
    for result in results:
        if result.ui is None:
            continue
        ui = result.ui
        goal = "meets" if ui["latency_p95_ms"] <= ui["latency_goal_ms"] else "misses"
        collections = ui.get("full_collections_ms") or [0.0]
        lines += [
            "",
            f"Dashboard at {ui['projects']} x {ui['clusters']}, headless ({ui['terminal']}): "
            f"first frame with data {seconds(ui['first_frame_seconds'])} after start; one "
            f"refresh (`r` -> new snapshot shown) {seconds(ui['refresh_median_seconds'])}; "
            f"key press -> repaint during a refresh p50 {ui['latency_p50_ms']:.0f} ms, "
            f"p95 {ui['latency_p95_ms']:.0f} ms, max {ui['latency_max_ms']:.0f} ms over "
            f"{len(ui['latencies_ms'])} presses ({goal} the goal p95 <= "
            f"{ui['latency_goal_ms']:.0f} ms); the same presses with no refresh in flight: "
            f"p50 {ui['idle_p50_ms']:.0f} ms, p95 {ui['idle_p95_ms']:.0f} ms. During the "
            f"refreshes the event loop was held > 25 ms at a time for "
            f"{ui['stalled_fraction']:.0%} of the time; {len(ui.get('full_collections_ms', []))}"
            f" full garbage collections took up to {max(collections):.0f} ms each.",
        ]
    return "\n".join(lines)


def _interrupted(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=["seed", "large", "all"], default="all")
    parser.add_argument("--quick", action="store_true", help="fewer runs, samples and presses")
    parser.add_argument("--projects", type=int, default=LARGE_PROJECTS, help="large fleet size")
    parser.add_argument("--sample", type=int, default=SAMPLE_PAIRS, help="aws-cli pairs at large")
    parser.add_argument("--no-ui", action="store_true", help="skip the dashboard timings")
    args = parser.parse_args()
    command = "`" + shlex.join([".venv/bin/python", "-m", "tests.bench.run", *sys.argv[1:]]) + "`"
    if len(sys.argv) == 1:
        command = f"`make bench` ({command})"
    if not DEPLOY_CONSOLE.exists():
        sys.exit(f"{DEPLOY_CONSOLE} not found: install the project first (make install)")
    # Ctrl-C and SIGTERM alike unwind through the finally blocks that stop the worlds.
    signal.signal(signal.SIGTERM, _interrupted)
    started = time.perf_counter()
    awscli = ensure_awscli()
    load = Path("/proc/loadavg").read_text().split()[:3]
    print(f"{machine()}; {awscli}; load average {' '.join(load)}", flush=True)
    results: list[ScaleResult] = []
    with tempfile.TemporaryDirectory(prefix="deploy-console-bench-") as temp:
        workdir = Path(temp)
        with contextlib.ExitStack() as stack:
            try:
                if args.scale in ("seed", "all"):
                    (workdir / "seed").mkdir()
                    results.append(run_scale("seed", DEMO_CONFIG, workdir / "seed", args, stack))
                if args.scale in ("large", "all"):
                    (workdir / "large").mkdir()
                    source = workdir / "large" / f"scaled-{args.projects}x4.toml"
                    scaled_world.write(source, args.projects)
                    results.append(run_scale("large", source, workdir / "large", args, stack))
            except KeyboardInterrupt:
                print("\ninterrupted: stopping the worlds", file=sys.stderr)
                sys.exit(130)
    total = time.perf_counter() - started
    print(f"\nthe whole bench took {total / 60:.1f} min ({total:.0f} s)")
    print("\n--- markdown for the README (Performance) ---\n")
    print(markdown(results, command, awscli, total))


if __name__ == "__main__":
    main()
