"""The queue asks a cluster's ticket check and release gate before anything is queued: a
loopback tracker says yes (queued, its answer on the audit row) or no (GateRefused, nothing
queued, the answer on a `gate.refused` row)."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from console.config import Config, ProbeSettings, TicketSettings, load_config
from console.model import DeployRequest
from console.queue.release_queue import DeployQueue, GateRefused
from console.store import Store
from tests.conftest import DEMO_CONFIG
from tests.console.gates.receiver import receiver


def gated(ticket_url: str | None = None, build: ProbeSettings | None = None) -> Config:
    """The demo's config with staging's ticket checked at `ticket_url` and its builds by
    `build` (and no other gate)."""
    config = load_config(DEMO_CONFIG)
    check = ProbeSettings(url=ticket_url, timeout=2) if ticket_url else None
    clusters = tuple(
        dataclasses.replace(
            cluster,
            require_build=build if cluster.name == "staging" else None,
            ticket=TicketSettings(check=check) if cluster.name == "staging" else None,
        )
        for cluster in config.clusters
    )
    return dataclasses.replace(config, clusters=clusters)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with await Store.open(tmp_path / "console.db") as opened:
        yield opened


def deploy(ticket: str | None = "CHG-7", release: str = "2.15.0") -> DeployRequest:
    return DeployRequest("storefront", "staging", release, "alice", ticket=ticket)


async def test_an_approved_ticket_is_queued_with_the_trackers_answer_on_record(
    store: Store,
) -> None:
    async with receiver(body="CHG-7 approved\n") as tracker:
        queue = DeployQueue(store, gated(tracker.url + "/rest/change/{ticket}"))
        record = await queue.enqueue(deploy(), "d-1")
    assert record.state == "queued"
    assert tracker.seen == ["/rest/change/CHG-7"]
    (row,) = [r for r in await store.audit_rows() if r.action == "queue.enqueue"]
    assert row.reason == "2.15.0 ticket CHG-7 check passed (HTTP 200: CHG-7 approved)"


async def test_a_refused_ticket_queues_nothing_and_the_refusal_is_on_record(
    store: Store,
) -> None:
    async with receiver(status=403, body="CHG-7 is not approved yet\n") as tracker:
        queue = DeployQueue(store, gated(tracker.url + "/{ticket}"))
        with pytest.raises(GateRefused) as refused:
            await queue.enqueue(deploy(), "d-1")
    assert refused.value.message == (
        "ticket CHG-7 check of staging said no: HTTP 403: CHG-7 is not approved yet; nothing queued"
    )
    assert await store.deploy("d-1") is None
    (row,) = await store.audit_rows()
    assert (row.action, row.actor, row.outcome, row.ticket) == (
        "gate.refused",
        "alice",
        "refused",
        "CHG-7",
    )
    assert row.reason == refused.value.message


async def test_no_ticket_given_where_none_is_required_asks_no_tracker(store: Store) -> None:
    async with receiver(status=500) as tracker:
        queue = DeployQueue(store, gated(tracker.url + "/{ticket}"))
        await queue.enqueue(deploy(ticket=None), "d-1")
    assert tracker.seen == []


async def test_a_release_gate_refuses_a_failed_build_and_lets_a_rollback_through(
    store: Store,
) -> None:
    script = "import sys; print('build', sys.argv[1], 'failed'); sys.exit(1)"
    build = ProbeSettings(command=(sys.executable, "-c", script, "{release}"))
    queue = DeployQueue(store, gated(build=build))
    with pytest.raises(GateRefused, match=r"^release gate of staging \(storefront 2.16.0\) said "
                       r"no: exit 1: build 2.16.0 failed; nothing queued$"):  # fmt: skip
        await queue.enqueue(deploy(release="2.16.0"), "d-1")
    # A rollback puts back a release that served there: the gate is not asked.
    rollback = dataclasses.replace(deploy(release="2.14.1"), rollback_of="d-0")
    assert (await queue.enqueue(rollback, "d-2")).state == "queued"


async def test_a_promotion_is_refused_whole_when_one_stage_is(store: Store) -> None:
    script = "import sys; sys.exit(0 if sys.argv[1] != 'staging' else 2)"
    build = ProbeSettings(command=(sys.executable, "-c", script, "{cluster}"))
    queue = DeployQueue(store, gated(build=build))
    with pytest.raises(GateRefused, match=r"^release gate of staging"):
        await queue.promote("storefront", "2.15.0", "alice", ["d-1", "d-2", "d-3", "d-4"])
    assert await store.deploys() == []
