"""The config's [keymap] at 80x24: the footer and the help show the new key, the new key does
the action and the old one no longer does."""

from __future__ import annotations

from dataclasses import replace

from textual.widgets import Static
from textual.widgets._footer import FooterKey  # what the footer shows (no public name)

from console.config import Config
from console.config.keymap import KeymapSettings
from console.model import FleetSnapshot
from screens.app import DeployConsoleApp, build_app
from screens.dashboard.screen import DashboardScreen
from screens.keymap import kiosk_keymap
from screens.kiosk.screen import build_kiosk
from tests.screens.ui import StubFleet, frozen_clock, open_help, text_of, wait_for


def footer(app: DeployConsoleApp) -> list[tuple[str, str]]:
    """The footer's keys as shown: (key, what it does)."""
    return [(key.key_display, key.description) for key in app.screen.query(FooterKey)]


async def test_a_remapped_key_shows_in_footer_and_help_and_is_the_one_that_works(
    world_config: Config, demo_snapshot: FleetSnapshot
) -> None:
    keymap = KeymapSettings({"dashboard.refresh": ("f5",), "app.help": ("f1",)})
    config = replace(world_config, keymap=keymap)
    fleet = StubFleet(config, [demo_snapshot])
    app = build_app(config, fleet, clock=frozen_clock, auto_refresh=False)  # type: ignore[arg-type]
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.refresh_count >= 1, "the first refresh")
        await wait_for(pilot, lambda: ("f5", "Refresh") in footer(app), "f5 on the footer")
        shown = footer(app)
        assert ("r", "Refresh") not in shown
        assert ("f1", "Help") in shown and ("?", "Help") not in shown

        await pilot.press("r")  # the old key: nothing
        await pilot.pause()
        assert fleet.refreshes == 1
        await pilot.press("f5")  # the new one refreshes
        await wait_for(pilot, lambda: fleet.refreshes == 2, "a refresh from f5")

        await pilot.press("question_mark")  # the old help key: no help
        await pilot.pause()
        assert isinstance(app.screen, DashboardScreen)
        await pilot.press("f1")
        await wait_for(pilot, lambda: not isinstance(app.screen, DashboardScreen), "the help")
        rows = app.screen.rows  # type: ignore[attr-defined]
        assert ("dashboard", "f5", "Refresh", "dashboard.refresh") in rows
        assert ("app", "f1", "Help", "app.help") in rows
        hint = text_of(app.screen.query_one("#help-hint", Static))
        # An example from the screen's own keys, in the form a [keymap] line takes.
        assert "[keymap], a binding id and its keys, e.g. dashboard." in hint and ' = "f5"' in hint
        assert "deploy-console config keys" in hint
        hint_widget = app.screen.query_one("#help-hint", Static)
        assert hint_widget.region.bottom <= 24 and hint_widget.region.height >= 3


async def test_without_a_keymap_the_help_says_where_one_goes(
    world_config: Config, demo_snapshot: FleetSnapshot
) -> None:
    fleet = StubFleet(world_config, [demo_snapshot])
    app = build_app(world_config, fleet, clock=frozen_clock, auto_refresh=False)  # type: ignore[arg-type]
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.refresh_count >= 1, "the first refresh")
        await wait_for(pilot, lambda: ("r", "Refresh") in footer(app), "r on the footer")
        screen = await open_help(pilot)
        hint = text_of(screen.query_one("#help-hint", Static))
        assert hint.startswith("Your own keys: in the config's [keymap], a binding id and its keys")
        assert hint.endswith("esc closes this help.")


async def test_the_kiosk_quits_with_the_key_its_keymap_gives(
    world_config: Config, demo_snapshot: FleetSnapshot
) -> None:
    config = replace(world_config, keymap=KeymapSettings({"kiosk.quit": ("f10", "x")}))
    fleet = StubFleet(config, [demo_snapshot])
    app = build_kiosk(config, fleet, auto_refresh=False, clock=frozen_clock)  # type: ignore[arg-type]
    app.set_keymap(kiosk_keymap(config))  # as `deploy-console kiosk` does without --quit-key
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("ctrl+q")
        await pilot.pause()
        assert app.is_running  # the default key no longer quits
        await pilot.press("x")
        await wait_for(pilot, lambda: not app.is_running, "the kiosk to quit")
