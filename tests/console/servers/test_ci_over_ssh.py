"""examples/ci/ as a CI runs them: their own `run:` and `script:` steps, in bash, through the
real OpenSSH client, against `deploy-console sshd` on loopback and a demo world. Only the
connection changes: the host, the port, the key and host key (the secrets), where known_hosts
lives."""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncssh
import pytest
import tomli_w
import yaml

from console.config import Config, load_config, read_toml
from console.servers.sshd import load_host_key
from screens.main import run
from tests.console.servers.test_sshd import listening
from tests.deploy_world import ROOT, quick_seed, running_versions, world_process

EXAMPLES = ROOT / "examples" / "ci"
TIMEOUT = 120.0  # one step, on a loaded host: a deploy in the quick world takes seconds
PROJECT = "checkout-api"
SSH = "ssh -p 2222 "  # how every example step reaches the console

needs_tools = pytest.mark.tools("ssh", "ssh-agent", "ssh-add", "bash")  # CI: fail if missing


@dataclass(frozen=True)
class Console:
    """The world's config, the sshd's port, its store, the keys, a folder for HOME."""

    config: Config
    config_path: Path
    port: int
    store: Path
    keys: dict[str, Path]
    known_hosts: str  # the line a CI secret holds
    env: dict[str, str]  # for local commands: the world's data folder


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    """A quick demo world; `deploy-console sshd` on it with the keys of "ci" (an admin) and
    "intern" (named nowhere in [access]: a viewer)."""
    workdir = tmp_path_factory.mktemp("ci-over-ssh")
    with world_process(quick_seed(workdir, 1), workdir) as world:
        keys = {}
        entries = []
        for user in ("ci", "intern"):
            key = asyncssh.generate_private_key("ssh-ed25519", comment=f"{user}@test")
            keys[user] = workdir / user
            keys[user].write_bytes(key.export_private_key())
            keys[user].chmod(0o600)
            entries.append({"user": user, "key": key.export_public_key().decode()})
        data = read_toml(world.source)
        data["sshd"] = {"keys": entries}
        # ci ships to protected clusters; this test's own account freezes them.
        data["access"] = {"admins": ["ci", pwd.getpwuid(os.getuid()).pw_name]}
        path = workdir / "config.toml"
        path.write_bytes(tomli_w.dumps(data).encode())
        store = workdir / "store.db"
        env = dict(os.environ, DEPLOY_CONSOLE_DATA_DIR=str(workdir / "data"), PYTHONPATH=str(ROOT))
        argv = [sys.executable, "-m", "screens.main", "sshd", "--config", str(path)]
        argv += ["--store", str(store), "--port", "0"]
        log = (workdir / "sshd.stderr").open("wb")
        process = subprocess.Popen(
            argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=log, text=True, env=env,
            start_new_session=True,
        )  # fmt: skip
        try:
            port, _ = listening(process)
            host_key = load_host_key(workdir / "data").export_public_key().decode().strip()
            known = f"[127.0.0.1]:{port} {host_key}"
            yield Console(load_config(path), path, port, store, keys, known, env)
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            log.close()


class Runner:
    """Runs example steps as a CI runner would (bash -eo pipefail, a HOME of its own), with
    the connection substituted, and ends the ssh-agents they start."""

    def __init__(self, console: Console, folder: Path) -> None:
        self.console = console
        self.home = folder / "home"
        self.home.mkdir(parents=True)
        self.agents: list[int] = []
        # A socket path short enough for AF_UNIX, wherever pytest's folders are.
        self.sockets = Path(tempfile.mkdtemp(prefix="ci-agent-"))

    def secrets(self) -> dict[str, str]:
        return {
            "CONSOLE_SSH_KEY": self.console.keys["ci"].read_text(),
            "CONSOLE_KNOWN_HOSTS": self.console.known_hosts,
        }

    def run(self, script: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        ssh = (
            f"ssh -F /dev/null -o UserKnownHostsFile={self.home}/.ssh/known_hosts "
            f"-o BatchMode=yes -p {self.console.port} "
        )
        environment = {
            "PATH": os.environ["PATH"], "HOME": str(self.home), "LANG": "C.UTF-8", **env,
            "CONSOLE_HOST": "127.0.0.1",
        }  # fmt: skip
        done = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script.replace(SSH, ssh)],
            env=environment, capture_output=True, text=True, timeout=TIMEOUT,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
        self.agents += [int(pid) for pid in re.findall(r"Agent pid (\d+)", done.stdout)]
        return done

    def close(self) -> None:
        for pid in self.agents:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        # An agent removes its socket as it ends: whatever is left goes, without a race.
        shutil.rmtree(self.sockets, ignore_errors=True)


@pytest.fixture
def runners(console: Console, tmp_path: Path) -> Iterator[Callable[[str], Runner]]:
    """A CI runner of its own for each name (its own HOME), its agents ended after the test."""
    made: list[Runner] = []

    def make(name: str) -> Runner:
        made.append(Runner(console, tmp_path / name))
        return made[-1]

    try:
        yield make
    finally:
        for ci in made:
            ci.close()


def _reaches_the_console_one_way(script: str) -> str:
    """Every ssh of an example step is `ssh -p 2222 ...`: what the test substitutes."""
    assert len(re.findall(r"(?:^|[\s;|&(])ssh ", script)) == script.count(SSH), script
    return script


def _expression(text: str, values: dict[str, str]) -> str:
    """GitHub's `${{ secrets.X }}` and `${{ inputs.X }}`, the only ones the example uses."""
    return re.sub(r"\$\{\{\s*([\w.]+)\s*\}\}", lambda match: values[match[1]], text)


def _github_steps(runner: Runner) -> list[tuple[str, str, dict[str, str]]]:
    """(name, script, environment) of each `run:` step of the workflow's job, in order."""
    workflow = yaml.safe_load((EXAMPLES / "github-actions.yml").read_text())
    on = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    values = {f"secrets.{name}": value for name, value in runner.secrets().items()}
    for name, spec in on["workflow_dispatch"]["inputs"].items():
        values[f"inputs.{name}"] = str(spec["default"])
    (job,) = workflow["jobs"].values()
    steps = []
    for step in job["steps"]:
        if "run" not in step:
            continue
        env = {**workflow.get("env", {}), **job.get("env", {}), **step.get("env", {})}
        env = {key: _expression(str(value), values) for key, value in env.items()}
        env["SSH_AUTH_SOCK"] = str(runner.sockets / "agent.sock")
        steps.append((step["name"], _reaches_the_console_one_way(step["run"]), env))
    return steps


def _gitlab_jobs(runner: Runner) -> list[tuple[str, str, dict[str, str]]]:
    """(name, script, environment) of each job, in stage order: the default before_script,
    then the job's script, in one shell (as GitLab runs them)."""
    pipeline = yaml.safe_load((EXAMPLES / ".gitlab-ci.yml").read_text())
    before = pipeline.get("default", {}).get("before_script", [])
    env = {**{k: str(v) for k, v in pipeline["variables"].items()}, **runner.secrets()}
    jobs = [
        (name, spec)
        for name, spec in pipeline.items()
        if isinstance(spec, dict) and "script" in spec
    ]
    jobs.sort(key=lambda job: pipeline["stages"].index(job[1]["stage"]))
    return [
        (name, _reaches_the_console_one_way("\n".join([*before, *spec["script"]])), env)
        for name, spec in jobs
    ]


def _pipeline(
    runner: Runner, steps: list[tuple[str, str, dict[str, str]]], **override: str
) -> dict[str, subprocess.CompletedProcess[str]]:
    """Each step until one fails, as a pipeline stops: what each printed and its status."""
    ran = {}
    for name, script, env in steps:
        ran[name] = done = runner.run(script, {**env, **override})
        if done.returncode != 0:
            break
    return ran


def _events(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def _local(console: Console, *argv: str) -> None:
    """A command on the console's host by this test's account (an admin), run in-process."""
    assert run([*argv, "--config", str(console.config_path), "--store", str(console.store)]) == 0


@needs_tools
def test_each_example_pipeline_stops_at_its_failing_gate(
    console: Console, runners: Callable[[str], Runner]
) -> None:
    github, gitlab = runners("github"), runners("gitlab")
    for cluster in ("prod1", "prod2"):
        _local(console, "freeze", cluster, "--reason", "incident 42")
    try:
        with ThreadPoolExecutor(2) as pool:
            at_github = pool.submit(_pipeline, github, _github_steps(github))
            at_gitlab = pool.submit(_pipeline, gitlab, _gitlab_jobs(gitlab), CLUSTER="prod2")
            stopped = {"prod1": at_github.result(), "prod2": at_gitlab.result()}
    finally:
        for cluster in ("prod1", "prod2"):
            _local(console, "unfreeze", cluster)
    assert list(stopped["prod1"]) == ["The console's key and host key", "Gate"]
    assert list(stopped["prod2"]) == ["gate"], "a pipeline goes no further than its gate"
    for cluster, ran in stopped.items():
        gate = list(ran.values())[-1]
        assert gate.returncode == 1, gate.stderr
        said = gate.stdout.splitlines()[-1]
        assert said.startswith(f"{PROJECT} in {cluster}: frozen by "), gate.stdout
        assert "incident 42" in gate.stdout
        assert running_versions(console.config, PROJECT, cluster) == {"5.2.0"}


@needs_tools
def test_both_examples_ship_a_release_at_once_and_a_viewer_is_refused(
    console: Console, runners: Callable[[str], Runner]
) -> None:
    # The GitHub workflow ships to prod1, the GitLab pipeline to prod2, at the same time.
    github, gitlab = runners("github"), runners("gitlab")
    with ThreadPoolExecutor(2) as pool:
        at_github = pool.submit(_pipeline, github, _github_steps(github))
        at_gitlab = pool.submit(_pipeline, gitlab, _gitlab_jobs(gitlab), CLUSTER="prod2")
        shipped = {"prod1": at_github.result(), "prod2": at_gitlab.result()}
    assert list(shipped["prod1"]) == [
        "The console's key and host key",
        "Gate",
        "Deploy",
        "It serves",
    ]
    assert list(shipped["prod2"]) == ["gate", "deploy", "verify"]
    for cluster, ran in shipped.items():
        failed = {
            name: (done.returncode, done.stderr) for name, done in ran.items() if done.returncode
        }
        assert not failed, failed
        gate, deploy, verify = list(ran.values())[-3:]
        assert gate.stdout.endswith(f"{PROJECT} in {cluster}: ok (healthy, 5.2.0)\n"), gate.stdout
        events = _events(deploy.stdout)
        # Who the deploy is on record as: the key's user (the command's own runner or the
        # server's may run it; only the first tells DeployStarted, so read the store).
        with contextlib.closing(sqlite3.connect(f"file:{console.store}?mode=ro", uri=True)) as db:
            (actor,) = db.execute(
                "SELECT actor FROM deploys WHERE id = ?", (events[0]["deploy_id"],)
            ).fetchone()
        assert actor.startswith("ci (ssh SHA256:"), actor
        assert (events[-1]["event"], events[-1]["state"]) == ("DeployFinished", "succeeded")
        # `check --json` prints one (indented) document, after what the pipeline echoes.
        serves = json.loads(verify.stdout[verify.stdout.index("{\n") :])
        assert (serves["ok"], serves["version"]) == (True, "5.2.3")
        assert running_versions(console.config, PROJECT, cluster) == {"5.2.3"}

    # The same commands with intern's key: a viewer, whatever the client claims to be.
    intern = (
        f"ssh -F /dev/null -o UserKnownHostsFile={github.home}/.ssh/known_hosts -o BatchMode=yes "
        f"-o IdentitiesOnly=yes -o IdentityAgent=none -i {console.keys['intern']} "
        f"-o SetEnv=DEPLOY_CONSOLE_USER=ci -p {console.port} intern@127.0.0.1 "
    )
    deploy = github.run(f"{intern} deploy {PROJECT} staging 5.2.0 --json", {})
    assert deploy.returncode == 3, deploy.stderr
    assert "refused: intern is a viewer in staging: may not deploy" in deploy.stderr
    deployed = _events(shipped["prod1"]["Deploy"].stdout)[-1]["deploy_id"]
    rollback = github.run(f"{intern} rollback {deployed} --yes --json", {})
    assert rollback.returncode == 3, rollback.stderr
    assert "refused: intern is a viewer in prod1: may not deploy" in rollback.stderr
    assert running_versions(console.config, PROJECT, "prod1") == {"5.2.3"}


@needs_tools
def test_over_ssh_only_console_commands_run_and_never_a_shell(
    console: Console, runners: Callable[[str], Runner]
) -> None:
    runner = runners("ci")
    ci = (
        f"{SSH}-o IdentitiesOnly=yes -o IdentityAgent=none -i {console.keys['ci']} "
        'ci@"$CONSOLE_HOST" '
    )
    home_ssh = runner.home / ".ssh"
    home_ssh.mkdir()
    (home_ssh / "known_hosts").write_text(console.known_hosts + "\n")
    for command, status, said in [
        ("id", 2, "deploy-console: 'id' is not a command over SSH: run one of deploy,"),
        ("config check", 2, "deploy-console: 'config' is not a command over SSH"),
        ("runner", 2, "deploy-console: 'runner' is not a command over SSH"),
        ("'sh -c id'", 2, "deploy-console: 'sh' is not a command over SSH"),
        ("'check checkout-api staging; id'", 2, "unrecognized arguments: id"),
        ("'status $(id)'", 2, "unrecognized arguments: $(id)"),
    ]:
        done = runner.run(f"{ci}{command}", {})
        assert done.returncode == status, (command, done.stderr)
        assert said in done.stderr and "uid=" not in done.stdout + done.stderr, done.stderr
