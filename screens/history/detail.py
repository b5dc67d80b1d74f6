"""One recorded deploy: what it was, its steps with their seconds, and its log (its audit rows
and the output lines the store kept, in time order)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import Grid, Vertical
from textual.content import Content
from textual.message import Message
from textual.timer import Timer
from textual.widgets import DataTable, Footer, RichLog, Static

from console.identity import describe
from console.model import DeployState, StepState
from console.queue.schedule import override_note
from console.stacks.labels import entry_label
from console.store import AuditRow, DeployRecord, LogLine, StepRecord, Store
from console.store.outbox import Delivery
from screens.deploy.screen import log_palette
from screens.history.redeploy import LOG, RERUN, ROLLBACK, RedeployKeys
from screens.keys import KEYMAP
from screens.messages import ReadFailed, error_text
from screens.widgets.format import LOCK, format_age
from screens.widgets.step_list import STEP_GLYPHS
from screens.widgets.tables import cell_style

UNFINISHED: tuple[str, ...] = (DeployState.QUEUED, DeployState.RUNNING)
STEP_STATES = {state.value: state for state in StepState}
REFRESH_SECONDS = 3.0
# Content styles per deploy state (theme variables).
STATE_STYLES: dict[str, str] = {
    DeployState.SUCCEEDED: "$text-success",
    DeployState.FAILED: "bold $text-error",
    DeployState.INTERRUPTED: "bold $text-error",
    DeployState.ROLLED_BACK: "$text-warning",
    DeployState.CANCELLED: "$text-warning",
    DeployState.RUNNING: "bold $text-accent",
    DeployState.QUEUED: "$text-muted",
}


def state_word(state: str) -> str:
    return DeployState(state).words


def release_text(record: DeployRecord) -> str:
    if record.kind == "stack":
        return entry_label(record.kind, record.release)
    return f"{record.previous_release or '?'} → {record.release}"


def utc(moment: datetime | None, spec: str = "%Y-%m-%d %H:%M:%S") -> str:
    return "-" if moment is None else moment.astimezone(UTC).strftime(spec)


def total_seconds(record: DeployRecord, now: datetime) -> float | None:
    """From start (or creation) to the end, or to now while it runs; None while queued."""
    start = record.started_at or record.created_at
    if record.finished_at is not None:
        return max(0.0, (record.finished_at - start).total_seconds())
    if record.state == DeployState.RUNNING:
        return max(0.0, (now - start).total_seconds())
    return None


def took(record: DeployRecord, now: datetime) -> str:
    """`8.4s`, `2m 05s`; a running deploy's time so far in whole seconds; queued is `-`."""
    seconds = total_seconds(record, now)
    if seconds is None:
        return "-"
    if record.finished_at is None:
        return format_age(seconds)
    return f"{seconds:.1f}s" if seconds < 60 else format_age(seconds)


@dataclass
class DeployDetailRead(Message):
    """The deploy, its steps, audit rows and output lines were read (record None: unknown)."""

    record: DeployRecord | None
    steps: list[StepRecord]
    audit: list[AuditRow]
    output: list[LogLine]
    notices: list[Delivery] = field(default_factory=list)


class DeployDetailReadFailed(ReadFailed):
    """A read of the deploy's records raised; what was shown stays."""


def log_lines(
    audit: Sequence[AuditRow],
    output: Sequence[LogLine],
    palette: dict[str, str],
    actor: str = "",
) -> list[Text]:
    """Audit rows and output lines in time order (audit first at the same moment); an audit
    row by someone else than the deploy's `actor` says who. Text, never markup: reasons and
    output may hold brackets."""
    entries: list[tuple[datetime, int, Text]] = []
    for row in audit:
        what = " ".join(part for part in (row.action, row.step, row.outcome) if part)
        colour = palette["failed"] if row.outcome in ("failed", "interrupted") else ""
        line = Text.assemble(
            (f"{utc(row.at, '%H:%M:%S')} ", palette["console"]),
            (what, f"bold {colour}".strip()),
        )
        if row.actor != actor:
            line.append(f" by {row.actor}", style=palette["console"])
        if row.reason:
            line.append(f": {row.reason}")
        unsaid = [instance for instance in row.instance_ids if instance not in row.reason]
        if unsaid:
            line.append(f" [{', '.join(unsaid)}]", style=palette["console"])
        entries.append((row.at, 0, line))
    for output_line in output:
        source = palette["console"] if output_line.source == "console" else palette["source"]
        line = Text.assemble(
            (f"{utc(output_line.at, '%H:%M:%S')} ", palette["console"]),
            (f"{output_line.source} │ ", source),
            (output_line.line, palette["stderr"] if output_line.stream == "stderr" else ""),
        )
        entries.append((output_line.at, 1, line))
    entries.sort(key=lambda entry: (entry[0], entry[1]))
    return [line for _, _, line in entries]


def notices_text(deliveries: Sequence[Delivery]) -> Content:
    """The notifications of a deploy: how many were delivered, and each one not delivered
    (failed for good, or pending its next retry) with its channel and last error."""
    delivered = sum(1 for delivery in deliveries if delivery.state == "delivered")
    parts: list[Content] = [Content(f"{delivered} delivered")] if delivered else []
    for delivery in deliveries:
        if delivery.state == "delivered":
            continue
        failed = delivery.state == "failed"
        what = f"{delivery.event.event} to {delivery.channel}"
        when = "gave up" if failed else f"retry {utc(delivery.next_at, '%H:%M:%S')}"
        error = " ".join(delivery.last_error.split()) or "not sent yet"
        parts.append(
            Content.assemble(
                ("✖ failed " if failed else "… pending ", "bold $text-error" if failed else ""),
                f"{what}: {error} ({delivery.attempts} attempts, {when})",
            )
        )
    return Content(" · ").join(parts)


class StepTable(DataTable[Text]):
    """A recorded deploy's steps: one row a step run, its outcome in the theme's colours."""

    COMPONENT_CLASSES = {
        "step-table--succeeded",
        "step-table--failed",
        "step-table--running",
        "step-table--skipped",
    }

    DEFAULT_CSS = """
    StepTable > .step-table--succeeded { color: $text-success; }
    StepTable > .step-table--failed { color: $text-error; text-style: bold; }
    StepTable > .step-table--running { color: $text-accent; text-style: bold; }
    StepTable > .step-table--skipped { color: $text-muted; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="none", zebra_stripes=True)

    def outcome(self, state: str) -> Text:
        """`✔ succeeded`, glyph and word in the state's colour."""
        glyph = STEP_GLYPHS.get(STEP_STATES.get(state), "·")
        component = f"step-table--{state}"
        style = cell_style(self, component) if component in self.COMPONENT_CLASSES else ""
        return Text(f"{glyph} {state}", style=style)


class DeployDetailScreen(RedeployKeys):
    """Read once, and again every REFRESH_SECONDS while the deploy has not ended; b rolls it
    back, R runs it again, o opens its log on the whole screen."""

    CSS_PATH = "../styles/history.tcss"
    HELP_NAMESPACE = "deploy detail"
    BINDINGS = KEYMAP[HELP_NAMESPACE]

    def __init__(
        self,
        store: Store,
        deploy_id: str,
        clock: Callable[[], datetime],
        protected: bool = False,
    ) -> None:
        super().__init__()
        self.store = store
        self.deploy_id = deploy_id
        self.clock = clock
        self.protected = protected
        self.record: DeployRecord | None = None
        self.steps: list[StepRecord] = []
        self.read_count = 0
        """Reads handled (good or failed): tests wait on it."""
        self._log_lines: list[Text] = []
        self._refresh_timer: Timer | None = None
        self.notices: list[Delivery] = []

    @property
    def redeploy_record(self) -> DeployRecord | None:
        return self.record

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in (ROLLBACK, RERUN, LOG):
            return self.redeploy_check(action)
        return True

    @property
    def steps_table(self) -> StepTable:
        return self.query_one("#detail-steps", StepTable)

    @property
    def log_widget(self) -> RichLog:
        return self.query_one("#detail-log", RichLog)

    def compose(self) -> ComposeResult:
        yield Static(id="detail-title")
        with Vertical(id="detail-body"):
            yield Grid(id="detail-header")
            steps = StepTable(id="detail-steps")
            steps.border_title = "steps"
            yield steps
            log = RichLog(
                id="detail-log",
                markup=False,
                highlight=False,
                wrap=True,
                min_width=20,
                auto_scroll=False,
            )
            log.border_title = "log"
            yield log
        yield Footer()

    def on_mount(self) -> None:
        table = self.steps_table
        for key, label in (
            ("step", "step"),
            ("state", "outcome"),
            ("seconds", "seconds"),
            ("started", "started UTC"),
            ("detail", "detail"),
        ):
            table.add_column(label, key=key)
        self.query_one("#detail-title", Static).update(
            Content.styled(f"deploy {self.deploy_id}: reading the store…", "$text-muted")
        )
        self.log_widget.focus()
        self._read()

    @work(exclusive=True, group="detail-read", exit_on_error=False)
    async def _read(self) -> None:
        try:
            record = await self.store.deploy(self.deploy_id)
            steps = await self.store.steps(self.deploy_id)
            audit = await self.store.audit_rows(deploy_id=self.deploy_id)
            output = await self.store.deploy_log(self.deploy_id)
            notices = await self.store.outbox.for_deploy(self.deploy_id)
        except Exception as error:
            self.post_message(DeployDetailReadFailed(error_text(error)))
        else:
            self.post_message(DeployDetailRead(record, steps, audit, output, notices))

    def on_deploy_detail_read(self, message: DeployDetailRead) -> None:
        self.read_count += 1
        self.record = message.record
        self.steps = message.steps
        self.refresh_bindings()  # what b, R and o may do follows the record
        if message.record is None:
            self.query_one("#detail-title", Static).update(
                Content.styled(f"deploy {self.deploy_id} is not in the store", "$text-error")
            )
            return
        now = self.clock()
        self.query_one("#detail-title", Static).update(self._title(message.record))
        self.notices = message.notices
        self._show_header(message.record, now)
        self._show_steps(message.steps, now)
        self._show_log(message.record.actor, message.audit, message.output)
        if message.record.state in UNFINISHED:
            self._refresh_timer = self.set_timer(REFRESH_SECONDS, self._read, name="detail")

    def on_deploy_detail_read_failed(self, message: DeployDetailReadFailed) -> None:
        self.read_count += 1
        self.query_one("#detail-title", Static).update(
            Content.assemble(("✖ cannot read the store: ", "bold $text-error"), message.error)
        )

    def _title(self, record: DeployRecord) -> Content:
        cluster = f"{record.cluster} {LOCK}" if self.protected else record.cluster
        return Content.assemble(
            ("deploy ", "bold"),
            (record.id, "bold"),
            "  ",
            (record.project, "bold $text-primary"),
            " → ",
            (cluster, "bold $text-error" if self.protected else "bold"),
        )

    def _header(self, record: DeployRecord, now: datetime) -> list[tuple[str, str | Content]]:
        """(label, value) lines: a value wraps under itself, not under its label."""
        seconds = total_seconds(record, now)
        if seconds is None:
            total = ""
        elif record.finished_at is None:
            total = f" for {seconds:.1f}s so far"
        else:
            total = f" in {seconds:.1f}s"
        rows: list[tuple[str, str | Content]] = [
            (
                "release",
                f"{record.release} · previous {record.previous_release or 'unknown'} · "
                f"image {record.image_id or 'not resolved'}",
            ),
            ("actor", describe(record.actor)),
            (
                "outcome",
                Content.assemble(
                    (state_word(record.state), STATE_STYLES.get(record.state, "")), total
                ),
            ),
            ("reason", " ".join(record.reason.split()) or "-"),
            (
                "times",
                f"created {utc(record.created_at)} · started {utc(record.started_at)} · "
                f"finished {utc(record.finished_at)} (UTC)",
            ),
        ]
        if record.rollback_of:
            rows.append(("rollback", f"of {record.rollback_of}"))
        if record.ticket:
            rows.append(("ticket", record.ticket))
        if record.not_before:
            rows.append(("schedule", f"not before {utc(record.not_before)} UTC"))
        if record.window_override:
            rows.append(("window", override_note(record)))
        if self.notices:
            rows.append(("notified", notices_text(self.notices)))
        return rows

    def _show_header(self, record: DeployRecord, now: datetime) -> None:
        grid = self.query_one("#detail-header", Grid)
        statics = list(grid.query(Static))
        rows = self._header(record, now)
        if len(statics) != 2 * len(rows):
            grid.remove_children()
            statics = [Static(classes="-label" if n % 2 == 0 else "") for n in range(2 * len(rows))]
            grid.mount_all(statics)
        for (label, value), label_static, value_static in zip(
            rows, statics[::2], statics[1::2], strict=True
        ):
            label_static.update(label)
            # Content, never markup: a reason may hold square brackets.
            value_static.update(value if isinstance(value, Content) else Content(value))

    def _show_steps(self, steps: list[StepRecord], now: datetime) -> None:
        table = self.steps_table
        table.clear()
        for step in steps:
            state = STEP_STATES.get(step.state)
            if step.seconds is not None:
                seconds = f"{step.seconds:.1f}s"
            elif state is StepState.RUNNING:
                seconds = f"{format_age((now - step.started_at).total_seconds())}…"
            else:
                seconds = ""
            table.add_row(
                Text(step.step),
                table.outcome(step.state),
                Text(seconds.rjust(7)),
                Text(utc(step.started_at, "%H:%M:%S")),
                Text(" ".join(step.detail.split())),
            )
        if not steps:
            table.add_row(Text("no step recorded"), Text(""), Text(""), Text(""), Text(""))

    def _show_log(self, actor: str, audit: list[AuditRow], output: list[LogLine]) -> None:
        lines = log_lines(audit, output, log_palette(self.app.get_css_variables()), actor)
        if not lines:
            lines = [Text("no audit row for this deploy", style="italic")]
        log = self.log_widget
        shown = self._log_lines
        # Usually rows are only appended: write the new ones and leave the reader's scroll be.
        if lines[: len(shown)] != shown:
            log.clear()
            shown = []
        for line in lines[len(shown) :]:
            log.write(line, expand=True)
        self._log_lines = lines
        # A finished deploy reads from its start; a running one is followed at its end.
        if self.record is not None and self.record.state in UNFINISHED:
            log.call_after_refresh(log.scroll_end, animate=False)

    def action_back(self) -> None:
        self.dismiss()

    def action_refresh(self) -> None:
        self._read()
