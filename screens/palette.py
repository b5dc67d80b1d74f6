"""The command palette's commands: each offered only where its key's check_action allows it.

One predicate decides what a person may do from the UI: the screen's (or the app's)
`check_action`, which hides a binding from the footer and ignores its key. The palette asks
the same question before it lists a command and again when one is chosen, so a viewer is not
offered what only the core would refuse at the end.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import TYPE_CHECKING

from textual.app import SystemCommand
from textual.dom import DOMNode
from textual.screen import Screen

from screens.dashboard.screen import DashboardScreen
from screens.deploy.screen import DeployScreen
from screens.history.screen import HistoryScreen
from screens.project.screen import ProjectScreen
from screens.queue.screen import QueueScreen

if TYPE_CHECKING:
    from screens.app import DeployConsoleApp


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


def system_commands(app: DeployConsoleApp, screen: Screen[object]) -> Iterable[SystemCommand]:
    """Every command for `screen`, titled "namespace: verb", as the keys offer them."""
    if isinstance(screen, DashboardScreen):
        yield from offer(screen, "refresh", "dashboard: refresh", "Read the fleet from AWS now")
        yield from offer(
            screen,
            "filter",
            "dashboard: filter projects",
            "Show only projects whose name contains some text",
        )
        yield from offer(
            screen, "open_project", "project: open", "Open the project under the cursor"
        )
        yield from offer(screen, "history", "history: open", "The deploys recorded in the store")
        if app.queue_control is not None:
            yield from offer(
                screen,
                "open_queue",
                "queue: open",
                "The release queue: every queued and running deploy, why each waits",
            )
    if isinstance(screen, QueueScreen):
        yield from _queue_commands(screen)
    if isinstance(screen, ProjectScreen):
        yield from offer(screen, "refresh", "project: refresh", "Read the fleet from AWS now")
        yield from offer(screen, "back", "project: back", "Back to the dashboard")
        yield from offer(screen, "history", "history: open", "This project's recorded deploys")
    if isinstance(screen, HistoryScreen):
        yield from offer(
            screen,
            "filter",
            "history: filter",
            "Narrow by project, cluster, actor, outcome or time",
        )
        yield from offer(screen, "time_range", "history: time range", "All, last 1h, 24h, 7d")
        yield from offer(
            screen,
            "open_deploy",
            "history: open deploy",
            "Steps, timings and log of the deploy under the cursor",
        )
    if app.deploys is not None:
        yield from _deploy_commands(app, screen)
    yield from offer(app, "help", "app: help", "List the keys of this screen")
    yield from offer(app, "change_theme", "app: theme", "Change the colours")
    yield from offer(app, "quit", "app: quit", "Quit deploy-console")


def _queue_commands(screen: QueueScreen) -> Iterable[SystemCommand]:
    yield from offer(screen, "cancel_deploy", "queue: cancel", "Cancel the deploy under the cursor")
    yield from offer(
        screen,
        "move",
        "queue: move up",
        "Run the deploy under the cursor before the one ahead of it on its pair",
        -1,
    )
    yield from offer(
        screen,
        "move",
        "queue: move down",
        "Run the deploy under the cursor after the one behind it on its pair",
        1,
    )
    yield from offer(
        screen,
        "freeze",
        "queue: freeze or unfreeze",
        "Freeze a cluster (its queued deploys wait), or unfreeze the cursor's",
    )
    yield from offer(
        screen, "lock", "queue: lock", "Hold deploys of a pair, project, cluster or all"
    )
    yield from offer(screen, "unlock", "queue: remove a lock or freeze", "Lift a lock or freeze")
    yield from offer(screen, "back", "queue: back", "Back to the dashboard")


def _deploy_commands(app: DeployConsoleApp, screen: Screen[object]) -> Iterable[SystemCommand]:
    if isinstance(screen, DashboardScreen | ProjectScreen):
        yield from offer(
            screen,
            "deploy",
            "deploy: open",
            "Deploy a release of the project (under the cursor) to its cluster",
        )
    if isinstance(screen, DeployScreen):
        yield from offer(
            screen, "cancel_deploy", "deploy: cancel", "Stop this deploy and roll back"
        )
        yield from offer(screen, "back", "deploy: back", "Leave this screen; the deploy goes on")
    yield from offer(
        app,
        "show_deploys",
        "deploy: show running",
        "List the deploys this console started and open one",
    )
