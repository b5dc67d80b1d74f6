"""`deploy-console runner` as a service, a real process on the embedded world: SIGTERM lets a
deploy in flight finish within the stop grace and takes no new one; with no grace left it
hands the deploy over, not rolled back, and the next start reconciles it; SIGHUP reloads the
config where safe and keeps the old one when the new one is bad."""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import subprocess
import threading
from pathlib import Path
from typing import IO

from console.config import Config
from console.model import Step
from console.store import DeployRecord, Store
from tests.console.queue.test_queue_crash import TIMEOUT, command, stop, store_until, world
from tests.deploy_world import ROOT, live, running_versions, serving_in
from tests.waiting import wait_until

__all__ = ["world"]  # the module-scoped world fixture (quick, locks stale after 2 s)


def start(*args: str, config: Path, store: Path) -> subprocess.Popen[str]:
    """The command in a process whose stderr goes to a file beside the store (read by
    Stderr): a pipe would end only once every process holding it (a child, say) is gone."""
    log = store.with_name(f"{store.stem}-{args[0]}-{next(_starts)}.stderr")
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            command(*args, config=config, store=store), cwd=ROOT, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=stderr, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
    _logs[process.pid] = log
    return process


_starts = itertools.count()
_logs: dict[int, Path] = {}


class Stderr:
    """The lines a process writes on stderr (where the runner logs), read as they come."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.log = _logs.get(process.pid)  # started by start(): its stderr is a file
        self._piped: list[str] = []
        self._reader: threading.Thread | None = None
        if self.log is None:  # started elsewhere with stderr a pipe: read as it comes
            assert process.stderr is not None
            self._reader = threading.Thread(target=self._read, args=(process.stderr,), daemon=True)
            self._reader.start()

    def _read(self, pipe: IO[str]) -> None:
        for line in pipe:
            self._piped.append(line)

    @property
    def lines(self) -> list[str]:
        if self.log is None:
            return list(self._piped)
        return self.log.read_text(errors="replace").splitlines(keepends=True)

    def wait_for(self, text: str, timeout: float = TIMEOUT) -> str:
        line = wait_until(
            lambda: next((line for line in self.lines if text in line), None),
            f"{text!r} on stderr",
            timeout,
        )
        assert line is not None  # wait_until returns only what is true
        return line

    def all(self) -> str:
        """Everything it wrote (asked once it ended)."""
        assert self.process.poll() is not None
        if self._reader is not None:
            self._reader.join(TIMEOUT)
        return "".join(self.lines)


def with_grace(source: Path, tmp_path: Path, grace: str) -> Path:
    config = tmp_path / "service.toml"
    config.write_text(source.read_text() + f'\n[runner]\nstop_grace = "{grace}"\n')
    return config


def queue_deploy(source: Path, store: Path, project: str, cluster: str, release: str) -> str:
    result = subprocess.run(
        command("deploy", "--anyway", project, cluster, release, "--json", "--no-wait",
                config=source, store=store),
        cwd=ROOT, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=TIMEOUT,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    deploy_id: str = json.loads(result.stdout)["deploy_id"]
    return deploy_id


def other_release(
    config: Config, project: str, cluster: str, releases: tuple[str, str] = ("2.14.1", "2.15.0")
) -> str:
    (current,) = running_versions(config, project, cluster)
    return releases[0] if current != releases[0] else releases[1]


async def at_step(store: Path, deploy_id: str, step: Step) -> None:
    async def reached(opened: Store) -> bool:
        return any(s.step == step.value for s in await opened.steps(deploy_id))

    await store_until(store, reached, f"{deploy_id} at {step.value}")


async def test_sigterm_lets_the_deploy_in_flight_finish_and_takes_no_new_one(
    world: tuple[Config, Path], tmp_path: Path
) -> None:
    config, source = world
    service = with_grace(source, tmp_path, "5m")
    store = tmp_path / "store.db"
    release = other_release(config, "storefront", "staging")
    deploy_id = queue_deploy(service, store, "storefront", "staging", release)
    runner = start("runner", config=service, store=store)
    stderr = Stderr(runner)
    try:
        await at_step(store, deploy_id, Step.LAUNCH)
        runner.send_signal(signal.SIGTERM)
        stderr.wait_for("taking no new deploys")
        # Queued while it drains: it stays queued for the next runner.
        later = queue_deploy(service, store, "media-service", "staging", "1.6.0")
        runner.wait(timeout=TIMEOUT)
    finally:
        stop(runner)
    output = stderr.all()
    assert runner.returncode == 0, output
    assert f"{deploy_id}: succeeded" in output
    assert "stopped; no deploy left running" in output
    async with await Store.open(store) as opened:
        record = await opened.deploy(deploy_id)
        queued = await opened.deploy(later)
        actions = [row.action for row in await opened.audit_rows(deploy_id=deploy_id)]
    assert record is not None and record.state == "succeeded", record
    assert queued is not None and queued.state == "queued"
    assert "deploy.handed_over" not in actions
    assert running_versions(config, "storefront", "staging") == {release}


async def test_with_no_grace_left_the_deploy_is_handed_over_and_the_next_start_reconciles_it(
    world: tuple[Config, Path], tmp_path: Path
) -> None:
    config, source = world
    service = with_grace(source, tmp_path, "0s")
    store = tmp_path / "store.db"
    project, cluster = "storefront", "qaprod1"
    release = other_release(config, project, cluster)
    deploy_id = queue_deploy(service, store, project, cluster, release)
    runner = start("runner", config=service, store=store)
    stderr = Stderr(runner)
    try:
        await at_step(store, deploy_id, Step.LAUNCH)
        runner.send_signal(signal.SIGTERM)
        runner.wait(timeout=TIMEOUT)
    finally:
        stop(runner)
    output = stderr.all()
    assert runner.returncode == 0, output
    assert re.search(rf"handing over {deploy_id} to the next start \(not rolled back\)", output)
    async with await Store.open(store) as opened:
        left = await opened.deploy(deploy_id)
        actions = [row.action for row in await opened.audit_rows(deploy_id=deploy_id)]
    assert left is not None and left.state == "running", left  # no rollback, no end recorded
    assert actions[-1] == "deploy.handed_over" and "deploy.finished" not in actions

    restarted = start("runner", config=service, store=store)
    try:

        async def reconciled(opened: Store) -> DeployRecord | None:
            record = await opened.deploy(deploy_id)
            return record if record and record.reconciled_at else None

        record = await store_until(store, reconciled, f"{deploy_id} reconciled")
    finally:
        stop(restarted)
    assert restarted.returncode == 0
    assert record.state == "interrupted" and "rolled back" in record.reason, record.reason
    async with await Store.open(store) as opened:
        actions = [row.action for row in await opened.audit_rows(deploy_id=deploy_id)]
        assert await opened.lock_holder(project, cluster) is None
        assert await opened.verify_audit() is None
    assert actions[-3:] == ["deploy.handed_over", "deploy.interrupted", "deploy.reconciled"]
    served, alive = serving_in(config, project, cluster), live(config, project, cluster)
    assert alive and all(members == alive for members in served.values()), (alive, served)
    assert len(running_versions(config, project, cluster)) == 1


async def test_a_second_sigterm_hands_over_at_once_within_the_grace(
    world: tuple[Config, Path], tmp_path: Path
) -> None:
    config, source = world
    service = with_grace(source, tmp_path, "5m")
    store = tmp_path / "store.db"
    release = other_release(config, "checkout-api", "staging", ("5.2.0", "5.2.3"))
    deploy_id = queue_deploy(service, store, "checkout-api", "staging", release)
    runner = start("runner", config=service, store=store)
    stderr = Stderr(runner)
    try:
        await at_step(store, deploy_id, Step.LAUNCH)
        runner.send_signal(signal.SIGTERM)
        stderr.wait_for("SIGTERM again hands over now")
        runner.send_signal(signal.SIGTERM)
        runner.wait(timeout=TIMEOUT)
    finally:
        stop(runner)
    assert runner.returncode == 0, stderr.all()
    assert f"handing over {deploy_id}" in stderr.all()
    async with await Store.open(store) as opened:
        left = await opened.deploy(deploy_id)
        (row,) = [r for r in await opened.audit_rows(deploy_id=deploy_id)][-1:]
    assert left is not None and left.state == "running"
    assert row.action == "deploy.handed_over" and "(SIGTERM, twice)" in row.reason, row.reason
    # (What the next start does with it: the test above.)


async def test_sighup_reloads_a_good_config_and_keeps_the_old_one_for_a_bad_one(
    world: tuple[Config, Path], tmp_path: Path
) -> None:
    _, source = world
    service = with_grace(source, tmp_path, "1m")
    good = service.read_text()
    assert "parallel = 4" in good
    store = tmp_path / "store.db"
    runner = start("runner", config=service, store=store)
    stderr = Stderr(runner)
    try:
        stderr.wait_for("running queued deploys")
        service.write_text(good + "[runner\n")  # no longer TOML
        runner.send_signal(signal.SIGHUP)
        refused = stderr.wait_for("config reload refused")
        assert f"{service}:" in refused, refused  # file:line
        service.write_text(re.sub(r"(?m)^poll_seconds = .*$", "poll_seconds = 3", good))
        runner.send_signal(signal.SIGHUP)
        unsafe = stderr.wait_for("engine changed")
        assert "config reload refused" in unsafe and "restart" in unsafe, unsafe
        service.write_text(good.replace("parallel = 4", "parallel = 2"))
        runner.send_signal(signal.SIGHUP)
        reloaded = stderr.wait_for("config reloaded")
        assert reloaded.rstrip().endswith(": queue"), reloaded
        assert runner.poll() is None  # still serving all along
    finally:
        stop(runner)
    assert runner.returncode == 0, stderr.all()
    async with await Store.open(store) as opened:
        rows = [row for row in await opened.audit_rows() if row.action == "config"]
    assert [row.outcome for row in rows] == ["first", "changed"]


def children_of(pid: int) -> list[int]:
    """The processes `pid` started that still run (Linux: /proc/PID/task/*/children)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return found


def web(config: Path, store: Path) -> subprocess.Popen[str]:
    """`deploy-console web --allow-actions` on a free loopback port; its banner read."""
    process = start("web", "--allow-actions", "--port", "0", config=config, store=store)
    assert process.stdout is not None
    banner = wait_until(process.stdout.readline, "the web banner", TIMEOUT)
    assert banner.startswith("web serving the console"), banner
    return process


async def test_web_stopped_hands_its_runners_deploy_over_not_rolled_back(
    world: tuple[Config, Path], tmp_path: Path
) -> None:
    config, source = world
    service = with_grace(source, tmp_path, "0s")
    store = tmp_path / "store.db"
    release = other_release(config, "media-service", "qaprod1", ("1.5.0", "1.6.0"))
    deploy_id = queue_deploy(service, store, "media-service", "qaprod1", release)
    server = web(service, store)  # its own runner takes the deploy
    stderr = Stderr(server)
    try:
        await at_step(store, deploy_id, Step.LAUNCH)
        helpers = children_of(server.pid)  # the fleet poller: it must not outlive the server
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=TIMEOUT)
    finally:
        stop(server)
    assert server.returncode == 0, stderr.all()
    assert f"handing over {deploy_id} to the next start (not rolled back)" in stderr.all()
    assert helpers, "the web server started no helper process"
    wait_until(
        lambda: not any(Path(f"/proc/{pid}").exists() for pid in helpers),
        "the web server's helper processes to end with it",
        10,
    )
    async with await Store.open(store) as opened:
        left = await opened.deploy(deploy_id)
        actions = [row.action for row in await opened.audit_rows(deploy_id=deploy_id)]
    assert left is not None and left.state == "running", left  # the next start reconciles it
    assert actions[-1] == "deploy.handed_over" and "deploy.finished" not in actions


async def test_with_a_runner_service_configured_web_runs_no_runner_of_its_own(
    world: tuple[Config, Path], tmp_path: Path
) -> None:
    _, source = world
    service = tmp_path / "service.toml"
    door = tmp_path / "runner.sock"
    service.write_text(source.read_text() + f'\n[runner]\nsocket = "{door}"\n')
    store = tmp_path / "store.db"
    # Queued on the store (with the socket set, `deploy` would hand it to the service's door).
    deploy_id = queue_deploy(source, store, "storefront", "staging", "2.15.0")
    server = web(service, store)
    stderr = Stderr(server)
    try:
        warning = stderr.wait_for("no runner serves")
        assert f"until the runner service ({door}) starts" in warning, warning
    finally:
        stop(server)
    assert server.returncode == 0, stderr.all()
    async with await Store.open(store) as opened:
        record = await opened.deploy(deploy_id)
    assert record is not None and record.state == "queued", record  # left to the service
