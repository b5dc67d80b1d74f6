"""Approvals through the real commands against the embedded world: `approve`, `reject`, `wait`
and a waiting `deploy` (exit codes, who may approve, the image an approval is bound to), and a
break-glass `rollback` that waits for no approval.

The commands run as this process's OS account (the requester or the approver); the other
person acts in-process through the queue, as a second console would.
"""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import tomli_w

from console.config import Config, read_toml
from console.model import DeployRequest
from console.queue.release_queue import DeployQueue
from console.store import DeployRecord, Store
from tests.deploy_world import quick_seed, running_versions, world_process
from tests.screens.cli.test_cli_deploy import EventStream, cli, one_line_error, started

ME = pwd.getpwuid(os.getuid()).pw_name
ERROR, REFUSED = "deploy-console: error: ", "deploy-console: refused: "
WAITS = "waiting for approval by 1 other user with approve on {}"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Config]:
    """The demo world, quick, with prod1 and prod2 needing one approval."""
    workdir = tmp_path_factory.mktemp("cli-approvals-world")
    seed = quick_seed(workdir, 1)
    text = seed.read_text()
    for cluster in ("prod1", "prod2"):
        text = text.replace(f'name = "{cluster}"\n', f'name = "{cluster}"\napprovals = 1\n', 1)
    seed.write_text(text)
    with world_process(seed, workdir) as config:
        assert config.cluster("prod1").approvals == 1
        yield config


def image_of(world: Config, project: str, version: str) -> str:
    result = cli("releases", project, "--json", config=world.source)
    assert result.returncode == 0, result.stderr
    return next(
        r["image_id"] for r in json.loads(result.stdout)["releases"] if r["version"] == version
    )


async def _enqueue(store: Path, config: Config, request: DeployRequest, deploy_id: str) -> None:
    async with await Store.open(store) as opened:
        await DeployQueue(opened, config).enqueue(request, deploy_id)


def enqueue(store: Path, config: Config, *pair: str, actor: str = "alice") -> str:
    project, cluster, release = pair
    asyncio.run(_enqueue(store, config, DeployRequest(project, cluster, release, actor), "d-1"))
    return "d-1"


async def _stored(store: Path, deploy_id: str) -> tuple[DeployRecord, list[tuple[str, str]]]:
    async with await Store.open(store, create=False) as opened:
        record = await opened.deploy(deploy_id)
        assert record is not None
        rows = [(row.action, row.actor) for row in await opened.audit_rows(deploy_id=deploy_id)]
        denied = [(row.action, row.actor) for row in await opened.audit_rows() if not row.deploy_id]
        return record, rows + denied


def stored(store: Path, deploy_id: str) -> tuple[DeployRecord, list[tuple[str, str]]]:
    return asyncio.run(_stored(store, deploy_id))


async def _judge(store: Path, config: Config, deploy_id: str, verb: str, *args: str) -> None:
    async with await Store.open(store, create=False) as opened:
        queue = DeployQueue(opened, config)
        if verb == "approve":
            await queue.approve(deploy_id, "bob", *args)
        else:
            await queue.reject(deploy_id, "bob", *args)


def test_another_user_approves_seeing_the_plan_and_the_image_is_pinned(
    world: Config, tmp_path: Path
) -> None:
    store = tmp_path / "store.db"
    enqueue(store, world, "storefront", "prod1", "2.15.0")
    queued = cli("queue", config=world.source, store=store)
    assert WAITS.format("prod1") in queued.stdout

    result = cli("approve", "d-1", "--comment", "CAB ok", config=world.source, store=store)
    assert result.returncode == 0, result.stderr
    ami = image_of(world, "storefront", "2.15.0")
    lines = result.stdout.splitlines()
    assert lines[0] == "plan: storefront 2.14.1 → 2.15.0 in prod1"
    assert f"  AMI      {ami}" in lines
    assert lines[-1] == f"approved d-1 (storefront → prod1, 2.15.0 ({ami})): it may start"
    record, audit = stored(store, "d-1")
    assert record.image_id == ami and record.state == "queued"
    assert ("approve", ME) in audit
    assert "starts next" in cli("queue", config=world.source, store=store).stdout


def test_the_requester_may_not_approve_nor_reject_their_own(world: Config, tmp_path: Path) -> None:
    store = tmp_path / "store.db"
    enqueue(store, world, "storefront", "prod1", "2.15.0", actor=ME)
    for verb in (["approve"], ["reject", "--reason", "no"]):
        result = cli(*verb, "d-1", config=world.source, store=store)
        assert result.returncode == 3, result.stderr
        assert result.stderr.strip() == (
            f"{REFUSED}{ME} may not {verb[0]} their own deploy d-1: another user with approve "
            "on prod1 does"
        )
        assert "plan:" not in result.stdout  # refused before AWS is asked
    record, audit = stored(store, "d-1")
    assert record.state == "queued" and record.image_id is None
    assert audit.count(("denied", ME)) == 2


def test_without_the_approve_permission_is_exit_3(world: Config, tmp_path: Path) -> None:
    data = read_toml(Path(world.source))
    data["access"] = {"deployers": ["*"]}
    deployer = tmp_path / "deployer.toml"
    with deployer.open("wb") as output:
        tomli_w.dump(data, output)
    store = tmp_path / "store.db"
    enqueue(store, world, "storefront", "prod2", "2.15.0")
    result = cli("approve", "d-1", config=deployer, store=store)
    assert result.returncode == 3, result.stderr
    assert result.stderr.strip() == (
        f"{REFUSED}{ME} is a deployer in prod2: may not approve (a protected cluster needs admin)"
    )


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (["approve", "d-1"], "unknown deploy 'd-1' (no store at"),
        (["reject", "d-1"], "the following arguments are required: --reason"),
    ],
)
def test_bad_input_without_a_store_is_exit_2(
    world: Config, tmp_path: Path, arguments: list[str], expected: str
) -> None:
    store = tmp_path / "store.db"
    result = cli(*arguments, config=world.source, store=store)
    assert result.returncode == 2
    assert expected in one_line_error(result)
    assert not store.exists()


def test_an_unknown_or_unapprovable_deploy_is_exit_2(world: Config, tmp_path: Path) -> None:
    store = tmp_path / "store.db"
    enqueue(store, world, "storefront", "staging", "2.15.0")
    unknown = cli("approve", "d-nope", config=world.source, store=store)
    assert (unknown.returncode, one_line_error(unknown)) == (2, f"{ERROR}unknown deploy 'd-nope'")
    staging = cli("reject", "d-1", "--reason", "x", config=world.source, store=store)
    assert staging.returncode == 2
    assert one_line_error(staging) == f"{ERROR}staging needs no approval: deploy d-1 waits for none"


def test_fail_if_blocked_exits_3_on_a_deploy_that_would_wait_for_approval(
    world: Config, tmp_path: Path
) -> None:
    store = tmp_path / "store.db"
    result = cli(
        "deploy", "storefront", "prod1", "2.15.0", "--yes", "--fail-if-blocked",
        config=world.source, store=store,
    )  # fmt: skip
    assert result.returncode == 3, result.stderr
    assert result.stderr.strip() == f"{REFUSED}blocked: {WAITS.format('prod1')}"
    assert not store.exists()


def test_a_waiting_deploy_runs_the_approved_image_once_another_user_approves(
    world: Config, tmp_path: Path
) -> None:
    store = tmp_path / "store.db"
    process = started(
        "deploy", "admin-portal", "prod1", "3.9.0", "--yes", "--anyway", "--json",
        config=world.source, store=store,
    )  # fmt: skip
    events = EventStream(process)
    try:
        queued = events.until(lambda e: e["event"] == "DeployQueued")
        waiting = events.until(lambda e: e["event"] == "DeployWaiting" and e["reason"])
        assert waiting["reason"] == WAITS.format("prod1")
        ami = image_of(world, "admin-portal", "3.9.0")
        asyncio.run(_judge(store, world, queued["deploy_id"], "approve", ami, "go"))
        ran = events.until(lambda e: e["event"] == "DeployStarted")
        assert (ran["release"], ran["image_id"]) == ("3.9.0", ami)
        finished = events.rest()[-1]
        assert finished["state"] == "succeeded", finished
        assert process.returncode == 0
    finally:
        process.kill()
        process.wait()
    assert running_versions(world, "admin-portal", "prod1") == {"3.9.0"}


def test_a_rejected_deploy_ends_with_the_reason_and_exits_3(world: Config, tmp_path: Path) -> None:
    store = tmp_path / "store.db"
    process = started(
        "deploy", "storefront", "prod2", "2.15.0", "--yes", "--json",
        config=world.source, store=store,
    )  # fmt: skip
    events = EventStream(process)
    try:
        queued = events.until(lambda e: e["event"] == "DeployQueued")
        events.until(lambda e: e["event"] == "DeployWaiting" and e["reason"])
        deploy_id = queued["deploy_id"]
        asyncio.run(_judge(store, world, deploy_id, "reject", "no releases on Friday"))
        finished = events.rest()[-1]
        assert (finished["state"], finished["reason"]) == (
            "cancelled",
            "rejected by bob: no releases on Friday",
        )
        assert process.returncode == 3
    finally:
        process.kill()
        process.wait()
    waited = cli("wait", deploy_id, config=world.source, store=store)
    assert waited.returncode == 3, waited.stderr
    assert re.match(
        rf"deploy {deploy_id} \w+: rejected by bob: no releases on Friday", waited.stdout
    )
    _, audit = stored(store, deploy_id)
    assert ("reject", "bob") in audit and ("approval-wait", ME) in audit


async def _succeeded(store: Path) -> None:
    async with await Store.open(store) as opened:
        await opened.create_deploy(
            DeployRecord(
                id="d-0",
                project="checkout-api",
                cluster="prod2",
                release="5.2.0",
                actor="alice",
                state="succeeded",
                previous_release="5.1.0",
            )
        )


def test_break_glass_rolls_back_without_waiting_and_says_so_loudly(
    world: Config, tmp_path: Path
) -> None:
    store = tmp_path / "store.db"
    asyncio.run(_succeeded(store))
    empty = cli("rollback", "d-0", "--yes", "--break-glass", " ", config=world.source, store=store)
    assert empty.returncode == 2
    assert "--break-glass needs the reason" in one_line_error(empty)

    result = cli(
        "rollback", "d-0", "--yes", "--json", "--break-glass", "INC-7 checkout 500s",
        config=world.source, store=store,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert re.search(r"BREAK GLASS: d-\S+ rolls back d-0 without approval: INC-7", result.stderr)
    finished = json.loads(result.stdout.splitlines()[-1])
    assert finished["state"] == "succeeded", finished
    assert running_versions(world, "checkout-api", "prod2") == {"5.1.0"}
    _, audit = stored(store, finished["deploy_id"])
    assert ("break-glass", ME) in audit and ("approval-wait", ME) not in audit


async def _approvals(store: Path, config: Config, *given: tuple[str, str, int]) -> None:
    """Approvals written as another console would have: (who, image, hours until expiry)."""
    async with await Store.open(store, create=False) as opened, opened.transaction() as tx:
        for actor, image, hours in given:
            await tx.add_approval(
                deploy_id="d-1", project="storefront", cluster="prod1", image_id=image,
                actor=actor, verdict="approve", comment="",
                expires_at=tx.now + timedelta(hours=hours),
            )  # fmt: skip


def test_an_expired_approval_or_one_of_another_image_does_not_count(
    world: Config, tmp_path: Path
) -> None:
    store = tmp_path / "store.db"
    enqueue(store, world, "storefront", "prod1", "2.15.0")
    ami = image_of(world, "storefront", "2.15.0")
    asyncio.run(_pin(store, ami))
    asyncio.run(_approvals(store, world, ("bob", ami, -1), ("carol", "ami-0fedcba987654321f", 4)))
    queued = cli("queue", "--json", config=world.source, store=store)
    (entry,) = json.loads(queued.stdout)["deploys"]
    assert entry["waiting"] == f"{WAITS.format('prod1')}; expired: bob's"
    blocked = cli(
        "deploy", "storefront", "prod1", "2.15.0", "--yes", "--fail-if-blocked",
        config=world.source, store=store,
    )  # fmt: skip
    assert blocked.returncode == 3
    asyncio.run(_approvals(store, world, ("erin", ami, 4)))
    (entry,) = json.loads(cli("queue", "--json", config=world.source, store=store).stdout)[
        "deploys"
    ]
    assert entry["waiting"] is None  # it starts next


async def _pin(store: Path, ami: str) -> None:
    async with await Store.open(store, create=False) as opened, opened.transaction() as tx:
        await tx.pin_image("d-1", ami)
