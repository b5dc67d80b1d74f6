"""A deploy that bakes tells people so: its audit rows (bake-start, bake-end) reach the outbox as
"baking" and "baked" events, between started and succeeded, with what is watched."""

from __future__ import annotations

from pathlib import Path

from console.config import Config
from console.notify.message import summary
from console.store import Store
from console.store.outbox import OutboxEvent
from tests.console.deploy.test_bake import CONFIG, deploy
from tests.console.deploy.test_engine import finished, world_fixture

bake_world = world_fixture("notify-bake", CONFIG)


async def test_a_deploy_that_bakes_notifies_baking_then_baked(
    bake_world: Config, tmp_path: Path
) -> None:
    store_path = tmp_path / "store.db"
    events = await deploy(bake_world, store_path, "keep", "1.1.0", watch=False)
    outcome = finished(events)
    assert outcome.state.value == "succeeded", outcome.reason
    seen: list[OutboxEvent] = []

    def route(event: OutboxEvent) -> list[str]:
        seen.append(event)
        return []

    async with await Store.open(store_path) as store:
        await store.outbox.route(route)
    mine = [event for event in seen if event.deploy_id == outcome.deploy_id]
    names = [event.event for event in mine]
    assert names == ["started", "baking", "baked", "succeeded"], names
    baking = mine[1]
    assert baking.cluster == "keep" and baking.outcome == "baking"
    assert summary(baking).startswith(
        f"deploy {outcome.deploy_id} checkout → keep 1.1.0: baking (by tester) — 1s"
    ), summary(baking)
