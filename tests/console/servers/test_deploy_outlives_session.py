"""A deploy belongs to a runner, never to the session that asked for it: the real OpenSSH
client killed mid-deploy, or the terminal of a local console closed, changes nothing about it.
(A file of its own: its world runs beside the other deploy tests' under pytest-xdist.)"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import re
import shlex
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import asyncssh
import pytest
import tomli_w

from console.config import Config, load_config, read_toml
from console.deploy.services import deploy_services
from console.events import DeployFinished, OutputLine
from console.model import DEPLOY_STEPS, DeployRequest, DeployState
from console.queue.release_queue import DeployQueue
from console.queue.runner import Runner
from console.servers.runner_service import IDLE_SECONDS, DetachedRunners, runner_serves
from console.store import AuditRow, DeployRecord, StepRecord, Store
from screens.main import runner_argv
from tests.console.servers.processes import alive
from tests.console.servers.test_sshd import listening
from tests.deploy_world import ROOT, quick_seed, running_versions, world_process
from tests.waiting import wait_until

PROJECT, CLUSTER = "checkout-api", "staging"
# What a screen takes to show after a key: seconds, far more on a loaded 2-core host.
SCREEN_TIMEOUT = 60.0
END_TIMEOUT = 150.0  # a deploy with nobody left to run it never ends: this is the verdict
ENDED = ("succeeded", "rolled_back")

needs_tools = pytest.mark.tools("ssh", "tmux")  # in CI a missing tool fails (conftest)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Config, Path, Path]]:
    """The demo world in its own process (registration and draining take 3 s each: a deploy
    lasts long enough to be cut in the middle); a config for it with alice's SSH key; alice's
    private key."""
    workdir = tmp_path_factory.mktemp("outlives-world")
    with world_process(quick_seed(workdir, 3), workdir) as config:
        key = asyncssh.generate_private_key("ssh-ed25519", comment="alice@test")
        key_path = workdir / "alice"
        key_path.write_bytes(key.export_private_key())
        key_path.chmod(0o600)
        data = read_toml(config.source)
        data["sshd"] = {"keys": [{"user": "alice", "key": key.export_public_key().decode()}]}
        # A dead console's lock is noticed quickly (today's code has no one to notice it).
        data.setdefault("engine", {})["lock_stale_seconds"] = 3
        path = workdir / "config.toml"
        path.write_bytes(tomli_w.dumps(data).encode())
        yield load_config(path), path, key_path


def _cli(config_path: Path, store: Path) -> list[str]:
    """The command line of `deploy-console` on the world's config and the test's store."""
    return [
        sys.executable,
        "-m",
        "screens.main",
        "--config",
        str(config_path),
        "--store",
        str(store),
    ]


def _read(store: Path) -> tuple[list[DeployRecord], dict[str, list[StepRecord]], list[AuditRow]]:
    """The pair's deploys (newest first), their steps, and the audit, read with sqlite."""

    async def go() -> tuple[list[DeployRecord], dict[str, list[StepRecord]], list[AuditRow]]:
        if not store.is_file():
            return [], {}, []
        async with await Store.open(store) as opened:
            deploys = await opened.deploys(project=PROJECT, cluster=CLUSTER, limit=20)
            steps = {record.id: await opened.steps(record.id) for record in deploys}
            return deploys, steps, await opened.audit_rows()

    return asyncio.run(go())


def _versions(config: Config) -> set[str]:
    return running_versions(config, PROJECT, CLUSTER)


class Tmux:
    """A tmux server of the test's own (its socket in the test's folder), one session running
    `command` on a 160x45 terminal."""

    def __init__(self, folder: Path, name: str, command: str, env: dict[str, str]) -> None:
        self.base = ["tmux", "-S", str(folder / f"{name}.tmux"), "-f", "/dev/null"]
        self.name = name
        subprocess.run(
            [*self.base, "new-session", "-d", "-s", name, "-x", "160", "-y", "45", command],
            check=True,
            env=env,
        )

    def wait_for(self, *texts: str, what: str, timeout: float = SCREEN_TIMEOUT) -> None:
        """Until one of `texts` is on the screen (the screen is in the error if none comes)."""
        try:
            wait_until(lambda: any(text in self.screen() for text in texts), what, timeout)
        except AssertionError as error:
            raise AssertionError(f"{error}; the screen:\n{self.screen()}") from None

    def screen(self) -> str:
        return subprocess.run(
            [*self.base, "capture-pane", "-p", "-t", self.name], capture_output=True, text=True
        ).stdout

    def keys(self, *names: str) -> None:
        subprocess.run([*self.base, "send-keys", "-t", self.name, *names], check=True)

    def pane_pid(self) -> int:
        out = subprocess.run(
            [*self.base, "list-panes", "-t", self.name, "-F", "#{pane_pid}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return int(out.split()[0])

    def kill_server(self) -> None:
        subprocess.run([*self.base, "kill-server"], capture_output=True)


def _start_deploy(tmux: Tmux, release: str) -> None:
    """From the dashboard: checkout-api in staging, the deploy dialog, `release`, confirm."""
    tmux.wait_for("storefront", what="the dashboard")
    tmux.wait_for("refreshed", what="the first refresh")
    tmux.keys("Down", "Right")  # checkout-api in staging
    tmux.keys("d")

    def planned() -> str | None:
        """The release whose plan the dialog shows (the one under the cursor)."""
        found = re.search(rf"Plan {PROJECT} .* → (\S+) in {CLUSTER}", tmux.screen())
        return found[1] if found else None

    wait_until(planned, "the deploy dialog's plan", SCREEN_TIMEOUT)
    for _ in range(3):  # newest first: 5.2.3, 5.2.0, 5.1.0
        shown = planned()
        if shown == release:
            break
        tmux.keys("Down")
        wait_until(partial(_moved_on, planned, shown), "the next plan", SCREEN_TIMEOUT)
    tmux.wait_for(f"→ {release} in {CLUSTER}", what=f"the plan of {release}")
    # A release with warnings (older than the one running: a downgrade) is deployed only
    # "anyway" (ctrl+y); the warnings are read once the store has answered.
    tmux.wait_for("running now in", what="the release's warnings", timeout=SCREEN_TIMEOUT)
    if "WARNING" in tmux.screen():
        tmux.keys("C-y")
        tmux.wait_for("▐X▌", what='"deploy anyway" ticked')
    tmux.keys("C-s")


def _moved_on(planned: Callable[[], str | None], shown: str | None) -> bool:
    return planned() not in (None, shown)


def _running(store: Path) -> DeployRecord | None:
    """The pair's deploy once it runs and has started a step."""
    deploys, steps, _ = _read(store)
    return next((r for r in deploys if r.state == "running" and steps[r.id]), None)


def _assert_ended_on_one_version(config: Config, store: Path, deploy_id: str) -> DeployRecord:
    """The deploy ends (succeeded or rolled back) with every step and its audit recorded, and
    the pair's live instances all run one version."""

    def ended() -> DeployRecord | None:
        deploys, _, _ = _read(store)
        return next((r for r in deploys if r.id == deploy_id and r.state in ENDED), None)

    try:
        wait_until(ended, f"deploy {deploy_id} to end", END_TIMEOUT)
    except AssertionError:
        states = [(r.id, r.state, r.reason) for r in _read(store)[0]]
        raise AssertionError(
            f"deploy {deploy_id} did not end after its session went: {states}; "
            f"versions served: {_versions(config)}"
        ) from None
    deploys, steps, audit = _read(store)
    (record,) = [r for r in deploys if r.id == deploy_id]
    assert all(step.state != "running" for step in steps[deploy_id]), steps[deploy_id]
    if record.state == "succeeded":
        assert [s.step for s in steps[deploy_id]] == [s.value for s in DEPLOY_STEPS]
    actions = [row.action for row in audit if row.deploy_id == deploy_id]
    assert "queue.claim" in actions and "deploy.finished" in actions, actions
    versions = _versions(config)
    assert len(versions) == 1, versions
    return record


def _release_other_than(config: Config) -> str:
    (current,) = _versions(config)
    return "5.2.0" if current != "5.2.0" else "5.2.3"


@dataclasses.dataclass(frozen=True)
class Deploying:
    """What a test that deploys through a real `deploy-console` has of its own: a store, the
    release to deploy, the command line on both, an environment with its own data folder."""

    config: Config
    store: Path
    release: str
    cli: list[str]
    env: dict[str, str]


@pytest.fixture
def deploying(world: tuple[Config, Path, Path], tmp_path: Path) -> Deploying:
    config, config_path, _ = world
    store = tmp_path / "store.db"
    env = dict(os.environ, DEPLOY_CONSOLE_DATA_DIR=str(tmp_path / "data"), PYTHONPATH=str(ROOT))
    return Deploying(config, store, _release_other_than(config), _cli(config_path, store), env)


def _from_root(argv: list[str]) -> str:
    """The shell line a tmux pane runs: `argv` from the repository's root, as the pane's
    process itself (`exec`)."""
    return f"cd {shlex.quote(str(ROOT))} && exec {shlex.join(argv)}"


# -- 1. the SSH door ----------------------------------------------------------------------


@pytest.fixture
def sshd(world: tuple[Config, Path, Path], tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """`deploy-console sshd` as its own process on the world: (port, store)."""
    _, config_path, _ = world
    store = tmp_path / "store.db"
    env = dict(os.environ, DEPLOY_CONSOLE_DATA_DIR=str(tmp_path / "data"), PYTHONPATH=str(ROOT))
    argv = [sys.executable, "-m", "screens.main", "sshd", "--config", str(config_path)]
    argv += ["--store", str(store), "--port", "0"]
    log = (tmp_path / "sshd.stderr").open("wb")
    process = subprocess.Popen(
        argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=log, text=True, env=env,
        start_new_session=True,
    )  # fmt: skip
    try:
        yield listening(process)[0], store
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        log.close()


@needs_tools
def test_a_deploy_ends_on_one_version_after_its_ssh_client_is_killed(
    world: tuple[Config, Path, Path], sshd: tuple[int, Path], tmp_path: Path
) -> None:
    config, _, key = world
    port, store = sshd
    release = _release_other_than(config)
    ssh = [
        "ssh", "-F", "/dev/null", "-i", str(key), "-p", str(port),
        "-o", f"UserKnownHostsFile={tmp_path / 'known_hosts'}",
        "-o", "StrictHostKeyChecking=accept-new", "-o", "IdentitiesOnly=yes",
        "-o", "BatchMode=yes", "alice@127.0.0.1",
    ]  # fmt: skip
    # `exec`: the pane's process is the ssh client itself.
    tmux = Tmux(
        tmp_path,
        "ssh",
        f"exec {shlex.join(ssh)}",
        dict(os.environ, TERM="xterm-256color"),
    )
    try:
        ssh_pid = tmux.pane_pid()
        _start_deploy(tmux, release)
        running = wait_until(lambda: _running(store), "the deploy to run", SCREEN_TIMEOUT)
        cut_at = datetime.now(UTC)
        os.kill(ssh_pid, signal.SIGKILL)  # the client vanishes mid-deploy
    finally:
        tmux.kill_server()
    record = _assert_ended_on_one_version(config, store, running.id)
    assert record.finished_at is not None and record.finished_at > cut_at, "cut after its end"
    if record.state == "succeeded":
        assert _versions(config) == {release}


# -- 2. the local console's terminal --------------------------------------------------------


def _runner_pids(store: Path) -> list[int]:
    """The detached runners' pids, from what they print first ("runner host:pid:xx: ...")."""
    log = store.with_name(f"{store.name}.runner.log")
    if not log.is_file():
        return []
    return [
        int(found[1])
        for line in log.read_text().splitlines()
        if (found := re.search(r"runner [^:\s]+:(\d+):\S+: running queued deploys", line))
    ]


@needs_tools
def test_a_deploy_ends_on_one_version_after_its_consoles_terminal_is_closed(
    deploying: Deploying, tmp_path: Path
) -> None:
    config, store, release = deploying.config, deploying.store, deploying.release
    # The terminal's size is tmux's (Textual would take COLUMNS and LINES over it).
    inherited = {k: v for k, v in deploying.env.items() if k not in ("COLUMNS", "LINES")}
    env = dict(inherited, TERM="xterm-256color")
    tmux = Tmux(tmp_path, "tui", _from_root(deploying.cli), env)
    try:
        console_pid = tmux.pane_pid()
        _start_deploy(tmux, release)
        running = wait_until(lambda: _running(store), "the deploy to run", SCREEN_TIMEOUT)
        cut_at = datetime.now(UTC)
        tmux.kill_server()  # the terminal closes: SIGHUP to the console
        wait_until(lambda: not alive(console_pid), "the console to end", SCREEN_TIMEOUT)
        record = _assert_ended_on_one_version(config, store, running.id)
        assert record.finished_at is not None and record.finished_at > cut_at, "cut after its end"
        if record.state == "succeeded":
            assert _versions(config) == {release}
        # The runner the console started ends once nothing is left to run.
        wait_until(
            lambda: not any(alive(pid) for pid in _runner_pids(store)),
            "the detached runner to exit when idle",
            SCREEN_TIMEOUT,
        )
    finally:
        tmux.kill_server()
        for pid in _runner_pids(store):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)


# -- the runner behind each door --------------------------------------------------------------


def test_web_runs_the_deploys_its_sessions_queue(deploying: Deploying) -> None:
    # A browser's console only queues and follows (as an SSH session's does): the server's
    # runner (with --allow-actions: sessions may queue) runs the deploy, no session attached.
    config, store, release = deploying.config, deploying.store, deploying.release
    base, env = deploying.cli, deploying.env
    queued = subprocess.run(
        [*base, "deploy", "--anyway", PROJECT, CLUSTER, release, "--no-wait", "--json"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=SCREEN_TIMEOUT,
    )  # fmt: skip
    assert queued.returncode == 0, queued.stderr
    deploy_id = json.loads(queued.stdout)["deploy_id"]
    web = subprocess.Popen(
        [*base, "web", "--allow-actions", "--port", "0"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        assert web.stdout is not None
        assert web.stdout.readline().startswith("web serving the console")
        record = _assert_ended_on_one_version(config, store, deploy_id)
        assert record.state == "succeeded", record.reason
        assert _versions(config) == {release}
    finally:
        web.send_signal(signal.SIGTERM)
        try:
            web.wait(timeout=SCREEN_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(web.pid, signal.SIGKILL)
            web.wait()
    assert web.returncode == 0


async def test_a_console_starts_a_runner_only_when_none_serves_its_store(
    world: tuple[Config, Path, Path], tmp_path: Path
) -> None:
    store = tmp_path / "store.db"
    config = world[0]
    runners = DetachedRunners(store, runner_argv(config, store))
    assert not runner_serves(store)
    assert await runners.ensure()  # none serves: it starts one
    (process,) = runners.started
    try:
        await asyncio.to_thread(
            wait_until, lambda: runner_serves(store), "the runner to serve", SCREEN_TIMEOUT
        )
        assert not await runners.ensure()  # one serves: no second
        assert len(runners.started) == 1
        # Nothing queued: it ends by itself after IDLE_SECONDS, and no runner serves.
        code = await asyncio.to_thread(process.wait, IDLE_SECONDS + SCREEN_TIMEOUT)
        assert code == 0
        assert not runner_serves(store)
        assert "idle, exiting" in store.with_name("store.db.runner.log").read_text()
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait()


async def test_a_console_that_only_follows_shows_the_output_of_the_runner_that_runs_it(
    world: tuple[Config, Path, Path], tmp_path: Path
) -> None:
    # A console or session that does not run its deploy still shows the lines the instances
    # printed: the runner that runs it flushes them to the store, the follower reads them.
    config = world[0]
    store = tmp_path / "store.db"
    release = await asyncio.to_thread(_release_other_than, config)
    async with deploy_services(config, store) as runs, deploy_services(config, store) as follows:
        runner = Runner(runs.engine, DeployQueue(runs.store, config))
        follower = Runner(follows.engine, DeployQueue(follows.store, config), executes=False)
        record = await follower.enqueue(DeployRequest(PROJECT, CLUSTER, release, "tester"))
        running = asyncio.create_task(runner.run_forever())
        try:
            async with asyncio.timeout(END_TIMEOUT):
                events = [event async for event in follower.follow(record.id, output=True)]
        finally:
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running
    assert not follower.running_here
    lines = [event.text for event in events if isinstance(event, OutputLine)]
    assert any(f"{PROJECT} {release} started" in line for line in lines), lines
    finished = events[-1]
    assert isinstance(finished, DeployFinished) and finished.state is DeployState.SUCCEEDED


@needs_tools
def test_a_command_line_deploy_goes_on_to_its_end_when_its_terminal_closes(
    deploying: Deploying, tmp_path: Path
) -> None:
    """`deploy` runs its deploy in its own process: a closed terminal (SIGHUP) does not stop
    it half-way; it finishes, recorded, with its output to nowhere."""
    config, store, release = deploying.config, deploying.store, deploying.release
    command = [*deploying.cli, "deploy", "--anyway", PROJECT, CLUSTER, release]
    tmux = Tmux(tmp_path, "cli", _from_root(command), deploying.env)
    try:
        deploy_pid = tmux.pane_pid()
        running = wait_until(lambda: _running(store), "the deploy to run", SCREEN_TIMEOUT)
        cut_at = datetime.now(UTC)
        tmux.kill_server()  # the terminal closes: SIGHUP to the command
        record = _assert_ended_on_one_version(config, store, running.id)
        assert record.state == "succeeded", record.reason
        assert record.finished_at is not None and record.finished_at > cut_at, "cut after its end"
        assert _versions(config) == {release}
        wait_until(lambda: not alive(deploy_pid), "the command to end", SCREEN_TIMEOUT)
    finally:
        tmux.kill_server()
