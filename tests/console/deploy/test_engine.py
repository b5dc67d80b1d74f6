"""Deploys against a world of their own: moto in a child process, its SSH jump host, SQLite.

Each test deploys a different project+cluster pair, and a watcher polls every load balancer
of the pair throughout: a load balancer that had a healthy target must never have none.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from console.config import Config, read_toml
from console.deploy.services import deploy_services
from console.errors import DeployError, LockBusy, StoreError
from console.events import DeployEvent, DeployFinished, OutputLine, StepFinished, StepStarted
from console.model import DeployRequest, DeployState, Step, StepState
from console.store import DeployRecord, Store
from tests.conftest import ROOT
from tests.deploy_world import (
    ServingWatcher,
    client,
    faster,
    instances,
    live,
    quick_seed,
    serving_in,
    world_process,
)


@contextlib.contextmanager
def world_of(tmp_path_factory: pytest.TempPathFactory, name: str, text: str) -> Iterator[Config]:
    """A world of its own, seeded from a config's text (a small world for one module)."""
    workdir = tmp_path_factory.mktemp(f"{name}-world")
    source = workdir / f"{name}.toml"
    source.write_text(text)
    with world_process(source, workdir) as config:
        yield config


def world_fixture(name: str, text: str) -> Any:
    """A module-scoped fixture of a world of its own seeded from `text`, for a test module
    that assigns it: `ledger_world = world_fixture("ledger", CONFIG)`."""

    @pytest.fixture(scope="module")
    def own_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Config]:
        with world_of(tmp_path_factory, name, text) as config:
            yield config

    return own_world


@pytest.fixture(scope="module")
def deploy_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Config]:
    workdir = tmp_path_factory.mktemp("deploy-world")
    # No bake, registration and drains of 1 s: what the tests here do not test, made quick.
    with world_process(quick_seed(workdir, 1), workdir) as config:
        yield config


async def deploy(
    config: Config,
    store: Path,
    project: str,
    cluster: str,
    release: str,
    *,
    cancel_at: Step | None = None,
) -> list[DeployEvent]:
    events: list[DeployEvent] = []
    async with deploy_services(config, store) as services:
        request = DeployRequest(project, cluster, release, "tester")
        async with ServingWatcher(config, project, cluster):
            async for event in services.engine.run(request):
                events.append(event)
                if isinstance(event, StepStarted) and event.step is cancel_at:
                    assert services.engine.cancel(event.deploy_id, "tester")
    return events


def config_head(margin: int) -> str:
    """The start of a small world's config: anyone deploys, the engine polls twice a second
    and gives the health gate `margin` seconds, one cluster (staging)."""
    return f"""
[access]
admins = ["*"]

[engine]
poll_seconds = 0.5
health_gate_margin_seconds = {margin}
lock_stale_seconds = 15

[[clusters]]
name = "staging"
region = "us-east-1"
"""


def finished(events: list[DeployEvent]) -> DeployFinished:
    last = events[-1]
    assert isinstance(last, DeployFinished), last
    return last


def steps(events: list[DeployEvent]) -> dict[Step, StepState]:
    return {e.step: e.state for e in events if isinstance(e, StepFinished)}


async def test_deploy_succeeds_without_downtime(deploy_world: Config, tmp_path: Path) -> None:
    config = deploy_world
    old = live(config, "storefront", "staging")
    events = await deploy(config, tmp_path / "store.db", "storefront", "staging", "2.14.1")
    outcome = finished(events)
    assert outcome.state is DeployState.SUCCEEDED, outcome.reason
    now_live = live(config, "storefront", "staging")
    new = now_live - old
    assert len(new) == len(old) == 1 and not (old & now_live)
    # The new instances serve in every load balancer; the old are terminated.
    assert serving_in(config, "storefront", "staging") == {"storefront-staging": new}
    for instance_id, raw in instances(config, "storefront", "staging").items():
        if instance_id in old:
            assert raw["State"]["Name"] in ("shutting-down", "terminated")
    tags = {
        t["Key"]: t["Value"]
        for t in instances(config, "storefront", "staging")[next(iter(new))]["Tags"]
    }
    assert tags["Version"] == "2.14.1"
    assert tags["Project"] == "storefront" and tags["Environment"] == "staging"
    assert tags["DeployId"] == outcome.deploy_id and tags["ManagedBy"] == "deploy-console"
    assert list(steps(events)) == [
        Step.LOCK, Step.RESOLVE, Step.LAUNCH, Step.CONFIGURE, Step.REGISTER, Step.HEALTH_GATE,
        Step.TRAFFIC_GUARD, Step.DEREGISTER, Step.TERMINATE,
    ]  # fmt: skip
    assert set(steps(events).values()) == {StepState.SUCCEEDED}
    async with await Store.open(tmp_path / "store.db") as store:
        record = await store.deploy(outcome.deploy_id)
        assert record is not None and record.state == "succeeded"
        recorded = await store.steps(outcome.deploy_id)
        assert all(s.seconds is not None and s.state == "succeeded" for s in recorded)
        assert await store.verify_audit() is None
        assert await store.lock_holder("storefront", "staging") is None
        # A deploy outside the queue starts with its audit line, written with its record
        # and its lock: the history never holds a deploy that the audit does not.
        first = (await store.audit_rows(deploy_id=outcome.deploy_id))[0]
        assert (first.action, first.outcome) == ("deploy.started", "running")
        assert first.reason == "release 2.14.1, not through the queue"
    assert outcome.own_seconds < outcome.seconds


async def test_health_command_never_passes_rolls_back(deploy_world: Config, tmp_path: Path) -> None:
    config = faster(deploy_world, "storefront", startup_timeout_seconds=3)
    old = live(config, "storefront", "qaprod1")
    events = await deploy(config, tmp_path / "store.db", "storefront", "qaprod1", "2.16.0")
    outcome = finished(events)
    assert outcome.state is DeployState.ROLLED_BACK, outcome.reason
    assert "health command failed" in outcome.reason
    assert steps(events)[Step.CONFIGURE] is StepState.FAILED
    assert steps(events)[Step.ROLLBACK] is StepState.SUCCEEDED
    assert Step.REGISTER not in steps(events)
    assert live(config, "storefront", "qaprod1") == old
    assert serving_in(config, "storefront", "qaprod1") == {"storefront-qaprod1": old}
    assert any(isinstance(e, OutputLine) and "503" in e.text for e in events), (
        "the failing health output is streamed"
    )


async def test_configure_command_fails_rolls_back(deploy_world: Config, tmp_path: Path) -> None:
    config = faster(
        deploy_world, "checkout-api", configure="echo 'cannot write config' >&2; exit 3"
    )
    old = live(config, "checkout-api", "staging")
    events = await deploy(config, tmp_path / "store.db", "checkout-api", "staging", "5.2.0")
    outcome = finished(events)
    assert outcome.state is DeployState.ROLLED_BACK
    assert "configure failed" in outcome.reason and "exit 3" in outcome.reason
    assert live(config, "checkout-api", "staging") == old
    assert any(isinstance(e, OutputLine) and e.text == "cannot write config" for e in events)


@pytest.mark.parametrize(
    ("project", "cluster", "release", "step"),
    [
        ("media-service", "staging", "1.5.0", Step.LAUNCH),
        ("partner-gateway", "staging", "1.0.0", Step.CONFIGURE),
        ("marketing-site", "staging", "24.11.0", Step.HEALTH_GATE),
    ],
    ids=["during-launch", "during-configure", "during-health-gate"],
)
async def test_cancel_rolls_back(
    deploy_world: Config, tmp_path: Path, project: str, cluster: str, release: str, step: Step
) -> None:
    old = live(deploy_world, project, cluster)
    events = await deploy(
        deploy_world, tmp_path / "store.db", project, cluster, release, cancel_at=step
    )
    outcome = finished(events)
    assert outcome.state is DeployState.CANCELLED, outcome.reason
    assert "cancelled by tester" in outcome.reason
    assert steps(events)[step] is StepState.FAILED
    assert steps(events)[Step.ROLLBACK] is StepState.SUCCEEDED
    assert live(deploy_world, project, cluster) == old
    served = serving_in(deploy_world, project, cluster)
    assert all(members == old for members in served.values()), served


async def test_host_key_that_does_not_verify_aborts_before_any_command(
    deploy_world: Config, tmp_path: Path
) -> None:
    cluster = deploy_world.cluster("staging")
    assert cluster.ssh is not None
    jump_line = [
        line for line in cluster.ssh.known_hosts.read_text().splitlines() if line.startswith("[")
    ]
    impostor = tmp_path / "known_hosts"
    # The jump host is trusted, the world's host CA is not: no instance key verifies.
    impostor.write_text("\n".join(jump_line) + "\n")
    config = dataclasses.replace(
        deploy_world,
        clusters=tuple(
            dataclasses.replace(c, ssh=dataclasses.replace(c.ssh, known_hosts=impostor))
            if c.name == "staging" and c.ssh is not None
            else c
            for c in deploy_world.clusters
        ),
    )
    old = live(config, "admin-portal", "staging")
    events = await deploy(config, tmp_path / "store.db", "admin-portal", "staging", "3.8.0")
    outcome = finished(events)
    assert outcome.state is DeployState.ROLLED_BACK
    assert "host key" in outcome.reason.lower()
    assert live(config, "admin-portal", "staging") == old
    sandboxes = cluster.ssh.key.parent.parent / "instances"
    launched = {
        i
        for i, raw in instances(config, "admin-portal", "staging").items()
        if any(t["Key"] == "DeployId" and t["Value"] == outcome.deploy_id for t in raw["Tags"])
    }
    assert launched
    for instance_id in launched:
        assert not (sandboxes / instance_id / "app.env").exists()
        assert not (sandboxes / instance_id / "run").exists()


def held_until(config: Config, project: str, gate: Path, destination: Path) -> Path:
    """A copy of the world's config file in which `project` configures its instances only once
    `gate` exists (the test creates it): a deploy of it holds its pair until the test lets it
    go, however quick the world and however slow the machine."""
    data = read_toml(config.source)
    for entry in data["projects"]:
        if entry["name"] == project:
            wait = f"while [ ! -e '{gate}' ]; do sleep 0.1; done"
            entry["deploy"]["configure"] = f"{wait}; {entry['deploy']['configure']}"
            entry["deploy"]["startup_timeout_seconds"] = 300
    with destination.open("wb") as output:
        tomli_w.dump(data, output)
    return destination


async def test_two_processes_one_pair_run_one_after_the_other(
    deploy_world: Config, tmp_path: Path
) -> None:
    """The second deploy of a busy pair waits its turn, says behind which deploy, then runs:
    the two never overlap. (The first configures only once the second has said it waits.)"""
    store = tmp_path / "shared.db"
    gate = tmp_path / "the-second-waits"
    held = held_until(deploy_world, "media-service", gate, tmp_path / "held.toml")

    def command(release: str) -> list[str]:
        return [
            sys.executable, "-m", "screens.main", "deploy", "--anyway", "media-service", "qaprod1",
            release, "--json", "--config", str(held), "--store", str(store),
        ]  # fmt: skip

    first = subprocess.Popen(command("1.5.0"), cwd=ROOT, stdout=subprocess.PIPE, text=True)
    second: subprocess.Popen[str] | None = None
    try:
        assert first.stdout is not None
        while True:
            started = json.loads(await asyncio.to_thread(first.stdout.readline))
            if started["event"] == "StepStarted":
                break
        assert started["step"] == "lock"
        second = subprocess.Popen(
            command("1.6.0"),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert second.stdout is not None
        events: list[dict[str, Any]] = []
        while not any(e["event"] == "DeployWaiting" and e["reason"] for e in events):
            line = await asyncio.to_thread(second.stdout.readline)
            assert line, f"the second deploy ended without waiting: {events[-3:]}"
            events.append(json.loads(line))
        gate.touch()
        second_out, second_err = await asyncio.to_thread(second.communicate, timeout=180)
        first_out, _ = await asyncio.to_thread(first.communicate, timeout=120)
    finally:
        gate.touch()
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
    assert first.returncode == 0 and second.returncode == 0, second_err
    events += [json.loads(line) for line in second_out.splitlines()]
    waiting = [e["reason"] for e in events if e["event"] == "DeployWaiting" and e["reason"]]
    assert waiting[0] == f"behind {started['deploy_id']} (running) on media-service in qaprod1"
    assert events[-1]["event"] == "DeployFinished" and events[-1]["state"] == "succeeded"
    last = json.loads(first_out.strip().splitlines()[-1])
    assert last["event"] == "DeployFinished" and last["state"] == "succeeded"
    async with await Store.open(store) as opened:
        one, two = (
            (await opened.steps(started["deploy_id"])),
            (await opened.steps(events[0]["deploy_id"])),
        )
    assert one[-1].finished_at is not None and two[0].started_at >= one[-1].finished_at


async def test_secrets_never_leave_ssm(deploy_world: Config, tmp_path: Path) -> None:
    ssm = client(deploy_world, "qaprod1", "ssm")
    canary = ssm.get_parameter(Name="/checkout-api/payment-api-key", WithDecryption=True)[
        "Parameter"
    ]["Value"]
    assert len(canary) >= 8
    config = faster(
        deploy_world, "checkout-api", configure="cat app.env; echo key=$PAYMENT_API_KEY"
    )
    store = tmp_path / "store.db"
    events = await deploy(config, store, "checkout-api", "qaprod1", "5.2.0")
    outcome = finished(events)
    assert outcome.state is DeployState.SUCCEEDED, outcome.reason
    # The instance got the secret (that is the point) but no event, row or log shows it.
    assert any(isinstance(e, OutputLine) and "PAYMENT_API_KEY=" in e.text for e in events)
    assert canary not in repr(events)
    for path in store.parent.iterdir():
        assert canary.encode() not in path.read_bytes(), path
    async with await Store.open(store) as opened:
        assert canary not in repr(await opened.audit_rows())


async def test_busy_pair_is_refused_in_process(deploy_world: Config, tmp_path: Path) -> None:
    store = tmp_path / "store.db"
    async with await Store.open(store) as opened:
        await opened.acquire_lock("billing-worker", "qaprod1", "d-held", "alice")
    async with deploy_services(deploy_world, store) as services:
        request = DeployRequest("billing-worker", "qaprod1", "2024.10", "bob")
        with pytest.raises(LockBusy, match=r"locked by deploy d-held \(alice"):
            await anext(aiter(services.engine.run(request)))
    assert live(deploy_world, "billing-worker", "qaprod1")
    async with await Store.open(store) as opened:  # refused whole: no record, no audit line
        assert [record.id for record in await opened.deploys(limit=10)] == []
        assert [row.action for row in await opened.audit_rows()] == []


async def test_rollback_of_a_finished_deploy_is_a_deploy_of_the_previous_release(
    deploy_world: Config, tmp_path: Path
) -> None:
    # prod2 is in another region (us-west-2): releases and instances are looked up there.
    store = tmp_path / "store.db"
    events = await deploy(deploy_world, store, "checkout-api", "prod2", "5.2.3")
    first = finished(events)
    assert first.state is DeployState.SUCCEEDED, first.reason
    async with deploy_services(deploy_world, store) as services:
        request = await services.engine.rollback_request(first.deploy_id, "tester")
        assert (request.release, request.rollback_of) == ("5.2.0", first.deploy_id)
        back = [event async for event in services.engine.run(request)]
        assert finished(back).state is DeployState.SUCCEEDED
        await services.store.create_deploy(
            DeployRecord(
                id="d-rolled-back", project="checkout-api", cluster="prod2", release="9.9.9",
                actor="tester", state="rolled_back",
            )
        )  # fmt: skip
        with pytest.raises(DeployError, match="rolled back: only a deploy that succeeded"):
            await services.engine.rollback_request("d-rolled-back", "tester")
        with pytest.raises(DeployError, match="unknown deploy 'd-none'"):
            await services.engine.rollback_request("d-none", "tester")
        record = await services.store.deploy(finished(back).deploy_id)
        assert record is not None and record.rollback_of == first.deploy_id
    versions = {
        t["Value"]
        for i in live(deploy_world, "checkout-api", "prod2")
        for t in instances(deploy_world, "checkout-api", "prod2")[i]["Tags"]
        if t["Key"] == "Version"
    }
    assert versions == {"5.2.0"}


async def test_a_store_that_stops_recording_the_output_stops_the_deploy_and_says_so(
    deploy_world: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write the store refuses is an error the deploy reports, never swallowed: the
    heartbeat's (the output so far) cancels the deploy, which rolls back."""

    async def refuse(self: Store, deploy_id: str, lines: object) -> None:
        raise StoreError(f"the store {self.path} did not record it: disk I/O error")

    monkeypatch.setattr(Store, "append_log", refuse)
    project, cluster = "partner-gateway", "staging"  # its health gate outlasts a heartbeat
    old = live(deploy_world, project, cluster)
    events = await deploy(deploy_world, tmp_path / "store.db", project, cluster, "1.0.0")
    outcome = finished(events)
    assert outcome.state is DeployState.CANCELLED, outcome.reason
    assert outcome.reason.startswith(
        f"cancelled: the store did not keep the deploy: the store {tmp_path / 'store.db'} did "
        "not record it: disk I/O error; rolled back: terminated "
    ), outcome.reason
    assert outcome.reason.endswith(
        "; its output is not all recorded: the store "
        f"{tmp_path / 'store.db'} did not record it: disk I/O error"
    )
    assert steps(events)[Step.ROLLBACK] is StepState.SUCCEEDED
    assert live(deploy_world, project, cluster) == old
