"""The keymap: every key of the app, its screens and tables, grouped as the help lists them."""

from __future__ import annotations

from textual.binding import Binding, BindingType

MOVE = Binding.Group("Move", compact=True)

# Keys bound the same on more than one screen.
OPEN_DEPLOY = Binding("d", "deploy", "Deploy", id="deploy.open")
OPEN_HISTORY = Binding("h", "history", "History", id="history.open")


def form_keys(
    prefix: str, submit_description: str, cancel: str = "close", submit: str = "submit"
) -> list[BindingType]:
    """A form dialog's keys: Escape cancels it (`prefix`.cancel), ctrl+s submits it
    (`prefix`.confirm)."""
    return [
        Binding("escape", cancel, "Cancel", id=f"{prefix}.cancel"),
        Binding("ctrl+s", submit, submit_description, id=f"{prefix}.confirm"),
    ]


def close_key(prefix: str) -> Binding:
    """A list dialog's one key: Escape closes it (`prefix`.close)."""
    return Binding("escape", "close", "Close", id=f"{prefix}.close")


def filter_key(description: str, id: str) -> Binding:
    """/ opens a screen's filter. Priority: the action runs as the key arrives, so the keys
    typed right after it (a paste, a fast typist) already go to the filter, not to the table."""
    return Binding("slash", "filter", description, key_display="/", id=id, priority=True)


def redeploy_keys(prefix: str) -> list[BindingType]:
    """A recorded deploy's keys (history list and detail): roll it back, run it again, open
    its full log (`o`, as on the queue)."""
    return [
        Binding("b", "rollback", "Roll back", id=f"{prefix}.rollback"),
        Binding("R", "rerun", "Re-run", id=f"{prefix}.rerun"),
        Binding("o", "deploy_log", "Log", id=f"{prefix}.log"),
    ]


# Each screen's BINDINGS is its entry here (the key is its HELP_NAMESPACE: the help's "where");
# a binding's id names it for remapping in the config's [keymap] (screens/keymap.py), so ids
# never change.
KEYMAP: dict[str, list[BindingType]] = {
    "app": [
        Binding("ctrl+q", "quit", "Quit", id="app.quit", priority=True),
        Binding("question_mark", "help", "Help", key_display="?", id="app.help"),
        Binding("escape", "back", "Back", show=False, id="app.back"),
        Binding("D", "show_deploys", "Deploys", id="deploy.show_running"),
    ],
    # DataTable's keys without its Enter: the screens bind Enter to their own action.
    "table": [
        Binding("up", "cursor_up", "Move up", show=False, id="table.up"),
        Binding("down", "cursor_down", "Move down", show=False, id="table.down"),
        Binding("left", "cursor_left", "Move left", show=False, id="table.left"),
        Binding("right", "cursor_right", "Move right", show=False, id="table.right"),
        Binding("pageup", "page_up", "Page up", show=False, id="table.page_up"),
        Binding("pagedown", "page_down", "Page down", show=False, id="table.page_down"),
        Binding("ctrl+home", "scroll_top", "First row", show=False, id="table.first_row"),
        Binding("ctrl+end", "scroll_bottom", "Last row", show=False, id="table.last_row"),
        Binding("home", "scroll_home", "First column", show=False, id="table.first_column"),
        Binding("end", "scroll_end", "Last column", show=False, id="table.last_column"),
    ],
    "help": [Binding("escape,q,question_mark", "close", "Close", id="help.close")],
    "dashboard": [
        Binding("r", "refresh", "Refresh", id="dashboard.refresh"),
        filter_key("Filter projects", "dashboard.filter"),
        # Priority, as the filter's: the keys typed right after it go to the jump line.
        Binding("colon", "jump", "Jump to", key_display=":", id="dashboard.jump", priority=True),
        Binding("enter", "open_project", "Open project", id="dashboard.open_project"),
        Binding("escape", "close_jump", "Cancel jump", id="dashboard.jump_cancel"),
        Binding("escape", "clear_filter", "Clear filter", id="dashboard.clear_filter"),
        OPEN_DEPLOY,
        Binding("q", "open_queue", "Queue", id="queue.open"),
        OPEN_HISTORY,
        Binding("s", "sort", "Sort", id="dashboard.sort"),
        Binding("S", "sort_reverse", "Reverse sort", show=False, id="dashboard.sort_reverse"),
    ],
    "project": [
        Binding("escape", "back", "Back", id="project.back"),
        Binding("r", "refresh", "Refresh", id="project.refresh"),
        OPEN_DEPLOY,
        OPEN_HISTORY,
        Binding("enter,i", "open_instance", "Open", id="project.open_instance"),
        Binding("c", "copy_id", "Copy id", show=False, id="project.copy_id"),
        Binding("s", "ssh", "ssh", show=False, id="project.ssh"),
        # (i16-scale) how many instances the pair in focus runs: screens/project/scale_dialog.py
        Binding("n", "scale", "Scale", show=False, id="project.scale"),
        Binding("p", "stack_plan", "Stack plan", id="project.stack_plan"),
    ],
    # The stack plan (p on the project screen): confirm queues the apply.
    "stack dialog": form_keys("stack_dialog", "Apply", cancel="cancel", submit="confirm"),
    # An instance (Enter on its row): console output, tags, health; its id; a shell on it.
    "instance": [
        Binding("escape", "back", "Back", id="instance.back"),
        Binding("r", "reload", "Reload", id="instance.reload"),
        Binding("c", "copy_id", "Copy id", id="instance.copy_id"),
        Binding("s", "ssh", "ssh", id="instance.ssh"),
    ],
    "scale dialog": form_keys("scale_dialog", "Scale", cancel="cancel", submit="confirm"),
    "deploy dialog": [
        *form_keys("deploy_dialog", "Deploy", cancel="cancel", submit="confirm"),
        Binding("ctrl+y", "anyway", "Deploy anyway", id="deploy_dialog.anyway"),
        Binding(
            "ctrl+down",
            "scroll_plan(3)",
            "Scroll the plan",
            show=False,
            id="deploy_dialog.plan_down",
        ),
        Binding(
            "ctrl+up", "scroll_plan(-3)", "Scroll the plan", show=False, id="deploy_dialog.plan_up"
        ),
    ],
    "deploy": [
        Binding("escape", "back", "Back (deploy goes on)", id="deploy.back"),
        Binding("c", "cancel_deploy", "Cancel deploy", id="deploy.cancel"),
        Binding("e", "end_bake", "End bake", id="deploy.end_bake"),
        Binding("r", "rollback_now", "Roll back now", id="deploy.rollback_now"),
    ],
    "deploys": [close_key("deploy_list")],
    "confirm": [
        Binding("y", "answer(True)", "Yes", id="confirm.yes"),
        Binding("n,escape", "answer(False)", "No", id="confirm.no"),
    ],
    "queue": [
        Binding("escape,q", "back", "Back", id="queue.back"),
        Binding("c", "cancel_deploy", "Cancel deploy", id="queue.cancel"),
        Binding(
            "shift+up",
            "move(-1)",
            "Move earlier in its pair",
            key_display="⇧↑",
            id="queue.move_up",
            group=MOVE,
        ),
        Binding(
            "shift+down",
            "move(1)",
            "Move later in its pair",
            key_display="⇧↓",
            id="queue.move_down",
            group=MOVE,
        ),
        # For terminals that do not send shift+arrows.
        Binding("u", "move(-1)", "Move earlier in its pair", show=False, id="queue.move_up_u"),
        Binding("n", "move(1)", "Move later in its pair", show=False, id="queue.move_down_n"),
        Binding("enter", "open_deploy", "Open", id="queue.open_deploy"),
        Binding("o", "deploy_log", "Log", id="queue.log"),
        Binding("f", "freeze", "Freeze/unfreeze", id="queue.freeze"),
        Binding("l", "lock", "Lock", id="queue.lock"),
        Binding("L", "unlock", "Unlock", id="queue.unlock"),
        Binding("w", "outside_window", "Outside window", id="queue.outside_window"),
        Binding("a", "approve", "Approve/reject", id="queue.approve"),
        Binding("g", "break_glass", "Break glass", id="queue.break_glass"),
    ],
    "approve": [
        Binding("escape", "close", "Cancel", id="approve.cancel"),
        Binding("ctrl+s", "approve", "Approve", id="approve.confirm"),
        Binding("ctrl+r", "reject", "Reject", id="approve.reject"),
    ],
    "break glass": [
        Binding("escape", "close", "Cancel", id="break_glass.cancel"),
        Binding("ctrl+s", "break_glass", "Break glass", id="break_glass.confirm"),
    ],
    "outside window": form_keys("outside_window", "Deploy now"),
    "freeze": form_keys("freeze", "Freeze"),
    "lock": form_keys("lock", "Lock"),
    "locks": [close_key("locks")],
    "history": [
        Binding("enter", "open_deploy", "Open", id="history.open_deploy"),
        *redeploy_keys("history"),
        filter_key("Filter", "history.filter"),
        Binding("t", "time_range", "Time range", id="history.time_range"),
        Binding("r", "refresh", "Refresh", id="history.refresh"),
        Binding("escape", "clear_filter", "Clear filter", id="history.clear_filter"),
        Binding("escape", "back", "Back", id="history.back"),
    ],
    "deploy detail": [
        *redeploy_keys("history.detail"),
        Binding("escape", "back", "Back", id="history.detail.back"),
        Binding("r", "refresh", "Refresh", id="history.detail.refresh"),
    ],
    "deploy log": [
        Binding("escape", "back", "Back", id="history.log.back"),
        Binding("r", "refresh", "Refresh", id="history.log.refresh"),
    ],
    # The kiosk's one key (its own app: `deploy-console kiosk --quit-key` overrides it).
    "kiosk": [
        Binding("ctrl+q", "quit", "Quit the kiosk", show=False, priority=True, id="kiosk.quit")
    ],
}
