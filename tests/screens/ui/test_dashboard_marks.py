"""The dashboard's cells say what the queue and the store know of each pair: deploying,
queued (not "deploying"), frozen, locked, last deploy failed; in words, not colour alone."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from console.config import Config, load_config
from console.model import DeployState
from console.store import DeployRecord, Store
from screens.dashboard.fleet_matrix import FleetMatrix
from screens.dashboard.screen import DashboardScreen
from tests.conftest import DEMO_CONFIG
from tests.screens.ui import FROZEN_NOW, SIZE, SteppingClock, stub_app, text_of, wait_for
from tests.screens.ui.test_queue_screen import QueueDeploys, fill, runner_for


async def test_each_cell_shows_deploying_queued_frozen_locked_and_a_failed_last_deploy(
    tmp_path: Path,
) -> None:
    config: Config = load_config(DEMO_CONFIG)
    clock = SteppingClock()
    async with await Store.open(tmp_path / "console.db", clock=clock) as store:
        runner = runner_for(store, config, clock)
        await fill(runner.queue, clock)
        # admin-portal's last deploy to staging failed an hour ago.
        failed = "d-20261126-110000-ba0bab"
        await store.create_deploy(
            DeployRecord(
                id=failed,
                project="admin-portal",
                cluster="staging",
                release="3.9.0",
                actor="carol",
                state=DeployState.RUNNING.value,
                created_at=FROZEN_NOW - timedelta(hours=1),
            )
        )
        await store.set_deploy_state(
            failed, DeployState.FAILED.value, reason="health gate: 0/1 healthy after 300s"
        )
        app = stub_app(config, clock=clock, deploys=QueueDeploys(runner))
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: app.stored_marks, "the first read of the queue")
            await pilot.pause()
            matrix = app.dashboard.query_one(FleetMatrix)

            def cell(project: str, cluster: str) -> str:
                return " ".join(matrix.cell_plain(project, cluster).split())

            assert cell("storefront", "staging") == "⟳ deploying 2.15.0 ●"
            assert cell("media-service", "staging") == "◷ queued 1.6.0 ●"
            assert cell("checkout-api", "prod1") == "◷ queued 5.2.3 ●"  # waits for the freeze
            assert cell("storefront", "prod1").startswith("❄ frozen 1.0.0")
            assert cell("checkout-api", "qaprod1").startswith("⊘ locked 1.0.0")
            assert cell("admin-portal", "staging") == "✗ failed 3.9.0 ●"
            # A warning lock holds nothing back: search-api's cells show their health only.
            assert cell("search-api", "staging").startswith("● 1.0.0")
            assert app.stored_marks[("admin-portal", "staging")].why.endswith(
                "health gate: 0/1 healthy after 300s"
            )
            screen = app.screen
            assert isinstance(screen, DashboardScreen)
            legend = text_of(screen.query_one("#legend"))  # type: ignore[arg-type]
            for meaning in ("queued", "cluster frozen", "locked", "last deploy failed"):
                assert meaning in legend
