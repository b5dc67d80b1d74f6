"""The gates through the real command on the demo's own world: prod2's release gate refuses
storefront 2.16.0 (its build failed) with exit 3 and queues nothing; a failing pre-deploy hook
fails the deploy before any instance is launched; a failing post hook never undoes one."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from console.config import Config, read_toml
from console.store import Store
from tests.conftest import ROOT
from tests.deploy_world import instances, live, quick_seed, world_process

TIMEOUT = 120.0


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Config]:
    # The demo's gates; registration and drains of 1 s and no bake: the prod2 deploy the first
    # test queues (and the runner it starts runs) is not watched for 45 s behind the tests.
    workdir = tmp_path_factory.mktemp("gates-world")
    with world_process(quick_seed(workdir, 1), workdir) as config:
        yield config


def cli(*args: str, config: Path, store: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "screens.main", *args, "--config", str(config),
         "--store", str(store)],
        cwd=ROOT, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=TIMEOUT,
    )  # fmt: skip


def audit(store: Path) -> list[Any]:
    async def rows() -> list[Any]:
        async with await Store.open(store, create=False, read_only=True) as opened:
            return await opened.audit_rows()

    return asyncio.run(rows())


def test_the_demo_refuses_a_release_whose_build_failed_with_exit_3(
    world: Config, tmp_path: Path
) -> None:
    store = tmp_path / "store.db"
    refused = cli("deploy", "storefront", "prod2", "2.16.0", "--yes", "--anyway", "--no-wait",
                  config=world.source, store=store)  # fmt: skip
    assert refused.returncode == 3, refused.stderr
    assert refused.stdout == ""
    (line,) = refused.stderr.splitlines()
    assert line.startswith(
        "deploy-console: refused: release gate of prod2 (storefront 2.16.0) said no: exit 1: "
        "storefront 2.16.0 (ami-"
    ), line
    assert line.endswith("): build did not pass (BuildStatus=failed); nothing queued"), line
    rows = audit(store)
    assert [(r.action, r.outcome, r.cluster) for r in rows] == [
        ("gate.refused", "refused", "prod2")
    ]
    assert "BuildStatus=failed" in rows[0].reason

    passed = cli("deploy", "storefront", "prod2", "2.15.0", "--yes", "--no-wait",
                 config=world.source, store=store)  # fmt: skip
    assert passed.returncode == 0, passed.stderr
    enqueued = [r for r in audit(store) if r.action == "queue.enqueue"]
    assert len(enqueued) == 1
    assert "build passed (exit 0: storefront 2.15.0 (ami-" in enqueued[0].reason
    assert enqueued[0].reason.endswith("build passed (BuildStatus=passed))")


def with_hooks(world: Config, folder: Path, hooks: list[dict[str, Any]]) -> Path:
    data = read_toml(world.source)
    data["hooks"] = hooks
    path = folder / "hooks.toml"
    with path.open("wb") as output:
        tomli_w.dump(data, output)
    return path


def script(folder: Path, name: str, text: str) -> str:
    path = folder / name
    path.write_text(text)
    return str(path)


def test_a_failing_pre_deploy_hook_fails_the_deploy_before_anything_is_launched(
    world: Config, tmp_path: Path
) -> None:
    block = script(tmp_path, "cab.py", (
        "import json, sys\n"
        "deploy = json.load(sys.stdin)\n"
        "print(f\"\\x1b[31mCAB says no\\x1b[0m to {deploy['release']} ({deploy['ticket']})\")\n"
        "sys.exit(1)\n"
    ))  # fmt: skip
    config = with_hooks(world, tmp_path, [
        {"on": ["pre-deploy"], "command": [sys.executable, block], "timeout": "20s",
         "projects": ["checkout-api"], "clusters": ["staging"], "name": "cab"},
    ])  # fmt: skip
    before = set(instances(world, "checkout-api", "staging"))
    store = tmp_path / "store.db"
    result = cli("deploy", "checkout-api", "staging", "5.2.0", "--anyway", "--ticket", "CHG-9",
                 config=config, store=store)  # fmt: skip
    assert result.returncode == 1, result.stderr
    last = result.stdout.splitlines()[-1]
    assert last.startswith(
        "failed: pre-deploy hook cab: exit 1: CAB says no to 5.2.0 (CHG-9): nothing changed"
    ), last
    assert "    hook cab | CAB says no to 5.2.0 (CHG-9)" in result.stdout.splitlines()
    # Nothing launched: the pair has exactly the instances it had.
    assert set(instances(world, "checkout-api", "staging")) == before

    async def stored() -> tuple[Any, list[Any], list[Any]]:
        async with await Store.open(store, create=False, read_only=True) as opened:
            (record,) = await opened.deploys()
            return record, await opened.deploy_log(record.id), await opened.steps(record.id)

    record, log, steps = asyncio.run(stored())
    assert record.state == "failed" and steps == []
    assert [(line.source, line.line) for line in log] == [
        ("hook cab", "CAB says no to 5.2.0 (CHG-9)")
    ]
    hooks = [r for r in audit(store) if r.action == "hook"]
    assert [(r.outcome, r.deploy_id) for r in hooks] == [("failed", record.id)]


def test_a_failing_post_hook_never_undoes_a_finished_deploy(world: Config, tmp_path: Path) -> None:
    seen = tmp_path / "seen.txt"
    post = script(tmp_path, "post.py", (
        "import os, sys\n"
        f"open({str(seen)!r}, 'a').write(os.environ['DEPLOY_EVENT'] + ' ' + "
        "os.environ['DEPLOY_STATE'] + '\\n')\n"
        "print('pager unreachable'); sys.exit(2)\n"
    ))  # fmt: skip
    config = with_hooks(world, tmp_path, [
        {"on": ["post-deploy", "succeeded", "failed"], "command": [sys.executable, post],
         "projects": ["media-service"], "clusters": ["staging"], "name": "pager"},
    ])  # fmt: skip
    store = tmp_path / "store.db"
    result = cli("deploy", "media-service", "staging", "1.5.0", "--anyway",
                 config=config, store=store)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert seen.read_text().splitlines() == ["post-deploy succeeded", "succeeded succeeded"]
    assert {tag["Value"] for i in live(world, "media-service", "staging")
            for tag in instances(world, "media-service", "staging")[i]["Tags"]
            if tag["Key"] == "Version"} == {"1.5.0"}  # fmt: skip
    hooks = [(r.outcome, r.reason) for r in audit(store) if r.action == "hook"]
    assert hooks == [
        ("failed", "post-deploy hook pager: exit 2: pager unreachable"),
        ("failed", "succeeded hook pager: exit 2: pager unreachable"),
    ]


def test_a_promotion_that_reaches_a_gate_saying_no_queues_no_stage(
    world: Config, tmp_path: Path
) -> None:
    store = tmp_path / "store.db"
    refused = cli("promote", "storefront", "2.16.0", "--yes", config=world.source, store=store)
    assert refused.returncode == 3, refused.stderr
    (line,) = refused.stderr.splitlines()
    assert line.startswith("deploy-console: refused: release gate of prod2 (storefront 2.16.0)")
    assert line.endswith("; nothing queued"), line

    async def deploys() -> list[Any]:
        async with await Store.open(store, create=False, read_only=True) as opened:
            return await opened.deploys()

    assert asyncio.run(deploys()) == []


async def test_a_shared_hosts_runner_service_holds_the_gate_and_the_command_exits_3(
    world: Config, tmp_path: Path
) -> None:
    """Through the runner service's door (a shared console host) the service asks the gate
    itself, and its refusal reaches the command line as a refusal."""
    from console.config import load_config
    from console.deploy.services import deploy_services
    from console.queue.release_queue import DeployQueue
    from console.queue.runner import Runner
    from console.servers.runner_door import RunnerDoor

    store, socket = tmp_path / "store.db", tmp_path / "run" / "runner.sock"
    async with deploy_services(world, store) as services:
        runner = Runner(services.engine, DeployQueue(services.store, world), executes=False)
        door = RunnerDoor(runner, socket)
        await door.start()
        host = tmp_path / "host.toml"
        host.write_text(world.source.read_text() + f'\n[runner]\nsocket = "{socket}"\n')
        load_config(host)
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "screens.main", "deploy", "storefront", "prod2",
                "2.16.0", "--yes", "--anyway", "--no-wait", "--config", str(host),
                cwd=ROOT, stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            out, err = await asyncio.wait_for(process.communicate(), TIMEOUT)
        finally:
            await door.close()
        assert process.returncode == 3, err
        assert out == b""
        assert err.decode().startswith(
            "deploy-console: refused: release gate of prod2 (storefront 2.16.0) said no: exit 1"
        )
        assert await services.store.deploys() == []
        rows = await services.store.audit_rows()
        assert [r.action for r in rows if r.action == "gate.refused"] == ["gate.refused"]
