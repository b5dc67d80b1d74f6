"""One project in one cluster: health, instances with their load balancer health, LB settings."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content
from textual.events import Resize
from textual.reactive import reactive
from textual.widgets import DataTable, Static

from console.config import ClusterConfig
from console.model import (
    ClusterStatus,
    DnsRecord,
    EnvStatus,
    Health,
    Instance,
    LoadBalancerKind,
    LoadBalancerSettings,
)
from screens.widgets.format import (
    HEALTH_GLYPHS,
    HEALTH_STYLES,
    LOCK,
    age_between,
    format_launched,
    format_seconds,
    health_word,
)
from screens.widgets.tables import TABLE_NAVIGATION, cell_style

if TYPE_CHECKING:
    from console.drift.review import Reviewed

# (key, label, minimum width); each column is as wide as its longest value, and the load
# balancer column takes the rest of the line.
COLUMNS = (
    ("instance", "instance / AMI", 21),
    ("state", "state", 7),
    ("version", "version", 7),
    ("launched", "launched (UTC)", 16),
    ("address", "address", 9),
)
LB_COLUMN = "load_balancers"
MIN_LB_WIDTH = 30
CELL_PADDING = 1

# What a settings slot holds: None while loading, the settings, or an error for a person.
SettingsState = tuple[LoadBalancerSettings, ...] | str | None


class InstanceTable(DataTable[Text], inherit_bindings=False):
    """Instances of one project in one cluster; rows are keyed by instance id."""

    BINDINGS = TABLE_NAVIGATION

    COMPONENT_CLASSES = {
        "instance-table--serving",
        "instance-table--failing",
        "instance-table--muted",
        "instance-table--running",
        "instance-table--not-running",
    }

    DEFAULT_CSS = """
    InstanceTable {
        height: auto;
    }
    InstanceTable > .instance-table--serving { color: $text-success; }
    InstanceTable > .instance-table--failing { color: $text-error; }
    InstanceTable > .instance-table--muted { color: $text-muted; }
    InstanceTable > .instance-table--running { color: $text-success; }
    InstanceTable > .instance-table--not-running { color: $text-warning; text-style: bold; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(
            id=id,
            classes=classes,
            cursor_type="row",
            zebra_stripes=False,
            cell_padding=CELL_PADDING,
        )
        # Only the table a person is in shows its cursor (see on_focus / on_blur).
        self.show_cursor = False
        self.available_width = 0
        self._styles: dict[str, Style] = {}
        self._instances: tuple[Instance, ...] = ()
        self._layout: tuple[object, ...] = ()

    def _style(self, component: str) -> Style:
        # Cached here: every update_cell() clears the widget's own style cache.
        style = self._styles.get(component)
        if style is None:
            style = self._styles[component] = cell_style(self, component)
        return style

    def on_mount(self) -> None:
        self.app.theme_changed_signal.subscribe(self, self._on_theme_changed)

    def _on_theme_changed(self, _theme: object) -> None:
        # Cell styles are resolved from the theme when a cell is made: remake them.
        self.call_after_refresh(self._restyle)

    def _restyle(self) -> None:
        self._styles.clear()
        self._layout = ()
        self.show(self._instances)

    def on_focus(self) -> None:
        self.show_cursor = True

    def on_blur(self) -> None:
        self.show_cursor = False

    def _widths(self, instances: tuple[Instance, ...]) -> dict[str, int]:
        values = {
            "instance": [len(i.id) for i in instances] + [len(i.image_id) for i in instances],
            "state": [len(i.state) for i in instances],
            "version": [len(i.version) for i in instances],
            "launched": [16],
            "address": [len(i.private_address) for i in instances],
        }
        widths = {key: max([minimum, *values[key]]) for key, _, minimum in COLUMNS}
        used = sum(widths.values()) + 2 * CELL_PADDING * (len(COLUMNS) + 1)
        widths[LB_COLUMN] = max(MIN_LB_WIDTH, self.available_width - used)
        return widths

    def set_available_width(self, width: int) -> None:
        """The width the table may use; the load balancer column fills what is left."""
        if width != self.available_width:
            self.available_width = width
            self.show(self._instances)

    def show(self, instances: tuple[Instance, ...]) -> None:
        """Show these instances; cells change in place while the same instances remain."""
        self._instances = instances
        if not self.available_width:
            return
        widths = self._widths(instances)
        layout = (
            tuple(widths.items()),
            tuple((i.id, len(i.targets)) for i in instances),
        )
        if layout != self._layout:
            # Other instances or other widths: remake the (small) table.
            self._layout = layout
            self.clear(columns=True)
            for key, label, _ in COLUMNS:
                self.add_column(label, width=widths[key], key=key)
            self.add_column("load balancers", width=widths[LB_COLUMN], key=LB_COLUMN)
            self._add_rows(instances)
            return
        for instance in instances:
            for key, value in zip(self._column_keys(), self._cells(instance), strict=True):
                if self.get_cell(instance.id, key) != value:
                    self.update_cell(instance.id, key, value, update_width=False)

    def _column_keys(self) -> list[str]:
        return [key for key, _, _ in COLUMNS] + [LB_COLUMN]

    def _add_rows(self, instances: tuple[Instance, ...]) -> None:
        for instance in instances:
            self.add_row(
                *self._cells(instance), key=instance.id, height=max(2, len(instance.targets))
            )

    def _cells(self, instance: Instance) -> list[Text]:
        muted = self._style("instance-table--muted")
        ident = Text(instance.id, no_wrap=True, overflow="ellipsis")
        ident.append("\n" + (instance.image_id or "no AMI"), style=muted)
        state_style = self._style(
            "instance-table--running"
            if instance.state == "running"
            else "instance-table--not-running"
        )
        cells = [
            ident,
            Text(instance.state, style=state_style, no_wrap=True, overflow="ellipsis"),
            Text(instance.version, no_wrap=True, overflow="ellipsis"),
            Text(format_launched(instance.launched_at), no_wrap=True),
            Text(instance.private_address or "-", no_wrap=True),
        ]
        balancers = Text(no_wrap=True, overflow="ellipsis")
        if not instance.targets:
            balancers.append("no load balancer", style=muted)
        for index, target in enumerate(instance.targets):
            if index:
                balancers.append("\n")
            style = self._style(
                "instance-table--serving" if target.serving else "instance-table--failing"
            )
            balancers.append(f"{target.load_balancer}: ")
            balancers.append(target.state, style=style)
            if target.reason:
                balancers.append(f" ({target.reason})", style=muted)
        cells.append(balancers)
        return cells


def seconds(value: int | None) -> str:
    return "?" if value is None else f"{value}s"


def settings_lines(settings: LoadBalancerSettings) -> Content:
    """Two lines a person can read: what is checked, and how long health takes to change."""
    kind = "classic ELB" if settings.kind is LoadBalancerKind.CLASSIC else "target group"
    if not settings.exists:
        return Content.assemble(
            (settings.name, "bold"),
            f" ({kind})  ",
            ("not found in AWS", "$text-error"),
        )
    draining = (
        "connection draining"
        if settings.kind is LoadBalancerKind.CLASSIC
        else "deregistration delay"
    )
    delay = settings.deregistration_delay_seconds
    draining_text = "off" if delay == 0 else seconds(delay)
    return Content.assemble(
        (settings.name, "bold"),
        f" ({kind})  health check ",
        (settings.target or "?", "$text-accent"),
        f" every {seconds(settings.interval_seconds)},"
        f" timeout {seconds(settings.timeout_seconds)}\n",
        f"    healthy after {settings.healthy_threshold} checks,"
        f" unhealthy after {settings.unhealthy_threshold} · {draining} {draining_text}"
        f" · time to healthy {format_seconds(settings.time_to_healthy_seconds)}",
    )


def drift_line(item: Reviewed) -> Content:
    """(drift) `! drift unmanaged d-…: what — to do: …`; a baselined or acknowledged one dim,
    with who knew it and why."""
    finding = item.finding
    head = f"! drift {finding.kind} {finding.id}: "
    if item.counts:
        return Content.assemble(
            (head, "bold $text-warning"), (finding.what, "$text-warning"),
            (f" — to do: {finding.todo}", "$text-muted"),
        )  # fmt: skip
    known = item.known
    why = f": {known.reason}" if known and known.reason else ""
    who = f" by {known.known_by}" if known and known.known_by else ""
    return Content.styled(f"{head}{finding.what} ({item.state}{who}{why})", "$text-muted")


class ClusterPanel(Vertical):
    """A bordered block for one cluster on the project screen."""

    DEFAULT_CSS = """
    ClusterPanel {
        height: auto;
        border: round $primary-muted;
        border-title-color: $text-primary;
        border-title-style: bold;
        padding: 0 1;
        margin: 0 0 1 0;
    }
    ClusterPanel .panel-summary, ClusterPanel .panel-problem, ClusterPanel .panel-notes,
    ClusterPanel .panel-empty, ClusterPanel .panel-lbs, ClusterPanel .panel-dns {
        height: auto;
    }
    ClusterPanel .panel-dns.-none {
        display: none;
    }
    ClusterPanel .panel-problem, ClusterPanel .panel-notes, ClusterPanel .panel-empty {
        display: none;
    }
    ClusterPanel .panel-problem.-shown, ClusterPanel .panel-notes.-shown,
    ClusterPanel .panel-empty.-shown {
        display: block;
    }
    ClusterPanel InstanceTable.-empty {
        display: none;
    }
    ClusterPanel .panel-lbs {
        margin-top: 1;
    }
    """

    env: reactive[EnvStatus | None] = reactive(None, always_update=True, init=False)
    status: reactive[ClusterStatus | None] = reactive(None, always_update=True, init=False)
    settings: reactive[SettingsState] = reactive(None, always_update=True, init=False)
    findings: reactive[tuple[Reviewed, ...]] = reactive((), init=False)
    """(drift) The pair's drift findings: one line each under its problems."""

    def __init__(
        self,
        cluster: ClusterConfig,
        clock: Callable[[], datetime],
        *,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(id=id, classes=classes)
        self.cluster = cluster
        self.clock = clock
        self._ready = False  # is_mounted is still False inside on_mount
        title = f"{cluster.name} {LOCK} protected" if cluster.protected else cluster.name
        self.border_title = title
        if cluster.protected:
            self.add_class("-protected")

    @property
    def table(self) -> InstanceTable:
        return self.query_one(InstanceTable)

    def compose(self) -> ComposeResult:
        yield Static(classes="panel-summary")
        yield Static(classes="panel-problem")
        yield Static("no instances", classes="panel-empty")
        yield InstanceTable(classes="-empty")
        yield Static(classes="panel-notes")
        yield Static(classes="panel-dns -none")
        yield Static(Content.styled("load balancers: loading…", "$text-muted"), classes="panel-lbs")

    def on_mount(self) -> None:
        self._ready = True
        self._show_env()
        self._show_settings()

    def on_resize(self, event: Resize) -> None:
        self.table.set_available_width(self.content_size.width)

    def watch_env(self) -> None:
        self._show_env()

    def watch_status(self) -> None:
        self._show_env()

    def watch_settings(self) -> None:
        self._show_settings()

    def watch_findings(self) -> None:
        self._show_env()

    def _static(self, name: str) -> Static:
        return self.query_one(f".{name}", Static)

    def _show_env(self) -> None:
        if not self._ready:
            return
        env, status, now = self.env, self.status, self.clock()
        summary = self._static("panel-summary")
        problem = self._static("panel-problem")
        if env is None:
            summary.update(Content.styled("reading the fleet…", "$text-muted"))
        else:
            summary.update(self._summary(env))
        problems: list[Content] = []
        if status is not None and status.error:
            age = age_between(now, status.fetched_at)
            problems.append(
                Content.assemble(
                    ("✖ cluster unreachable: ", "bold $text-error"),
                    (status.error, "$text-error"),
                    (
                        f"  (showing data from {age} ago)" if age else "  (no data yet)",
                        "$text-muted",
                    ),
                )
            )
        elif env is not None and env.error:
            problems.append(Content.assemble(("⚠ ", "$text-warning"), (env.error, "$text-warning")))
        problems.extend(drift_line(item) for item in self.findings)
        problem.update(Content("\n").join(problems))
        problem.set_class(bool(problems), "-shown")
        instances = env.instances if env is not None else ()
        self.table.show(instances)
        self.table.set_class(not instances, "-empty")
        empty = self._static("panel-empty")
        empty.set_class(env is not None and not instances, "-shown")
        if env is not None and env.health is Health.UNKNOWN and not instances:
            empty.update(Content.styled("instances unknown: no data read yet", "$text-muted"))
        else:
            empty.update(Content.styled("no instances", "$text-muted"))
        notes = self._static("panel-notes")
        note_lines = [line for instance in instances if (line := self._note(instance))]
        notes.update(Content("\n").join(note_lines))
        notes.set_class(bool(note_lines), "-shown")
        dns = self._static("panel-dns")  # (dns) the pair's Route 53 record
        record = env.dns if env is not None else None
        dns.set_class(record is None, "-none")
        if record is not None:
            dns.update(dns_line(record))

    def _summary(self, env: EnvStatus) -> Content:
        parts: list[str | tuple[str, str]] = [
            (f"{HEALTH_GLYPHS[env.health]} {health_word(env.health)}", HEALTH_STYLES[env.health])
        ]
        if env.instances:
            parts.append(f" · {env.serving_count}/{env.total_count} serving")
        if env.versions:
            label = "version" if len(env.versions) == 1 else "versions"
            parts.append(f" · {label} ")
            parts.append((", ".join(env.versions), "bold"))
        balancers = ", ".join(env.load_balancers) if env.load_balancers else "none"
        parts.append((f" · load balancers: {balancers}", "$text-muted"))
        return Content.assemble(*parts)

    def _note(self, instance: Instance) -> Content | None:
        """The full reason an instance is not serving (the table cuts long reasons)."""
        failing = [target for target in instance.targets if not target.serving]
        if not failing and instance.state == "running":
            return None
        parts: list[str | tuple[str, str]] = [
            ("✖ " if instance.state == "running" else "◌ ", "$text-error"),
            (instance.id, "bold"),
        ]
        if instance.state != "running":
            parts.append((f" is {instance.state}", "$text-warning"))
        else:
            parts.append((" not serving", "$text-error"))
        for target in failing:
            parts.append(f" · {target.load_balancer}: ")
            parts.append((target.state, "$text-error"))
            if target.reason:
                parts.append((f" — {target.reason}", "$text-muted"))
        return Content.assemble(*parts)

    def _show_settings(self) -> None:
        if not self._ready:
            return
        target = self._static("panel-lbs")
        settings = self.settings
        if settings is None:
            target.update(Content.styled("load balancer settings: loading…", "$text-muted"))
        elif isinstance(settings, str):
            target.update(
                Content.assemble(
                    ("✖ could not read load balancer settings: ", "bold $text-error"),
                    (settings, "$text-error"),
                )
            )
        elif not settings:
            target.update(Content.styled("no load balancer in this cluster", "$text-muted"))
        else:
            target.update(Content("\n").join(settings_lines(item) for item in settings))


def dns_line(record: DnsRecord) -> Content:
    """(dns) `DNS www.prod1.example.internal CNAME lb-1.….elb.amazonaws.com · TTL 60 · its
    load balancer`, or what is wrong with it, in red."""
    bad = bool(record.finding)
    parts: list[str | tuple[str, str]] = []
    if bad:
        parts.append(("✖ ", "bold $text-error"))
    parts.extend([("DNS ", "$text-muted"), (record.name, "bold")])
    if record.error:
        parts.append((f" could not be read: {record.error}", "$text-warning"))
        return Content.assemble(*parts)
    if record.type is not None:
        kind = f"{record.type} alias" if record.alias else record.type
        parts.append(f" {kind} {', '.join(record.values)}")
        if record.ttl is not None:
            parts.append((f" · TTL {record.ttl}", "$text-muted"))
    if bad:
        parts.append((f" · {record.finding}", "bold $text-error"))
    elif record.points_to_pair:
        own = "instances" if record.type in ("A", "AAAA") and not record.alias else "load balancer"
        parts.append((f" · its {own}", "$text-success"))
    return Content.assemble(*parts)
