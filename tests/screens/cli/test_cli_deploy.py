"""`deploy`, `rollback` and `releases` as CI runs them: the real command in a child process.

One world for the module (moto in a child process, its SSH jump host); every test that
deploys uses a project+cluster pair no other test touches, and a store of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pty
import pwd
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from console.config import Config, read_toml
from console.store import DeployRecord, Store
from tests.conftest import DEMO_CONFIG, ROOT, run_python
from tests.deploy_world import (
    client,
    instances,
    live,
    quick_seed,
    running_versions,
    serving_in,
    watching,
    world_process,
)

ERROR_PREFIX = "deploy-console: error: "
COMMAND_TIMEOUT = 120.0


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Config]:
    workdir = tmp_path_factory.mktemp("cli-deploy-world")
    # No bake, registration and drains of 1 s: what the tests here do not test, made quick.
    with world_process(quick_seed(workdir, 1), workdir) as config:
        yield config


def command(*args: str, config: Path, store: Path | None = None) -> list[str]:
    argv = [sys.executable, "-m", "screens.main", *args, "--config", str(config)]
    return argv + (["--store", str(store)] if store is not None else [])


def cli(*args: str, config: Path, store: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command(*args, config=config, store=store),
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
    )


def events_of(stdout: str) -> list[dict[str, Any]]:
    """Every line of `--json` output is one JSON event; the last one ends the deploy."""
    events = [json.loads(line) for line in stdout.splitlines()]
    assert events, "no events"
    assert [e["event"] for e in events].count("DeployFinished") == 1
    assert events[-1]["event"] == "DeployFinished", events[-1]
    return events


def steps_of(events: list[dict[str, Any]]) -> dict[str, str]:
    return {e["step"]: e["state"] for e in events if e["event"] == "StepFinished"}


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def launched_by(config: Config, project: str, cluster: str, deploy_id: str) -> dict[str, str]:
    """Instance id -> state of the instances one deploy launched."""
    return {
        instance_id: raw["State"]["Name"]
        for instance_id, raw in instances(config, project, cluster).items()
        if {"Key": "DeployId", "Value": deploy_id} in raw["Tags"]
    }


def with_deploy(config: Config, project: str, destination: Path, **changes: str) -> Path:
    """A copy of the world's config file with some of a project's deploy settings changed."""
    data = read_toml(config.source)
    for entry in data["projects"]:
        if entry["name"] == project:
            entry["deploy"].update(changes)
    with destination.open("wb") as output:
        tomli_w.dump(data, output)
    return destination


# -- deploys that run to their end ------------------------------------------------------------


async def stored_log(store: Path, deploy_id: str) -> list[Any]:
    async with await Store.open(store, create=False) as opened:
        return await opened.deploy_log(deploy_id)


def test_deploy_json_succeeds_and_never_shows_a_secret(world: Config, tmp_path: Path) -> None:
    ssm = client(world, "staging", "ssm")
    secret = ssm.get_parameter(Name="/storefront/db-password", WithDecryption=True)["Parameter"][
        "Value"
    ]
    assert len(secret) >= 8
    # The instance prints its environment file: the CLI must show the secret masked.
    config = with_deploy(
        world, "storefront", tmp_path / "loud.toml", configure="cat app.env; sh app/bin/configure"
    )
    store = tmp_path / "store.db"
    old = live(world, "storefront", "staging")
    route53 = client(world, "staging", "route53")  # (dns) a deploy never changes DNS
    zone = route53.list_hosted_zones()["HostedZones"][0]["Id"]
    records = route53.list_resource_record_sets(HostedZoneId=zone)["ResourceRecordSets"]
    with watching(world, "storefront", "staging"):
        result = cli(
            "deploy", "storefront", "staging", "2.14.1", "--json", "--anyway", config=config,
            store=store,
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    # A downgrade, confirmed with --anyway: said on stderr, stdout stays JSON.
    assert "WARNING: release 2.14.1" in result.stderr
    assert "  ! is older than 2.15.0 (a downgrade)\n" in result.stderr
    events = events_of(result.stdout)
    assert events[-1]["state"] == "succeeded", events[-1]
    kinds = {e["event"] for e in events}
    assert kinds == {
        "DeployQueued",
        "DeployWaiting",
        "DeployStarted",
        "StepStarted",
        "StepFinished",
        "OutputLine",
        "DeployFinished",
    }
    started = next(e for e in events if e["event"] == "DeployStarted")
    assert (started["project"], started["cluster"], started["release"]) == (
        "storefront",
        "staging",
        "2.14.1",
    )
    assert set(steps_of(events).values()) == {"succeeded"}
    assert "terminate" in steps_of(events)
    printed = [e["text"] for e in events if e["event"] == "OutputLine"]
    assert "DB_PASSWORD=********" in printed, "the instance printed app.env, masked"
    assert secret not in result.stdout and secret not in result.stderr
    assert all(secret.encode() not in path.read_bytes() for path in tmp_path.glob("store.db*"))
    # The store keeps the deploy's output, masked as printed (the history screen shows it).
    log = asyncio.run(stored_log(store, started["deploy_id"]))
    assert "DB_PASSWORD=********" in [line.line for line in log]
    assert {line.source for line in log} >= {"console"}

    assert running_versions(world, "storefront", "staging") == {"2.14.1"}
    assert not old & live(world, "storefront", "staging")
    assert route53.list_resource_record_sets(HostedZoneId=zone)["ResourceRecordSets"] == records
    listed = cli("releases", "storefront", "--json", config=world.source)
    assert listed.returncode == 0, listed.stderr
    clusters = {r["version"]: r["clusters"] for r in json.loads(listed.stdout)["releases"]}
    assert "staging" in clusters["2.14.1"]
    assert "staging" not in clusters["2.15.0"]


def test_broken_release_rolls_back_and_the_old_keep_serving(world: Config, tmp_path: Path) -> None:
    old = live(world, "storefront", "qaprod1")
    assert old
    with watching(world, "storefront", "qaprod1"):
        result = cli(
            "deploy", "storefront", "qaprod1", "2.16.0", "--json",
            config=world.source, store=tmp_path / "store.db",
        )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    events = events_of(result.stdout)
    finished = events[-1]
    assert finished["state"] == "rolled_back", finished
    assert "health command failed" in finished["reason"]
    assert steps_of(events)["configure"] == "failed"
    assert steps_of(events)["rollback"] == "succeeded"
    assert "register" not in steps_of(events)
    assert live(world, "storefront", "qaprod1") == old
    assert serving_in(world, "storefront", "qaprod1") == {"storefront-qaprod1": old}
    launched = launched_by(world, "storefront", "qaprod1", finished["deploy_id"])
    assert launched and set(launched.values()) <= {"shutting-down", "terminated"}


def test_rollback_of_a_finished_deploy_runs_the_previous_release(
    world: Config, tmp_path: Path
) -> None:
    # prod2 is protected (and in another region): both commands need --yes.
    store = tmp_path / "store.db"
    assert running_versions(world, "notifications-worker", "prod2") == {"7.1.0"}
    with watching(world, "notifications-worker", "prod2"):
        first = cli(
            "deploy", "notifications-worker", "prod2", "7.1.1", "--yes", "--json",
            config=world.source, store=store,
        )  # fmt: skip
    assert first.returncode == 0, first.stderr
    deployed = events_of(first.stdout)[-1]
    assert deployed["state"] == "succeeded", deployed
    assert running_versions(world, "notifications-worker", "prod2") == {"7.1.1"}

    refused = cli("rollback", deployed["deploy_id"], config=world.source, store=store)
    assert refused.returncode == 2
    assert "prod2 is protected" in one_line_error(refused)
    assert running_versions(world, "notifications-worker", "prod2") == {"7.1.1"}

    with watching(world, "notifications-worker", "prod2"):
        back = cli(
            "rollback", deployed["deploy_id"], "--yes", "--json", config=world.source, store=store
        )
    assert back.returncode == 0, back.stderr
    events = events_of(back.stdout)
    assert events[-1]["state"] == "succeeded", events[-1]
    started = next(e for e in events if e["event"] == "DeployStarted")
    assert started["release"] == "7.1.0"
    assert running_versions(world, "notifications-worker", "prod2") == {"7.1.0"}


# -- refused before anything changes ------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ("shop staging 1.0.0", "unknown project 'shop'"),
        ("storefront prod3 2.15.0", "unknown cluster 'prod3'"),
        ("search-api qaprod1 c93a5e8", "search-api is not configured in cluster qaprod1"),
        ("storefront staging 9.9.9", "unknown release '9.9.9' for storefront in staging"),
        ("storefront prod1 2.15.0", "cluster prod1 is protected: pass --yes"),
        ("checkout-api prod2 5.2.3", "cluster prod2 is protected: pass --yes"),
    ],
    ids=["project", "cluster", "pair", "release", "protected-prod1", "protected-prod2"],
)
def test_bad_input_is_one_line_exit_2_and_creates_nothing(
    world: Config, tmp_path: Path, arguments: str, expected: str
) -> None:
    store = tmp_path / "store.db"
    before = {name: live(world, name, "prod1") for name in ("storefront", "checkout-api")}
    result = cli("deploy", *arguments.split(), "--json", config=world.source, store=store)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    line = one_line_error(result)
    assert line.startswith(ERROR_PREFIX) and expected in line, line
    assert list(tmp_path.iterdir()) == [], "no store file, not even an empty one"
    assert {name: live(world, name, "prod1") for name in before} == before


def test_malformed_config_is_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[[clusters]]\nname = "staging"\nregion = \n')
    store = tmp_path / "store.db"
    result = cli("deploy", "storefront", "staging", "2.15.0", config=bad, store=store)
    assert result.returncode == 2
    assert result.stdout == ""
    assert one_line_error(result).startswith(ERROR_PREFIX + str(bad))
    assert not store.exists()


def test_bad_input_answers_before_the_engine_is_imported(tmp_path: Path) -> None:
    """An unknown project is refused from the config alone: no boto3, no engine, no store."""
    store = tmp_path / "store.db"
    probe = (
        "import json, sys\n"
        "from screens.main import run\n"
        f"code = run(['deploy', 'shop', 'staging', '1.0', '--config', {str(DEMO_CONFIG)!r},"
        f" '--store', {str(store)!r}])\n"
        "heavy = [m for m in ('boto3', 'botocore', 'asyncssh', 'aiosqlite',"
        " 'console.deploy.engine',"
        " 'console.store') if m in sys.modules]\n"
        "print(json.dumps({'code': code, 'heavy': heavy}))\n"
    )
    result = run_python(probe, timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"code": 2, "heavy": []}
    assert "unknown project 'shop'" in result.stderr
    assert not store.exists()


def test_rollback_of_an_unknown_deploy_is_exit_2(world: Config, tmp_path: Path) -> None:
    store = tmp_path / "store.db"
    result = cli("rollback", "d-nope", "--yes", config=world.source, store=store)
    assert result.returncode == 2
    assert "unknown deploy 'd-nope'" in one_line_error(result)
    assert not store.exists()


async def test_a_busy_pair_queues_the_deploy_and_says_why(world: Config, tmp_path: Path) -> None:
    """`--no-wait` queues and exits 0 with the id; `queue --json` names what it waits for;
    `queue cancel` takes it out before it ever touched AWS."""
    store = tmp_path / "store.db"
    async with await Store.open(store) as opened:
        await opened.acquire_lock("media-service", "qaprod1", "d-held", "alice")
    old = live(world, "media-service", "qaprod1")
    result = cli(
        "deploy", "media-service", "qaprod1", "1.5.0", "--json", "--no-wait", "--anyway",
        config=world.source, store=store,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (queued,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert queued["event"] == "DeployQueued"
    deploy_id = queued["deploy_id"]

    listed = cli("queue", "--json", config=world.source, store=store)
    assert listed.returncode == 0, listed.stderr
    (entry,) = json.loads(listed.stdout)["deploys"]
    assert (entry["id"], entry["state"], entry["actor"]) == (
        deploy_id,
        "queued",
        pwd.getpwuid(os.getuid()).pw_name,
    )
    assert entry["waiting"] == "behind d-held (running) on media-service in qaprod1"

    cancelled = cli("queue", "cancel", deploy_id, config=world.source, store=store)
    assert cancelled.returncode == 0, cancelled.stderr
    assert f"cancelled {deploy_id}" in cancelled.stdout
    again = cli("queue", "cancel", deploy_id, config=world.source, store=store)
    assert again.returncode == 2 and "is cancelled: nothing to cancel" in one_line_error(again)
    assert live(world, "media-service", "qaprod1") == old
    async with await Store.open(store) as opened:
        record = await opened.deploy(deploy_id)
        assert record is not None and record.state == "cancelled"
        assert await opened.steps(deploy_id) == []  # it never started


async def test_a_waiting_deploy_runs_when_the_pair_frees(world: Config, tmp_path: Path) -> None:
    store = tmp_path / "store.db"
    async with await Store.open(store) as opened:
        await opened.acquire_lock("admin-portal", "staging", "d-held", "alice")
    process = started(
        "deploy",
        "admin-portal",
        "staging",
        "3.8.0",
        "--json",
        "--anyway",
        config=world.source,
        store=store,
    )
    try:
        stream = EventStream(process)
        waiting = stream.until(lambda e: e["event"] == "DeployWaiting" and e["reason"])
        assert waiting["reason"] == "behind d-held (running) on admin-portal in staging"
        async with await Store.open(store) as opened:
            await opened.release_lock("admin-portal", "staging", "d-held")
        with watching(world, "admin-portal", "staging"):
            events = stream.rest()
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
    assert process.returncode == 0, events[-3:]
    assert events[-1]["state"] == "succeeded"
    assert running_versions(world, "admin-portal", "staging") == {"3.8.0"}


# -- release warnings and promotions --------------------------------------------------------


def test_a_release_already_running_is_refused_without_anyway_in_one_line(
    world: Config, tmp_path: Path
) -> None:
    store = tmp_path / "store.db"
    result = cli("deploy", "checkout-api", "staging", "5.2.3", "--json", config=world.source,
                 store=store)  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert one_line_error(result) == (
        f"{ERROR_PREFIX}release 5.2.3 already runs in staging (a redeploy: new instances): "
        "pass --anyway to deploy it"
    )
    assert result.stdout == ""
    assert not store.exists()


def answered_at_a_terminal(
    answer: str, *args: str, config: Path, store: Path
) -> subprocess.CompletedProcess[str]:
    """The command run with its input from a terminal (a pty) on which a person types
    `answer` and Enter; its output and errors piped."""
    main, terminal = pty.openpty()
    try:
        os.write(main, f"{answer}\n".encode())
        return subprocess.run(
            command(*args, config=config, store=store),
            cwd=ROOT,
            stdin=terminal,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
        )
    finally:
        os.close(terminal)
        os.close(main)


def test_a_warned_release_at_a_terminal_asks_and_anything_but_yes_deploys_nothing(
    world: Config, tmp_path: Path
) -> None:
    store = tmp_path / "store.db"
    before = running_versions(world, "checkout-api", "staging")
    result = answered_at_a_terminal(
        "no", "deploy", "checkout-api", "staging", "5.2.3", config=world.source, store=store
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    # The person saw the warning and the question before answering.
    assert "WARNING: release 5.2.3" in result.stderr
    assert "  ! already runs in staging (a redeploy: new instances)" in result.stderr
    assert "Deploy 5.2.3 anyway? Type yes to deploy it: " in result.stdout
    assert result.stderr.splitlines()[-1] == (
        f"{ERROR_PREFIX}release 5.2.3 not confirmed: nothing deployed"
    )
    assert not store.exists(), "nothing was queued or recorded"
    assert running_versions(world, "checkout-api", "staging") == before


async def test_a_release_that_failed_lately_is_refused_even_with_yes(
    world: Config, tmp_path: Path
) -> None:
    """--yes confirms the protected cluster, not the warnings: those need --anyway."""
    store = tmp_path / "store.db"
    async with await Store.open(store) as opened:
        await opened.create_deploy(
            DeployRecord(id="d-bad", project="checkout-api", cluster="qaprod1", release="5.2.3",
                         actor="bob")
        )  # fmt: skip
        await opened.set_deploy_state("d-bad", "failed", reason="health gate: 0/1 healthy; kept")
        failed = await opened.deploy("d-bad")
    assert failed is not None and failed.finished_at is not None
    old = live(world, "checkout-api", "prod2")
    result = cli("deploy", "checkout-api", "prod2", "5.2.3", "--yes", config=world.source,
                 store=store)  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert one_line_error(result) == (
        f"{ERROR_PREFIX}release 5.2.3 failed in qaprod1 on {failed.finished_at:%Y-%m-%d %H:%M} "
        "(health gate: 0/1 healthy): pass --anyway to deploy it"
    )
    assert live(world, "checkout-api", "prod2") == old
    async with await Store.open(store) as opened:
        assert [d.id for d in await opened.deploys()] == ["d-bad"]  # nothing queued


def test_promote_skips_the_stages_that_run_the_release_unless_again(
    world: Config, tmp_path: Path
) -> None:
    """checkout-api 5.2.3 runs in staging and qaprod1: only prod1+prod2 are queued (and run
    first); --again queues every stage. Promote only queues: the world is not changed."""
    store = tmp_path / "store.db"
    result = cli("promote", "checkout-api", "5.2.3", "--yes", "--json", config=world.source,
                 store=store)  # fmt: skip
    assert result.returncode == 0, result.stderr
    promoted = json.loads(result.stdout)
    assert promoted["schema"] == "deploy-console.promote/1"
    assert (promoted["project"], promoted["release"]) == ("checkout-api", "5.2.3")
    rows = promoted["stages"]
    assert [(r["cluster"], r["skipped"], r["after"]) for r in rows] == [
        ("staging", "already runs 5.2.3", None),
        ("qaprod1", "already runs 5.2.3", None),
        ("prod1", None, None),
        ("prod2", None, None),
    ]
    text = cli("promote", "checkout-api", "5.2.3", "--yes", config=world.source,
               store=tmp_path / "text.db")  # fmt: skip
    assert text.returncode == 0, text.stderr
    assert (
        "  skipped                 staging    already runs 5.2.3 (--again deploys it anyway)\n"
        in (text.stdout)
    )
    again = cli("promote", "checkout-api", "5.2.3", "--yes", "--again", "--json",
                config=world.source, store=tmp_path / "again.db")  # fmt: skip
    assert again.returncode == 0, again.stderr
    rows = json.loads(again.stdout)["stages"]
    assert [r["cluster"] for r in rows] == ["staging", "qaprod1", "prod1", "prod2"]
    assert all(r["id"] and r["skipped"] is None for r in rows)
    assert rows[1]["after"] == rows[0]["id"] and rows[2]["after"] == rows[1]["id"]


# -- releases ------------------------------------------------------------------------------


def test_releases_json_shape(world: Config) -> None:
    result = cli("releases", "checkout-api", "--json", config=world.source)
    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)
    assert (listed["schema"], listed["project"]) == ("deploy-console.releases/1", "checkout-api")
    assert listed["cluster"] == "staging"  # the project's first: its region's AMIs
    releases = listed["releases"]
    assert isinstance(releases, list)
    assert [r["version"] for r in releases] == ["5.2.3", "5.2.0", "5.1.0"]
    for release in releases:
        assert set(release) == {"version", "image_id", "created_at", "clusters"}
        assert release["image_id"].startswith("ami-")
        assert datetime.fromisoformat(release["created_at"]).tzinfo is not None
        assert isinstance(release["clusters"], list)
    assert set(releases[-1]["clusters"]) == set()
    assert "prod1" in releases[1]["clusters"]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["shop"], "unknown project 'shop'"),
        (["storefront", "--cluster", "prod3"], "unknown cluster 'prod3'"),
    ],
)
def test_releases_bad_input_is_exit_2(world: Config, argv: list[str], expected: str) -> None:
    result = cli("releases", *argv, "--json", config=world.source)
    assert result.returncode == 2
    assert result.stdout == ""
    assert expected in one_line_error(result)


# -- signals ---------------------------------------------------------------------------------


def as_from_a_terminal() -> None:
    """In the child: SIGINT as a terminal delivers it. A test run in the background of a
    script inherits SIGINT ignored, and the command rightly leaves an ignored signal alone."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def started(*args: str, config: Path, store: Path) -> subprocess.Popen[str]:
    """The command running in a child process as from a terminal, its output piped and
    unbuffered (a `deploy --json`'s events can be read as they are printed)."""
    return subprocess.Popen(
        command(*args, config=config, store=store),
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=as_from_a_terminal,
    )


class EventStream:
    """A running `deploy --json`: its events as they come, each waited for with a timeout."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def until(self, wanted: Any, timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            assert line is not None, f"the deploy ended first: {self.seen[-3:]}"
            event = json.loads(line)
            self.seen.append(event)
            if wanted(event):
                return event

    def rest(self, timeout: float = COMMAND_TIMEOUT) -> list[dict[str, Any]]:
        self.process.wait(timeout=timeout)
        while (line := self.lines.get(timeout=10)) is not None:
            self.seen.append(json.loads(line))
        return self.seen


@pytest.mark.parametrize(
    ("signum", "project"),
    [(signal.SIGINT, "partner-gateway"), (signal.SIGTERM, "marketing-site")],
    ids=["SIGINT", "SIGTERM"],
)
async def test_a_signal_cancels_the_deploy_and_rolls_back(
    world: Config, tmp_path: Path, signum: signal.Signals, project: str
) -> None:
    release = {"partner-gateway": "1.0.0", "marketing-site": "24.11.0"}[project]
    store = tmp_path / "store.db"
    old = live(world, project, "staging")
    served = serving_in(world, project, "staging")
    assert old and all(members == old for members in served.values()), served
    process = started(
        "deploy",
        project,
        "staging",
        release,
        "--json",
        "--anyway",
        config=world.source,
        store=store,
    )
    try:
        with watching(world, project, "staging"):
            stream = EventStream(process)
            configure = stream.until(
                lambda e: e["event"] == "StepStarted" and e["step"] == "configure"
            )
            process.send_signal(signum)
            events = stream.rest()
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
    assert process.stderr is not None
    stderr = process.stderr.read()
    assert process.returncode == 1, stderr
    assert "Traceback" not in stderr, stderr
    assert signum.name in stderr, stderr
    events_of("\n".join(json.dumps(e) for e in events))
    finished = events[-1]
    assert finished["state"] == "cancelled", finished
    assert signum.name in finished["reason"], finished
    assert steps_of(events)["rollback"] == "succeeded"
    assert live(world, project, "staging") == old
    assert serving_in(world, project, "staging") == served
    launched = launched_by(world, project, "staging", configure["deploy_id"])
    assert launched and set(launched.values()) <= {"shutting-down", "terminated"}, launched
    async with await Store.open(store) as opened:
        assert await opened.lock_holder(project, "staging") is None
        record = await opened.deploy(configure["deploy_id"])
        assert record is not None and record.state == "cancelled"


def test_a_signal_while_planning_stops_before_anything_changes(tmp_path: Path) -> None:
    """A signal before the deploy holds its lock (here: AWS is slow to answer the plan)."""
    asked = threading.Event()
    with socket.create_server(("127.0.0.1", 0)) as server:

        def answer_slowly() -> None:  # every request: read it, wait, hang up
            with contextlib.suppress(OSError):
                while True:
                    connection, _ = server.accept()
                    with connection:
                        connection.recv(65536)
                        asked.set()
                        time.sleep(0.2)

        threading.Thread(target=answer_slowly, daemon=True).start()
        endpoint = f"http://127.0.0.1:{server.getsockname()[1]}"
        text = DEMO_CONFIG.read_text()
        for region in ("us-east-1", "us-west-2"):
            text = text.replace(
                f'region = "{region}"', f'region = "{region}"\nendpoint_url = "{endpoint}"'
            )
        config = tmp_path / "slow.toml"
        config.write_text(text)
        store = tmp_path / "store.db"
        process = started("deploy", "storefront", "staging", "2.15.0", config=config, store=store)
        try:
            assert asked.wait(timeout=60), "the command never asked AWS"
            process.send_signal(signal.SIGINT)
            out, err = process.communicate(timeout=COMMAND_TIMEOUT)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert process.returncode == 1, err
    assert out == ""
    assert err == "deploy-console: SIGINT: stopped before the deploy started; nothing changed\n"
    assert not store.exists()
