"""The deploy screen's live log with the real engine: what an instance prints to take over
the operator's terminal (OSC 52, title, cursor moves, C1, overprints) is shown as text."""

from __future__ import annotations

from pathlib import Path

from console.config import Config
from console.model import DeployState
from tests.console.deploy.test_deploy_output import CONFIGURE, HEALTH
from tests.deploy_world import faster, live
from tests.screens.ui import wait_for
from tests.screens.ui.test_deploy_real import DEPLOY_TIMEOUT, console, start, world

__all__ = ["world"]  # the module's world fixture, shared with test_deploy_real's tests


async def test_the_deploy_log_shows_escape_sequences_as_text(world: Config, tmp_path: Path) -> None:
    config = faster(world, "marketing-site", configure=CONFIGURE, health=HEALTH)
    old = live(world, "marketing-site", "staging")
    async with console(config, tmp_path / "store.db") as (app, pilot):
        screen = await start(app, pilot, "marketing-site", "staging", "24.11.0")
        await wait_for(pilot, lambda: screen.tracked.finished, "the deploy's end", DEPLOY_TIMEOUT)
        await pilot.pause()
        assert screen.tracked.state is DeployState.SUCCEEDED
        shown = [strip.text for strip in screen.log_widget.lines]
        shown.append(app.export_screenshot())
    joined = "".join("".join(shown).split())
    assert r"\x1b]52;c;ZWNobyBwd25lZA==\x07\x1b]0;owned\x07" in joined
    assert r"\x1b]0;health-title\x07" in joined
    assert all("\x1b" not in text and "\x07" not in text and "\x9b" not in text for text in shown)
    assert live(world, "marketing-site", "staging").isdisjoint(old)
