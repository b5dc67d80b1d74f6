"""Shared by the notification tests: a config on loopback channels, a store with a deploy
that ends, and a notifier driven until the outbox is settled."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from console.config import Config, load_config
from console.notify.delivery import Notifier
from console.store import DeployRecord, Store
from tests.waiting import await_until

CLUSTERS = """\
[[clusters]]
name = "staging"
region = "us-east-1"

[[clusters]]
name = "prod1"
region = "us-east-1"

[notify]
retry_seconds = 0.05
max_retry_seconds = 0.2
max_attempts = {attempts}

"""


def notify_config(tmp_path: Path, channels: str, attempts: int = 10) -> Config:
    path = tmp_path / "notify.toml"
    path.write_text(CLUSTERS.format(attempts=attempts) + channels)
    return load_config(path)


async def deploy_that_ends(
    store: Store, state: str = "failed", *, cluster: str = "prod1", ticket: str | None = "CHG-7"
) -> DeployRecord:
    """A deploy queued, started and ended, each change with its audit row (as the queue and
    the engine write them)."""
    deploy_id = f"d-{datetime.now(UTC):%H%M%S%f}"
    record = DeployRecord(
        id=deploy_id,
        project="storefront",
        cluster=cluster,
        release="2.15.0",
        actor="alice",
        ticket=ticket,
    )
    await store.create_deploy(record)
    pair = {"actor": "alice", "project": "storefront", "cluster": cluster, "deploy_id": deploy_id}
    await store.audit("queue.enqueue", outcome="queued", reason="2.15.0", **pair)  # type: ignore[arg-type]
    await store.set_deploy_state(
        deploy_id, "running", audit={"action": "queue.claim", "outcome": "running", **pair}
    )
    await store.set_deploy_state(
        deploy_id,
        state,
        reason="health check failed on i-0abc" if state == "failed" else "",
        audit={"action": "deploy.finished", "outcome": state, "reason": "health", **pair},
    )
    return record


async def settle(
    notifier: Notifier, what: str = "the outbox to settle", timeout: float = 30.0
) -> None:
    """Drive the notifier until nothing is pending or unrouted."""

    async def settled() -> bool:
        await notifier.once()
        await notifier.settle()
        counts = await notifier.outbox.counts()
        return counts["pending"] == 0 and counts["unrouted"] == 0

    await await_until(settled, what, timeout, every=0.02)
