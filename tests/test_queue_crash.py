"""Consoles that die and consoles that share: real `deploy-console` processes on one store and
one world. A console killed with SIGKILL at each step boundary leaves an interrupted deploy
that the next console reconciles, with no orphan instance and no load balancer ever empty;
two runners on one store run each queued deploy exactly once."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from console.config import Config, load_config
from console.model import DEPLOY_STEPS, Step
from console.store import DeployRecord, Store
from tests.conftest import DEMO_CONFIG
from tests.deploy_world import ROOT, instances, live, serving_in, watching, world_process

TIMEOUT = 90.0


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Config, Path]]:
    """The world, and a config for it whose locks go stale after 2 s (a dead console is
    noticed quickly) and whose engine polls often."""
    workdir = tmp_path_factory.mktemp("crash-world")
    # The demo world with quick registration and draining: nine kills make nine deploys.
    seed = workdir / "seed.toml"
    text = DEMO_CONFIG.read_text()
    text = re.sub(r"(?m)^registration_seconds = .*$", "registration_seconds = 1", text)
    text = re.sub(
        r"(?m)^deregistration_delay_seconds = .*$", "deregistration_delay_seconds = 1", text
    )
    seed.write_text(text)
    with world_process(seed, workdir) as config:
        text = config.source.read_text()
        text = re.sub(r"lock_stale_seconds = \d+", "lock_stale_seconds = 2", text)
        text = re.sub(r"poll_seconds = \d+", "poll_seconds = 0.5", text)
        fast = workdir / "fast.toml"
        fast.write_text(text)
        yield load_config(fast), fast


def command(*args: str, config: Path, store: Path) -> list[str]:
    return [sys.executable, "-m", "screens.main", *args, "--config", str(config),
            "--store", str(store)]  # fmt: skip


def start(*args: str, config: Path, store: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        command(*args, config=config, store=store),
        cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip


def until_event(process: subprocess.Popen[str], wanted: Any) -> dict[str, Any]:
    """Read `deploy --json` lines until one matches (the read has the process's lifetime; the
    test's own timeout is pytest's)."""
    assert process.stdout is not None
    seen: list[str] = []
    for line in process.stdout:
        seen.append(line)
        event = json.loads(line)
        if wanted(event):
            return event
    raise AssertionError(f"the deploy ended first: {seen[-3:]}")


def stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def wait_until(store: Path, check: Any, what: str, timeout: float = TIMEOUT) -> Any:
    deadline = time.monotonic() + timeout
    async with await Store.open(store) as opened:
        while True:
            found = await check(opened)
            if found:
                return found
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            await asyncio.sleep(0.2)


def version_of(config: Config, project: str, cluster: str) -> set[str]:
    found = instances(config, project, cluster)
    return {
        tag["Value"]
        for instance_id in live(config, project, cluster)
        for tag in found[instance_id]["Tags"]
        if tag["Key"] == "Version"
    }


@pytest.mark.parametrize("step", DEPLOY_STEPS, ids=[step.value for step in DEPLOY_STEPS])
async def test_a_console_killed_at_a_step_boundary_is_reconciled_by_the_next(
    world: tuple[Config, Path], tmp_path: Path, step: Step
) -> None:
    config, source = world
    project, cluster = "storefront", "staging"
    store = tmp_path / "store.db"
    (current,) = version_of(config, project, cluster)
    release = "2.14.1" if current != "2.14.1" else "2.15.0"
    with watching(config, project, cluster):
        deploy = start("deploy", project, cluster, release, "--json", config=source, store=store)
        try:
            started = until_event(
                deploy, lambda e: e["event"] == "StepStarted" and e["step"] == step.value
            )
            deploy.kill()  # kill -9: no rollback, no lock released, nothing recorded
            deploy.wait()
        finally:
            if deploy.poll() is None:
                deploy.kill()
                deploy.wait()
        deploy_id = started["deploy_id"]

        restarted = start("runner", config=source, store=store)
        try:

            async def reconciled(opened: Store) -> DeployRecord | None:
                record = await opened.deploy(deploy_id)
                return record if record and record.reconciled_at else None

            record = await wait_until(store, reconciled, f"{deploy_id} reconciled")
        finally:
            stop(restarted)
        assert restarted.returncode == 0, restarted.stderr.read() if restarted.stderr else ""

        # No orphan: every live instance of the pair serves in every load balancer, one release.
        served = serving_in(config, project, cluster)
        alive = live(config, project, cluster)
        assert alive and all(members == alive for members in served.values()), (alive, served)
        assert len(version_of(config, project, cluster)) == 1
    assert record.state == "interrupted"
    async with await Store.open(store) as opened:
        assert await opened.lock_holder(project, cluster) is None
        actions = [row.action for row in await opened.audit_rows(deploy_id=deploy_id)]
        assert actions.count("deploy.interrupted") == 1
        assert actions[-1] == "deploy.reconciled"
        assert await opened.verify_audit() is None
    if step in (Step.DEREGISTER, Step.TERMINATE):
        assert "finished forward" in record.reason
        assert version_of(config, project, cluster) == {release}
    else:
        assert "rolled back" in record.reason
        assert version_of(config, project, cluster) == {current}


async def test_two_runners_on_one_store_run_each_deploy_once(
    world: tuple[Config, Path], tmp_path: Path
) -> None:
    config, source = world
    store = tmp_path / "store.db"
    plan = [
        ("checkout-api", "staging", "5.2.0"),
        ("media-service", "staging", "1.5.0"),
        ("checkout-api", "staging", "5.2.3"),
        ("media-service", "staging", "1.6.0"),
    ]
    queued = []
    for project, cluster, release in plan:
        result = subprocess.run(
            command("deploy", project, cluster, release, "--json", "--no-wait",
                    config=source, store=store),
            cwd=ROOT, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=TIMEOUT,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        queued.append(json.loads(result.stdout)["deploy_id"])
    runners = [start("runner", config=source, store=store) for _ in range(2)]
    try:

        async def all_done(opened: Store) -> list[DeployRecord] | None:
            records = [await opened.deploy(deploy_id) for deploy_id in queued]
            done = all(r and r.state not in ("queued", "running") for r in records)
            return [r for r in records if r] if done else None

        records = await wait_until(store, all_done, "every queued deploy to end", timeout=180)
    finally:
        for runner in runners:
            stop(runner)
    outputs = [runner.stdout.read() if runner.stdout else "" for runner in runners]
    assert [runner.returncode for runner in runners] == [0, 0]
    assert [r.state for r in records] == ["succeeded"] * 4, [(r.id, r.reason) for r in records]
    async with await Store.open(store) as opened:
        claims = Counter(
            row.deploy_id for row in await opened.audit_rows() if row.action == "queue.claim"
        )
        for deploy_id in queued:
            steps = [s.step for s in await opened.steps(deploy_id)]
            assert steps == [s.value for s in DEPLOY_STEPS], (deploy_id, steps)
    assert claims == dict.fromkeys(queued, 1)
    # Each deploy ran in one runner: its start is printed by exactly one of them.
    for deploy_id in queued:
        starts = [
            line
            for out in outputs
            for line in out.splitlines()
            if line.startswith(f"{deploy_id}: ") and line.endswith(": running")
        ]
        assert len(starts) == 1, (deploy_id, outputs)
    assert version_of(config, "checkout-api", "staging") == {"5.2.3"}
    assert version_of(config, "media-service", "staging") == {"1.6.0"}


async def test_a_promotion_runs_stage_after_stage_to_production(
    world: tuple[Config, Path], tmp_path: Path
) -> None:
    config, source = world
    store = tmp_path / "store.db"
    result = subprocess.run(
        command("promote", "notifications-worker", "7.1.1", "--yes", "--json",
                config=source, store=store),
        cwd=ROOT, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=TIMEOUT,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    stages = json.loads(result.stdout)
    assert [(s["cluster"], s["after"]) for s in stages] == [
        ("staging", None),
        ("qaprod1", stages[0]["id"]),
        ("prod1", stages[1]["id"]),
        ("prod2", stages[1]["id"]),
    ]
    runner = start("runner", config=source, store=store)
    try:

        async def all_done(opened: Store) -> list[DeployRecord] | None:
            records = [await opened.deploy(stage["id"]) for stage in stages]
            done = all(r and r.state not in ("queued", "running") for r in records)
            return [r for r in records if r] if done else None

        staging, qaprod1, prod1, prod2 = await wait_until(
            store, all_done, "the promotion to end", timeout=180
        )
    finally:
        stop(runner)
    assert {r.state for r in (staging, qaprod1, prod1, prod2)} == {"succeeded"}
    assert staging.finished_at and qaprod1.started_at and qaprod1.started_at >= staging.finished_at
    assert qaprod1.finished_at and prod1.started_at and prod2.started_at
    assert min(prod1.started_at, prod2.started_at) >= qaprod1.finished_at
    for cluster in ("staging", "qaprod1", "prod1", "prod2"):
        assert version_of(config, "notifications-worker", cluster) == {"7.1.1"}


def test_promote_refuses_bad_input_in_one_line(world: tuple[Config, Path], tmp_path: Path) -> None:
    _, source = world
    store = tmp_path / "store.db"
    for argv, expected in (
        (["promote", "notifications-worker", "7.1.1"], "reaches protected cluster prod1"),
        (["promote", "nope", "1.0", "--yes"], "unknown project 'nope'"),
        (["promote", "notifications-worker", "9.9.9", "--yes"], "9.9.9"),
    ):
        result = subprocess.run(
            command(*argv, config=source, store=store),
            cwd=ROOT, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=TIMEOUT,
        )  # fmt: skip
        assert result.returncode == 2, (argv, result.stderr)
        (line,) = result.stderr.strip().splitlines()
        assert expected in line and "Traceback" not in line
    assert not store.exists()  # nothing queued, no store made
