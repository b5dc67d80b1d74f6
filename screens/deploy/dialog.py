"""The deploy dialog: pick a release, read its plan and its warnings, confirm (typing a protected
cluster's name; ticking "deploy anyway" for a warned release). Opened from history, it comes with
a release preselected and says why (a rollback of a deploy, or a re-run)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, DataTable, Input, Static

from console.config import ClusterConfig, ProjectConfig
from console.deploy.risks import RECENT_DAYS, ReleaseWarning, release_warnings
from console.model import DeployPlan, DeployRequest, FleetSnapshot, LoadBalancerKind, Release
from console.store import DeployRecord
from screens.deploy.support import DeploySupport
from screens.keys import KEYMAP
from screens.messages import PlanLoaded, ReleasesLoaded, error_text
from screens.widgets.format import LOCK, format_launched, format_seconds

CURRENT_MARK = "●"
WARNING_MARK = "⚠"
ANYWAY = "deploy anyway"


def running_in(project: ProjectConfig, snapshot: FleetSnapshot | None) -> dict[str, list[str]]:
    """Version -> clusters that run it now (config order), from the last fleet snapshot."""
    where: dict[str, list[str]] = {}
    if snapshot is None:
        return where
    for cluster in project.clusters:
        env = snapshot.env(project.name, cluster)
        for version in env.versions if env else ():
            where.setdefault(version, []).append(cluster)
    return where


def plan_content(plan: DeployPlan) -> Content:
    """The plan as a person reads it before confirming."""
    release = plan.release
    now = ", ".join(plan.current_versions) or "nothing"
    lock = f" {LOCK}" if plan.protected else ""
    parts: list[str | tuple[str, str]] = [
        ("Plan ", "bold"),
        (plan.project, "bold $text-primary"),
        f" {now} → ",
        (release.version, "bold $text-success"),
        f" in {plan.cluster}{lock}\n",
        ("  AMI            ", "$text-muted"),
        f"{release.image_id}",
        (f"  {release.name}" if release.name else "", "$text-muted"),
        (f"  created {format_launched(release.created_at)}", "$text-muted"),
        "\n",
        *_launch_line(plan),
        ("  replace        ", "$text-muted"),
        ", ".join(plan.old_instances) or "no instance (first deploy)",
        "\n",
    ]
    if release.version in plan.current_versions:
        parts.append(
            ("  this release already runs here: new instances replace the old\n", "$text-warning")
        )
    if not plan.load_balancers:
        parts.append(("  no load balancer: nothing to switch\n", "$text-warning"))
    for balancer in plan.load_balancers:
        kind = "classic ELB" if balancer.kind is LoadBalancerKind.CLASSIC else "target group"
        losing = ", ".join(balancer.removing) or "nothing"
        parts.extend(
            [
                ("  " + kind.ljust(15), "$text-muted"),
                (balancer.name, "bold"),
                (
                    f"  healthy in ~{format_seconds(balancer.time_to_healthy_seconds)}"
                    f", drain {format_seconds(balancer.drain_seconds)}\n",
                    "$text-muted",
                ),
                ("    gains        ", "$text-muted"),
                (f"{plan.count} new instance{'s' if plan.count != 1 else ''}\n", "$text-success"),
                ("    loses        ", "$text-muted"),
                (f"{losing}\n", "$text-warning"),
            ]
        )
    parts.extend(
        [
            ("  expected       ", "$text-muted"),
            f"healthy in ~{format_seconds(plan.expected_healthy_seconds)}, "
            f"then {format_seconds(plan.drain_seconds)} draining (read from AWS)",
        ]
    )
    return Content.assemble(*parts)


def _launch_line(plan: DeployPlan) -> tuple[str | tuple[str, str], ...]:
    """What the deploy brings up: new instances, or (a rollback within the cluster's
    keep_old) the kept old ones started again, in seconds."""
    if plan.reuses:
        return (
            ("  start kept     ", "$text-muted"),
            (", ".join(plan.reuses), "bold $text-success"),
            (" (stopped, kept: no launch)", "$text-muted"),
            "\n",
        )
    if plan.group:
        beside = f" beside {', '.join(plan.replaces_groups)}" if plan.replaces_groups else ""
        return (
            ("  new group      ", "$text-muted"),
            (plan.group, "bold"),
            f": {plan.count} x {plan.instance_type}",
            (f"{beside} (the serving group's size)", "$text-muted"),
            "\n",
        )
    return (
        ("  launch         ", "$text-muted"),
        f"{plan.count} x {plan.instance_type}",
        (" (as many as serve now, at least 1)", "$text-muted"),
        "\n",
    )


def warnings_content(
    cluster: str, running: tuple[str, ...], warnings: list[ReleaseWarning] | None
) -> Content:
    """What runs in the cluster now, and the highlighted release's warnings (None: the recent
    deploys are still being read); badge, colour and words, readable without colour."""
    now = ("running now in ", "$text-muted"), (cluster, "bold"), f": {', '.join(running) or '-'}"
    if warnings is None:
        return Content.assemble(*now, (f"  reading the last {RECENT_DAYS} days…", "$text-muted"))
    if not warnings:
        return Content.assemble(*now, ("  no warning", "$text-success"))
    count = f" {len(warnings)} WARNING{'S' if len(warnings) != 1 else ''} "
    parts: list[str | tuple[str, str]] = [
        (f"{WARNING_MARK}{count}", "bold reverse $text-warning"),
        "  ",
        *now,
    ]
    for warning in warnings:
        parts.extend(["\n", (f"  ! {warning.text}", "$text-warning")])
    return Content.assemble(*parts)


@dataclass(frozen=True)
class DeployPreset:
    """A release the dialog opens on, and why: `rollback_of` a deploy whose replaced release
    it puts back, else a re-run (`why` says of what, in a few words)."""

    release: str  # a version or an AMI id, as a deploy record names it
    why: str
    rollback_of: str | None = None

    def matches(self, release: Release) -> bool:
        return self.release in (release.version, release.image_id)


class TickBox(Checkbox):
    """A checkbox that reads without colour: X ticked, blank not (Checkbox shows X always)."""

    BUTTON_INNER = " "

    def on_checkbox_changed(self) -> None:
        self.BUTTON_INNER = "X" if self.value else " "
        self.refresh()


class DeployDialog(ModalScreen[DeployRequest | None]):
    """Releases of one project (the current one marked), the plan of the highlighted one."""

    CSS_PATH = "../styles/deploy.tcss"
    HELP_NAMESPACE = "deploy dialog"
    BINDINGS = KEYMAP[HELP_NAMESPACE]

    # Moving the cursor through the list reads only the plan the cursor stops on.
    PLAN_DELAY: ClassVar[float] = 0.2

    # The change ticket's field (a cluster with a `ticket` setting): beside the buttons.
    DEFAULT_CSS = """
    DeployDialog #ticket { width: 1fr; }
    DeployDialog #ticket-hint { color: $text-muted; margin-top: 1; }
    DeployDialog #ticket-hint.-problem { color: $text-warning; }
    """

    # Under 40 rows the box takes the whole height and the plan scrolls inside it.
    VERTICAL_BREAKPOINTS = [(0, "-short"), (40, "-tall")]

    def __init__(
        self,
        project: ProjectConfig,
        cluster: ClusterConfig,
        snapshot: FleetSnapshot | None,
        deploys: DeploySupport,
        preset: DeployPreset | None = None,
    ) -> None:
        super().__init__()
        self.project = project
        self.cluster = cluster
        self.deploys = deploys
        self.preset = preset
        """The release to open on (from history: a rollback or a re-run), None: the newest."""
        self.where = running_in(project, snapshot)
        self.releases: tuple[Release, ...] = ()
        self.plan: DeployPlan | None = None
        self.highlighted: Release | None = None
        # The project's deploys of the last days (None: not read yet), and what they say of
        # the highlighted release with its plan (None: not known yet).
        self.recent: list[DeployRecord] | None = None
        self.warnings: list[ReleaseWarning] | None = None

    # -- reading -------------------------------------------------------------------------

    @property
    def release_table(self) -> DataTable[Text]:
        return self.query_one("#releases", DataTable)

    @property
    def confirm_button(self) -> Button:
        return self.query_one("#confirm", Button)

    @property
    def plan_text(self) -> str:
        """What the plan area says, as plain text (for tests)."""
        return self._plain("#plan")

    @property
    def warnings_text(self) -> str:
        """What runs now and the warnings, as plain text (for tests; what NO_COLOR shows)."""
        return self._plain("#warnings")

    def _plain(self, selector: str) -> str:
        visual = self.query_one(selector, Static).visual
        return visual.plain if isinstance(visual, Content) else str(visual)

    @property
    def can_confirm(self) -> bool:
        if self.plan is None or self.highlighted is None:
            return False
        if self.plan.release.image_id != self.highlighted.image_id:
            return False
        if self.warnings is None or (self.warnings and not self.anyway.value):
            return False
        if self.ticket_problem is not None:
            return False
        if self.cluster.protected:
            return self.query_one("#confirm-name", Input).value.strip() == self.cluster.name
        return True

    @property
    def ticket(self) -> str | None:
        """The change ticket typed (None: no field, or left empty)."""
        if self.cluster.ticket is None:
            return None
        return self.query_one("#ticket", Input).value.strip() or None

    @property
    def ticket_problem(self) -> str | None:
        """Why the typed ticket cannot go with the deploy (one line), None when it can."""
        settings = self.cluster.ticket
        return None if settings is None else settings.problem(self.ticket, self.cluster.name)

    @property
    def anyway(self) -> Checkbox:
        return self.query_one("#anyway", Checkbox)

    @property
    def running_now(self) -> tuple[str, ...]:
        """The versions in the cluster: the plan's (read from AWS), else the last snapshot's."""
        if self.plan is not None:
            return self.plan.current_versions
        return tuple(v for v, clusters in self.where.items() if self.cluster.name in clusters)

    # -- building ------------------------------------------------------------------------

    @property
    def is_rollback(self) -> bool:
        """Whether confirming now rolls back: a rollback's release is under the cursor."""
        preset = self.preset
        return bool(
            preset is not None
            and preset.rollback_of
            and self.highlighted is not None
            and preset.matches(self.highlighted)
        )

    def compose(self) -> ComposeResult:
        lock = f" {LOCK}" if self.cluster.protected else ""
        classes = "-protected" if self.cluster.protected else ""
        with Vertical(id="deploy-box", classes=classes) as box:
            verb = "roll back" if self.preset and self.preset.rollback_of else "deploy"
            box.border_title = f"{verb} {self.project.name} → {self.cluster.name}{lock}"
            if self.preset is not None:
                yield Static(Content.styled(self.preset.why, "bold"), id="preset-why")
            yield Static(
                Content.assemble(
                    "Releases, newest first; ",
                    (CURRENT_MARK, "$text-success"),
                    f" runs in {self.cluster.name} now. The plan follows the cursor.",
                ),
                id="releases-hint",
            )
            yield DataTable(id="releases", cursor_type="row", zebra_stripes=True)
            # The plan scrolls on a short terminal (ctrl+up/down, the wheel); the confirmation
            # below it stays in view. Not in the Tab order: one Tab goes from the releases to
            # the name to type.
            with VerticalScroll(id="plan-area", can_focus=False):
                yield Static("reading the releases…", id="plan")
            with VerticalScroll(id="warnings-area", can_focus=False):
                yield Static(id="warnings")
            if self.cluster.ticket is not None:  # its field comes first, as its line
                yield Static(self._ticket_hint(), id="ticket-hint")
            if self.cluster.protected:
                protect_hint = Static(
                    Content.assemble(
                        (f"{self.cluster.name} is protected.", "bold $text-error"),
                        " Type its name to confirm:",
                    ),
                    id="protect-hint",
                )
                if self.cluster.ticket is not None:  # right under the ticket's line
                    protect_hint.styles.margin = (0, 0, 0, 0)
                yield protect_hint
            with Horizontal(id="buttons"):
                yield TickBox(ANYWAY, id="anyway")
                if self.cluster.ticket is not None:
                    yield Input(placeholder="change ticket", id="ticket")
                if self.cluster.protected:
                    yield Input(placeholder=self.cluster.name, id="confirm-name")
                yield Button(
                    self._confirm_label(),
                    id="confirm",
                    variant="error" if self.cluster.protected else "success",
                    disabled=True,
                )
                yield Button("Cancel", id="cancel")

    def action_scroll_plan(self, lines: int) -> None:
        """The plan (and its warnings) on a short terminal, without leaving the releases."""
        self.query_one("#plan-area", VerticalScroll).scroll_relative(y=lines, animate=False)

    def on_mount(self) -> None:
        table = self.release_table
        table.add_column(" ", key="mark", width=1)
        table.add_column("version", key="version")
        table.add_column("AMI", key="image")
        table.add_column("created (UTC)", key="created")
        table.add_column("runs in", key="clusters")
        table.focus()
        self._show_warnings()
        self._read_releases()
        self._read_recent()

    @work(exclusive=True, group="recent", exit_on_error=False)
    async def _read_recent(self) -> None:
        try:
            self.recent = await self.deploys.recent_deploys(self.project.name)
        except Exception as error:
            self.recent = []
            self.notify(
                f"Recent deploys unreadable, so not checked: {error_text(error)}",
                title="Release warnings",
                severity="warning",
            )
        self._show_warnings()

    @work(exclusive=True, group="releases", exit_on_error=False)
    async def _read_releases(self) -> None:
        try:
            releases = await self.deploys.releases(self.project.name, self.cluster.name)
        except Exception as error:
            self.post_message(ReleasesLoaded(error=error_text(error)))
        else:
            self.post_message(ReleasesLoaded(tuple(releases)))

    def on_releases_loaded(self, message: ReleasesLoaded) -> None:
        plan = self.query_one("#plan", Static)
        if message.error is not None:
            plan.update(
                Content.assemble(("Releases unavailable: ", "bold $text-error"), message.error)
            )
            return
        self.releases = message.releases
        if not self.releases:
            plan.update(
                Content(f"No release of {self.project.name} found (no image tagged for it).")
            )
            return
        table = self.release_table
        current = self.where
        for release in self.releases:
            clusters = current.get(release.version) or list(release.clusters)
            here = self.cluster.name in clusters
            table.add_row(
                Text(CURRENT_MARK if here else ""),
                Text(release.version, style="bold" if here else ""),
                Text(release.image_id),
                Text(format_launched(release.created_at)),
                Text(", ".join(clusters) or "-"),
                key=release.image_id,
            )
        self._move_to_preset()

    def _move_to_preset(self) -> None:
        """Put the cursor on the preset release; say so when it is no longer a release."""
        preset = self.preset
        if preset is None:
            return
        row = next((n for n, r in enumerate(self.releases) if preset.matches(r)), None)
        if row is not None:
            self.release_table.move_cursor(row=row)
            return
        missing = f"{preset.release} is no longer a release of {self.project.name} (no image)"
        self.query_one("#preset-why", Static).update(
            Content.assemble((preset.why, "bold"), "\n", (f"✖ {missing}", "bold $text-error"))
        )
        self.notify(f"{missing}: pick another or cancel.", title="Release", severity="warning")

    # -- the plan follows the cursor ---------------------------------------------------

    @on(DataTable.RowHighlighted, "#releases")
    def _release_highlighted(self, event: DataTable.RowHighlighted) -> None:
        # The row the cursor is on now: a late event of the first row (the cursor moved on to
        # a preset release already) changes nothing.
        row = self.release_table.cursor_row
        release = self.releases[row] if 0 <= row < len(self.releases) else None
        if release is None or release == self.highlighted:
            return
        self.highlighted = release
        self.plan = None
        self.anyway.value = False  # a confirmation holds for the warnings it was given for
        self.query_one("#plan", Static).update(
            Content.assemble(("Reading the plan of ", "$text-muted"), release.version, "…")
        )
        self._update_confirm()
        self._read_plan(release)

    @work(exclusive=True, group="plan", exit_on_error=False)
    async def _read_plan(self, release: Release) -> None:
        await asyncio.sleep(self.PLAN_DELAY)
        request = self._request(release)
        try:
            plan = await self.deploys.plan(request)
        except Exception as error:
            self.post_message(PlanLoaded(release.image_id, error=error_text(error)))
        else:
            self.post_message(PlanLoaded(release.image_id, plan))

    def on_plan_loaded(self, message: PlanLoaded) -> None:
        if self.highlighted is None or message.release != self.highlighted.image_id:
            return  # the cursor moved on
        plan_area = self.query_one("#plan", Static)
        if message.plan is None:
            plan_area.update(
                Content.assemble(("No plan: ", "bold $text-error"), message.error or "?")
            )
        else:
            self.plan = message.plan
            plan_area.update(plan_content(message.plan))
        self._show_warnings()

    def _show_warnings(self) -> None:
        """The highlighted release's warnings, once its plan and the recent deploys are in."""
        plan, release = self.plan, self.highlighted
        if plan is None or release is None or self.recent is None:
            self.warnings = None
        else:
            self.warnings = release_warnings(
                release,
                self.cluster.name,
                plan.current_versions,
                self.releases,
                self.recent,
                self.app_clock(),
            )
        self.query_one("#warnings", Static).update(
            warnings_content(self.cluster.name, self.running_now, self.warnings)
        )
        self.query_one("#deploy-box").set_class(bool(self.warnings), "-warned")
        self.anyway.display = bool(self.warnings)
        self._update_confirm()

    def app_clock(self) -> datetime:
        clock = getattr(self.app, "clock", None)
        return clock() if callable(clock) else datetime.now(UTC)

    # -- confirming ----------------------------------------------------------------------

    @on(Input.Changed, "#confirm-name")
    @on(Checkbox.Changed, "#anyway")
    def _name_typed(self) -> None:
        self._update_confirm()

    @on(Input.Changed, "#ticket")
    def _ticket_typed(self) -> None:
        hint = self.query_one("#ticket-hint", Static)
        hint.update(self._ticket_hint())
        hint.set_class(bool(self.ticket) and self.ticket_problem is not None, "-problem")
        self._update_confirm()

    def _ticket_hint(self) -> str:
        """One line over the field: what the cluster asks for, or what is wrong with it."""
        settings = self.cluster.ticket
        problem = self.ticket_problem if self.is_mounted else None
        if settings is None:
            return ""
        if problem is not None and self.ticket:
            return f"✖ {problem}"
        form = f" like {settings.pattern}" if settings.pattern else ""
        need = "needed" if settings.required else "optional"
        return f"Change ticket ({need}){form}:"

    @on(Input.Submitted, "#confirm-name")
    @on(Input.Submitted, "#ticket")
    def _name_submitted(self) -> None:
        self.action_confirm()

    def _update_confirm(self) -> None:
        button = self.confirm_button
        button.disabled = not self.can_confirm
        button.label = self._confirm_label()

    def _confirm_label(self) -> str:
        return "Roll back" if self.is_rollback else "Deploy"

    def _request(self, release: Release) -> DeployRequest:
        # A rollback only while its release is the one chosen: another is a plain deploy.
        preset = self.preset
        rollback_of = preset.rollback_of if preset is not None and preset.matches(release) else None
        return DeployRequest(
            self.project.name,
            self.cluster.name,
            release.version,
            self.deploys.actor,
            rollback_of=rollback_of,
            ticket=self.ticket,
        )

    @on(Button.Pressed, "#confirm")
    def action_confirm(self) -> None:
        if not self.can_confirm or self.highlighted is None:
            if self.warnings and not self.anyway.value:
                self.notify(
                    f'{self.highlighted and self.highlighted.version} has warnings: tick "{ANYWAY}"'
                    " (ctrl+y) to deploy it.",
                    title="Not confirmed",
                    severity="warning",
                )
            return
        self.dismiss(self._request(self.highlighted))

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_anyway(self) -> None:
        """ctrl+y ticks (or unticks) "deploy anyway", from wherever the focus is."""
        self.anyway.value = not self.anyway.value

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "anyway":
            return bool(self.warnings)  # shown only for a release with warnings
        return True
