"""`scale PROJECT CLUSTER N`: the real command in a child process, against a world of its own.

Each test that scales uses a pair no other test here touches, and a store of its own.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import tomli_w

from console.config import Config, read_toml
from console.model import DeployRequest
from console.queue.release_queue import DeployQueue
from console.store import DeployRecord, Store
from console.store.desired import desired_count
from tests.conftest import ROOT
from tests.deploy_world import client, instances, live, quick_seed, serving_in, world_process
from tests.waiting import await_until

COMMAND_TIMEOUT = 180.0


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Config]:
    workdir = tmp_path_factory.mktemp("cli-scale-world")
    with world_process(quick_seed(workdir, 1), workdir) as config:
        yield config


def cli(*args: str, config: Path, store: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "screens.main", *args, "--config", str(config), "--store",
         str(store)],
        cwd=ROOT, stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=COMMAND_TIMEOUT,
    )  # fmt: skip


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def tags(raw: dict[str, object]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in raw["Tags"]}  # type: ignore[attr-defined]


async def scale_audit(
    config: Config, store: Path, project: str, cluster: str
) -> tuple[list[str], int | None]:
    """The audit's actions on the pair, and its desired count, as the store has them."""
    async with await Store.open(store, create=False) as opened:
        rows = await opened.audit_rows(project=project)
        actions = [r.action for r in rows if r.cluster == cluster]
        return actions, await desired_count(opened, config, project, cluster)


def test_scale_out_then_in(world: Config, tmp_path: Path) -> None:
    store = tmp_path / "store.db"
    (first,) = live(world, "storefront", "staging")

    out = cli("scale", "storefront", "staging", "2", "--wait", "--reason", "the sale",
              config=world.source, store=store)  # fmt: skip
    assert out.returncode == 0, out.stderr + out.stdout
    assert "queued " in out.stdout and "scale to 2" in out.stdout
    assert "succeeded: 2 instances" in out.stdout, out.stdout
    now = live(world, "storefront", "staging")
    assert len(now) == 2 and first in now
    (added,) = now - {first}
    found = instances(world, "storefront", "staging")
    assert tags(found[added])["Version"] == tags(found[first])["Version"] == "2.15.0"
    assert tags(found[added])["DeployId"].startswith("d-")
    assert serving_in(world, "storefront", "staging") == {"storefront-staging": {first, added}}
    actions, desired = asyncio.run(scale_audit(world, store, "storefront", "staging"))
    assert {"scale.requested", "queue.enqueue", "deploy.step", "scale.desired"} <= set(actions)
    assert desired == 2

    back = cli("scale", "storefront", "staging", "1", "--wait", config=world.source, store=store)
    assert back.returncode == 0, back.stderr + back.stdout
    assert "deregister: ok" in back.stdout and "terminate: ok" in back.stdout, back.stdout
    # The oldest leaves: drained out of its target group first, then terminated.
    assert live(world, "storefront", "staging") == {added}
    assert serving_in(world, "storefront", "staging") == {"storefront-staging": {added}}
    assert found and instances(world, "storefront", "staging")[first]["State"]["Name"] in (
        "shutting-down",
        "terminated",
    )
    assert asyncio.run(scale_audit(world, store, "storefront", "staging"))[1] == 1


def test_a_new_instance_that_never_gets_healthy_is_removed(world: Config, tmp_path: Path) -> None:
    pair = ("checkout-api", "qaprod1")
    data = read_toml(world.source)
    for entry in data["projects"]:
        if entry["name"] == pair[0]:
            entry["deploy"].update(health="exit 1", startup_timeout_seconds=2)
    broken = tmp_path / "broken-health.toml"
    with broken.open("wb") as output:
        tomli_w.dump(data, output)
    before = live(world, *pair)
    store = tmp_path / "store.db"
    result = cli("scale", *pair, "2", "--wait", config=broken, store=store)
    assert result.returncode == 1, result.stderr + result.stdout
    assert "configure: FAILED" in result.stdout and "rollback: ok" in result.stdout
    assert "failed: health command failed" in result.stdout, result.stdout
    assert "new instances removed" in result.stdout
    assert live(world, *pair) == before
    actions, desired = asyncio.run(scale_audit(world, store, *pair))
    assert "scale.desired" not in actions and desired is None


def test_scale_in_refused_without_a_healthy_target(world: Config, tmp_path: Path) -> None:
    pair = ("checkout-api", "prod1")
    ids = sorted(live(world, *pair))
    assert len(ids) == 2
    # Every instance out of the pair's load balancers: none is a healthy target any more.
    for name in world.project(pair[0]).clusters[pair[1]].classic_elbs:
        client(world, pair[1], "elb").deregister_instances_from_load_balancer(
            LoadBalancerName=name, Instances=[{"InstanceId": i} for i in ids]
        )
    for name in world.project(pair[0]).clusters[pair[1]].target_groups:
        elbv2 = client(world, pair[1], "elbv2")
        arn = elbv2.describe_target_groups(Names=[name])["TargetGroups"][0]["TargetGroupArn"]
        elbv2.deregister_targets(TargetGroupArn=arn, Targets=[{"Id": i} for i in ids])
    result = cli("scale", *pair, "1", "--yes", "--wait", config=world.source,
                 store=tmp_path / "store.db")  # fmt: skip
    assert result.returncode == 3, result.stderr + result.stdout
    assert "no healthy target would remain (0 of 2 healthy now)" in one_line_error(result)
    assert sorted(live(world, *pair)) == ids


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("storefront", "staging", "0"), "at least one instance"),
        (("storefront", "staging", "-1"), "at least one instance"),
        (("storefront", "staging", "three"), "must be a whole number"),
        (("storefront", "staging", "501"), "above the most a pair may run (500)"),
        (("nosuch", "staging", "2"), "nosuch"),
        (("storefront", "nosuch", "2"), "nosuch"),
        (("storefront", "prod1", "2"), "protected: pass --yes"),
    ],
)
def test_bad_input_exits_2(world: Config, tmp_path: Path, args: tuple[str, ...], said: str) -> None:
    store = tmp_path / "store.db"
    result = cli("scale", *args, config=world.source, store=store)
    assert result.returncode == 2, result.stderr
    assert said in one_line_error(result)
    assert not store.exists() or args[1] == "prod1"  # refused before the store


async def test_a_scale_and_a_deploy_on_one_pair_take_turns(world: Config, tmp_path: Path) -> None:
    async with await Store.open(tmp_path / "store.db") as store:
        queue = DeployQueue(store, world)
        deploy = DeployRequest("storefront", "qaprod1", "2.15.0", "alice")
        scale = DeployRequest("storefront", "qaprod1", "2", "alice", kind="scale")
        await queue.enqueue(deploy, "d-1")
        await queue.enqueue(scale, "d-2")
        first = await queue.claim("runner-a")
        assert first is not None and (first.id, first.kind) == ("d-1", "deploy")
        assert await queue.claim("runner-b") is None  # the pair is the deploy's until it ends
        recorded = await store.deploy("d-2")
        assert recorded is not None and (recorded.kind, recorded.release) == ("scale", "2")


async def test_a_scale_killed_mid_way_is_put_right_by_the_next_runner(
    world: Config, tmp_path: Path
) -> None:
    """kill -9 once the new instance is registered: the next runner finds it by its DeployId
    tag, drains and terminates it; the old instance serves throughout."""
    pair = ("admin-portal", "staging")
    fast = tmp_path / "fast.toml"  # a dead console's lock goes stale in 2 s
    text = re.sub(r"lock_stale_seconds = \d+", "lock_stale_seconds = 2", world.source.read_text())
    fast.write_text(re.sub(r"poll_seconds = \d+", "poll_seconds = 0.5", text))
    store = tmp_path / "store.db"
    before = live(world, *pair)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    scaling = subprocess.Popen(
        [sys.executable, "-m", "screens.main", "scale", *pair, "2", "--wait", "--config",
         str(fast), "--store", str(store)],
        cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        text=True, env=env,
    )  # fmt: skip
    try:
        assert scaling.stdout is not None
        seen = [line for line in _until(scaling.stdout, "  health-gate: started")]
        scale_id = seen[0].split()[1].rstrip(":")
    finally:
        scaling.kill()  # no rollback, no lock released, nothing recorded
        scaling.wait()
    assert len(live(world, *pair)) == 2
    runner = subprocess.Popen(
        [sys.executable, "-m", "screens.main", "runner", "--config", str(fast), "--store",
         str(store)],
        cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        async with await Store.open(store) as opened:

            async def reconciled() -> DeployRecord | None:
                record = await opened.deploy(scale_id)
                return record if record and record.reconciled_at else None

            record = await await_until(reconciled, f"{scale_id} reconciled", 90.0, every=0.2)
    finally:
        runner.send_signal(signal.SIGTERM)
        runner.wait(timeout=COMMAND_TIMEOUT)
    assert record.state == "interrupted" and "rolled back" in (record.reason or ""), record
    assert live(world, *pair) == before
    assert all(members == before for members in serving_in(world, *pair).values())


async def test_a_scale_in_killed_while_draining_is_finished_forward(
    world: Config, tmp_path: Path
) -> None:
    """kill -9 once the deregister step is on record: the instance it named is drained and
    terminated by the put-right (console/deploy/scale.py put_right, as a runner's reconcile
    calls it); the others serve throughout."""
    from console.deploy import scale
    from console.deploy.deployment import Deployment
    from console.deploy.services import deploy_services

    pair = ("storefront", "prod1")
    store = tmp_path / "store.db"
    before = live(world, *pair)
    assert len(before) == 3
    scaling = subprocess.Popen(
        [sys.executable, "-m", "screens.main", "scale", *pair, "2", "--yes", "--wait",
         "--config", str(world.source), "--store", str(store)],
        cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        assert scaling.stdout is not None
        seen = list(_until(scaling.stdout, "  deregister: started"))
    finally:
        scaling.kill()
        scaling.wait()
    scale_id = seen[0].split()[1].rstrip(":")
    (leaving,) = INSTANCE_ID.findall(seen[-1])
    async with deploy_services(world, store) as services:
        engine = services.engine
        record = await services.store.deploy(scale_id)
        assert record is not None and record.kind == "scale"
        request = DeployRequest(*pair, record.release, record.actor, kind="scale")
        gateway = engine._deploy_gateway(pair[1], "test")
        project, cluster = engine._pair(request)
        source = await engine._read_source(gateway, project, cluster)
        steps = await services.store.steps(scale_id)
        summary, gone = await scale.put_right(
            engine, Deployment(scale_id, request), gateway, source, steps
        )
    assert (summary, gone) == (f"finished forward: drained and terminated {leaving}", [leaving])
    assert live(world, *pair) == before - {leaving}
    assert all(members == before - {leaving} for members in serving_in(world, *pair).values())


INSTANCE_ID = re.compile(r"\bi-[0-9a-f]{8,17}\b")


def _until(lines: Iterator[str], wanted: str) -> Iterator[str]:
    """The lines of a command's output up to the one that starts with `wanted`."""
    for line in lines:
        yield line
        if line.startswith(wanted):
            return
    raise AssertionError(f"the command ended before {wanted!r}")
