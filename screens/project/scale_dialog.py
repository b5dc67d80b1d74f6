"""The scale dialog (project screen): how many instances a pair should run, queued as a scale.

It shows the instances now (from the last refresh) and the desired count (the store's last
scale, else the config's), takes N, says what the scale would do, and on a protected cluster
asks for the cluster's name typed. Confirmed, it queues a scale like a deploy (the deploy
screen follows it)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static

from console.access import Action
from console.config import ClusterConfig, ProjectConfig
from console.errors import ConsoleError
from console.model import DeployRequest, EnvStatus
from screens.keys import KEYMAP
from screens.widgets.format import LOCK

ReadDesired = Callable[[], Awaitable[int | None]]


class ProjectScreen(Protocol):
    """What the dialog's opener reads of screens.project.screen.ProjectScreen."""

    @property
    def app(self) -> Any: ...

    @property
    def project(self) -> ProjectConfig: ...

    @property
    def deploy_cluster(self) -> str | None: ...


def now_text(env: EnvStatus | None) -> str:
    """The pair's instances at the last refresh, in a few words."""
    if env is None:
        return "no instance read yet"
    running = [i for i in env.instances if i.state in ("pending", "running")]
    healthy = sum(1 for i in running if i.serving)
    versions = ", ".join(env.versions) or "no version"
    plural = "s" if len(running) != 1 else ""
    return f"{len(running)} instance{plural}, {healthy} healthy ({versions})"


class ScaleDialog(ModalScreen[DeployRequest | None]):
    """N for one pair; dismissed with the scale's request, or None."""

    HELP_NAMESPACE = "scale dialog"
    BINDINGS = KEYMAP[HELP_NAMESPACE]

    DEFAULT_CSS = """
    ScaleDialog { align: center middle; }
    ScaleDialog #scale-box {
        width: 70; max-width: 100%; height: auto; max-height: 100%;
        border: round $primary; padding: 0 1; background: $surface;
    }
    ScaleDialog #scale-box.-protected { border: round $error; }
    ScaleDialog #scale-says { margin-top: 1; height: auto; }
    ScaleDialog #scale-says.-problem { color: $text-warning; }
    ScaleDialog #count-row { height: auto; margin-top: 1; }
    ScaleDialog #count-label { width: auto; margin-top: 1; }
    ScaleDialog #count { width: 14; }
    ScaleDialog #scale-actions { height: auto; margin-top: 1; }
    ScaleDialog #scale-actions Button { margin-right: 1; }
    """

    def __init__(
        self,
        project: ProjectConfig,
        cluster: ClusterConfig,
        env: EnvStatus | None,
        actor: str,
        read_desired: ReadDesired,
    ) -> None:
        super().__init__()
        self.project = project
        self.cluster = cluster
        self.env = env
        self.actor = actor
        self._read_desired = read_desired
        self.desired: int | None = project.clusters[cluster.name].desired
        self.desired_read = False
        self.desired_note = ""

    @property
    def current(self) -> int:
        env = self.env
        return sum(1 for i in env.instances if i.state in ("pending", "running")) if env else 0

    def compose(self) -> ComposeResult:
        lock = f" {LOCK}" if self.cluster.protected else ""
        classes = "-protected" if self.cluster.protected else ""
        with Vertical(id="scale-box", classes=classes) as box:
            box.border_title = f"scale {self.project.name} in {self.cluster.name}{lock}"
            yield Static(self._counts(), id="scale-counts")
            with Horizontal(id="count-row"):
                yield Static("instances  ", id="count-label")
                yield Input(placeholder="N", type="integer", id="count")
            yield Static("", id="scale-says")
            if self.cluster.protected:
                yield Static(
                    Content.assemble(
                        (f"{self.cluster.name} is protected.", "bold $text-error"),
                        " Type its name to confirm:",
                    ),
                    id="protect-hint",
                )
                yield Input(placeholder=self.cluster.name, id="confirm-name")
            with Horizontal(id="scale-actions"):
                yield Button(
                    "Scale",
                    id="confirm",
                    variant="error" if self.cluster.protected else "success",
                    disabled=True,
                )
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#count", Input).focus()
        self._load_desired()

    @work(exclusive=True, group="desired")
    async def _load_desired(self) -> None:
        try:
            self.desired = await self._read_desired()
        except ConsoleError as error:  # the config's count stays shown, with why
            self.desired_note = f" (the store did not answer: {error.message})"
        self.desired_read = True
        self.query_one("#scale-counts", Static).update(self._counts())

    def _counts(self) -> Content:
        desired = "none set" if self.desired is None else str(self.desired)
        return Content.assemble(
            ("now      ", "$text-muted"),
            now_text(self.env),
            "\n",
            ("desired  ", "$text-muted"),
            desired,
            (self.desired_note, "$text-warning"),
        )

    # -- what it would do ------------------------------------------------------------------

    def count_problem(self) -> tuple[int | None, str]:
        """N typed (None if not valid) and what the scale would do, or what is wrong."""
        from console.deploy.scale import parse_count

        typed = self.query_one("#count", Input).value.strip()
        if not typed:
            return None, "type how many instances should run (1 or more)"
        try:
            count = parse_count(typed)
        except ConsoleError as error:
            return None, error.message
        now = self.current
        if count > now:
            version = self.env.versions[0] if self.env and self.env.versions else "?"
            return count, f"launch {count - now} at {version}; registered once healthy"
        if count < now:
            return count, (
                f"drain then terminate {now - count} (unhealthy first, then the oldest); "
                "at least one healthy target stays"
            )
        return count, f"{count} already run: records the desired count"

    @property
    def can_confirm(self) -> bool:
        count, _ = self.count_problem()
        if count is None:
            return False
        if self.cluster.protected:
            return self.query_one("#confirm-name", Input).value.strip() == self.cluster.name
        return True

    @on(Input.Changed)
    def _changed(self) -> None:
        count, said = self.count_problem()
        says = self.query_one("#scale-says", Static)
        says.update(said)
        says.set_class(count is None, "-problem")
        self.query_one("#confirm", Button).disabled = not self.can_confirm

    @on(Input.Submitted)
    def _submitted(self) -> None:
        self.action_confirm()

    @on(Button.Pressed, "#confirm")
    def _pressed_confirm(self) -> None:
        self.action_confirm()

    @on(Button.Pressed, "#cancel")
    def _pressed_cancel(self) -> None:
        self.action_cancel()

    def action_confirm(self) -> None:
        count, _ = self.count_problem()
        if count is None or not self.can_confirm:
            return
        self.dismiss(
            DeployRequest(
                self.project.name, self.cluster.name, str(count), self.actor, kind="scale"
            )
        )

    def action_cancel(self) -> None:
        self.dismiss(None)


def open_scale(screen: ProjectScreen) -> None:
    """`project.scale`: the dialog on the cluster in focus; confirmed, the scale is queued
    and followed like a deploy (the app's deploy screen)."""
    app: Any = screen.app
    project = screen.project
    cluster_name = screen.deploy_cluster
    if cluster_name is None:
        app.notify(
            f"Put the cursor on a cluster {project.name} runs in, then scale it.",
            title="Scale where?",
            severity="warning",
        )
        return
    denied = app.refusal(Action.DEPLOY, cluster_name, project.name)
    if denied:
        app.notify(denied, title="Not allowed", severity="warning")
        return
    from console.deploy.scale import is_group

    if is_group(app.config, project.name, cluster_name):
        app.notify(
            "Backed by an Auto Scaling group: change its capacity through its stack.",
            title="Not scaled here",
            severity="warning",
        )
        return
    snapshot = app.snapshot
    env = snapshot.env(project.name, cluster_name) if snapshot is not None else None

    async def read_desired() -> int | None:
        from console.store.desired import desired_count

        engine = getattr(app.deploys, "engine", None)
        store = getattr(engine, "store", None)
        return await desired_count(store, app.config, project.name, cluster_name)

    def confirmed(request: DeployRequest | None) -> None:
        if request is not None:
            app.start_deploy(request)

    dialog = ScaleDialog(
        project, app.config.cluster(cluster_name), env, app.deploys.actor, read_desired
    )
    app.push_screen(dialog, confirmed)
