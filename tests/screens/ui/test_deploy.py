"""Deploys in the console through Pilot: the dialog, the deploy screen, the dashboard marker.

The deploys object is scripted (tests/screens/ui/deploy_fakes.py): these tests check the UI's logic.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import pytest
from textual.pilot import Pilot

from console.config import AccessSettings, Config
from console.deploy.risks import RECENT_DAYS
from console.model import DeployRequest, DeployState, FleetSnapshot, Step, StepState
from screens.app import DeployConsoleApp
from screens.dashboard.fleet_matrix import FleetMatrix
from screens.deploy.dialog import CURRENT_MARK, DeployDialog
from screens.deploy.picker import DeployListDialog
from screens.deploy.screen import DeployScreen
from screens.messages import DeployAsked
from screens.project.screen import ProjectScreen
from tests.screens.ui import (
    SIZE,
    confirm,
    open_help,
    stub_app,
    wait_for,
)
from tests.screens.ui.deploy_fakes import (
    ScriptedDeploys,
    failed_deploy,
    held_deploy,
    open_dialog,
)


@pytest.fixture(autouse=True)
def no_plan_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(DeployDialog, "PLAN_DELAY", 0.0)


@asynccontextmanager
async def running(
    config: Config, snapshot: FleetSnapshot, deploys: ScriptedDeploys | None
) -> AsyncIterator[tuple[DeployConsoleApp, Pilot[None]]]:
    app = stub_app(config, snapshot, deploys=deploys)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.refresh_count >= 1, "the first refresh")
        await pilot.pause()
        yield app, pilot


Held = tuple[DeployConsoleApp, Pilot[None], ScriptedDeploys]
Hold = Callable[..., AbstractAsyncContextManager[Held]]


@pytest.fixture
def hold(world_config: Config, demo_snapshot: FleetSnapshot) -> Hold:
    """`async with hold(step, project, cluster, release) as (app, pilot, deploys)`: the console
    with alice's deploy of the release held at `step`, its screen in front."""

    @asynccontextmanager
    async def holding(step: Step, *pair_release: str) -> AsyncIterator[Held]:
        deploys = ScriptedDeploys(demo_snapshot, hold_at=step)
        async with running(world_config, demo_snapshot, deploys) as (app, pilot):
            await held_deploy(app, pilot, deploys, *pair_release)
            yield app, pilot, deploys

    return holding


def cell(app: DeployConsoleApp, project: str, cluster: str) -> str:
    return " ".join(app.dashboard.query_one(FleetMatrix).cell_plain(project, cluster).split())


def deploy_screen(app: DeployConsoleApp) -> DeployScreen:
    screen = app.screen
    assert isinstance(screen, DeployScreen), screen
    return screen


async def declined_then_confirmed(pilot: Pilot[None], key: str, deploys: ScriptedDeploys) -> str:
    """`key` on a held deploy's screen asks first: answered n, the console and the deploy go on
    (back on its screen, nothing cancelled); `key` again, answered y. What it asked."""
    app = pilot.app
    screen = app.screen
    await pilot.press(key)
    question = await confirm(pilot, "n")
    await wait_for(pilot, lambda: app.screen is screen, "back to the deploy")
    assert app.is_running and deploys.cancelled == []
    await pilot.press(key)
    await confirm(pilot, "y")
    return question


def states(screen: DeployScreen) -> dict[str, StepState | None]:
    return {str(step): view.state for step, view in screen.tracked.steps.items()}


def log_text(screen: DeployScreen) -> str:
    """The log as shown, lines joined and spaces collapsed (long lines wrap)."""
    return " ".join(" ".join(strip.text for strip in screen.log_widget.lines).split())


async def test_dialog_marks_the_current_release_and_shows_its_plan(
    world_config: Config, demo_snapshot: FleetSnapshot
) -> None:
    deploys = ScriptedDeploys(demo_snapshot)
    async with running(world_config, demo_snapshot, deploys) as (app, pilot):
        dialog = await open_dialog(pilot, rights=1)  # storefront in staging
        table = dialog.release_table
        rows = [[cell.plain for cell in table.get_row_at(i)] for i in range(table.row_count)]
        assert [row[1] for row in rows] == ["2.15.0", "2.14.1", "2.14.0", "2.13.0"]
        assert [row[0] for row in rows] == [CURRENT_MARK, "", "", ""]  # 2.15.0 runs in staging
        assert rows[1][4] == "prod1, prod2"
        plan = dialog.plan_text
        env = demo_snapshot.env("storefront", "staging")
        assert env is not None
        old = env.instances[0].id
        assert "2.15.0 → 2.15.0 in staging" in plan
        assert "1 x t3.small" in plan
        assert "target group   storefront-staging  healthy in ~15s, drain 5s" in plan
        assert "gains        1 new instance\n" in plan
        assert f"loses        {old}\n" in plan
        assert "already runs here" in plan
        # Already running: warned, and Deploy waits for "deploy anyway".
        assert dialog.warnings_text == (
            "⚠ 1 WARNING   running now in staging: 2.15.0\n"
            "  ! already runs in staging (a redeploy: new instances)"
        )
        assert dialog.confirm_button.disabled and dialog.anyway.display
        await pilot.click("#anyway")
        assert not dialog.confirm_button.disabled

        dialog.release_table.focus()
        await pilot.press("down")  # the plan follows the cursor
        await wait_for(
            pilot,
            lambda: dialog.plan and dialog.plan.release.version == "2.14.1",
            "the plan of 2.14.1",
        )
        await pilot.pause()
        assert "2.15.0 → 2.14.1 in staging" in dialog.plan_text
        assert "already runs here" not in dialog.plan_text
        # Its own warning; the tick given for 2.15.0 does not carry over.
        assert "! is older than 2.15.0 (a downgrade)" in dialog.warnings_text
        assert not dialog.anyway.value and dialog.confirm_button.disabled

        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, DeployDialog), "the dismiss")
        assert deploys.started == []
        assert app.tracked == {}


async def test_protected_cluster_enables_confirm_only_for_its_typed_name(
    world_config: Config, demo_snapshot: FleetSnapshot
) -> None:
    deploys = ScriptedDeploys(demo_snapshot)
    async with running(world_config, demo_snapshot, deploys) as (app, pilot):
        dialog = await open_dialog(pilot, rights=3)  # storefront in prod1 (protected)
        assert "2.14.1 → 2.15.0 in prod1" in dialog.plan_text
        assert "3 x m5.large" in dialog.plan_text
        assert dialog.confirm_button.disabled
        await pilot.press("ctrl+s")  # refused while the name is not typed
        assert app.screen is dialog

        await pilot.click("#confirm-name")
        await pilot.press(*"prod")
        assert dialog.confirm_button.disabled
        await pilot.press(*"2")
        assert dialog.confirm_button.disabled  # another protected cluster's name
        await pilot.press("backspace", "1")
        assert not dialog.confirm_button.disabled
        await pilot.press("enter")

        await wait_for(pilot, lambda: isinstance(app.screen, DeployScreen), "the deploy screen")
        assert deploys.planned[0] == DeployRequest("storefront", "prod1", "2.15.0", "alice")
        await wait_for(pilot, lambda: deploy_screen(app).tracked.finished, "the end")
        assert deploys.started == [DeployRequest("storefront", "prod1", "2.15.0", "alice")]


async def test_a_release_that_failed_lately_needs_the_typed_name_and_deploy_anyway(
    world_config: Config, demo_snapshot: FleetSnapshot
) -> None:
    failed = failed_deploy("storefront", "qaprod1", "2.15.0", days_ago=1)
    old = failed_deploy("storefront", "prod2", "2.15.0", days_ago=RECENT_DAYS + 1)
    deploys = ScriptedDeploys(demo_snapshot, recent=[failed, old])
    async with running(world_config, demo_snapshot, deploys) as (app, pilot):
        dialog = await open_dialog(pilot, rights=3)  # storefront in prod1 (protected)
        await wait_for(pilot, lambda: dialog.warnings is not None, "the warnings")
        assert dialog.warnings_text.splitlines()[:2] == [
            "⚠ 1 WARNING   running now in prod1: 2.14.1",
            "  ! failed in qaprod1 on 2026-11-25 12:00 (health gate: 0/1 healthy in 45s)",
        ]
        await pilot.click("#confirm-name")
        await pilot.press(*"prod1")
        assert dialog.confirm_button.disabled  # the name alone is not enough
        await pilot.press("ctrl+s")  # refused, and said why
        await wait_for(pilot, lambda: bool(app._notifications), "the refusal")
        assert app.screen is dialog and deploys.started == []
        assert 'tick "deploy anyway"' in next(iter(app._notifications)).message
        await pilot.click("#anyway")
        assert not dialog.confirm_button.disabled
        await pilot.click("#confirm-name")
        await pilot.press("end", "backspace")
        assert dialog.confirm_button.disabled  # the tick alone is not enough either
        await pilot.press("1", "enter")
        await wait_for(pilot, lambda: deploys.started, "the deploy to start")
        assert deploys.started == [DeployRequest("storefront", "prod1", "2.15.0", "alice")]


async def test_an_upgrade_with_a_clean_past_deploys_without_a_warning(
    world_config: Config, demo_snapshot: FleetSnapshot
) -> None:
    deploys = ScriptedDeploys(demo_snapshot)
    async with running(world_config, demo_snapshot, deploys) as (_app, pilot):
        dialog = await open_dialog(pilot, rights=3)  # storefront in prod1: 2.14.1 -> 2.15.0
        await pilot.pause()
        assert dialog.warnings == []
        assert dialog.warnings_text == "running now in prod1: 2.14.1  no warning"
        assert not dialog.anyway.display


async def test_deploy_screen_steps_advance_and_the_cell_shows_the_deploy(hold: Hold) -> None:
    async with hold(Step.CONFIGURE, "storefront", "prod1", "2.15.0") as (app, pilot, deploys):
        screen = deploy_screen(app)
        await pilot.pause()
        assert states(screen) == {
            "lock": StepState.SUCCEEDED,
            "resolve": StepState.SUCCEEDED,
            "launch": StepState.SUCCEEDED,
            "configure": StepState.RUNNING,
            "register": None,
            "health-gate": None,
            "traffic-guard": None,
            "deregister": None,
            "terminate": None,
        }
        assert (screen.progress.progress, screen.progress.total) == (3, 9)
        log = log_text(screen)
        assert "── launch succeeded in 1.5s" in log
        assert "migrate: 2 migrations applied" in log
        assert "[warn] cache directory [var/cache] recreated" in log  # not read as markup

        # Escape goes back; the deploy goes on and its cell says so.
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is app.dashboard, "the dashboard")
        assert cell(app, "storefront", "prod1") == "⟳ deploying 2.15.0 ●"
        assert cell(app, "storefront", "prod2") == "◐ 2.14.1 2/3"

        # D lists it; Enter opens the same deploy again, its log replayed.
        await pilot.press("D")
        await wait_for(pilot, lambda: isinstance(app.screen, DeployListDialog), "the list")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, DeployScreen), "the deploy screen")
        screen = deploy_screen(app)
        await pilot.pause()
        assert "migrate: 2 migrations applied" in log_text(screen)

        refreshes = app.refresh_count
        deploys.resume()
        await wait_for(pilot, lambda: screen.tracked.finished, "the end of the deploy")
        await pilot.pause()
        assert set(states(screen).values()) == {StepState.SUCCEEDED}
        assert screen.tracked.state is DeployState.SUCCEEDED
        assert (screen.progress.progress, screen.progress.total) == (9, 9)
        assert not screen.check_action("cancel_deploy", ())
        # The marker goes when the deploy ends; the cell shows the next refresh.
        await wait_for(pilot, lambda: app.refresh_count > refreshes, "the refresh after it")
        assert cell(app, "storefront", "prod1") == "● 2.14.1 3/3"


async def test_cancel_asks_first_then_rolls_back(hold: Hold) -> None:
    async with hold(Step.HEALTH_GATE, "storefront", "staging", "2.14.1") as (app, pilot, deploys):
        screen = deploy_screen(app)
        await declined_then_confirmed(pilot, "c", deploys)
        await wait_for(pilot, lambda: screen.tracked.finished, "the rollback")
        await pilot.pause()
        assert deploys.cancelled == [(screen.tracked.deploy_id, "alice")]
        assert screen.tracked.state is DeployState.CANCELLED
        steps = states(screen)
        assert steps["health-gate"] is StepState.FAILED
        assert steps["rollback"] is StepState.SUCCEEDED
        assert steps["traffic-guard"] is StepState.SKIPPED
        assert steps["terminate"] is StepState.SKIPPED
        assert (screen.progress.progress, screen.progress.total) == (10, 10)
        assert "rolled back: terminated" in screen.tracked.reason
        assert "── rollback succeeded" in log_text(screen)
        assert not screen.check_action("cancel_deploy", ())
        assert "deploying" not in cell(app, "storefront", "staging")


async def test_deploys_of_different_pairs_run_at_once(
    world_config: Config, demo_snapshot: FleetSnapshot
) -> None:
    deploys = ScriptedDeploys(demo_snapshot, hold_at=Step.CONFIGURE)
    async with running(world_config, demo_snapshot, deploys) as (app, pilot):
        app.start_deploy(DeployRequest("storefront", "staging", "2.14.1", "alice"))
        app.start_deploy(DeployRequest("checkout-api", "qaprod1", "5.2.0", "alice"))
        await wait_for(pilot, lambda: len(deploys.held) == 2, "both deploys to run")
        assert len(app.screen_stack) == 3  # the dashboard and one screen per deploy
        await pilot.press("escape", "escape")
        await wait_for(pilot, lambda: app.screen is app.dashboard, "the dashboard")
        assert cell(app, "storefront", "staging") == "⟳ deploying 2.14.1 ●"
        assert cell(app, "checkout-api", "qaprod1") == "⟳ deploying 5.2.0 ●"

        # d on a pair being deployed opens its deploy instead of a second dialog.
        await pilot.press("right", "d")
        await wait_for(pilot, lambda: isinstance(app.screen, DeployScreen), "its deploy")
        assert deploy_screen(app).tracked.pair == ("storefront", "staging")

        deploys.resume()
        await wait_for(
            pilot, lambda: all(t.finished for t in app.tracked.values()), "both to finish"
        )
        assert [t.state for t in app.tracked.values()] == [DeployState.SUCCEEDED] * 2


async def test_a_busy_pair_is_refused_and_said_so(
    world_config: Config, demo_snapshot: FleetSnapshot
) -> None:
    deploys = ScriptedDeploys(demo_snapshot, busy={("storefront", "staging")})
    async with running(world_config, demo_snapshot, deploys) as (app, pilot):
        tracked = app.start_deploy(DeployRequest("storefront", "staging", "2.14.1", "alice"))
        await wait_for(pilot, lambda: tracked.finished, "the refusal")
        await pilot.pause()
        screen = deploy_screen(app)
        assert tracked.error == "storefront in staging is being deployed by bob"
        assert "Refused: storefront in staging is being deployed by bob" in str(
            screen.query_one("#outcome").visual
        )
        assert "deploying" not in cell(app, "storefront", "staging")


async def test_keys_and_palette_name_the_deploy_actions(
    world_config: Config, demo_snapshot: FleetSnapshot
) -> None:
    deploys = ScriptedDeploys(demo_snapshot)
    async with running(world_config, demo_snapshot, deploys) as (app, pilot):
        help_screen = await open_help(pilot)
        assert ("dashboard", "d", "Deploy", "deploy.open") in help_screen.rows
        await pilot.press("escape")
        titles = [command.title for command in app.get_system_commands(app.dashboard)]
        assert "deploy: open" in titles
        assert "deploy: show running" not in titles  # nothing started yet
        app.start_deploy(DeployRequest("storefront", "staging", "2.14.1", "alice"))
        await wait_for(pilot, lambda: isinstance(app.screen, DeployScreen), "the deploy")
        titles = [command.title for command in app.get_system_commands(app.screen)]
        assert {"deploy: back", "deploy: show running"} <= set(titles)


async def test_the_console_without_deploys_has_no_deploy_keys(
    world_config: Config, demo_snapshot: FleetSnapshot
) -> None:
    async with running(world_config, demo_snapshot, None) as (app, pilot):
        await pilot.press("right", "d", "D")
        await pilot.pause()
        assert app.screen is app.dashboard
        assert not app.dashboard.check_action("deploy", ())
        titles = [command.title for command in app.get_system_commands(app.dashboard)]
        assert not [title for title in titles if title.startswith("deploy:")]


async def test_d_on_the_project_screen_deploys_to_the_cluster_in_focus(
    world_config: Config, demo_snapshot: FleetSnapshot
) -> None:
    deploys = ScriptedDeploys(demo_snapshot)
    async with running(world_config, demo_snapshot, deploys) as (app, pilot):
        await pilot.press("right", "right", "right", "enter")  # storefront from its prod1 cell
        await wait_for(pilot, lambda: isinstance(app.screen, ProjectScreen), "the project")
        await wait_for(pilot, lambda: app.screen.deploy_cluster == "prod1", "the prod1 panel")
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, DeployDialog), "the dialog")
        dialog = app.screen
        assert isinstance(dialog, DeployDialog)
        assert (dialog.project.name, dialog.cluster.name) == ("storefront", "prod1")


async def test_d_on_the_project_column_says_where_to_put_the_cursor(
    world_config: Config, demo_snapshot: FleetSnapshot
) -> None:
    deploys = ScriptedDeploys(demo_snapshot)
    async with running(world_config, demo_snapshot, deploys) as (app, pilot):
        assert app.dashboard.matrix.cursor_cluster is None  # the cursor starts on the name
        await pilot.press("d")
        await wait_for(pilot, lambda: any(app._notifications), "a notification")
        [shown] = list(app._notifications)
        assert shown.title == "Deploy where?"
        assert "cursor on a cluster storefront runs in" in shown.message
        assert app.screen is app.dashboard


async def test_quit_with_a_deploy_running_asks_then_rolls_back_before_closing(hold: Hold) -> None:
    async with hold(Step.CONFIGURE, "storefront", "staging", "2.14.1") as (app, pilot, deploys):
        screen = deploy_screen(app)
        question = await declined_then_confirmed(pilot, "ctrl+q", deploys)
        assert "1 deploy running: storefront → staging" in question
        await wait_for(pilot, lambda: not app.is_running, "the console to close")
        assert deploys.cancelled == [(screen.tracked.deploy_id, "alice")]
        assert screen.tracked.state is DeployState.CANCELLED
        assert screen.tracked.steps[Step.ROLLBACK].state is StepState.SUCCEEDED


async def test_quit_with_no_deploy_running_closes_at_once(
    world_config: Config, demo_snapshot: FleetSnapshot
) -> None:
    async with running(world_config, demo_snapshot, ScriptedDeploys(demo_snapshot)) as (
        app,
        pilot,
    ):
        await pilot.press("ctrl+q")
        await wait_for(pilot, lambda: not app.is_running, "the console to close")


def _roles(config: Config, **roles: list[str]) -> Config:
    """The config with [access] replaced (viewers, deployers, admins lists)."""
    users = {user: role[:-1] for role, names in roles.items() for user in names}
    return dataclasses.replace(config, access=AccessSettings(users=users))


async def test_a_viewer_sees_no_deploy_key_and_d_is_refused_with_why(
    world_config: Config, demo_snapshot: FleetSnapshot
) -> None:
    config = _roles(world_config, viewers=["alice"])
    async with running(config, demo_snapshot, ScriptedDeploys()) as (app, pilot):
        assert app.deploys is not None and app.deploys.actor == "alice"
        assert not app.dashboard.check_action("deploy", ())  # not in the footer
        await pilot.press("right", "d")  # pressed anyway: it says why, and opens nothing
        await wait_for(pilot, lambda: bool(app._notifications), "the refusal of the key")
        await pilot.pause()
        assert app.screen is app.dashboard
        (note,) = list(app._notifications)
        assert note.message == "alice is a viewer in staging: may not deploy (needs deployer)"
        app.post_message(DeployAsked("storefront", "staging"))  # sent past the key bindings
        await wait_for(pilot, lambda: len(app._notifications) == 2, "the refusal")
        await pilot.pause()
        assert app.screen is app.dashboard  # no dialog opened
        assert [n.message for n in app._notifications] == [note.message] * 2


async def test_a_deployer_is_refused_on_a_protected_cluster_only(
    world_config: Config, demo_snapshot: FleetSnapshot
) -> None:
    config = _roles(world_config, deployers=["alice"])
    async with running(config, demo_snapshot, ScriptedDeploys()) as (app, pilot):
        assert app.dashboard.check_action("deploy", ())
        await pilot.press("right", "right", "right")  # storefront in prod1
        # Not offered there: the key, the footer and the palette hide it (test_roles.py).
        await wait_for(pilot, lambda: not app.dashboard.check_action("deploy", ()), "d to go")
        await pilot.press("d")  # says why in one line, and opens nothing
        await wait_for(pilot, lambda: bool(app._notifications), "the refusal of the key")
        assert app.screen is app.dashboard
        assert "may not deploy (a protected cluster needs admin)" in str(
            next(iter(app._notifications)).message
        )
        # Whatever still asks is refused in one line, before any dialog.
        app.post_message(DeployAsked("storefront", "prod1"))
        await wait_for(pilot, lambda: len(app._notifications) == 2, "the refusal")
        assert app.screen is app.dashboard
        await pilot.press("left", "left", "d")  # staging: allowed
        await wait_for(pilot, lambda: isinstance(app.screen, DeployDialog), "the dialog")
