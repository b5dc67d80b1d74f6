"""A deploy's full log on the whole screen: its audit rows and the output it printed, in time
order, from the store, opened at the end and followed while the deploy runs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.content import Content
from textual.message import Message
from textual.timer import Timer
from textual.widgets import Footer, RichLog, Static

from console.store import AuditRow, DeployRecord, LogLine, Store
from screens.deploy.screen import log_palette
from screens.history.detail import (
    STATE_STYLES,
    UNFINISHED,
    log_lines,
    release_text,
    state_word,
    took,
)
from screens.keys import KEYMAP
from screens.messages import ReadFailed, error_text
from screens.refusals import SaysWhyNot
from screens.widgets.format import LOCK

REFRESH_SECONDS = 3.0


@dataclass
class DeployLogRead(Message):
    """The deploy and its audit rows and output lines were read (record None: unknown)."""

    record: DeployRecord | None
    audit: list[AuditRow]
    output: list[LogLine]


class DeployLogReadFailed(ReadFailed):
    """A read of the deploy's log raised; what was shown stays."""


class DeployLogScreen(SaysWhyNot):
    """Read once, and again every REFRESH_SECONDS while the deploy has not ended; the view
    stays at the end while it is there (scrolled up, it stays where the reader put it)."""

    CSS_PATH = "../styles/history.tcss"
    HELP_NAMESPACE = "deploy log"
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
        self.read_count = 0
        """Reads handled (good or failed): tests wait on it."""
        self.lines: list[Text] = []
        self._timer: Timer | None = None

    @property
    def log_widget(self) -> RichLog:
        return self.query_one("#full-log", RichLog)

    def compose(self) -> ComposeResult:
        yield Static(
            Content.styled(f"log of {self.deploy_id}: reading the store…", "$text-muted"),
            id="log-title",
        )
        log = RichLog(
            id="full-log", markup=False, highlight=False, wrap=True, min_width=20, auto_scroll=False
        )
        yield log
        yield Footer()

    def on_mount(self) -> None:
        self.log_widget.focus()
        self._read()

    @work(exclusive=True, group="log-read", exit_on_error=False)
    async def _read(self) -> None:
        try:
            record = await self.store.deploy(self.deploy_id)
            audit = await self.store.audit_rows(deploy_id=self.deploy_id)
            output = await self.store.deploy_log(self.deploy_id)
        except Exception as error:
            self.post_message(DeployLogReadFailed(error_text(error)))
        else:
            self.post_message(DeployLogRead(record, audit, output))

    def on_deploy_log_read(self, message: DeployLogRead) -> None:
        self.read_count += 1
        self.record = record = message.record
        title = self.query_one("#log-title", Static)
        if record is None:
            title.update(
                Content.styled(f"deploy {self.deploy_id} is not in the store", "$text-error")
            )
            return
        title.update(self._title(record))
        self._show(record, message.audit, message.output)
        if record.state in UNFINISHED:
            self._timer = self.set_timer(REFRESH_SECONDS, self._read, name="deploy-log")

    def on_deploy_log_read_failed(self, message: DeployLogReadFailed) -> None:
        self.read_count += 1
        self.query_one("#log-title", Static).update(
            Content.assemble(("✖ cannot read the store: ", "bold $text-error"), message.error)
        )

    def _title(self, record: DeployRecord) -> Content:
        cluster = f"{record.cluster} {LOCK}" if self.protected else record.cluster
        rollback = f" · rollback of {record.rollback_of}" if record.rollback_of else ""
        return Content.assemble(
            ("log ", "bold"),
            (record.id, "bold"),
            "  ",
            (record.project, "bold $text-primary"),
            " → ",
            (cluster, "bold $text-error" if self.protected else "bold"),
            f"  {release_text(record)}  ",
            (state_word(record.state), STATE_STYLES.get(record.state, "")),
            f" {took(record, self.clock())}{rollback}",
        )

    def _show(self, record: DeployRecord, audit: list[AuditRow], output: list[LogLine]) -> None:
        lines = log_lines(audit, output, log_palette(self.app.get_css_variables()), record.actor)
        if not lines:
            lines = [Text("no audit row or output for this deploy", style="italic")]
        log = self.log_widget
        first = not self.lines
        at_end = first or log.is_vertical_scroll_end
        if lines[: len(self.lines)] != self.lines:
            log.clear()
            self.lines = []
        for line in lines[len(self.lines) :]:
            log.write(line, expand=True)
        self.lines = lines
        if at_end:  # opened at the end; followed there while the reader stays there
            log.call_after_refresh(log.scroll_end, animate=False)

    def action_back(self) -> None:
        self.dismiss()

    def action_refresh(self) -> None:
        self._read()
