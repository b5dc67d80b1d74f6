"""The runbook "When the console host dies mid-deploy", walked for real: a runner process on a
world of its own, a backup taken while it serves, the runner killed with SIGKILL mid-deploy,
the backup restored into a fresh folder, a runner started there; the fleet ends on one version
and the audit states the gap."""

from __future__ import annotations

import asyncio
import re
import select
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from console.config import Config, load_config
from console.store import DeployRecord, Store
from screens.main import run
from tests.console.queue.test_queue_crash import command, start, stop, store_until
from tests.deploy_world import (
    instances,
    live,
    quick_seed,
    running_versions,
    serving_in,
    world_process,
)
from tests.waiting import wait_until

PROJECT, CLUSTER = "storefront", "staging"
TIMEOUT = 90.0


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Config, Path]]:
    """A world of its own; locks stale after 2 s, the engine polling often."""
    workdir = tmp_path_factory.mktemp("recovery-world")
    with world_process(quick_seed(workdir, 2), workdir) as config:
        text = config.source.read_text()
        text = re.sub(r"lock_stale_seconds = \d+", "lock_stale_seconds = 2", text)
        text = re.sub(r"poll_seconds = \d+", "poll_seconds = 0.5", text)
        fast = workdir / "fast.toml"
        fast.write_text(text)
        yield load_config(fast), fast


def cli(*args: str, config: Path, store: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command(*args, config=config, store=store),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


def launched_by(config: Config, deploy_id: str) -> set[str]:
    """The live instances of the pair tagged with the deploy (it launched them)."""
    return {
        instance_id
        for instance_id, raw in instances(config, PROJECT, CLUSTER).items()
        if raw["State"]["Name"] in ("pending", "running")
        and {"Key": "DeployId", "Value": deploy_id} in raw.get("Tags", [])
    }


def first_line(process: subprocess.Popen[str]) -> str:
    """The runner's first log line (stderr), or a failure at TIMEOUT: never a hang."""
    assert process.stderr is not None
    ready, _, _ = select.select([process.stderr], [], [], TIMEOUT)
    assert ready, f"the runner said nothing in {TIMEOUT:.0f} s"
    return process.stderr.readline()


def switched(config: Config, deploy_id: str) -> bool:
    """The deploy's instances serve alone: the old ones are out of every load balancer."""
    new = launched_by(config, deploy_id)
    served = serving_in(config, PROJECT, CLUSTER).values()
    return bool(new) and all(members == new for members in served)


@pytest.mark.parametrize("moment", ["launched", "switched"])
async def test_the_runbook_restores_a_backup_after_the_host_died_mid_deploy(
    world: tuple[Config, Path], tmp_path: Path, moment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Killed once its new instances run (the reconcile rolls it back: the old serve), or once
    they serve alone (it finishes forward: rolling back would leave nothing serving)."""
    config, source = world
    host, fresh = tmp_path / "host" / "console.db", tmp_path / "new-host" / "console.db"
    (current,) = running_versions(config, PROJECT, CLUSTER)
    release = "2.14.1" if current != "2.14.1" else "2.15.0"
    backup = tmp_path / "backups" / "console-last.db"
    backup.parent.mkdir()

    # The console host: a runner serving its store; the last backup taken while it serves.
    runner = start("runner", config=source, store=host)
    try:
        assert "running queued deploys" in first_line(runner)
        taken = cli("store", "backup", str(backup), config=source, store=host)
        assert taken.returncode == 0, taken.stderr
        queued = cli("deploy", PROJECT, CLUSTER, release, "--no-wait", "--anyway",
                     config=source, store=host)  # fmt: skip
        assert queued.returncode == 0, queued.stderr
        deploy_id = queued.stdout.split()[1].rstrip(":")
        if moment == "launched":
            wait_until(lambda: launched_by(config, deploy_id), "new instances", TIMEOUT, 0.2)
        else:
            wait_until(lambda: switched(config, deploy_id), "the switch", TIMEOUT, 0.1)
        runner.kill()  # the host dies: kill -9, nothing recorded, nothing rolled back
        runner.wait()
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
    if moment == "launched":
        assert len(running_versions(config, PROJECT, CLUSTER)) == 2  # the fleet is mid-deploy

    # The runbook: restore the last backup on the new host, then start the runner there.
    capsys.readouterr()
    restore = ["store", "restore", str(backup), "--into", str(fresh), "--config", str(source)]
    assert await asyncio.to_thread(run, restore) == 0, capsys.readouterr().err
    restored = capsys.readouterr().out
    assert f"{deploy_id} ({PROJECT} → {CLUSTER} {release}" in restored
    assert "not in the copy" in restored
    runner = start("runner", config=source, store=fresh)
    try:

        async def reconciled(opened: Store) -> DeployRecord | None:
            record = await opened.deploy(deploy_id)
            return record if record and record.reconciled_at else None

        record = await store_until(fresh, reconciled, f"{deploy_id} reconciled", TIMEOUT)
    finally:
        stop(runner)

    # One version, every live instance serving in every load balancer.
    forward = moment == "switched"
    assert ("finished forward" if forward else "rolled back") in record.reason, record.reason
    assert running_versions(config, PROJECT, CLUSTER) == ({release} if forward else {current})
    alive = live(config, PROJECT, CLUSTER)
    assert alive and all(
        members == alive for members in serving_in(config, PROJECT, CLUSTER).values()
    )

    # The gap is stated in the audit and in the history, not hidden.
    async with await Store.open(fresh) as opened:
        assert await opened.verify_audit() is None
        rows = await opened.audit_rows()
    restore_row = next(row for row in rows if row.action == "store.restored")
    assert restore_row.reason.startswith("restored from backup console-last.db taken at ")
    assert "if any, were lost" in restore_row.reason
    assert (
        f"deploys the copy did not know (or knew unfinished) will be reconciled: {deploy_id}"
        in (restore_row.reason)
    )
    actions = [row.action for row in rows if row.deploy_id == deploy_id]
    assert actions == ["deploy.adopted", "deploy.interrupted", "deploy.reconciled"]
    store_options = ["--config", str(source), "--store", str(fresh)]
    assert await asyncio.to_thread(run, ["history", *store_options]) == 0
    assert deploy_id in capsys.readouterr().out
    assert await asyncio.to_thread(run, ["audit", "export", *store_options]) == 0
    exported = capsys.readouterr().out
    assert "store.restored" in exported and "deploy.adopted" in exported
