"""`bake end|rollback ID`, `world alarm` and `rollback`'s kept instances, through the real
commands on the demo's own world, its bake on prod2 kept (the one file that deploys through
the demo config and tests its bake). Locks go stale after 2 s here: a bake that lasts longer
must keep its pair's lock fresh, or the deploy would be cancelled as having lost it."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from console.config import Config, load_config
from console.model import Step
from console.store import Store
from tests.conftest import DEMO_CONFIG, ROOT
from tests.deploy_world import live, running_versions, serving_in, world_process
from tests.waiting import wait_until

PROJECT, CLUSTER = "checkout-api", "prod2"
TIMEOUT = 120.0
ALARM = f"{PROJECT}-5xx"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Config, Path, Path]]:
    """The demo world (its bake on), registering and draining in 1 s; the config, and one
    whose every user is a viewer (no admin matches)."""
    workdir = tmp_path_factory.mktemp("cli-bake-world")
    text = DEMO_CONFIG.read_text()
    for key in ("registration_seconds", "deregistration_delay_seconds"):
        text = re.sub(rf"(?m)^{key} = .*$", f"{key} = 1", text)
    seed = workdir / "seed.toml"
    seed.write_text(text)
    with world_process(seed, workdir) as config:
        text = config.source.read_text()
        text = re.sub(r"lock_stale_seconds = \d+", "lock_stale_seconds = 2", text)
        text = re.sub(r"poll_seconds = \d+", "poll_seconds = 0.5", text)
        fast = workdir / "fast.toml"
        fast.write_text(text)
        viewer = workdir / "viewer.toml"
        viewer.write_text(  # the written config spreads a list over lines
            re.sub(r'admins = \[\s*"\*",?\s*\]', 'admins = ["someone-else"]', text)
        )
        yield load_config(fast), fast, viewer


def command(*args: str, config: Path, store: Path) -> list[str]:
    return [sys.executable, "-m", "screens.main", *args, "--config", str(config),
            "--store", str(store)]  # fmt: skip


def cli(*args: str, config: Path, store: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command(*args, config=config, store=store), cwd=ROOT, capture_output=True, text=True,
        timeout=TIMEOUT, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def lock_kept_into_bake(store: Path, deploy_id: str, seconds: float) -> bool:
    """Whether the deploy's pair lock had a heartbeat `seconds` after its bake started."""

    async def read() -> bool:
        async with await Store.open(store, read_only=True) as opened:
            bake = [s for s in await opened.steps(deploy_id) if s.step == Step.BAKE.value]
            lock = await opened.lock_holder(PROJECT, CLUSTER)
        assert bake and bake[0].state == "running", bake
        assert lock is not None and lock.deploy_id == deploy_id, lock
        return lock.heartbeat_at >= bake[0].started_at + timedelta(seconds=seconds)

    return asyncio.run(read())


class Following:
    """A `deploy`/`rollback` command running, its output read line by line."""

    def __init__(self, *args: str, config: Path, store: Path) -> None:
        self.process = subprocess.Popen(
            command(*args, config=config, store=store), cwd=ROOT, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        self.lines: list[str] = []

    def until(self, pattern: str) -> re.Match[str]:
        """Reads lines until one matches (bounded by the command's own end)."""
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)
            found = re.search(pattern, line)
            if found:
                return found
        raise AssertionError(f"ended before {pattern!r}: {self.lines[-5:]}")

    def end(self) -> tuple[int, str]:
        rest, errors = self.process.communicate(timeout=TIMEOUT)
        self.lines += rest.splitlines(keepends=True)
        assert "lost its lock" not in rest, rest
        return self.process.returncode, errors

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def test_bake_end_and_rollback_from_the_command_line(
    world: tuple[Config, Path, Path], tmp_path: Path
) -> None:
    config, source, viewer = world
    store = tmp_path / "store.db"
    missing = cli("bake", "end", "d-nope", config=source, store=store)
    assert missing.returncode == 2 and missing.stderr.startswith(
        "deploy-console: error: unknown deploy 'd-nope' (no store at"
    )
    old = live(config, PROJECT, CLUSTER)
    deploy = Following("deploy", PROJECT, CLUSTER, "5.2.3", "--yes", config=source, store=store)
    try:
        deploy_id = deploy.until(r"^queued (d-\S+):")[1]
        deploy.until(r"^  bake: started")
        # Locks go stale after 2 s: the engine keeps the pair's lock fresh through the bake.
        wait_until(
            lambda: lock_kept_into_bake(store, deploy_id, seconds=3),
            "the pair's lock kept fresh 3 s into the bake",
            timeout=TIMEOUT,
            every=0.2,
        )
        refused = cli("bake", "end", deploy_id, config=viewer, store=store)
        assert refused.returncode == 3, refused.stderr
        assert refused.stderr.startswith("deploy-console: refused: "), refused.stderr
        ended = cli("bake", "end", deploy_id, config=source, store=store)
        assert ended.returncode == 0, ended.stderr
        assert ended.stdout.startswith(f"asked {deploy_id} to end its bake early")
        code, errors = deploy.end()
    finally:
        deploy.kill()
    assert code == 0, (errors, deploy.lines[-5:])
    assert "bake ended early by" in deploy.lines[-1], deploy.lines[-1]
    assert running_versions(config, PROJECT, CLUSTER) == {"5.2.3"}
    again = cli("bake", "end", deploy_id, config=source, store=store)
    assert again.returncode == 2
    assert again.stderr == f"deploy-console: error: deploy {deploy_id} is not baking\n"

    # Within keep_old, the rollback starts the kept old instances: no launch.
    back = Following("rollback", deploy_id, "--yes", config=source, store=store)
    try:
        kept = back.until(r"^starts kept (.+): no launch$")[1]
        assert set(kept.split(", ")) == old
        rollback_id = back.until(r"^queued (d-\S+):")[1]
        back.until(r"^  bake: started")
        asked = cli("bake", "rollback", rollback_id, config=source, store=store)
        assert asked.returncode == 0, asked.stderr
        assert asked.stdout.startswith(f"asked {rollback_id} to roll back now")
        code, errors = back.end()
    finally:
        back.kill()
    assert code == 1, (errors, back.lines[-5:])  # rolled back: the rollback did not stay
    assert back.lines[-1].startswith("rolled back: roll back asked by"), back.lines[-1]
    assert running_versions(config, PROJECT, CLUSTER) == {"5.2.3"}


def test_an_alarm_set_in_the_world_during_the_bake_rolls_the_deploy_back(
    world: tuple[Config, Path, Path], tmp_path: Path
) -> None:
    config, source, _ = world
    store = tmp_path / "store.db"
    (current,) = running_versions(config, PROJECT, CLUSTER)
    release = "5.2.0" if current != "5.2.0" else "5.2.3"
    old = live(config, PROJECT, CLUSTER)
    deploy = Following(
        "deploy", PROJECT, CLUSTER, release, "--yes", "--anyway", config=source, store=store
    )
    try:
        deploy.until(r"^  bake: started")
        fired_at = time.monotonic()
        fired = subprocess.run(
            [sys.executable, "-m", "screens.main", "world", "alarm", ALARM, "ALARM",
             "--config", str(source)],
            cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT,
        )  # fmt: skip
        assert fired.returncode == 0, fired.stderr

        def old_serving() -> bool:
            serving = serving_in(config, PROJECT, CLUSTER)
            return all(old <= ids for ids in serving.values())

        wait_until(old_serving, "every old instance serving again", timeout=TIMEOUT, every=0.1)
        serving_after = time.monotonic() - fired_at
        code, errors = deploy.end()
    finally:
        deploy.kill()
        subprocess.run(
            [sys.executable, "-m", "screens.main", "world", "alarm", ALARM, "OK",
             "--config", str(source)],
            cwd=ROOT, capture_output=True, timeout=TIMEOUT,
        )  # fmt: skip
    assert code == 1, (errors, deploy.lines[-5:])
    assert deploy.lines[-1].startswith(f"rolled back: alarm {ALARM} in ALARM during the bake"), (
        deploy.lines[-1]
    )
    assert running_versions(config, PROJECT, CLUSTER) == {current}
    print(f"alarm to every old instance serving again: {serving_after:.1f} s")
