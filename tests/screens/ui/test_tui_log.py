"""Under the TUI the console logs to a file the help names; nothing logged reaches the screen."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from textual.widgets import Static

from console.config import Config
from console.model import FleetSnapshot
from screens import logging_setup
from screens.app import build_app
from tests.screens.ui import StubFleet, frozen_clock, open_help, text_of, wait_for


@pytest.fixture
def tui_logging(tmp_path: Path) -> Iterator[Path]:
    """Logging as `deploy-console` (no command) sets it up, its state dir in tmp_path."""
    root = logging.getLogger()
    level = root.level
    path = logging_setup.configure(None, "debug", state_dir=tmp_path / "state")
    assert path is not None
    yield path
    logging_setup.reset()
    root.setLevel(level)
    for name in logging_setup.OWN_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET)


async def test_a_record_lands_in_the_file_and_the_help_says_where(
    tui_logging: Path,
    world_config: Config,
    demo_snapshot: FleetSnapshot,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fleet = StubFleet(world_config, [demo_snapshot])
    app = build_app(world_config, fleet, clock=frozen_clock, auto_refresh=False)  # type: ignore[arg-type]
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.refresh_count >= 1, "the first refresh")
        logging.getLogger("console.fleet").warning("marker-7f3a9 from the core")
        await pilot.pause()
        assert "marker-7f3a9" not in app.export_screenshot()
        screen = await open_help(pilot)
        hint_widget = screen.query_one("#help-hint", Static)
        hint = text_of(hint_widget)
        assert hint.endswith(f"\nLogs: {tui_logging}")
        assert hint_widget.region.bottom <= 24
        assert "marker-7f3a9" not in app.export_screenshot()
    assert "WARNING console.fleet: marker-7f3a9 from the core" in tui_logging.read_text()
    assert capsys.readouterr() == ("", "")
