"""The deploy screen: one running deploy's steps, progress and live log, its cancel and bake."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.widgets import Footer, ProgressBar, RichLog, Static

from console import events
from console.config.bake import format_span
from console.errors import ConsoleError
from console.model import DeployState, Step, StepState
from screens.deploy.tracking import TrackedDeploy
from screens.keys import KEYMAP
from screens.messages import DeployCancelAsked
from screens.refusals import SaysWhyNot
from screens.widgets.confirm import ConfirmDialog
from screens.widgets.format import LOCK, format_age
from screens.widgets.step_list import StepList

STATE_STYLES: dict[DeployState, str] = {
    DeployState.QUEUED: "$text-muted",
    DeployState.RUNNING: "bold $text-accent",
    DeployState.SUCCEEDED: "bold $text-success",
    DeployState.FAILED: "bold $text-error",
    DeployState.ROLLED_BACK: "bold $text-warning",
    DeployState.CANCELLED: "bold $text-warning",
    DeployState.INTERRUPTED: "bold $text-error",
}


def state_word(state: DeployState) -> str:
    return state.words


# Log colours come from the theme (RichLog renders Rich text, which has no theme variables).
LOG_COLOURS = {
    "source": "text-accent",
    "console": "foreground-muted",
    "stderr": "text-warning",
    "failed": "text-error",
    "succeeded": "text-success",
    "undone": "text-warning",
}


def log_palette(variables: dict[str, str]) -> dict[str, str]:
    """The log's styles from the app's CSS variables (colour names fall back to none)."""
    return {role: variables.get(name, "") for role, name in LOG_COLOURS.items()}


def log_line(event: events.DeployEvent, palette: dict[str, str]) -> Text | None:
    """One line of the deploy log; Text, never markup (remote output may hold brackets)."""
    if isinstance(event, events.OutputLine):
        source = palette["console"] if event.source == "console" else palette["source"]
        text_style = palette["stderr"] if event.stream == "stderr" else ""
        return Text.assemble((f"{event.source} │ ", source), (event.text, text_style))
    if isinstance(event, events.StepStarted):
        detail = f" ({event.detail})" if event.detail else ""
        return Text(f"── {event.step} started{detail}", style="bold")
    if isinstance(event, events.StepFinished):
        detail = f": {event.detail}" if event.detail else ""
        colour = palette["failed"] if event.state is StepState.FAILED else ""
        return Text(
            f"── {event.step} {event.state} in {event.seconds:.1f}s{detail}",
            style=f"bold {colour}".strip(),
        )
    if isinstance(event, events.DeployStarted):
        return Text(
            f"deploy {event.deploy_id}: {event.project} → {event.cluster}, release "
            f"{event.release} ({event.image_id}), by {event.actor}",
            style="bold",
        )
    if isinstance(event, events.DeployFinished):
        if event.state is DeployState.SUCCEEDED:
            colour = palette["succeeded"]
        elif event.state in (DeployState.CANCELLED, DeployState.ROLLED_BACK):
            colour = palette["undone"]
        else:
            colour = palette["failed"]
        return Text(
            f"{state_word(event.state)} in {event.seconds:.1f}s: {event.reason}",
            style=f"bold {colour}".strip(),
        )
    return None


class DeployScreen(SaysWhyNot):
    """Shows a TrackedDeploy; the app calls `show_event` as each event arrives."""

    CSS_PATH = "../styles/deploy.tcss"
    HELP_NAMESPACE = "deploy"

    # Under 110 columns the log goes below the steps, at the full width of the terminal.
    HORIZONTAL_BREAKPOINTS = [
        (0, "-narrow"),
        (110, "-wide"),
    ]
    BINDINGS = KEYMAP[HELP_NAMESPACE]

    def __init__(
        self, tracked: TrackedDeploy, clock: Callable[[], datetime], *, protected: bool = False
    ) -> None:
        super().__init__()
        self.tracked = tracked
        self.clock = clock
        self.protected = protected
        self._ready = False
        self._palette: dict[str, str] | None = None

    @property
    def key(self) -> int:
        return self.tracked.key

    @property
    def progress(self) -> ProgressBar:
        return self.query_one("#progress", ProgressBar)

    @property
    def log_widget(self) -> RichLog:
        return self.query_one("#log", RichLog)

    def compose(self) -> ComposeResult:
        yield Static(id="deploy-title")
        with Horizontal(id="deploy-body"):
            with Vertical(id="deploy-steps") as steps:
                steps.border_title = "steps"
                yield StepList(id="steps")
                yield ProgressBar(id="progress", show_eta=False)
                yield Static(id="outcome")
            log = RichLog(
                id="log", markup=False, highlight=False, wrap=True, min_width=20, max_lines=5000
            )
            log.border_title = "log"
            yield log
        yield Footer()

    def on_mount(self) -> None:
        # After a refresh: pushed while a modal closes, the nested widgets may not be there yet.
        self.call_after_refresh(self._first_show)

    def _first_show(self) -> None:
        self._ready = True
        for event in self.tracked.log:
            self._write(event)
        # Opened mid-deploy: show the latest lines once the log has its final size.
        self.call_after_refresh(self.log_widget.scroll_end, animate=False)
        self._show_state()
        self.set_interval(1.0, self._tick, name="deploy-clock")

    # -- attributes down: the app folds each event into the tracked deploy first ---------

    def show_event(self, event: events.DeployEvent | None = None) -> None:
        if not self._ready:
            return
        if event is not None:
            self._write(event)
        self._show_state()
        self.refresh_bindings()

    def _write(self, event: events.DeployEvent) -> None:
        if self._palette is None:
            self._palette = log_palette(self.app.get_css_variables())
        line = log_line(event, self._palette)
        if line is not None:
            self.log_widget.write(line)

    def _tick(self) -> None:
        if not self.tracked.finished:
            self._show_state()

    def _show_state(self) -> None:
        tracked = self.tracked
        now = self.clock()
        self.query_one("#steps", StepList).show(tracked.steps.values(), now)
        self.progress.update(total=tracked.total_steps, progress=tracked.steps_done)
        self.query_one("#deploy-title", Static).update(self._title(now))
        self.query_one("#outcome", Static).update(self._outcome())
        self.set_class(tracked.finished, "-finished")

    def _title(self, now: datetime) -> Content:
        tracked = self.tracked
        request = tracked.request
        lock = f" {LOCK}" if self.protected else ""
        if tracked.seconds is not None:
            took = format_age(tracked.seconds)
        elif tracked.started_at is not None:
            took = format_age((now - tracked.started_at).total_seconds())
        else:
            took = "0s"
        image = f" ({tracked.image_id})" if tracked.image_id else ""
        return Content.assemble(
            ("deploy ", "bold"),
            (request.project, "bold $text-primary"),
            " → ",
            (f"{request.cluster}{lock}", "bold $text-error" if self.protected else "bold"),
            f"  release {tracked.release}{image}\n",
            (tracked.deploy_id or "queueing…", "$text-muted"),
            (f" · by {request.actor} · ", "$text-muted"),
            (state_word(tracked.state), STATE_STYLES[tracked.state]),
            f" · {took}",
            *self._waiting(),
            *self._baking(now),
        )

    def _baking(self, now: datetime) -> tuple[str | tuple[str, str], ...]:
        """A baking deploy's countdown and what it watches, on its own line under the title."""
        tracked = self.tracked
        if tracked.rolling_back and Step.BAKE in tracked.steps and not tracked.finished:
            # At 80x24 the step list's last rows and the outcome line are out of view.
            back = "the kept old instances come back first, then the new leave"
            return ("\n", ("rolling back: ", "bold $text-warning"), back)
        if not tracked.baking:
            return ()
        ends, watches = tracked.bake_ends()
        left = f"{format_span((ends - now).total_seconds())} left" if ends else "running"
        asked = {"end": "ending the bake…", "rollback": "rolling back now…"}
        if tracked.bake_asked:
            return ("\n", ("baking: ", "bold $text-warning"), asked[tracked.bake_asked])
        return ("\n", ("baking: ", "bold $text-warning"), f"{left} · ", (watches, "$text-muted"))

    def _waiting(self) -> tuple[str | tuple[str, str], ...]:
        """Why a queued deploy waits, on its own line under the title: on a short terminal
        the outcome line below the steps is out of view."""
        tracked = self.tracked
        if tracked.state is not DeployState.QUEUED or not tracked.waiting or tracked.finished:
            return ()
        return ("\n", ("waiting: ", "bold $text-warning"), tracked.waiting)

    def _outcome(self) -> Content:
        tracked = self.tracked
        if tracked.error is not None and tracked.deploy_id is None:
            return Content.assemble(("Refused: ", "bold $text-error"), tracked.error)
        if tracked.error is not None:
            return Content.assemble(("Lost the deploy: ", "bold $text-error"), tracked.error)
        if tracked.finished:
            return Content.assemble(
                (state_word(tracked.state), STATE_STYLES[tracked.state]), f": {tracked.reason}"
            )
        if tracked.cancel_requested:
            return Content.styled("cancelling: the deploy rolls back…", "$text-warning")
        if tracked.state is DeployState.QUEUED and tracked.deploy_id is not None:
            why = tracked.waiting or "starts next"
            return Content.assemble(("queued: ", "bold $text-warning"), why)
        current = tracked.current_step
        if tracked.rolling_back:
            return Content.styled("rolling back: the old instances keep serving", "$text-warning")
        if tracked.baking:
            return Content.styled(
                "baking: the new instances serve, the old are kept stopped", "$text-warning"
            )
        if current is None:
            return Content.styled("starting…", "$text-muted")
        return Content.styled(f"{current}…", "$text-muted")

    # -- actions -----------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("end_bake", "rollback_now"):
            if not self.tracked.baking:
                return False
            return None if self.tracked.bake_asked else True
        if action == "cancel_deploy":
            if self.tracked.finished:
                return False
            # Shown but disabled while a cancel is already on its way.
            return None if self.tracked.cancel_requested else True
        return True

    def why_not(self, action: str, parameters: tuple[object, ...]) -> str:
        if action in ("end_bake", "rollback_now"):
            if self.tracked.bake_asked:
                return "A decision on the bake is already on its way."
            return "The deploy is not baking: nothing to end or roll back now."
        if action != "cancel_deploy":
            return ""
        if self.tracked.finished:
            return f"The deploy has ended ({state_word(self.tracked.state)}): nothing to cancel."
        return "A cancel is already on its way: the deploy rolls back."

    def action_back(self) -> None:
        self.dismiss()

    @work(exclusive=True, group="confirm-cancel")
    async def action_cancel_deploy(self) -> None:
        tracked = self.tracked
        if tracked.finished or tracked.cancel_requested:
            return
        request = tracked.request
        question = Content.assemble(
            "Cancel the deploy of ",
            (f"{request.project} {tracked.release}", "bold"),
            f" to {request.cluster}?\n\nIt rolls back: the new instances are removed and "
            "the old ones, which never left service, keep serving.",
        )
        confirmed = await self.app.push_screen_wait(
            ConfirmDialog("cancel deploy", question, "Cancel the deploy", "Keep it running")
        )
        if confirmed and not self.tracked.finished:
            self.post_message(DeployCancelAsked(self.key))

    # -- the bake: one key each -----------------------------------------------------------

    @work(exclusive=True, group="bake")
    async def action_rollback_now(self) -> None:
        """Rolls back at once: the safe direction (the kept old release comes back first)."""
        await self._decide_bake("rollback")

    @work(exclusive=True, group="bake")
    async def action_end_bake(self) -> None:
        """Ends the bake early, once confirmed: it gives up the watching."""
        question = Content.assemble(
            "End the bake of ",
            (f"{self.tracked.request.project} {self.tracked.release}", "bold"),
            f" in {self.tracked.request.cluster} now?\n\nNothing is watched any more; the old "
            "instances stay kept (stopped) for the cluster's keep_old.",
        )
        confirmed = await self.app.push_screen_wait(
            ConfirmDialog("end bake", question, "End the bake", "Keep baking")
        )
        if confirmed:
            await self._decide_bake("end")

    async def _decide_bake(self, decision: str) -> None:
        tracked = self.tracked
        decide = getattr(getattr(self.app, "deploys", None), "decide_bake", None)
        if not tracked.baking or tracked.bake_asked or tracked.deploy_id is None:
            return
        if decide is None:
            self.notify("This console cannot reach the deploy's bake.", severity="error")
            return
        try:
            await decide(tracked.deploy_id, decision)
        except ConsoleError as error:
            self.notify(error.message, title="Bake", severity="error")
            return
        tracked.bake_asked = decision
        self.show_event()
