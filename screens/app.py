"""The console's Textual app: owns the refresh loop and hands each snapshot to the screens."""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import PurePath
from typing import ClassVar

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.timer import Timer

from console.config import Config
from console.errors import ConsoleError
from console.fleet import FleetSource
from console.model import FleetSnapshot
from screens.dashboard import DashboardScreen
from screens.help import HelpScreen, keys_of
from screens.messages import FleetRefreshed, FleetRefreshFailed, ProjectChosen, RefreshRequested
from screens.project import ProjectScreen


def _utc_now() -> datetime:
    return datetime.now(UTC)


class DeployConsoleApp(App[None]):
    """Dashboard first; the project screen and the help are pushed over it."""

    TITLE = "deploy-console"
    # Each screen names its own file too, but the first screen is the app's default screen,
    # whose CSS_PATH Textual does not read: load them all here (each is scoped by class name).
    CSS_PATH: ClassVar[list[str | PurePath]] = [
        "styles/dashboard.tcss",
        "styles/project.tcss",
        "styles/help.tcss",
    ]

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+q", "quit", "Quit", id="app.quit", priority=True),
        Binding("question_mark", "help", "Help", key_display="?", id="app.help"),
        Binding("escape", "back", "Back", show=False, id="app.back"),
    ]

    def __init__(
        self,
        config: Config,
        fleet: FleetSource,
        *,
        clock: Callable[[], datetime] | None = None,
        auto_refresh: bool = True,
    ) -> None:
        super().__init__()
        self.config = config
        self.fleet = fleet
        self.clock = clock or _utc_now
        self.auto_refresh_fleet = auto_refresh
        self.snapshot: FleetSnapshot | None = None
        """The last snapshot the refresh worker delivered."""
        self.refresh_error: str | None = None
        self.refreshing = False
        self.refresh_count = 0
        """Refreshes finished (good or failed): tests wait on it."""
        self._refresh_timer: Timer | None = None

    def get_default_screen(self) -> Screen[None]:
        return DashboardScreen(self.config, self.clock)

    @property
    def dashboard(self) -> DashboardScreen:
        """The first screen, always at the bottom of the stack."""
        for screen in self.screen_stack:
            if isinstance(screen, DashboardScreen):
                return screen
        raise LookupError("the dashboard is not on the screen stack")

    def on_mount(self) -> None:
        self.refresh_fleet()

    # -- the refresh loop: one at a time, the next one armed only after this one ended ----

    def refresh_fleet(self) -> None:
        """Refresh now; the timer is re-armed once this refresh has finished.

        While a refresh runs, asking again joins it: its snapshot is the fresh one.
        """
        if self.refreshing:
            return
        if self._refresh_timer is not None:
            self._refresh_timer.stop()
            self._refresh_timer = None
        self.refreshing = True
        self._pass_down()
        self._refresh_worker()

    @work(exclusive=True, group="refresh", exit_on_error=False)
    async def _refresh_worker(self) -> None:
        try:
            snapshot = await self.fleet.refresh()
        except ConsoleError as error:
            self.post_message(FleetRefreshFailed(error.message))
        except Exception as error:
            self.post_message(FleetRefreshFailed(f"{type(error).__name__}: {error}"))
        else:
            self.post_message(FleetRefreshed(snapshot))

    def _arm_timer(self) -> None:
        if self.auto_refresh_fleet and self._refresh_timer is None:
            self._refresh_timer = self.set_timer(
                self.config.refresh_seconds, self.refresh_fleet, name="fleet-refresh"
            )

    def on_fleet_refreshed(self, message: FleetRefreshed) -> None:
        first = self.snapshot is None
        self.snapshot = message.snapshot
        self.refresh_error = None
        self._refresh_done()
        if first:
            # Everything alive now lives as long as the app: keep it out of the full
            # collections that otherwise pause the UI (measured up to 336 ms at 200 x 4).
            gc.freeze()

    def on_fleet_refresh_failed(self, message: FleetRefreshFailed) -> None:
        self.refresh_error = message.error
        self._refresh_done()
        self.notify(message.error, title="Refresh failed", severity="error")

    def _refresh_done(self) -> None:
        self.refresh_count += 1
        self.refreshing = False
        self._pass_down()
        self._arm_timer()

    def _pass_down(self) -> None:
        """Attributes down: every screen on the stack that shows the fleet gets the news."""
        for screen in self.screen_stack:
            if isinstance(screen, DashboardScreen):
                screen.refreshing = self.refreshing
                screen.refresh_error = self.refresh_error
            if isinstance(screen, DashboardScreen | ProjectScreen) and (
                screen.snapshot is not self.snapshot
            ):
                screen.snapshot = self.snapshot

    def on_refresh_requested(self, _message: RefreshRequested) -> None:
        self.refresh_fleet()

    # -- navigation --------------------------------------------------------------------

    def on_project_chosen(self, message: ProjectChosen) -> None:
        self.push_screen(
            ProjectScreen(
                self.config.project(message.project),
                self.config.clusters,
                self.snapshot,
                self.clock,
                self.fleet.load_balancer_settings,
                selected_cluster=message.cluster,
            )
        )

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # "back" is Textual's App.action_back (pop a screen): nothing to pop on the dashboard.
        return not (action == "back" and len(self.screen_stack) <= 1)

    def action_help(self) -> None:
        screen = self.screen
        if isinstance(screen, HelpScreen):
            return
        namespace = getattr(screen, "HELP_NAMESPACE", "app")
        self.push_screen(HelpScreen(f"keys: {namespace}", keys_of(screen, self)))

    # -- command palette: "namespace: verb", calling the same actions as the keys --------

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        if isinstance(screen, DashboardScreen):
            yield SystemCommand(
                "dashboard: refresh", "Read the fleet from AWS now", screen.action_refresh
            )
            yield SystemCommand(
                "dashboard: filter projects",
                "Show only projects whose name contains some text",
                screen.action_filter,
            )
            yield SystemCommand(
                "project: open",
                "Open the project under the cursor",
                screen.action_open_project,
            )
        if isinstance(screen, ProjectScreen):
            yield SystemCommand(
                "project: refresh", "Read the fleet from AWS now", screen.action_refresh
            )
            yield SystemCommand("project: back", "Back to the dashboard", screen.action_back)
        yield SystemCommand("app: help", "List the keys of this screen", self.action_help)
        yield SystemCommand("app: theme", "Change the colours", self.action_change_theme)
        yield SystemCommand("app: quit", "Quit deploy-console", self.action_quit)


def build_app(
    config: Config,
    fleet: FleetSource,
    *,
    clock: Callable[[], datetime] | None = None,
    auto_refresh: bool = True,
) -> DeployConsoleApp:
    """The console app for the CLI and the tests alike; the caller owns (and closes) the fleet."""
    return DeployConsoleApp(config, fleet, clock=clock, auto_refresh=auto_refresh)
