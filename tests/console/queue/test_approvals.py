"""Approvals: the pure rule (whose approval counts, what a deploy waits for) and the queue on a
real store (approve, reject, break glass, promotions, expiry), each with its audit row."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from console.access import AccessDenied
from console.config import AccessSettings, Config, load_config
from console.errors import ConfigError
from console.model import DeployRequest
from console.queue.approvals import approval_wait, approvers
from console.queue.approving import OwnDeploy
from console.queue.release_queue import DeployQueue, QueueError
from console.store import MIGRATIONS, Approval, DeployRecord, Store
from tests.console.queue.test_queue import DEMO, without_gates
from tests.console.store.test_store import Clock

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
AMI, OTHER_AMI = "ami-0123456789abcdef0", "ami-0fedcba9876543210"
WAITS = "waiting for approval by 1 other user with approve on prod1"


def with_approvals(config: Config, **needed: int) -> Config:
    clusters = tuple(
        dataclasses.replace(c, approvals=needed[c.name]) if c.name in needed else c
        for c in config.clusters
    )
    return dataclasses.replace(config, clusters=clusters)


@pytest.fixture(scope="module")
def config() -> Config:
    """prod1 and prod2 need one approval; bob and carol are admins, dave a deployer in prod1."""
    demo = with_approvals(without_gates(load_config(DEMO)), prod1=1, prod2=1)
    access = AccessSettings(
        users={"alice": "admin", "bob": "admin", "carol": "admin", "dave": "deployer"},
        clusters={"prod1": {"dave": "deployer"}},
    )
    return dataclasses.replace(demo, access=access)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def queue(tmp_path: Path, config: Config, clock: Clock) -> AsyncIterator[DeployQueue]:
    async with await Store.open(tmp_path / "console.db", clock=clock) as store:
        yield DeployQueue(store, config)


def request(cluster: str = "prod1", actor: str = "alice", **more: str) -> DeployRequest:
    return DeployRequest("storefront", cluster, "2.15.0", actor, **more)  # type: ignore[arg-type]


async def reasons(queue: DeployQueue) -> dict[str, str]:
    return {entry.record.id: entry.waiting for entry in await queue.entries()}


async def audit(queue: DeployQueue) -> list[tuple[str, str, str | None, str | None]]:
    rows = await queue.store.audit_rows()
    return [(row.action, row.actor, row.deploy_id, row.outcome) for row in rows]


# -- the rule, pure ---------------------------------------------------------------------------


def approval(actor: str, image: str | None = AMI, **changes: object) -> Approval:
    made = Approval(
        id=1, deploy_id="d-1", project="storefront", cluster="prod1", image_id=image,
        actor=actor, verdict="approve", comment="", created_at=NOW,
        expires_at=NOW + timedelta(hours=4),
    )  # fmt: skip
    return dataclasses.replace(made, **changes)  # type: ignore[arg-type]


RECORD = DeployRecord(
    id="d-1", project="storefront", cluster="prod1", release="2.15.0", actor="alice",
    image_id=AMI,
)  # fmt: skip


def test_another_persons_approval_for_this_image_counts() -> None:
    assert approval_wait(RECORD, 1, (), NOW) == WAITS
    assert approvers(RECORD, [approval("bob (ssh SHA256:abc from 127.0.0.1:5)")], NOW) == ["bob"]
    assert approval_wait(RECORD, 1, [approval("bob")], NOW) == ""
    assert approval_wait(RECORD, 0, (), NOW) == ""  # the cluster needs none


def test_what_never_counts() -> None:
    """The requester (whatever door), another AMI, another deploy, pair, an expired one."""
    never = [
        approval("alice (web from 127.0.0.1:5000)"),
        approval("bob", OTHER_AMI),
        approval("bob", None),
        approval("bob", deploy_id="d-2"),
        approval("bob", cluster="prod2"),
        approval("bob", project="checkout-api"),
        approval("bob", expires_at=NOW - timedelta(seconds=1)),
        approval("bob", verdict="reject"),
    ]
    for given in never:
        assert approvers(RECORD, [given], NOW) == [], given
    assert approval_wait(RECORD, 1, never, NOW) == f"{WAITS}; expired: bob's"


def test_two_approvals_take_two_people() -> None:
    twice = [approval("bob"), approval("bob (ssh SHA256:abc)")]
    assert approval_wait(RECORD, 2, twice, NOW) == (
        "waiting for approval by 1 more user with approve on prod1 (bob approved)"
    )
    assert approval_wait(RECORD, 2, (), NOW).startswith("waiting for approval by 2 other users")
    assert approval_wait(RECORD, 2, [*twice, approval("carol")], NOW) == ""


def test_break_glass_waits_for_no_approval() -> None:
    glass = approval("alice", None, verdict="break-glass", expires_at=None)
    assert approval_wait(RECORD, 1, [glass], NOW) == ""


# -- the queue on a real store ----------------------------------------------------------------


async def test_a_deploy_waits_for_another_persons_approval_then_runs(
    queue: DeployQueue, clock: Clock
) -> None:
    await queue.enqueue(request(), "d-1")
    await queue.enqueue(request("staging"), "d-2")  # staging needs none
    assert await reasons(queue) == {"d-1": WAITS, "d-2": ""}
    assert ("approval-wait", "alice", "d-1", "queued") in await audit(queue)
    assert [a[0] for a in await audit(queue) if a[2] == "d-2"] == ["queue.enqueue"]

    with pytest.raises(OwnDeploy, match="alice may not approve their own deploy d-1"):
        await queue.approve("d-1", "alice", AMI)
    with pytest.raises(AccessDenied, match="dave is a deployer in prod1: may not approve"):
        await queue.approve("d-1", "dave", AMI)
    with pytest.raises(QueueError, match="staging needs no approval"):
        await queue.approve("d-2", "bob", AMI)
    assert (await queue.claim("r", only=["d-1"])) is None

    verdict = await queue.approve("d-1", "bob", AMI, "looks good")
    assert (verdict.approvers, verdict.waiting, verdict.record.image_id) == (("bob",), "", AMI)
    assert (await reasons(queue))["d-1"] == ""
    assert ("approve", "bob", "d-1", "approved") in await audit(queue)
    # Pinned: another image is not what was approved.
    with pytest.raises(QueueError, match=f"runs {AMI}, not {OTHER_AMI}"):
        await queue.approve("d-1", "carol", OTHER_AMI)
    claimed = await queue.claim("r", only=["d-1"])
    assert claimed is not None and claimed.image_id == AMI


async def test_an_approval_expires(queue: DeployQueue, clock: Clock) -> None:
    await queue.enqueue(request(), "d-1")
    await queue.approve("d-1", "bob", AMI)
    clock.advance(4 * 3600 - 1)
    assert (await reasons(queue))["d-1"] == ""
    clock.advance(2)
    assert (await reasons(queue))["d-1"] == f"{WAITS}; expired: bob's"
    await queue.approve("d-1", "carol", AMI)
    assert (await reasons(queue))["d-1"] == ""


async def test_a_rejected_deploy_ends_with_the_reason(queue: DeployQueue) -> None:
    await queue.enqueue(request(), "d-1")
    with pytest.raises(QueueError, match="needs a reason"):
        await queue.reject("d-1", "bob", "  ")
    with pytest.raises(OwnDeploy):
        await queue.reject("d-1", "alice", "no")
    with pytest.raises(QueueError, match="plain text"):
        await queue.reject("d-1", "bob", "bad\x1b[2J")
    ended = await queue.reject("d-1", "bob", "no releases on Friday")
    assert (ended.state, ended.reason) == ("cancelled", "rejected by bob: no releases on Friday")
    assert ("reject", "bob", "d-1", "cancelled") in await audit(queue)
    assert await reasons(queue) == {}
    with pytest.raises(QueueError, match="is cancelled: only a queued deploy is approved"):
        await queue.approve("d-1", "carol", AMI)


async def test_each_promotion_stage_asks_for_its_own(queue: DeployQueue) -> None:
    """staging → qaprod1 → prod1+prod2: the two protected stages each need an approval."""
    queued = await queue.promote("storefront", "2.15.0", "alice", ["d-1", "d-2", "d-3", "d-4"])
    assert [d.cluster for d in queued] == ["staging", "qaprod1", "prod1", "prod2"]
    await queue.approve("d-3", "bob", AMI)
    for stage in ("d-1", "d-2"):
        claimed = await queue.claim("r", only=[stage])
        assert claimed is not None
        await queue.store.set_deploy_state(stage, "succeeded")
        await queue.store.release_lock("storefront", claimed.cluster, stage)
    waits = await reasons(queue)
    assert waits == {"d-3": "", "d-4": WAITS.replace("prod1", "prod2")}
    assert [a[2] for a in await audit(queue) if a[0] == "approval-wait"] == ["d-3", "d-4"]


async def test_break_glass_is_an_admins_rollback_with_a_reason(
    queue: DeployQueue, config: Config
) -> None:
    rollback = request(rollback_of="d-0")
    with pytest.raises(QueueError, match="for a rollback only"):
        await queue.enqueue(request(), "d-1", break_glass="site down")
    with pytest.raises(AccessDenied, match="dave is a deployer in prod1: may not break glass"):
        await queue.enqueue(request(actor="dave", rollback_of="d-0"), "d-1", break_glass="x")
    with pytest.raises(QueueError, match="plain text"):
        await queue.enqueue(rollback, "d-1", break_glass="x\ny")
    await queue.enqueue(rollback, "d-1", break_glass="checkout 500s, INC-42")
    assert await reasons(queue) == {"d-1": ""}
    rows = [r for r in await queue.store.audit_rows() if r.action == "break-glass"]
    assert [(r.actor, r.deploy_id) for r in rows] == [("alice", "d-1")]
    assert rows[0].reason.startswith("BREAK GLASS: rollback of d-0: checkout 500s, INC-42")
    assert not [r for r in await queue.store.audit_rows() if r.action == "approval-wait"]


async def test_the_store_keeps_verdicts_per_deploy(queue: DeployQueue) -> None:
    await queue.enqueue(request(), "d-1")
    await queue.approve("d-1", "bob", AMI, "ok")
    async with queue.store.snapshot() as tx:
        given = await tx.approvals(["d-1", "d-unknown"])
    assert list(given) == ["d-1"]
    (row,) = given["d-1"]
    assert (row.actor, row.verdict, row.image_id, row.comment) == ("bob", "approve", AMI, "ok")
    assert row.expires_at is not None and row.expires_at - row.created_at == timedelta(hours=4)
    assert any("CREATE TABLE approvals" in step for steps in MIGRATIONS for step in steps)


def test_config_reads_approvals_and_their_expiry(tmp_path: Path) -> None:
    text = DEMO.read_text().replace(
        'name = "prod1"\n', 'name = "prod1"\napprovals = 2\napproval_expires = "30m"\n', 1
    )
    path = tmp_path / "c.toml"
    path.write_text(text)
    prod1 = load_config(path).cluster("prod1")
    assert (prod1.approvals, prod1.approval_expires) == (2, 1800.0)
    for bad, said in (("approvals = -1", "must be at least 0"), ('approval_expires = "soon"',
                      "must be a duration")):  # fmt: skip
        path.write_text(DEMO.read_text().replace('name = "prod1"\n', f'name = "prod1"\n{bad}\n'))
        with pytest.raises(ConfigError, match=said) as error:
            load_config(path)
        assert "c.toml:" in error.value.message


async def test_an_admin_breaks_glass_on_a_queued_rollback(queue: DeployQueue) -> None:
    """A rollback queued from the console's history waits for approval; its admin breaks
    glass on it in the queue, and it waits no more."""
    await queue.enqueue(request(rollback_of="d-0"), "d-1")
    await queue.enqueue(request(), "d-2")
    assert (await reasons(queue))["d-1"] == WAITS
    with pytest.raises(QueueError, match="for a rollback only"):
        await queue.break_glass("d-2", "alice", "site down")
    with pytest.raises(AccessDenied, match="dave is a deployer in prod1: may not break glass"):
        await queue.break_glass("d-1", "dave", "site down")
    with pytest.raises(QueueError, match="needs a reason"):
        await queue.break_glass("d-1", "alice", " ")
    await queue.break_glass("d-1", "carol", "INC-9 checkout down")
    assert (await reasons(queue))["d-1"] == ""
    assert ("break-glass", "carol", "d-1", "queued") in await audit(queue)
