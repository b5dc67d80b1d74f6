"""Drift on screen at 80x24: a pair with a finding to look at shows `!` after its counts and
the detail line says the finding; a baselined pair shows none; the project screen lists each
cluster's findings, the baselined one dim with who took it as known."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from console.config import load_config
from console.drift.review import review, row
from console.store import Store
from screens.dashboard.fleet_matrix import FleetMatrix
from screens.messages import ProjectChosen
from screens.project.cluster_panel import ClusterPanel
from screens.project.screen import ProjectScreen
from tests.conftest import DEMO_CONFIG
from tests.screens.ui import FROZEN_NOW, SteppingClock, stub_app, synthetic_snapshot, wait_for
from tests.screens.ui.test_queue_screen import QueueDeploys, runner_for


async def test_a_finding_marks_its_cell_says_it_and_is_listed_on_the_project(
    tmp_path: Path,
) -> None:
    config = load_config(DEMO_CONFIG)
    clock = SteppingClock()
    snapshot = synthetic_snapshot(config, FROZEN_NOW, "1.0.0")
    env = snapshot.envs[("storefront", "staging")]
    by_hand = dataclasses.replace(env.instances[0], managed_by=None)  # no DeployId either
    snapshot.envs[("storefront", "staging")] = dataclasses.replace(
        env, instances=(by_hand, *env.instances[1:])
    )
    async with await Store.open(tmp_path / "console.db", clock=clock) as store:
        # Every finding baselined but the hand-launched instance (provenance: 1.0.0 never
        # passed a stage in this empty store).
        found = await review(config, snapshot, store)
        known = [row(item.finding) for item in found if item.finding.kind != "unmanaged"]
        assert len(known) == len(found) - 1
        await store.drift.baseline(known, "alice")
        runner = runner_for(store, config, clock)
        app = stub_app(config, snapshot, clock=clock, deploys=QueueDeploys(runner))
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: app.findings, "the findings read")
            await pilot.pause()
            matrix = app.dashboard.query_one(FleetMatrix)
            assert matrix.cell_plain("storefront", "staging").endswith("2/2 !")
            assert matrix.cell_plain("storefront", "prod1").endswith("2/2")  # baselined
            matrix.move_to("storefront", "staging")
            await pilot.pause()
            detail = str(app.dashboard.query_one("#detail").visual)
            assert detail.startswith(
                "storefront · staging  no last deploy known  ·  "
                f"! drift unmanaged: {by_hand.id} (1.0.0, "
            )

            app.post_message(ProjectChosen("storefront", "staging"))
            await wait_for(pilot, lambda: isinstance(app.screen, ProjectScreen), "the project")
            await pilot.pause()
            panels = {panel.cluster.name: panel for panel in app.screen.query(ClusterPanel)}
            staging = str(panels["staging"].query_one(".panel-problem").visual)
            assert "! drift unmanaged d-" in staging and by_hand.id in staging
            assert "to do: deploy the pair to replace it" in staging
            prod1 = str(panels["prod1"].query_one(".panel-problem").visual)
            assert "! drift provenance" in prod1 and "(baseline by alice)" in prod1
