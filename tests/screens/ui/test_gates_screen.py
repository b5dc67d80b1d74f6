"""The console at 80x24 on the demo's world: a deploy of storefront 2.16.0 (its build failed)
to prod2 is refused by prod2's release gate, said on screen, and nothing is queued."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from textual.widgets import Static

from console.config import Config
from console.store import Store
from tests.conftest import DEMO_CONFIG
from tests.deploy_world import world_process
from tests.screens.ui import wait_for
from tests.screens.ui.test_deploy_real import console, start


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Config]:
    with world_process(DEMO_CONFIG, tmp_path_factory.mktemp("ui-gates-world")) as config:
        yield config


async def test_the_console_says_the_release_gate_refused_a_failed_build(
    world: Config, tmp_path: Path
) -> None:
    store = tmp_path / "store.db"
    async with console(world, store) as (app, pilot):
        screen = await start(app, pilot, "storefront", "prod2", "2.16.0")
        await wait_for(pilot, lambda: bool(app._notifications), "the refusal", timeout=60)
        (note,) = list(app._notifications)
        assert note.severity == "error"
        assert note.message.startswith(
            "storefront → prod2 2.16.0: release gate of prod2 (storefront 2.16.0) said no: "
            "exit 1: storefront 2.16.0 (ami-"
        ), note.message
        assert note.message.endswith("build did not pass (BuildStatus=failed); nothing queued")
        # The deploy screen's title line says it failed at once, without a step run.
        title = str(screen.query_one("#deploy-title", Static).render())
        assert "failed" in title, title
    async with await Store.open(store, create=False, read_only=True) as opened:
        assert await opened.deploys() == []
        assert [r.action for r in await opened.audit_rows() if r.action == "gate.refused"] == [
            "gate.refused"
        ]
