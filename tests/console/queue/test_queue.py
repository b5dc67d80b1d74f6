"""The release queue on a real store: order per pair, why each deploy waits, locks, freezes,
moves, newest-wins, promotions, claims and interrupted deploys."""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from console.config import Config, QueueSettings, load_config
from console.config.tickets import TicketSettings
from console.errors import ConfigError
from console.model import DeployRequest
from console.queue.release_queue import DeployQueue, QueueError
from console.store import Store
from tests.console.store.test_store import Clock

DEMO = Path(__file__).resolve().parents[3] / "config" / "demo.toml"


@pytest.fixture(scope="module")
def config() -> Config:
    return without_gates(load_config(DEMO))


def without_gates(config: Config) -> Config:
    """The demo's config without its release gate (prod2's require_build asks the demo's
    world, which these store-only tests do not start)."""
    clusters = tuple(dataclasses.replace(c, require_build=None) for c in config.clusters)
    return dataclasses.replace(config, clusters=clusters)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def queue(tmp_path: Path, config: Config, clock: Clock) -> AsyncIterator[DeployQueue]:
    async with await Store.open(tmp_path / "console.db", clock=clock) as store:
        yield DeployQueue(store, config)


def request(project: str = "storefront", cluster: str = "staging", release: str = "2.15.0",
            actor: str = "alice") -> DeployRequest:  # fmt: skip
    return DeployRequest(project, cluster, release, actor)


async def reasons(queue: DeployQueue) -> dict[str, str]:
    return {entry.record.id: entry.waiting for entry in await queue.entries()}


async def actions(queue: DeployQueue) -> list[tuple[str, str | None, str | None]]:
    rows = await queue.store.audit_rows()
    return [(row.action, row.deploy_id, row.outcome) for row in rows]


async def test_one_deploy_per_pair_first_in_first_out(queue: DeployQueue) -> None:
    await queue.enqueue(request(release="2.14.0"), "d-1")
    await queue.enqueue(request(release="2.15.0"), "d-2")
    await queue.enqueue(request(cluster="qaprod1"), "d-3")

    assert await reasons(queue) == {
        "d-1": "",
        "d-2": "behind d-1 (queued) on storefront in staging",
        "d-3": "",
    }
    first = await queue.claim("runner-a")
    assert first is not None and first.id == "d-1" and first.state == "running"
    assert first.runner == "runner-a"
    holder = await queue.store.lock_holder("storefront", "staging")
    assert holder is not None and holder.deploy_id == "d-1"

    second = await queue.claim("runner-b")
    assert second is not None and second.id == "d-3"  # another pair runs in parallel
    assert await queue.claim("runner-b") is None  # d-2 waits for d-1
    assert (await reasons(queue))["d-2"] == "behind d-1 (running) on storefront in staging"

    await queue.store.set_deploy_state("d-1", "succeeded")
    await queue.store.release_lock("storefront", "staging", "d-1")
    third = await queue.claim("runner-b")
    assert third is not None and third.id == "d-2"
    assert ("queue.enqueue", "d-1", "queued") in await actions(queue)
    assert ("queue.claim", "d-2", "running") in await actions(queue)


async def test_the_global_limit_holds_back_other_pairs(
    tmp_path: Path, config: Config, clock: Clock
) -> None:
    limited = dataclasses.replace(config, queue=QueueSettings(parallel=2))
    async with await Store.open(tmp_path / "console.db", clock=clock) as store:
        queue = DeployQueue(store, limited)
        for n, cluster in enumerate(("staging", "qaprod1", "prod1"), start=1):
            await queue.enqueue(request(cluster=cluster), f"d-{n}")
        assert await queue.claim("r") is not None
        assert await queue.claim("r") is not None
        assert await queue.claim("r") is None
        assert (await reasons(queue))["d-3"] == "global limit: 2 deploys at a time, 2 running"


async def test_a_freeze_holds_a_cluster_with_its_reason(queue: DeployQueue, clock: Clock) -> None:
    await queue.freeze("prod1", "carol", "Black Friday")
    await queue.enqueue(request(cluster="prod1"), "d-1")

    assert await queue.claim("r") is None
    assert (await reasons(queue))["d-1"] == (
        "prod1 frozen by carol since 2026-11-26 16:23 UTC: Black Friday"
    )
    with pytest.raises(QueueError, match="already prod1 frozen by carol"):
        await queue.freeze("prod1", "dave", "again")

    await queue.unfreeze("prod1", "carol")
    assert (await queue.claim("r")).id == "d-1"  # type: ignore[union-attr]
    assert [a for a in await actions(queue) if a[0].startswith("queue.")][:2] == [
        ("queue.freeze", None, "frozen"),
        ("queue.enqueue", "d-1", "queued"),
    ]
    assert ("queue.unfreeze", None, "unfrozen") in await actions(queue)


async def test_locks_block_others_never_their_owner_and_warnings_only_warn(
    queue: DeployQueue, clock: Clock
) -> None:
    lock = await queue.lock(
        owner="bob",
        reason="db migration",
        cluster="prod1",
        expires_at=clock.now + timedelta(hours=1),
    )
    await queue.lock(owner="erin", reason="watch errors", project="checkout-api", warning=True)
    await queue.enqueue(request(cluster="prod1", actor="alice"), "d-alice")
    bob_over_ssh = "bob (ssh SHA256:abc from 127.0.0.1:50412)"  # still bob: his lock, his deploy
    await queue.enqueue(
        request(project="admin-portal", cluster="prod1", actor=bob_over_ssh), "d-bob"
    )
    await queue.enqueue(request(project="checkout-api", cluster="qaprod1"), "d-warned")

    why = await reasons(queue)
    assert why["d-alice"] == (
        f"locked on cluster prod1 by bob: db migration (until {lock.expires_at:%Y-%m-%d %H:%M} UTC)"
    )
    assert why["d-bob"] == "" and why["d-warned"] == ""

    clock.advance(3601)  # the lock expires: it goes, and says so in the audit
    claimed = {(await queue.claim("r")).id for _ in range(3)}  # type: ignore[union-attr]
    assert claimed == {"d-alice", "d-bob", "d-warned"}
    assert ("lock.expired", None, "expired") in await actions(queue)


async def test_unlock_frees_the_queue_and_unknown_locks_are_refused(queue: DeployQueue) -> None:
    lock = await queue.lock(owner="bob", reason="incident 42")
    await queue.enqueue(request(), "d-1")
    assert "locked on everything by bob: incident 42" in (await reasons(queue))["d-1"]
    await queue.unlock(lock.id, "bob")
    assert (await reasons(queue))["d-1"] == ""
    with pytest.raises(QueueError, match="no lock #99"):
        await queue.unlock(99, "bob")
    again = await queue.lock(owner="bob", reason="incident 43")
    assert again.id == lock.id + 1  # a removed lock's number is never reused
    with pytest.raises(QueueError, match="needs a reason"):
        await queue.lock(owner="bob", reason=" ")
    with pytest.raises(ConfigError, match="unknown cluster 'prod9'"):
        await queue.lock(owner="bob", reason="x", cluster="prod9")


async def test_cancel_and_move_within_a_pair(queue: DeployQueue) -> None:
    for n in range(1, 4):
        await queue.enqueue(request(release=f"2.1{n}.0"), f"d-{n}")
    await queue.move("d-3", -1, "alice")
    order = [entry.record.id for entry in await queue.entries()]
    assert order == ["d-1", "d-3", "d-2"]
    await queue.move("d-3", -5, "alice")
    assert [entry.record.id for entry in await queue.entries()] == ["d-3", "d-1", "d-2"]
    with pytest.raises(QueueError, match="already first"):
        await queue.move("d-3", -1, "alice")

    cancelled = await queue.cancel("d-1", "bob")
    assert cancelled.state == "cancelled" and cancelled.reason == "cancelled by bob"
    assert [entry.record.id for entry in await queue.entries()] == ["d-3", "d-2"]
    with pytest.raises(QueueError, match="is cancelled: nothing to cancel"):
        await queue.cancel("d-1", "bob")
    with pytest.raises(QueueError, match="unknown deploy 'd-9'"):
        await queue.cancel("d-9", "bob")
    assert ("queue.move", "d-3", "moved") in await actions(queue)
    assert ("queue.cancel", "d-1", "cancelled") in await actions(queue)


async def test_cancelling_a_running_deploy_asks_its_console(queue: DeployQueue) -> None:
    await queue.enqueue(request(), "d-1")
    await queue.claim("r")
    record = await queue.cancel("d-1", "bob")
    assert record.state == "running" and record.cancel_requested == "bob"
    assert await queue.store.cancel_requested("d-1") == "bob"


async def test_newest_wins_cancels_the_older_queued_deploys(
    tmp_path: Path, config: Config, clock: Clock
) -> None:
    projects = tuple(
        dataclasses.replace(p, newest_wins=p.name == "storefront") for p in config.projects
    )
    async with await Store.open(tmp_path / "console.db", clock=clock) as store:
        queue = DeployQueue(store, dataclasses.replace(config, projects=projects))
        await queue.enqueue(request(release="2.13.0"), "d-1")
        await queue.claim("r")  # running: a newer deploy never cancels it
        await queue.enqueue(request(release="2.14.0"), "d-2")
        await queue.enqueue(request(release="2.15.0"), "d-3")
        await queue.enqueue(request(cluster="qaprod1", release="2.14.0"), "d-4")

        old = await store.deploy("d-2")
        assert old is not None and old.state == "cancelled"
        assert old.reason == "superseded by a newer queued deploy (d-3, 2.15.0)"
        assert [e.record.id for e in await queue.entries()] == ["d-1", "d-3", "d-4"]


async def test_a_promotion_runs_stage_after_stage(queue: DeployQueue) -> None:
    ids = ["d-s", "d-q", "d-p1", "d-p2"]
    records = await queue.promote("storefront", "2.15.0", "alice", ids)
    assert [(r.id, r.cluster, r.after_deploy) for r in records] == [
        ("d-s", "staging", None),
        ("d-q", "qaprod1", "d-s"),
        ("d-p1", "prod1", "d-q"),
        ("d-p2", "prod2", "d-q"),
    ]
    assert (await reasons(queue))["d-q"] == "waits for d-s (storefront in staging) to succeed"
    assert (await queue.claim("r")).id == "d-s"  # type: ignore[union-attr]
    assert await queue.claim("r") is None

    await queue.store.set_deploy_state("d-s", "succeeded")
    await queue.store.release_lock("storefront", "staging", "d-s")
    assert (await queue.claim("r")).id == "d-q"  # type: ignore[union-attr]
    await queue.store.set_deploy_state("d-q", "rolled_back")
    await queue.store.release_lock("storefront", "qaprod1", "d-q")

    assert await queue.claim("r") is None
    for deploy_id in ("d-p1", "d-p2"):
        record = await queue.store.deploy(deploy_id)
        assert record is not None and record.state == "cancelled"
        assert record.reason == "promotion stopped: d-q (qaprod1) rolled back"


async def test_a_promotion_holds_each_stages_ticket_rule_and_carries_the_ticket(
    queue: DeployQueue, config: Config
) -> None:
    """prod1 asks for a change ticket: a promotion reaching it needs one, and every stage's
    deploy (and its audit rows) carries it."""
    clusters = tuple(
        dataclasses.replace(c, ticket=TicketSettings(required=True, pattern="^CHG-[0-9]+$"))
        if c.name == "prod1"
        else c
        for c in config.clusters
    )
    queue.config = dataclasses.replace(config, clusters=clusters)
    ids = ["d-s", "d-q", "d-p1", "d-p2"]
    with pytest.raises(
        QueueError, match=r"^cluster prod1 needs a change ticket: nothing promoted$"
    ):
        await queue.promote("storefront", "2.15.0", "alice", ids)
    with pytest.raises(QueueError, match="does not match"):
        await queue.promote("storefront", "2.15.0", "alice", ids, ticket="chg-1")
    assert await queue.store.deploys() == []
    records = await queue.promote("storefront", "2.15.0", "alice", ids, ticket="CHG-9")
    assert [(r.cluster, r.ticket) for r in records] == [
        ("staging", "CHG-9"), ("qaprod1", "CHG-9"), ("prod1", "CHG-9"), ("prod2", "CHG-9"),
    ]  # fmt: skip


async def test_a_console_that_stops_heartbeating_leaves_an_interrupted_deploy(
    queue: DeployQueue, clock: Clock
) -> None:
    await queue.enqueue(request(), "d-1")
    await queue.enqueue(request(release="2.16.0"), "d-2")
    await queue.claim("dead-console")
    assert await queue.take_interrupted("other") == []  # its heartbeat is fresh

    clock.advance(queue.stale_after + 1)
    (taken,) = await queue.take_interrupted("other")
    assert taken.id == "d-1" and taken.state == "interrupted" and taken.runner == "other"
    assert "its console (dead-console) stopped" in taken.reason
    assert (await reasons(queue))["d-2"] == (
        "behind d-1 (being reconciled) on storefront in staging"
    )
    assert await queue.claim("other") is None  # the pair stays held until reconciled

    await queue.reconciled(taken, "other", "rolled back: terminated i-1", ["i-1"])
    record = await queue.store.deploy("d-1")
    assert record is not None and record.reconciled_at is not None
    assert record.reason.endswith("; reconciled: rolled back: terminated i-1")
    assert (await queue.claim("other")).id == "d-2"  # type: ignore[union-attr]
    assert ("deploy.interrupted", "d-1", "interrupted") in await actions(queue)
    assert ("deploy.reconciled", "d-1", "reconciled") in await actions(queue)
    assert await queue.store.verify_audit() is None


def test_the_promotion_chain_is_checked_in_config(tmp_path: Path) -> None:
    text = re.sub(
        r"\n\[queue\]\n.*?\n\n", "\n", DEMO.read_text(), flags=re.S
    )  # the demo's own [queue] out
    bad = tmp_path / "bad.toml"
    bad.write_text(text + '\n[queue]\npromotion = ["staging", "prod9"]\n')
    with pytest.raises(ConfigError, match="'prod9' is not a cluster"):
        load_config(bad)
    bad.write_text(text + '\n[queue]\npromotion = ["staging+qaprod1", "prod1"]\n')
    with pytest.raises(ConfigError, match="only the last stage may name several clusters"):
        load_config(bad)
    bad.write_text(text + "\n[queue]\nparallel = 0\n")
    with pytest.raises(ConfigError, match="parallel"):
        load_config(bad)


def test_the_actor_is_the_os_account_whatever_the_environment_claims(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import pwd

    from console.deploy.services import actor
    from console.identity import SSH, Actor, parse

    for name in ("DEPLOY_CONSOLE_USER", "LOGNAME", "USER", "USERNAME"):
        monkeypatch.setenv(name, "alice")
    monkeypatch.setenv("DEPLOY_CONSOLE_VIA", "ssh SHA256:abc from 127.0.0.1:50412")
    assert actor() == pwd.getpwuid(os.getuid()).pw_name
    # What a door records reads back field by field.
    over_ssh = Actor("alice", SSH, key="SHA256:abc", source="127.0.0.1:50412")
    assert str(over_ssh) == "alice (ssh SHA256:abc from 127.0.0.1:50412)"
    assert parse(str(over_ssh)) == over_ssh


async def test_a_cancelled_stack_entry_cancels_its_stack_change(queue: DeployQueue) -> None:
    changes = queue.store.stack_changes  # type: ignore[attr-defined]
    change = await changes.plan(
        "storefront", "staging", "dc-storefront-staging", template="{}", summary="s", actor="bob"
    )
    entry = DeployRequest("storefront", "staging", change.id, "bob", kind="stack")
    record = await queue.enqueue(entry, "d-stack")
    await changes.queued(change.id, record.id, "bob")
    await queue.cancel(record.id, "bob", "not today")
    cancelled = await changes.get(change.id)
    assert cancelled.state == "cancelled" and cancelled.reason == "not today"
