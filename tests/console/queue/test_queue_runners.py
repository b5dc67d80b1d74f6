"""Runners sharing one store and one world: two runners run each queued deploy exactly once,
and a promotion reaches production stage by stage. (A file of its own: its world runs beside
the crash tests' under pytest-xdist.)"""

from __future__ import annotations

import json
import re
import subprocess
from collections import Counter
from pathlib import Path

from console.config import Config
from console.model import DEPLOY_STEPS
from console.store import DeployRecord, Store
from tests.console.queue.test_queue_crash import (
    TIMEOUT,
    command,
    start,
    stop,
    store_until,
    until_event,
    world,
)
from tests.deploy_world import ROOT, running_versions
from tests.waiting import await_until

__all__ = ["world"]  # the module-scoped world fixture, started once for this file


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
            command("deploy", "--anyway", project, cluster, release, "--json", "--no-wait",
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

        records = await store_until(store, all_done, "every queued deploy to end", timeout=180)
    finally:
        for runner in runners:
            stop(runner)
    # The runner logs on stderr (the console.runner logger).
    outputs = [runner.stderr.read() if runner.stderr else "" for runner in runners]
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
            if f"{deploy_id}: " in line and re.search(r": running( deploy=|$)", line)
        ]
        assert len(starts) == 1, (deploy_id, outputs)
    assert running_versions(config, "checkout-api", "staging") == {"5.2.3"}
    assert running_versions(config, "media-service", "staging") == {"1.6.0"}


async def test_a_promotion_runs_stage_after_stage_to_production(
    world: tuple[Config, Path], tmp_path: Path
) -> None:
    config, source = world
    store = tmp_path / "store.db"
    result = subprocess.run(
        command("promote", "notifications-worker", "7.1.1", "--yes", "--again", "--json",
                config=source, store=store),
        cwd=ROOT, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=TIMEOUT,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    stages = json.loads(result.stdout)["stages"]
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

        staging, qaprod1, prod1, prod2 = await store_until(
            store, all_done, "the promotion to end", timeout=180
        )
    finally:
        stop(runner)
    assert {r.state for r in (staging, qaprod1, prod1, prod2)} == {"succeeded"}
    assert staging.finished_at and qaprod1.started_at and qaprod1.started_at >= staging.finished_at
    assert qaprod1.finished_at and prod1.started_at and prod2.started_at
    assert min(prod1.started_at, prod2.started_at) >= qaprod1.finished_at
    for cluster in ("staging", "qaprod1", "prod1", "prod2"):
        assert running_versions(config, "notifications-worker", cluster) == {"7.1.1"}


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


async def test_a_deploy_asked_of_the_runner_service_outlives_the_command_that_asked(
    world: tuple[Config, Path], tmp_path: Path
) -> None:
    """On a shared host the command asks the runner service over its socket: the service
    plans, queues and runs the deploy, and a command killed mid-deploy changes nothing."""
    config, source = world
    store = tmp_path / "store.db"
    socket = tmp_path / "runner.sock"
    host = tmp_path / "host.toml"
    host.write_text(source.read_text() + f'\n[runner]\nsocket = "{socket}"\n')
    service = start("runner", config=host, store=store)
    try:
        await await_until(
            lambda: socket.is_socket() or service.poll() is not None, "the runner's socket", TIMEOUT
        )
        assert service.poll() is None, service.stderr
        bad = subprocess.run(
            command("deploy", "checkout-api", "staging", "9.9.9", config=host, store=store),
            cwd=ROOT, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=TIMEOUT,
        )  # fmt: skip
        assert bad.returncode == 2 and "9.9.9" in bad.stderr, (bad.stdout + bad.stderr)[-3000:]
        # 5.2.0 is a downgrade: the service refuses it until asked anyway, as a deploy of
        # one's own (tests/console/servers/test_runner_door_warnings.py).
        asking = start("deploy", "checkout-api", "staging", "5.2.0", "--json", "--anyway",
                       config=host, store=store)  # fmt: skip
        started = until_event(asking, lambda e: e["event"] == "StepStarted")
        asking.kill()  # the terminal that asked is gone
        asking.wait()

        async def ended(opened: Store) -> DeployRecord | None:
            record = await opened.deploy(started["deploy_id"])
            return record if record and record.state not in ("queued", "running") else None

        record = await store_until(store, ended, "the deploy to end", timeout=180)
    finally:
        stop(service)
    assert record.state == "succeeded", record.reason
    assert running_versions(config, "checkout-api", "staging") == {"5.2.0"}
    async with await Store.open(store) as opened:
        steps = [s.step for s in await opened.steps(record.id)]
    assert steps == [s.value for s in DEPLOY_STEPS]
