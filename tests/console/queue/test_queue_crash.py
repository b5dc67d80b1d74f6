"""Consoles that die and consoles that share: real `deploy-console` processes on one store and
one world. A console killed with SIGKILL at each step boundary leaves an interrupted deploy
that the next console reconciles, with no orphan instance and no load balancer ever empty;
two runners on one store run each queued deploy exactly once."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from console.config import Config, load_config
from console.model import DEPLOY_STEPS, Step
from console.store import DeployRecord, Store
from tests.deploy_world import (
    ROOT,
    live,
    quick_seed,
    running_versions,
    serving_in,
    watching,
    world_process,
)
from tests.waiting import await_until

TIMEOUT = 90.0


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Config, Path]]:
    """The world, and a config for it whose locks go stale after 2 s (a dead console is
    noticed quickly) and whose engine polls often."""
    workdir = tmp_path_factory.mktemp("crash-world")
    # The demo world with quick registration and draining: nine kills make nine deploys.
    with world_process(quick_seed(workdir, 1), workdir) as config:
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


async def store_until(store: Path, check: Any, what: str, timeout: float = TIMEOUT) -> Any:
    """Wait (tests/waiting.py) until `await check(store)` on the open store says something."""
    async with await Store.open(store) as opened:
        return await await_until(lambda: check(opened), what, timeout, every=0.2)


@pytest.mark.parametrize("step", DEPLOY_STEPS, ids=[step.value for step in DEPLOY_STEPS])
async def test_a_console_killed_at_a_step_boundary_is_reconciled_by_the_next(
    world: tuple[Config, Path], tmp_path: Path, step: Step
) -> None:
    config, source = world
    project, cluster = "storefront", "staging"
    store = tmp_path / "store.db"
    (current,) = running_versions(config, project, cluster)
    release = "2.14.1" if current != "2.14.1" else "2.15.0"
    with watching(config, project, cluster):
        deploy = start(
            "deploy", project, cluster, release, "--json", "--anyway", config=source, store=store
        )
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
        # What the store holds decides the reconcile: a step as quick as the traffic guard
        # may be past before the kill lands (stdout is read behind the deploy).
        async with await Store.open(store) as opened:
            reached = {Step(s.step) for s in await opened.steps(deploy_id)}

        restarted = start("runner", config=source, store=store)
        try:

            async def reconciled(opened: Store) -> DeployRecord | None:
                record = await opened.deploy(deploy_id)
                return record if record and record.reconciled_at else None

            record = await store_until(store, reconciled, f"{deploy_id} reconciled")
        finally:
            stop(restarted)
        assert restarted.returncode == 0, restarted.stderr.read() if restarted.stderr else ""

        # No orphan: every live instance of the pair serves in every load balancer, one release.
        served = serving_in(config, project, cluster)
        alive = live(config, project, cluster)
        assert alive and all(members == alive for members in served.values()), (alive, served)
        assert len(running_versions(config, project, cluster)) == 1
    assert record.state == "interrupted"
    async with await Store.open(store) as opened:
        assert await opened.lock_holder(project, cluster) is None
        actions = [row.action for row in await opened.audit_rows(deploy_id=deploy_id)]
        assert actions.count("deploy.interrupted") == 1
        assert actions[-1] == "deploy.reconciled"
        assert await opened.verify_audit() is None
    assert step in reached
    if reached & {Step.DEREGISTER, Step.TERMINATE}:
        assert "finished forward" in record.reason
        assert running_versions(config, project, cluster) == {release}
    else:
        assert "rolled back" in record.reason
        assert running_versions(config, project, cluster) == {current}
