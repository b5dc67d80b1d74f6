"""The instance screen: one instance's facts, tags, load balancer health and console output;
its id to the clipboard, and a shell on it with the person's own key (screens/project/shell.py)."""

from __future__ import annotations

import shutil
from collections.abc import Awaitable, Callable
from typing import Any

from textual import work
from textual.app import App, ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.content import Content
from textual.widgets import Footer, Log, Static

from console.access import Access, AccessDenied, Action
from console.config import ClusterConfig
from console.fleet.instance import BalancerHealth, InstanceDetails
from console.identity import current_actor
from console.model import Instance
from console.ssh.shell import shell_refusal
from screens.keys import KEYMAP
from screens.messages import error_text
from screens.project.shell import open_shell
from screens.refusals import SaysWhyNot
from screens.widgets.format import LOCK, format_launched

InstanceLoader = Callable[[str, str, str], Awaitable[InstanceDetails]]


def health_lines(health: tuple[BalancerHealth, ...]) -> Content:
    """One line per load balancer: state, then AWS's reason code and description."""
    if not health:
        return Content.styled("no load balancer for this project in this cluster", "$text-muted")
    lines: list[Content] = []
    for item in health:
        style = "$text-success" if item.serving else "$text-error"
        parts: list[str | tuple[str, str]] = [
            ("✔ " if item.serving else "✖ ", style),
            (item.name, "bold"),
            (f" ({item.kind_word}) ", "$text-muted"),
            (item.state, style),
        ]
        if item.reason:
            parts.append((f" · {item.reason}", "$text-warning"))
        if item.description:
            parts.append(
                (
                    f": {item.description}" if item.reason else f" · {item.description}",
                    "$text-muted",
                )
            )
        lines.append(Content.assemble(*parts))
    return Content("\n").join(lines)


def tag_line(tags: tuple[tuple[str, str], ...]) -> Content:
    """Every tag, sorted by key, as key=value; wrapped by the widget."""
    if not tags:
        return Content.styled("no tags", "$text-muted")
    parts: list[str | tuple[str, str]] = [("tags ", "bold")]
    for index, (key, value) in enumerate(tags):
        if index:
            parts.append(("  ", ""))
        parts += [(key, "$text-accent"), ("=", "$text-muted"), value]
    return Content.assemble(*parts)


def shell_refused(
    app: App[Any], project: str, cluster: ClusterConfig, state: str, address: str, door: str
) -> str:
    """Why no shell opens on an instance of `project` in `cluster` (one line, "" when one may):
    the view, the door, the settings, the instance (console.ssh.shell), then the role."""
    reason = shell_refusal(
        door=door,
        web=app.is_web,
        settings=cluster.ssh,
        cluster=cluster.name,
        address=address,
        state=state,
        client=shutil.which("ssh"),
    )
    if reason:
        return reason
    actor = getattr(getattr(app, "deploys", None), "actor", None) or str(current_actor())
    config = getattr(app, "config", None)
    if config is None:
        return "this console has no config to check your role with"
    try:
        Access(config).check(actor, Action.SSH, cluster.name, project=project)
    except AccessDenied as denied:
        return denied.message
    return ""


class InstanceScreen(SaysWhyNot):
    """One instance of a project in a cluster, read from AWS when opened (r reads it again)."""

    HELP_NAMESPACE = "instance"
    BINDINGS = KEYMAP[HELP_NAMESPACE]
    DEFAULT_CSS = """
    InstanceScreen { layout: vertical; }
    InstanceScreen #instance-top { height: auto; max-height: 60%; padding: 0 1; }
    InstanceScreen #instance-title { text-style: bold; }
    InstanceScreen #instance-facts, InstanceScreen #instance-health,
    InstanceScreen #instance-tags, InstanceScreen #instance-error { height: auto; }
    InstanceScreen #instance-health, InstanceScreen #instance-tags { margin-top: 1; }
    InstanceScreen #instance-error { color: $text-error; display: none; }
    InstanceScreen #instance-error.-shown { display: block; }
    InstanceScreen #console-box {
        height: 1fr; border: round $primary-muted; border-title-color: $text-primary;
    }
    InstanceScreen #console-box:focus-within { border: round $primary; }
    InstanceScreen #console-note { color: $text-muted; padding: 0 1; height: auto; }
    InstanceScreen Log { height: 1fr; background: $surface; }
    """

    @staticmethod
    def door() -> str:
        """How the person reached this console (local, ssh, web): a door's session says."""
        return current_actor().door

    def __init__(
        self, project: str, cluster: ClusterConfig, instance: Instance, read: InstanceLoader
    ) -> None:
        super().__init__()
        self.project = project
        self.cluster = cluster
        self.instance = instance
        """What the fleet's last read said; shown until the instance's own read arrives."""
        self.read = read
        self.details: InstanceDetails | None = None
        self.reads = 0
        """Reads that reached the screen: tests wait on it."""

    @property
    def instance_id(self) -> str:
        return self.instance.id

    def compose(self) -> ComposeResult:
        # Many tags or long reasons: the top scrolls (Tab to it) and the console keeps 40%.
        with VerticalScroll(id="instance-top"):
            yield Static(id="instance-title")
            yield Static(id="instance-facts")
            yield Static(id="instance-error")
            yield Static(
                Content.styled("load balancers: reading…", "$text-muted"), id="instance-health"
            )
            yield Static(Content.styled("tags: reading…", "$text-muted"), id="instance-tags")
        with Vertical(id="console-box"):
            yield Static("reading the console output…", id="console-note")
            yield Log(id="console-output", highlight=False)
        yield Footer()

    def on_mount(self) -> None:
        self._show_facts()
        self.query_one("#console-box").border_title = "console output"
        self.query_one(Log).focus()
        self._read()

    @work(exclusive=True, group="instance-read", exit_on_error=False)
    async def _read(self) -> None:
        try:
            details = await self.read(self.project, self.cluster.name, self.instance.id)
        except Exception as error:
            details = InstanceDetails(
                self.instance.id, self.project, self.cluster.name, error=error_text(error)
            )
        self.details = details
        self._show_details(details)
        self.reads += 1

    # -- what the screen shows ---------------------------------------------------------

    def _show_facts(self) -> None:
        details = self.details
        known = details is not None and details.error is None
        state = details.state if known and details else self.instance.state
        where = f"{self.project} in {self.cluster.name}"
        if self.cluster.protected:
            where += f" {LOCK}"
        state_style = "$text-success" if state == "running" else "$text-warning"
        self.query_one("#instance-title", Static).update(
            Content.assemble(
                (self.instance.id, "bold $text-primary"),
                f" · {where} · ",
                (state, f"bold {state_style}"),
            )
        )
        image = details.image_id if known and details else self.instance.image_id
        version = details.version if known and details else self.instance.version
        launched = details.launched_at if known and details else self.instance.launched_at
        address = details.private_address if known and details else self.instance.private_address
        first = [f"AMI {image or '-'}", f"version {version}"]
        if known and details and details.instance_type:
            first.append(details.instance_type)
        if known and details and details.zone:
            first.append(details.zone)
        second = [f"launched {format_launched(launched)} UTC", f"address {address or '-'}"]
        if known and details and details.public_address:
            second.append(f"public {details.public_address}")
        self.query_one("#instance-facts", Static).update(
            " · ".join(first) + "\n" + " · ".join(second)
        )

    def _show_details(self, details: InstanceDetails) -> None:
        self._show_facts()
        error = self.query_one("#instance-error", Static)
        error.update(Content.styled(f"✖ {details.error}", "$text-error") if details.error else "")
        error.set_class(details.error is not None, "-shown")
        self.query_one("#instance-health", Static).update(health_lines(details.health))
        tags = self.query_one("#instance-tags", Static)
        tags.update(tag_line(details.tags) if details.error is None else "")
        tags.display = details.error is None
        console = details.console
        log = self.query_one(Log)
        log.clear()
        note = self.query_one("#console-note", Static)
        box = self.query_one("#console-box")
        if console.error is not None:
            note.update(Content.styled(f"✖ {console.error}", "$text-error"))
        elif console.empty:
            note.update("no console output yet (AWS keeps it from the instance's boot on)")
        else:
            note.update("")
            log.write_lines(console.lines)
        note.display = bool(console.error is not None or console.empty)
        log.display = bool(console.lines)
        title = "console output"
        if console.lines:
            shown = len(console.lines)
            count = (
                f"{shown} lines"
                if shown == console.total_lines
                else f"last {shown} of {console.total_lines} lines"
            )
            title += f" · {count}"
        if console.timestamp is not None:
            title += f" · as of {format_launched(console.timestamp)} UTC"
        box.border_title = title

    # -- actions -----------------------------------------------------------------------

    def action_back(self) -> None:
        self.dismiss()

    def action_reload(self) -> None:
        self._read()

    def action_copy_id(self) -> None:
        self.app.copy_to_clipboard(self.instance.id)
        self.notify(f"copied {self.instance.id}", title="Instance id", markup=False)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "ssh":
            # Refused: shown disabled, so that the key is seen, and pressing it says why.
            return None if self.ssh_refusal() else True
        return True

    def why_not(self, action: str, parameters: tuple[object, ...]) -> str:
        return self.ssh_refusal() if action == "ssh" else ""

    def ssh_refusal(self) -> str:
        """Why `s` opens no shell here, in one line ("" when it may)."""
        details = self.details
        known = details is not None and details.error is None
        return shell_refused(
            self.app,
            self.project,
            self.cluster,
            details.state if known and details else self.instance.state,
            details.private_address if known and details else self.instance.private_address,
            self.door(),
        )

    async def action_ssh(self) -> None:
        if self.ssh_refusal():
            return  # the key said why (SaysWhyNot); the palette offers it only when allowed
        settings = self.cluster.ssh
        assert settings is not None
        details = self.details
        address = (
            details.private_address
            if details is not None and details.private_address
            else self.instance.private_address
        )
        outcome = await open_shell(self.app, settings, address, self.instance.id)
        if outcome:
            self.notify(outcome, title=f"ssh {self.instance.id}", severity="warning", markup=False)
        else:
            self.notify(f"shell on {self.instance.id} ended", title="ssh", markup=False)
