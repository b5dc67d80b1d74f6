"""A world of its own for deploy tests: `deploy-console world` in a child process.

Deploys change the world, and moto keeps its state per process, so deploy tests never use
the session world that read-only tests share.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import dataclasses
import os
import re
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import boto3

from console.config import Config, load_config
from tests.conftest import DEMO_CONFIG
from tests.world_zygote import ForkedWorld, Zygote

ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT = 60.0


@contextlib.contextmanager
def world_process(source: Path, workdir: Path) -> Iterator[Config]:
    """Seeds a world from `source` in a child process; yields the config pointing at it."""
    config_path = workdir / "world.toml"
    stderr_path = workdir / "world.stderr"
    env = {**os.environ, "DEPLOY_CONSOLE_DATA_DIR": str(workdir / "data")}
    argv = ["world", "--config", str(source), "--write-config", str(config_path)]
    with stderr_path.open("wb") as stderr:
        process = _start(argv, env, stderr)
    try:
        assert process.stdout is not None
        line = ""
        deadline = time.monotonic() + READY_TIMEOUT
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            while time.monotonic() < deadline and not line:
                if selector.select(timeout=0.5):
                    line = process.stdout.readline().decode(errors="replace")
                    break
                if process.poll() is not None:
                    break
        if not line.startswith("world ready: "):
            raise RuntimeError(f"world did not start: {stderr_path.read_text()[-2000:]}")
        yield load_config(config_path)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        _stopping.append(process)  # it stops while the next tests run; reaped at exit


_stopping: list[subprocess.Popen[bytes] | ForkedWorld] = []
_zygote: list[Zygote] = []  # started on the first world this process asks for


def _start(argv: list[str], env: dict[str, str], stderr: IO[bytes]) -> Any:
    """`deploy-console ARGV` in a session of its own, its stdout a pipe: forked from the
    zygote (tests/world_zygote.py: the world's imports paid once per test process), or a
    fresh interpreter if the zygote cannot start or the environment differs from its own
    (a test that set one of moto's variables)."""
    with contextlib.suppress(OSError, RuntimeError):
        if not _zygote:
            _zygote.append(Zygote())
        if _zygote[0].serves(env):
            return _zygote[0].fork(argv, env, stderr)
    return subprocess.Popen(
        [sys.executable, "-m", "screens.main", *argv], cwd=ROOT, env=env,
        stdout=subprocess.PIPE, stderr=stderr, stdin=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip


@atexit.register
def _reap_worlds() -> None:
    """Wait for the worlds told to stop (each stops its servers and removes its files), then
    kill any that did not within 10 s; then end the zygote."""
    for process in _stopping:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    for zygote in _zygote:
        zygote.close()


# A cluster's watch after cutover (console/config/bake.py): the demo bakes prod2.
BAKE_KEYS = ("bake", "alarms", "keep_old", "bake_max_5xx", "bake_max_unhealthy")


def without_bake(text: str) -> str:
    """A config's text with every cluster's bake keys (one line each, as demo.toml writes
    them) dropped: a deploy to prod2 then ends at its switch. The one place the tests take
    the demo's bake away, for the tests that deploy through the demo config and do not test
    the bake (tests/console/deploy/test_bake.py, tests/screens/cli/test_cli_bake.py do)."""
    return re.sub(rf"(?m)^(?:{'|'.join(BAKE_KEYS)}) = .*\n", "", text)


def demo_seed(workdir: Path) -> Path:
    """The demo config without its bake (see without_bake), written in `workdir`: the seed's
    path, for world_process."""
    seed = workdir / "demo-no-bake.toml"
    seed.write_text(without_bake(DEMO_CONFIG.read_text()))
    return seed


def quick_seed(workdir: Path, seconds: int) -> Path:
    """The demo config without its bake (see without_bake), its world registering and
    draining instances in `seconds` each (a deploy that is quick, or one long enough to be
    cut in the middle): the seed's path."""
    text = without_bake(DEMO_CONFIG.read_text())
    for key in ("registration_seconds", "deregistration_delay_seconds"):
        text = re.sub(rf"(?m)^{key} = .*$", f"{key} = {seconds}", text)
    seed = workdir / "seed.toml"
    seed.write_text(text)
    return seed


_clients: dict[tuple[str, str | None, str], Any] = {}
_clients_lock = threading.Lock()


def client(config: Config, cluster: str, service: str) -> Any:
    """A boto3 client for the cluster's endpoint, made once: watchers poll 5 times a second,
    and making a client costs more CPU than the calls (boto3 clients are thread-safe)."""
    settings = config.cluster(cluster)
    key = (service, settings.endpoint_url, settings.region)
    with _clients_lock:
        if key not in _clients:
            _clients[key] = boto3.session.Session().client(
                service,
                region_name=settings.region,
                endpoint_url=settings.endpoint_url,
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
            )
        return _clients[key]


# -- what a test reads of a pair, and a config with one project's deploy settings changed --


def faster(config: Config, project: str, **deploy: Any) -> Config:
    """The config with a project's deploy settings changed (e.g. a short startup timeout)."""
    projects = tuple(
        dataclasses.replace(p, deploy=dataclasses.replace(p.deploy, **deploy))
        if p.name == project and p.deploy is not None
        else p
        for p in config.projects
    )
    return dataclasses.replace(config, projects=projects)


def instances(config: Config, project: str, cluster: str) -> dict[str, dict[str, Any]]:
    ec2 = client(config, cluster, "ec2")
    found = ec2.describe_instances(
        Filters=[
            {"Name": "tag:Project", "Values": [project]},
            {"Name": "tag:Environment", "Values": [cluster]},
        ]
    )
    return {i["InstanceId"]: i for r in found["Reservations"] for i in r["Instances"]}


def serving_in(config: Config, project: str, cluster: str) -> dict[str, set[str]]:
    """Per load balancer of the pair, the instances it reports healthy / InService."""
    settings = config.project(project).clusters[cluster]
    result: dict[str, set[str]] = {}
    if settings.classic_elbs:
        elb = client(config, cluster, "elb")
        for name in settings.classic_elbs:
            states = elb.describe_instance_health(LoadBalancerName=name)["InstanceStates"]
            result[name] = {s["InstanceId"] for s in states if s["State"] == "InService"}
    if settings.target_groups:
        elbv2 = client(config, cluster, "elbv2")
        for group in elbv2.describe_target_groups(Names=list(settings.target_groups))[
            "TargetGroups"
        ]:
            health = elbv2.describe_target_health(TargetGroupArn=group["TargetGroupArn"])
            result[group["TargetGroupName"]] = {
                d["Target"]["Id"]
                for d in health["TargetHealthDescriptions"]
                if d["TargetHealth"]["State"] == "healthy"
            }
    return result


def live(config: Config, project: str, cluster: str) -> set[str]:
    return {
        i
        for i, raw in instances(config, project, cluster).items()
        if raw["State"]["Name"] in ("pending", "running")
    }


def running_versions(config: Config, project: str, cluster: str) -> set[str]:
    """The Version tags of the pair's live instances."""
    found = instances(config, project, cluster)
    return {
        tag["Value"]
        for instance_id in live(config, project, cluster)
        for tag in found[instance_id]["Tags"]
        if tag["Key"] == "Version"
    }


class ServingWatcher:
    """Polls every load balancer of a pair and records any moment one that served had none.

    This is the promise of a no-downtime deploy: a load balancer that had a healthy target
    never has zero.
    """

    def __init__(self, config: Config, project: str, cluster: str, period: float = 0.2) -> None:
        self.config = config
        self.project = project
        self.cluster = cluster
        self.period = period
        self.gaps: list[str] = []
        self.polls = 0
        self._task: asyncio.Task[None] | None = None

    def _healthy(self) -> dict[str, int]:
        settings = self.config.project(self.project).clusters[self.cluster]
        counts: dict[str, int] = {}
        if settings.classic_elbs:
            elb = client(self.config, self.cluster, "elb")
            for name in settings.classic_elbs:
                states = elb.describe_instance_health(LoadBalancerName=name)["InstanceStates"]
                counts[name] = sum(1 for s in states if s["State"] == "InService")
        if settings.target_groups:
            elbv2 = client(self.config, self.cluster, "elbv2")
            groups = elbv2.describe_target_groups(Names=list(settings.target_groups))
            for group in groups["TargetGroups"]:
                health = elbv2.describe_target_health(TargetGroupArn=group["TargetGroupArn"])
                counts[group["TargetGroupName"]] = sum(
                    1
                    for d in health["TargetHealthDescriptions"]
                    if d["TargetHealth"]["State"] == "healthy"
                )
        return counts

    async def _run(self) -> None:
        served: set[str] = set()
        while True:
            counts = await asyncio.to_thread(self._healthy)
            self.polls += 1
            for name, count in counts.items():
                if count:
                    served.add(name)
                elif name in served:
                    self.gaps.append(f"{name} had no healthy target at poll {self.polls}")
            await asyncio.sleep(self.period)

    async def __aenter__(self) -> ServingWatcher:
        await asyncio.to_thread(self._healthy)
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        assert self.polls >= 1
        assert not self.gaps, self.gaps


@contextlib.contextmanager
def watching(config: Config, project: str, cluster: str) -> Iterator[ServingWatcher]:
    """ServingWatcher for a test that is not async (a CLI deploy in a child process): it polls
    from a thread of its own, from before the block starts until after it ends."""
    watcher = ServingWatcher(config, project, cluster)
    started = threading.Event()
    stop = threading.Event()
    failures: list[BaseException] = []

    async def watch() -> None:
        async with watcher:
            started.set()
            while not stop.is_set():
                await asyncio.sleep(0.05)

    def run() -> None:
        try:
            asyncio.run(watch())
        except BaseException as exc:  # reported in the test's thread
            failures.append(exc)
        finally:
            started.set()

    thread = threading.Thread(target=run, name=f"watch {project} {cluster}", daemon=True)
    thread.start()
    started.wait(timeout=READY_TIMEOUT)
    if failures:
        raise failures[0]
    try:
        yield watcher
    finally:
        stop.set()
        thread.join(timeout=READY_TIMEOUT)
    if failures:
        raise failures[0]
