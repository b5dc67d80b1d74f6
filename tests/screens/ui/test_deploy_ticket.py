"""The deploy dialog's change ticket field at 80x24: shown for a cluster with a `ticket`
setting, Deploy disabled until a required ticket is typed in its form, the ticket sent with
the deploy."""

from __future__ import annotations

import dataclasses

import pytest
from textual.widgets import Input, Static

from console.config import Config, TicketSettings
from console.model import DeployRequest, FleetSnapshot
from screens.deploy.dialog import DeployDialog
from tests.screens.ui import stub_app, wait_for
from tests.screens.ui.deploy_fakes import ScriptedDeploys, open_dialog
from tests.screens.ui.test_small_terminal import SMALL, _warned_prod1, hidden, small_console

TICKETS = TicketSettings(required=True, pattern="^CHG-[0-9]+$")


@pytest.fixture(autouse=True)
def quick_plans(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(DeployDialog, "PLAN_DELAY", 0.0)


def needing_tickets(config: Config, cluster: str) -> Config:
    clusters = tuple(
        dataclasses.replace(entry, ticket=TICKETS) if entry.name == cluster else entry
        for entry in config.clusters
    )
    return dataclasses.replace(config, clusters=clusters)


def hint(dialog: DeployDialog) -> str:
    return str(dialog.query_one("#ticket-hint", Static).visual)


async def test_a_required_ticket_is_typed_in_its_form_before_deploy_at_80x24(
    world_config: Config, demo_snapshot: FleetSnapshot
) -> None:
    config = needing_tickets(world_config, "prod1")
    async with small_console(config, demo_snapshot) as (app, pilot, deploys):
        dialog = await open_dialog(pilot, 3)  # storefront in prod1 (protected)
        selectors = ("#ticket", "#ticket-hint", "#confirm-name", "#confirm", "#cancel")
        assert hidden(dialog, *selectors, "#plan-area") == []
        assert hint(dialog) == "Change ticket (needed) like ^CHG-[0-9]+$:"
        assert dialog.confirm_button.disabled

        await pilot.press("tab")  # from the releases to the ticket, then the name
        await pilot.pause()
        assert app.focused is not None and app.focused.id == "ticket"
        await pilot.press(*"chg-1", "tab", *"prod1")
        await pilot.pause()
        assert hint(dialog) == "✖ ticket 'chg-1' does not match '^CHG-[0-9]+$' (cluster prod1)"
        assert dialog.confirm_button.disabled  # the name alone is not enough
        await pilot.press("enter")
        assert app.screen is dialog and deploys.started == []

        dialog.query_one("#ticket", Input).value = "CHG-42"
        await pilot.pause()
        assert hint(dialog) == "Change ticket (needed) like ^CHG-[0-9]+$:"
        assert not dialog.confirm_button.disabled
        assert hidden(dialog, *selectors) == []
        await pilot.click("#confirm")
        await wait_for(pilot, lambda: deploys.started, "the deploy to start")
        assert deploys.started == [
            DeployRequest("storefront", "prod1", "2.15.0", "alice", ticket="CHG-42")
        ]


async def test_a_cluster_without_the_setting_shows_no_ticket_field(
    world_config: Config, demo_snapshot: FleetSnapshot
) -> None:
    config = needing_tickets(world_config, "prod1")
    async with small_console(config, demo_snapshot) as (_app, pilot, _deploys):
        dialog = await open_dialog(pilot, 1)  # storefront in staging
        assert not dialog.query("#ticket") and not dialog.query("#ticket-hint")
        assert not dialog.confirm_button.disabled or dialog.warnings


async def test_a_warned_protected_deploy_with_a_ticket_keeps_every_field_in_view_at_80x24(
    world_config: Config, demo_snapshot: FleetSnapshot
) -> None:
    """The most crowded dialog: warnings, "deploy anyway", the ticket and the name to type."""
    config = needing_tickets(world_config, "prod1")
    deploys = ScriptedDeploys(demo_snapshot, recent=_warned_prod1())
    app = stub_app(config, demo_snapshot, deploys=deploys)
    async with app.run_test(size=SMALL) as pilot:
        dialog = await open_dialog(pilot, 3)  # storefront in prod1
        shown = ("#warnings-area", "#anyway", "#ticket-hint", "#ticket", "#confirm-name")
        assert hidden(dialog, *shown, "#confirm", "#cancel") == []
        await pilot.click("#anyway")
        await pilot.click("#ticket")
        await pilot.press(*"CHG-7")
        await pilot.click("#confirm-name")
        await pilot.press(*"prod1", "enter")
        await wait_for(pilot, lambda: deploys.started, "the deploy to start")
        assert deploys.started[0].ticket == "CHG-7"
