"""Nothing is lost when the runner dies: a real `deploy-console runner` runs a deploy while the
webhook receiver answers 500, is killed with SIGKILL after the deploy ended and before any
delivery succeeded; the next runner delivers every event (at least once, same keys)."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from console.config import Config
from console.store import Store
from tests.console.notify.receiver import Receiver
from tests.console.queue.test_queue_crash import TIMEOUT, command, start, stop, store_until, world
from tests.deploy_world import ROOT, running_versions

__all__ = ["world"]  # the module-scoped world fixture, started once for this file


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = await Receiver().start()
    yield server
    await server.stop()


def with_webhook(source: Path, receiver: Receiver, directory: Path) -> Path:
    path = directory / "notify.toml"
    path.write_text(
        source.read_text()
        + "\n[notify]\nretry_seconds = 0.2\nmax_retry_seconds = 1\nmax_attempts = 100\n\n"
        + f'[notify.channels.ops]\ntype = "webhook"\nurl = "{receiver.url}/deploys"\n\n'
        + '[[notify.routes]]\nchannels = ["ops"]\n'
    )
    return path


async def test_a_runner_killed_after_the_deploy_ended_loses_no_notification(
    world: tuple[Config, Path], tmp_path: Path, receiver: Receiver
) -> None:
    config, source = world
    notify_source = with_webhook(source, receiver, tmp_path)
    store = tmp_path / "store.db"
    (current,) = running_versions(config, "storefront", "staging")
    release = "2.14.1" if current != "2.14.1" else "2.15.0"
    receiver.down = True
    queued = await asyncio.to_thread(
        subprocess.run,
        command("deploy", "--anyway", "storefront", "staging", release, "--json", "--no-wait",
                config=notify_source, store=store),
        cwd=ROOT, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=TIMEOUT,
    )  # fmt: skip
    assert queued.returncode == 0, queued.stderr
    deploy_id = json.loads(queued.stdout)["deploy_id"]

    first = start("runner", config=notify_source, store=store)
    try:

        async def ended_and_tried(opened: Store) -> bool:
            record = await opened.deploy(deploy_id)
            if record is None or record.state in ("queued", "running"):
                return False
            tried = {d.event.event: d.attempts for d in await opened.outbox.for_deploy(deploy_id)}
            return tried.get("succeeded", 0) >= 1

        await store_until(store, ended_and_tried, f"{deploy_id} to end, its events tried")
    finally:
        first.kill()  # kill -9: whatever it was sending or about to send
        first.wait()
    assert receiver.requests and not receiver.delivered  # all it could do was fail

    async with await Store.open(store) as opened:
        record = await opened.deploy(deploy_id)
        assert record is not None and record.state == "succeeded", record
        expected = {(d.event.event, d.event.key) for d in await opened.outbox.for_deploy(deploy_id)}
        # (a loaded machine may add an `interrupted`: a lock taken over; it must arrive too)
        assert {"queued", "started", "succeeded"} <= {event for event, _ in expected}

    receiver.down = False
    second = start("runner", config=notify_source, store=store)
    try:

        async def settled(opened: Store) -> dict[str, int] | None:
            counts = await opened.outbox.counts()
            return counts if counts["pending"] == counts["unrouted"] == 0 else None

        counts = await store_until(store, settled, "every notification delivered")
    finally:
        stop(second)
    assert second.returncode == 0
    received = {(r.body["event"], r.headers["Idempotency-Key"]) for r in receiver.delivered}
    lost = expected - received
    print(f"\nnotifications lost across kill -9: {len(lost)} of {len(expected)}")
    assert lost == set()
    assert counts["failed"] == 0
    for request in receiver.delivered:
        assert request.body["deploy_id"] == deploy_id and request.body["release"] == release
        assert request.headers["Idempotency-Key"] == request.body["idempotency_key"]
