"""What the kiosk reads of deploys: progress from step runs, in-flight deploys per pair."""

from __future__ import annotations

from pathlib import Path

from console.config import load_config
from console.model import DeployRequest
from console.queue.board import progress, read_board
from console.queue.release_queue import DeployQueue
from console.store import Store
from tests.conftest import DEMO_CONFIG


def test_progress_counts_ended_deploy_steps_and_names_the_running_one() -> None:
    assert progress([]) == (0, None)
    assert progress([("lock", "succeeded"), ("resolve", "running")]) == (1, "resolve")
    runs = [
        ("lock", "succeeded"),
        ("resolve", "succeeded"),
        ("launch", "succeeded"),
        ("configure", "failed"),
        ("register", "skipped"),
        ("rollback", "running"),
    ]
    assert progress(runs) == (5, "rollback")


async def test_a_pair_shows_its_running_deploy_and_how_many_wait_behind(tmp_path: Path) -> None:
    config = load_config(DEMO_CONFIG)
    async with await Store.open(tmp_path / "deploys.db") as store:
        queue = DeployQueue(store, config)
        first = DeployRequest("storefront", "staging", "2.16.0", "alice")
        await queue.enqueue(first, "d-1")
        await queue.enqueue(DeployRequest("checkout-api", "prod1", "5.2.3", "bob"), "d-2")
        await queue.claim("host:1:a", only=["d-1"])
        await queue.enqueue(first, "d-3")
        await store.step_started("d-1", "lock")
        board = await read_board(store, queue)
        running = board.in_flight[("storefront", "staging")]
        assert (running.record.id, running.running, running.queued_behind) == ("d-1", True, 1)
        assert (running.steps_done, running.current_step) == (0, "lock")
        waiting = board.in_flight[("checkout-api", "prod1")]
        assert (waiting.record.id, waiting.running, waiting.queued_behind) == ("d-2", False, 0)
        assert board.latest == ()
        await store.set_deploy_state("d-1", "succeeded")
        board = await read_board(store, queue)
        assert [record.id for record in board.latest] == ["d-1"]
