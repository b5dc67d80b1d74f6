"""The project screen: one project in every cluster it runs in, down to each instance."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING

from textual import work
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.content import Content
from textual.reactive import reactive
from textual.widgets import DataTable, Footer, Static

from console.config import ClusterConfig, ProjectConfig
from console.fleet.instance import InstanceReader
from console.model import FleetSnapshot, Instance, LoadBalancerSettings
from screens.keys import KEYMAP
from screens.messages import (
    DeployAsked,
    HistoryAsked,
    LoadBalancerSettingsLoaded,
    RefreshRequested,
    error_text,
)
from screens.project.cluster_panel import ClusterPanel, InstanceTable
from screens.project.instance import InstanceLoader, InstanceScreen, shell_refused
from screens.project.shell import open_shell
from screens.project.stack import StackSide, StackStates, open_stack_plan, stack_refusal
from screens.project.stack import reread as reread_stacks
from screens.refusals import SaysWhyNot, deploy_refusal
from screens.widgets.format import age_between

if TYPE_CHECKING:
    from console.drift.review import Reviewed

SettingsLoader = Callable[[str, str], Awaitable[tuple[LoadBalancerSettings, ...]]]


class ProjectScreen(SaysWhyNot):
    """Per cluster: health and versions, the instances table, the load balancers' settings."""

    CSS_PATH = "../styles/project.tcss"
    HELP_NAMESPACE = "project"
    BINDINGS = KEYMAP[HELP_NAMESPACE]

    snapshot: reactive[FleetSnapshot | None] = reactive(None, always_update=True, init=False)
    findings: reactive[dict[tuple[str, str], list[Reviewed]]] = reactive(
        dict, always_update=True, init=False
    )
    """(drift) Each pair's drift findings; each cluster's panel lists its own."""

    def __init__(
        self,
        project: ProjectConfig,
        clusters: tuple[ClusterConfig, ...],
        snapshot: FleetSnapshot | None,
        clock: Callable[[], datetime],
        load_settings: SettingsLoader,
        selected_cluster: str | None = None,
        *,
        may_deploy: Callable[[str, str | None], bool] = lambda _cluster, _project: False,
    ) -> None:
        super().__init__()
        self.may_deploy = may_deploy
        """Whether this user's role may deploy to a cluster (the core checks again)."""
        self.project = project
        # Config order, only the clusters the project is configured in.
        self.clusters = tuple(c for c in clusters if c.name in project.clusters)
        self.clock = clock
        self.load_settings = load_settings
        self.selected_cluster = selected_cluster
        self._ready = False  # is_mounted is still False inside on_mount
        self._title: Content | None = None
        self.set_reactive(ProjectScreen.snapshot, snapshot)
        self.read_instance: InstanceLoader | None = None
        """How the instance screen reads an instance: by default a reader of this screen's
        own, made on first use and closed with the screen."""
        self._reader: InstanceReader | None = None

    def panel(self, cluster: str) -> ClusterPanel:
        return self.query_one(f"#cluster-{cluster}", ClusterPanel)

    def compose(self) -> ComposeResult:
        yield Static(id="title")
        stacked = [c.name for c in self.clusters if self.project.clusters[c.name].stack]
        side = StackSide.of(getattr(self.app, "deploys", None))
        if stacked and side is not None:  # (i16-apply) the pairs' stacks: p plans one
            yield StackStates(side, self.project, stacked)
        with VerticalScroll(id="clusters"):
            for cluster in self.clusters:
                classes = "-selected" if cluster.name == self.selected_cluster else ""
                yield ClusterPanel(
                    cluster, self.clock, id=f"cluster-{cluster.name}", classes=classes
                )
            if not self.clusters:
                yield Static("This project is not configured in any cluster.", id="nowhere")
        yield Footer()

    def on_mount(self) -> None:
        self._ready = True
        self._show_title()
        self.set_interval(1.0, self._show_title, name="project-age")
        self._show_snapshot(self.snapshot)
        if self.clusters:
            self._read_settings()
        if self.selected_cluster in {c.name for c in self.clusters}:
            panel = self.panel(self.selected_cluster or "")
            self.call_after_refresh(self._focus_panel, panel)

    def _focus_panel(self, panel: ClusterPanel) -> None:
        table = panel.query_one(InstanceTable)
        if table.row_count:
            table.focus(scroll_visible=False)
        panel.scroll_visible(animate=False, top=True)

    # -- attributes down ---------------------------------------------------------------

    def watch_snapshot(self, snapshot: FleetSnapshot | None) -> None:
        self._show_snapshot(snapshot)
        self._show_title()

    def watch_findings(self) -> None:
        self._show_snapshot(self.snapshot)

    def _show_snapshot(self, snapshot: FleetSnapshot | None) -> None:
        if not self._ready:
            return
        for cluster in self.clusters:
            panel = self.panel(cluster.name)
            panel.findings = tuple(self.findings.get((self.project.name, cluster.name), ()))
            if snapshot is None:
                panel.env, panel.status = None, None
                continue
            panel.env = snapshot.env(self.project.name, cluster.name)
            try:
                panel.status = snapshot.cluster(cluster.name)
            except KeyError:
                panel.status = None

    def _show_title(self) -> None:
        parts: list[str | tuple[str, str]] = [(self.project.name, "bold $text-primary")]
        if self.project.description:
            parts.append(f" — {self.project.description}")
        parts.append("\n")
        parts.append((self.project.repository, "$text-muted"))
        if self.snapshot is not None:
            age = age_between(self.clock(), self.snapshot.generated_at)
            parts.append(f" · refreshed {age} ago")
        else:
            parts.append((" · reading the fleet…", "$text-muted"))
        title = Content.assemble(*parts)
        if title != self._title:
            self._title = title
            self.query_one("#title", Static).update(title)

    # -- the load balancers' settings: extra AWS calls, only while this screen is open --

    @work(exclusive=True, group="lb-settings", exit_on_error=False)
    async def _read_settings(self) -> None:
        async def read(cluster: str) -> None:
            try:
                settings = await self.load_settings(self.project.name, cluster)
            except Exception as error:
                self.post_message(LoadBalancerSettingsLoaded(cluster, error=error_text(error)))
            else:
                self.post_message(LoadBalancerSettingsLoaded(cluster, settings))

        await asyncio.gather(*(read(cluster.name) for cluster in self.clusters))

    def on_load_balancer_settings_loaded(self, message: LoadBalancerSettingsLoaded) -> None:
        panel = self.panel(message.cluster)
        panel.settings = message.error if message.error is not None else message.settings
        chosen = self.selected_cluster
        panels = list(self.query(ClusterPanel))
        if chosen and all(p.settings is not None for p in panels):
            # The panels above the chosen one grew by their settings: it is brought back to
            # the top (once, when the last arrive), unless the user moved elsewhere meanwhile.
            target = self.panel(chosen)
            focused = self.focused
            if focused is None or target in focused.ancestors_with_self:
                self.call_after_refresh(target.scroll_visible, animate=False, top=True)

    # -- actions -----------------------------------------------------------------------

    def action_back(self) -> None:
        self.dismiss()

    def action_refresh(self) -> None:
        self.post_message(RefreshRequested())
        reread_stacks(self)

    def on_screen_resume(self) -> None:
        if self._ready:
            reread_stacks(self)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "deploy":
            # The cluster in focus when there is one; else any this project runs in.
            cluster = self.deploy_cluster if self._ready else None
            names = [cluster] if cluster is not None else [c.name for c in self.clusters]
            return any(self.may_deploy(name, self.project.name) for name in names)
        if action == "stack_plan":  # hidden unless the console owns a stack of the project
            if not self._ready or not self.query(StackStates):
                return False
            return self._stack_refusal() == "" or None
        if action in ("open_instance", "copy_id"):
            # Shown disabled without an instance in focus: Enter is seen, and says why.
            return True if self._ready and self.instance_in_focus is not None else None
        if action == "ssh":
            return True if self._ready and not self._ssh_refusal() else None
        return True

    def why_not(self, action: str, parameters: tuple[object, ...]) -> str:
        if action in ("open_instance", "copy_id"):
            return "put the cursor on an instance first (Tab to a cluster's instances)"
        if action == "ssh":
            return self._ssh_refusal()
        if action == "stack_plan":
            return self._stack_refusal()
        if action == "deploy":
            cluster = self.deploy_cluster if self._ready else None
            names = [cluster] if cluster is not None else [c.name for c in self.clusters]
            return deploy_refusal(self, [(self.project.name, name) for name in names])
        return ""

    def on_descendant_focus(self) -> None:
        # What `d` may do depends on the cluster panel in focus.
        self.refresh_bindings()

    def on_unmount(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    @property
    def deploy_cluster(self) -> str | None:
        """The cluster a deploy from here goes to: the panel in focus, else the one chosen."""
        for cluster in self.clusters:
            if self.panel(cluster.name).has_focus_within:
                return cluster.name
        names = [cluster.name for cluster in self.clusters]
        if self.selected_cluster in names:
            return self.selected_cluster
        return names[0] if len(names) == 1 else None

    def action_deploy(self) -> None:
        self.post_message(DeployAsked(self.project.name, self.deploy_cluster))

    def action_scale(self) -> None:
        """(i16-scale) The scale dialog on the cluster in focus."""
        from screens.project.scale_dialog import open_scale

        open_scale(self)

    def _stack_refusal(self) -> str:
        if not self._ready:
            return "wait for the screen"
        return stack_refusal(self.app, self.project, self.deploy_cluster)

    def action_stack_plan(self) -> None:
        """p: the stack plan of the pair in focus; its confirm queues the apply."""
        if self._stack_refusal() == "":
            open_stack_plan(self, self.project, self.deploy_cluster or "")

    def action_history(self) -> None:
        """This project's deploys (in the cluster in focus, if one is)."""
        focused = [c.name for c in self.clusters if self.panel(c.name).has_focus_within]
        self.post_message(HistoryAsked(self.project.name, focused[0] if focused else None))

    # -- instances: Enter opens one, c copies its id ------------------------------------

    @property
    def instance_in_focus(self) -> tuple[str, Instance] | None:
        """(cluster, instance) under the cursor of the instance table in focus."""
        for cluster in self.clusters:
            panel = self.panel(cluster.name)
            table = panel.table
            if not table.has_focus or not table.row_count or panel.env is None:
                continue
            row = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
            for instance in panel.env.instances:
                if instance.id == row:
                    return cluster.name, instance
        return None

    def action_open_instance(self) -> None:
        found = self.instance_in_focus
        if found is not None:
            self.open_instance(*found)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        # A click on a row under the cursor: as Enter.
        if isinstance(event.data_table, InstanceTable):
            event.stop()
            self.action_open_instance()

    def open_instance(self, cluster: str, instance: Instance) -> None:
        config = next(c for c in self.clusters if c.name == cluster)
        self.app.push_screen(InstanceScreen(self.project.name, config, instance, self._loader()))

    def _loader(self) -> InstanceLoader:
        if self.read_instance is not None:
            return self.read_instance
        if self._reader is None:
            self._reader = InstanceReader(self.app.config)  # type: ignore[attr-defined]
        return self._reader.read

    def action_copy_id(self) -> None:
        found = self.instance_in_focus
        if found is not None:
            self.app.copy_to_clipboard(found[1].id)
            self.notify(f"copied {found[1].id}", title="Instance id", markup=False)

    def _ssh_refusal(self) -> str:
        found = self.instance_in_focus
        if found is None:
            return "put the cursor on an instance first (Tab to a cluster's instances)"
        cluster, instance = found
        config = next(c for c in self.clusters if c.name == cluster)
        door = InstanceScreen.door()
        return shell_refused(
            self.app, self.project.name, config, instance.state, instance.private_address, door
        )

    async def action_ssh(self) -> None:
        """s on an instance's row: as s on its screen (the fleet's last read of it)."""
        found = self.instance_in_focus
        if found is None or self._ssh_refusal():
            return
        cluster, instance = found
        settings = next(c for c in self.clusters if c.name == cluster).ssh
        assert settings is not None
        outcome = await open_shell(self.app, settings, instance.private_address, instance.id)
        title = f"ssh {instance.id}"
        if outcome:
            self.notify(outcome, title=title, severity="warning", markup=False)
        else:
            self.notify(f"shell on {instance.id} ended", title=title, markup=False)
