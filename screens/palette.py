"""The command palette's commands: each offered only where its key's check_action allows it.

One predicate decides what a person may do from the UI: the screen's (or the app's)
`check_action`, which hides a binding from the footer and ignores its key. The palette asks
the same question before it lists a command and again when one is chosen, so a viewer is not
offered what only the core would refuse at the end.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol, cast

from textual.app import App, SystemCommand
from textual.dom import DOMNode
from textual.screen import Screen

from screens import PROG
from screens.dashboard.screen import DashboardScreen
from screens.deploy.screen import DeployScreen
from screens.history.screen import HistoryScreen
from screens.project.instance import InstanceScreen
from screens.project.screen import ProjectScreen
from screens.queue.screen import QueueScreen


class PaletteHost(Protocol):
    """What the palette asks of the console's app (screens.app), without importing it."""

    @property
    def queue_control(self) -> object | None: ...

    @property
    def deploys(self) -> object | None: ...


def offer(
    target: DOMNode, action: str, title: str, help_text: str, *params: object
) -> Iterable[SystemCommand]:
    """The command running `target`'s action_<action>, if its check_action allows it now
    (None, "shown but disabled", is not offered either)."""
    if not target.check_action(action, params):
        return

    async def run() -> None:
        # Asked again: the cursor, the queue or the role may have changed while it was open.
        if not target.check_action(action, params):
            return
        result = getattr(target, f"action_{action}")(*params)
        if inspect.isawaitable(result):
            await result

    yield SystemCommand(title, help_text, run)


ScreenTypes = tuple[type[Screen[Any]], ...]


@dataclass(frozen=True)
class PaletteCommand:
    """One palette entry: the action it runs, on which screens (None: the app's own)."""

    screens: ScreenTypes | None
    action: str
    title: str
    help: str
    params: tuple[object, ...] = ()
    offered: Callable[[PaletteHost], bool] | None = None
    """Whether this console offers it at all (a queue, deploys); None: always."""


def _queue_here(app: PaletteHost) -> bool:
    return app.queue_control is not None


def _deploys_here(app: PaletteHost) -> bool:
    return app.deploys is not None


DASHBOARD: ScreenTypes = (DashboardScreen,)
PROJECT: ScreenTypes = (ProjectScreen,)
INSTANCE: ScreenTypes = (InstanceScreen,)
HISTORY: ScreenTypes = (HistoryScreen,)
QUEUE: ScreenTypes = (QueueScreen,)
DEPLOY: ScreenTypes = (DeployScreen,)

COMMANDS: tuple[PaletteCommand, ...] = (
    PaletteCommand(DASHBOARD, "refresh", "dashboard: refresh", "Read the fleet from AWS now"),
    PaletteCommand(
        DASHBOARD,
        "filter",
        "dashboard: filter projects",
        "Show only projects whose name contains some text",
    ),
    PaletteCommand(DASHBOARD, "open_project", "project: open", "Open the project under the cursor"),
    PaletteCommand(DASHBOARD, "jump", "dashboard: jump to", "Go to a project or cluster by name"),
    PaletteCommand(
        DASHBOARD,
        "sort",
        "dashboard: sort",
        "By name, or by the cursor's cluster's health, version or last deploy",
    ),
    PaletteCommand(DASHBOARD, "sort_reverse", "dashboard: reverse the sort", "The other way round"),
    PaletteCommand(DASHBOARD, "history", "history: open", "The deploys recorded in the store"),
    PaletteCommand(
        DASHBOARD,
        "open_queue",
        "queue: open",
        "The release queue: every queued and running deploy, why each waits",
        offered=_queue_here,
    ),
    PaletteCommand(QUEUE, "cancel_deploy", "queue: cancel", "Cancel the deploy under the cursor"),
    PaletteCommand(
        QUEUE,
        "move",
        "queue: move up",
        "Run the deploy under the cursor before the one ahead of it on its pair",
        (-1,),
    ),
    PaletteCommand(
        QUEUE,
        "move",
        "queue: move down",
        "Run the deploy under the cursor after the one behind it on its pair",
        (1,),
    ),
    PaletteCommand(
        QUEUE,
        "freeze",
        "queue: freeze or unfreeze",
        "Freeze a cluster (its queued deploys wait), or unfreeze the cursor's",
    ),
    PaletteCommand(QUEUE, "lock", "queue: lock", "Hold deploys of a pair, project, cluster or all"),
    PaletteCommand(QUEUE, "unlock", "queue: remove a lock or freeze", "Lift a lock or freeze"),
    PaletteCommand(
        QUEUE, "deploy_log", "queue: log", "The full log of the deploy under the cursor"
    ),
    PaletteCommand(QUEUE, "back", "queue: back", "Back to the dashboard"),
    PaletteCommand(PROJECT, "refresh", "project: refresh", "Read the fleet from AWS now"),
    PaletteCommand(PROJECT, "back", "project: back", "Back to the dashboard"),
    PaletteCommand(PROJECT, "history", "history: open", "This project's recorded deploys"),
    PaletteCommand(INSTANCE, "copy_id", "instance: copy id", "Copy the instance's id"),
    PaletteCommand(INSTANCE, "ssh", "instance: ssh", "A shell on the instance with your own key"),
    PaletteCommand(INSTANCE, "reload", "instance: reload", "Read the instance from AWS again"),
    PaletteCommand(INSTANCE, "back", "instance: back", "Back to the project"),
    PaletteCommand(
        HISTORY, "filter", "history: filter", "Narrow by project, cluster, actor, outcome or time"
    ),
    PaletteCommand(HISTORY, "time_range", "history: time range", "All, last 1h, 24h, 7d"),
    PaletteCommand(
        HISTORY,
        "open_deploy",
        "history: open deploy",
        "Steps, timings and log of the deploy under the cursor",
    ),
    PaletteCommand(
        HISTORY,
        "rollback",
        "history: roll back",
        "Deploy again the release the deploy under the cursor replaced",
    ),
    PaletteCommand(
        HISTORY,
        "rerun",
        "history: re-run",
        "Deploy a failed, rolled back or cancelled deploy's release again",
    ),
    PaletteCommand(HISTORY, "deploy_log", "history: log", "The deploy's full log"),
    PaletteCommand(
        (*DASHBOARD, *PROJECT),
        "deploy",
        "deploy: open",
        "Deploy a release of the project (under the cursor) to its cluster",
        offered=_deploys_here,
    ),
    PaletteCommand(
        DEPLOY,
        "cancel_deploy",
        "deploy: cancel",
        "Stop this deploy and roll back",
        offered=_deploys_here,
    ),
    PaletteCommand(
        DEPLOY,
        "back",
        "deploy: back",
        "Leave this screen; the deploy goes on",
        offered=_deploys_here,
    ),
    PaletteCommand(
        None,
        "show_deploys",
        "deploy: show running",
        "List the deploys this console started and open one",
        offered=_deploys_here,
    ),
    PaletteCommand(None, "help", "app: help", "List the keys of this screen"),
    PaletteCommand(None, "change_theme", "app: theme", "Change the colours"),
    PaletteCommand(None, "quit", "app: quit", f"Quit {PROG}"),
)
"""Every command, titled "namespace: verb", in the order the palette lists them."""


def system_commands(app: App[Any], screen: Screen[object]) -> Iterable[SystemCommand]:
    """The commands for `screen` that this console offers and the key's check allows now."""
    for command in COMMANDS:
        target: DOMNode = app
        if command.screens is not None:
            if not isinstance(screen, command.screens):
                continue
            target = screen
        if command.offered is None or command.offered(cast(PaletteHost, app)):
            yield from offer(target, command.action, command.title, command.help, *command.params)
