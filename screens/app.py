"""The console's Textual app: owns the refresh loop and hands each snapshot to the screens."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path, PurePath
from typing import ClassVar

from textual import work
from textual.app import SystemCommand
from textual.content import Content
from textual.notifications import SeverityLevel
from textual.screen import Screen

from console.access import Access, AccessDenied, Action
from console.audit.anchor import AnchorOutcome, AnchorSchedule
from console.config import Config
from console.drift.review import Reviewed, by_pair, review
from console.errors import ConsoleError
from console.events import (
    DeployEvent,
    DeployFinished,
    DeployStarted,
    DeployWaiting,
    StepStarted,
)
from console.fleet.inventory import FleetSource
from console.model import DeployRequest, DeployState, FleetSnapshot
from console.queue.marks import Mark, PairMark, read_marks
from console.store import Store
from screens import PROG
from screens.dashboard.screen import DashboardScreen
from screens.deploy.dialog import DeployDialog, DeployPreset
from screens.deploy.picker import DeployListDialog
from screens.deploy.screen import DeployScreen
from screens.deploy.support import DeploySupport
from screens.deploy.tracking import TrackedDeploy
from screens.help import HelpScreen, keys_of
from screens.history.detail import DeployDetailScreen
from screens.history.filters import HistoryFilter
from screens.history.log import DeployLogScreen
from screens.history.redeploy import DeployLogAsked, RedeployAsked
from screens.history.screen import HistoryScreen
from screens.keymap import config_keymap, shown_key
from screens.keys import KEYMAP
from screens.messages import (
    AuditAnchorChecked,
    DeployAsked,
    DeployBroke,
    DeployCancelAsked,
    DeployProgressed,
    HistoryAsked,
    ProjectChosen,
    QueueAsked,
    QueuedDeployChosen,
    RefreshRequested,
    error_text,
)
from screens.palette import system_commands
from screens.project.screen import ProjectScreen
from screens.queue.screen import QueueControl, QueueScreen
from screens.refresh import FleetRefreshApp
from screens.widgets.confirm import ConfirmDialog


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _anchor_trouble(outcome: AnchorOutcome | ConsoleError | None) -> str | None:
    """What went wrong in a round of the audit anchor, None if nothing did."""
    if isinstance(outcome, ConsoleError):
        return outcome.message
    return None if outcome is None else outcome.problem


class DeployConsoleApp(FleetRefreshApp):
    """Dashboard first; the project screen and the help are pushed over it.

    The caller owns (and closes) the fleet. Without `deploys` the console only looks: no
    deploy keys and no deploy commands. With `anchor`, the audit chain's head is anchored on
    its schedule while the console runs. `history` is the store `h` reads: an open one (the
    caller closes it), or a path the app opens on first use without ever creating it (and
    closes); without it `h` says so.
    """

    TITLE = PROG
    # Each screen names its own file too, but the first screen is the app's default screen,
    # whose CSS_PATH Textual does not read: load them all here (each is scoped by class name).
    CSS_PATH: ClassVar[list[str | PurePath]] = [
        "styles/dashboard.tcss",
        "styles/project.tcss",
        "styles/help.tcss",
        "styles/deploy.tcss",
        "styles/queue.tcss",
        "styles/history.tcss",
    ]

    BINDINGS = KEYMAP["app"]

    def __init__(
        self,
        config: Config,
        fleet: FleetSource,
        *,
        clock: Callable[[], datetime] | None = None,
        auto_refresh: bool = True,
        deploys: DeploySupport | None = None,
        anchor: AnchorSchedule | None = None,
        history: Store | Path | None = None,
    ) -> None:
        super().__init__(config, fleet, auto_refresh=auto_refresh)
        self.deploys = deploys
        """None: a console that only looks (no deploy keys, no deploy commands)."""
        self.history: Store | Path | None = history
        """Where the deploy history is: an open store, a store file opened (never created)
        on first use, or None."""
        self._history_owned = False
        """True when this app opened the history store, and so closes it."""
        self.tracked: dict[int, TrackedDeploy] = {}
        """Every deploy this console started, by a local key (the engine's id comes later)."""
        self.clock = clock or _utc_now
        self._quit_when_done = False
        """Set once the user chose to quit with deploys running: exit when they have ended."""
        self.anchor = anchor
        """Anchors the audit chain's head in S3 while the console runs (None: not configured)."""
        self.anchor_outcome: AnchorOutcome | ConsoleError | None = None
        """How the anchor's last round ended."""
        self.anchor_rounds = 0
        """Rounds of the anchor's schedule ended: tests wait on it."""
        self.stored_marks: dict[tuple[str, str], PairMark] = {}
        self.findings: dict[tuple[str, str], list[Reviewed]] = {}  # (drift) by pair
        """What the queue and the store said of each pair at the last read."""
        self.keymap = config_keymap(config)
        """The config's [keymap] (binding id -> keys): footer and help show the keys it gives."""
        self.set_keymap(self.keymap)

    def get_default_screen(self) -> Screen[None]:
        return DashboardScreen(self.config, self.clock, may_deploy=self.may_deploy)

    @property
    def dashboard(self) -> DashboardScreen:
        """The first screen, always at the bottom of the stack."""
        for screen in self.screen_stack:
            if isinstance(screen, DashboardScreen):
                return screen
        raise LookupError("the dashboard is not on the screen stack")

    def on_mount(self) -> None:
        self.refresh_fleet()
        if self.anchor is not None:
            self._anchor_worker()

    @work(exclusive=True, group="audit-anchor", exit_on_error=False)
    async def _anchor_worker(self) -> None:
        assert self.anchor is not None
        await self.anchor.run(lambda outcome: self.post_message(AuditAnchorChecked(outcome)))

    def on_audit_anchor_checked(self, message: AuditAnchorChecked) -> None:
        """Say when anchoring fails or is refused, once until what is wrong changes."""
        previous, outcome = self.anchor_outcome, message.outcome
        self.anchor_outcome = outcome
        self.anchor_rounds += 1
        trouble = _anchor_trouble(outcome)
        if trouble is None or trouble == _anchor_trouble(previous):
            return
        if isinstance(outcome, ConsoleError):
            self.notify(trouble, title="audit anchor not written", severity="warning")
        else:
            self.notify(
                f"audit: {trouble}", title="audit anchor refused", severity="error", timeout=60
            )

    async def on_unmount(self) -> None:
        if self._history_owned and isinstance(self.history, Store):
            await self.history.close()

    # -- the refresh loop (screens/refresh.py): what the console does with each read ------

    def fleet_read(self, snapshot: FleetSnapshot) -> None:
        self._marks_worker()

    def fleet_unreadable(self, error: str) -> None:
        self.notify(error, title="Refresh failed", severity="error")
        self._marks_worker()

    @work(exclusive=True, group="marks", exit_on_error=False)
    async def _marks_worker(self) -> None:
        """With each fleet read, what the queue and the store say of each pair (queued,
        deploying, frozen, locked, last deploy failed); a failed read keeps the last."""
        runner = getattr(self.deploys, "runner", None)
        if runner is None:
            return
        pairs = [(p.name, cluster) for p in self.config.projects for cluster in p.clusters]
        try:
            self.stored_marks = await read_marks(runner.queue, pairs)
            if self.snapshot is not None:  # (drift) each pair's findings, for the screens
                found = await review(self.config, self.snapshot, runner.engine.store)
                self.findings = by_pair(found)
        except (ConsoleError, OSError):
            return
        self._show_deploying()

    def refresh_shown(self) -> None:
        self._pass_down()

    def _pass_down(self) -> None:
        """Attributes down: every screen on the stack that shows the fleet gets the news."""
        for screen in self.screen_stack:
            if isinstance(screen, DashboardScreen):
                screen.refreshing = self.refreshing
                screen.refresh_error = self.refresh_error
            if isinstance(screen, DashboardScreen | ProjectScreen) and (
                screen.snapshot is not self.snapshot
            ):
                screen.snapshot = self.snapshot

    def on_refresh_requested(self, _message: RefreshRequested) -> None:
        self.refresh_fleet()

    # -- navigation --------------------------------------------------------------------

    def on_project_chosen(self, message: ProjectChosen) -> None:
        screen = ProjectScreen(
            self.config.project(message.project),
            self.config.clusters,
            self.snapshot,
            self.clock,
            self.fleet.load_balancer_settings,
            selected_cluster=message.cluster,
            may_deploy=self.may_deploy,
        )
        screen.set_reactive(ProjectScreen.findings, self.findings)  # (drift)
        self.push_screen(screen)

    async def on_history_asked(self, message: HistoryAsked) -> None:
        store = await self._history_store()
        if store is None:
            return
        view = HistoryFilter(project=message.project, cluster=message.cluster)
        self.push_screen(HistoryScreen(store, self.config, self.clock, view))

    async def _history_store(self) -> Store | None:
        """The store to read the history from; None (and a note saying why) when there is none."""
        if isinstance(self.history, Store):
            return self.history
        if self.history is None:
            why = "this console runs without a deploy store"
        else:
            try:
                self.history = await Store.open(self.history, create=False)
            except ConsoleError as error:
                why = error.message
            else:
                self._history_owned = True
                return self.history
        self.notify(f"No deploy history here: {why}.", title="History", severity="warning")
        return None

    # -- deploys: the dialog, one worker per deploy, events folded into TrackedDeploy ----

    def unfinished_deploys(self) -> list[TrackedDeploy]:
        return [tracked for tracked in self.tracked.values() if not tracked.finished]

    async def action_quit(self) -> None:
        """Quit; with deploys running here, ask first: quitting cancels them (they roll back),
        and the console exits once every one has ended. A deploy left half-way would keep
        its new instances and its lock."""
        if not self.unfinished_deploys() and not self.claimed_here():
            self.exit()
        elif not self._quit_when_done:
            self._ask_to_quit()

    def claimed_here(self) -> list[str]:
        """Deploys this console's runner took from the queue that no screen here follows
        (queued by the CLI or another console): quitting cancels them too."""
        runner = getattr(self.deploys, "runner", None)
        if runner is None:
            return []
        followed = {t.deploy_id for t in self.tracked.values()}
        return [deploy_id for deploy_id in runner.running_here if deploy_id not in followed]

    @work(exclusive=True, group="confirm-quit")
    async def _ask_to_quit(self) -> None:
        running = self.unfinished_deploys()
        claimed = self.claimed_here()
        names = ", ".join(
            [f"{t.request.project} → {t.request.cluster}" for t in running]
            + [f"{deploy_id} (from the queue)" for deploy_id in claimed]
        )
        count = len(running) + len(claimed)
        question = Content.assemble(
            (f"{count} deploy{'s' if count > 1 else ''} running: ", "bold"),
            names,
            "\n\nQuitting cancels them: each rolls back (the old instances never left "
            "service), and the console closes when they have. A deploy already past its "
            "health gate finishes first.",
        )
        confirmed = await self.push_screen_wait(
            ConfirmDialog("quit", question, "Cancel them and quit", "Keep running")
        )
        if not confirmed or not self.unfinished_deploys():
            if confirmed:
                self.exit()
            return
        self._quit_when_done = True
        for tracked in self.unfinished_deploys():
            self.post_message(DeployCancelAsked(tracked.key))
        self.notify(
            "Rolling back before quitting; the console closes when every deploy has ended.",
            title="Quitting",
        )

    def running_deploy(self, project: str, cluster: str) -> TrackedDeploy | None:
        for tracked in self.tracked.values():
            if tracked.pair == (project, cluster) and not tracked.finished:
                return tracked
        return None

    def may_deploy(self, cluster: str, project: str | None = None) -> bool:
        """`d` (key, footer and palette) shows only where this user's role may deploy."""
        return self.deploys is not None and not self.refusal(Action.DEPLOY, cluster, project)

    def refusal(self, action: Action, cluster: str | None, project: str | None = None) -> str:
        """Why this console's user may not do it ("" if they may); the core checks again."""
        if self.deploys is None:
            return "this console runs no deploys"
        try:
            Access(self.config).check(self.deploys.actor, action, cluster, project=project)
        except AccessDenied as denied:
            return denied.message
        return ""

    def on_deploy_asked(self, message: DeployAsked) -> None:
        self._ask_deploy(message.project, message.cluster)

    def on_redeploy_asked(self, message: RedeployAsked) -> None:
        """b or R on a recorded deploy: the dialog on its pair, its release preselected."""
        self._ask_deploy(message.project, message.cluster, message.preset)

    def _ask_deploy(
        self, project_name: str, cluster_name: str | None, preset: DeployPreset | None = None
    ) -> None:
        if self.deploys is None:
            return
        project = self.config.project(project_name)
        if cluster_name is None or cluster_name not in project.clusters:
            self.notify(
                f"Put the cursor on a cluster {project.name} runs in, then press "
                f"{shown_key(self.keymap, 'deploy.open')}.",
                title="Deploy where?",
                severity="warning",
            )
            return
        denied = self.refusal(Action.DEPLOY, cluster_name, project.name)
        if denied:
            self.notify(denied, title="Not allowed", severity="warning")
            return
        running = self.running_deploy(project.name, cluster_name)
        if running is not None:
            self.notify(
                f"{project.name} in {cluster_name} is being deployed: here it is.",
                title="Deploy running",
            )
            self.open_deploy(running.key)
            return
        cluster = self.config.cluster(cluster_name)
        dialog = DeployDialog(project, cluster, self.snapshot, self.deploys, preset)
        self.push_screen(dialog, self._deploy_confirmed)

    def _deploy_confirmed(self, request: DeployRequest | None) -> None:
        if request is not None:
            self.start_deploy(request)

    def start_deploy(self, request: DeployRequest) -> TrackedDeploy:
        """Follow a new deploy in a worker and show its screen."""
        assert self.deploys is not None
        key = max(self.tracked, default=0) + 1
        tracked = self.tracked[key] = TrackedDeploy(key, request)
        self._show_deploying()
        self._follow_deploy(key, request)
        self.open_deploy(key)
        return tracked

    @work(group="deploys", exit_on_error=False)
    async def _follow_deploy(self, key: int, request: DeployRequest) -> None:
        # Not exclusive: deploys of different pairs run side by side, one worker each.
        assert self.deploys is not None
        try:
            async for event in self.deploys.run(request):
                self.post_message(DeployProgressed(key, event))
        except Exception as error:
            self.post_message(DeployBroke(key, error_text(error)))

    def on_deploy_progressed(self, message: DeployProgressed) -> None:
        tracked = self.tracked[message.key]
        event = message.event
        tracked.apply(event)
        if not self.screen_stack:
            return  # the app is shutting down: the worker's last events have no screen
        if tracked.cancel_requested and isinstance(
            event, DeployWaiting | StepStarted | DeployStarted
        ):
            self._send_cancel(tracked)
        self._deploy_changed(tracked, event)
        if isinstance(event, DeployStarted):
            self._show_deploying()
        if isinstance(event, DeployFinished):
            severity: SeverityLevel = (
                "information" if event.state is DeployState.SUCCEEDED else "warning"
            )
            # The id names it in history and the queue, where `o` opens its full log.
            where = f" ({tracked.deploy_id}; its log: o in history)" if tracked.deploy_id else ""
            self.notify(
                f"{tracked.title}: {event.reason}{where}",
                title=event.state.words,
                severity=severity,
            )
            self._deploy_ended()

    def on_deploy_broke(self, message: DeployBroke) -> None:
        tracked = self.tracked[message.key]
        tracked.fail(message.error)
        if not self.screen_stack:
            return
        self._deploy_changed(tracked, None)
        self.notify(f"{tracked.title}: {message.error}", title="Deploy", severity="error")
        self._deploy_ended()

    def on_deploy_cancel_asked(self, message: DeployCancelAsked) -> None:
        tracked = self.tracked[message.key]
        if tracked.finished or tracked.cancel_requested:
            return
        tracked.cancel_requested = True
        # Before its first event the engine's id is unknown: the cancel goes with that event.
        if tracked.deploy_id is not None:
            self._send_cancel(tracked)
        self._deploy_changed(tracked, None)

    def _send_cancel(self, tracked: TrackedDeploy) -> None:
        if self.deploys is None or tracked.deploy_id is None or tracked.finished:
            return
        self.deploys.cancel(tracked.deploy_id, self.deploys.actor)

    def _deploy_changed(self, tracked: TrackedDeploy, event: DeployEvent | None) -> None:
        for screen in self.screen_stack:
            if isinstance(screen, DeployScreen) and screen.key == tracked.key:
                screen.show_event(event)

    def _deploy_ended(self) -> None:
        if self._quit_when_done and not self.unfinished_deploys():
            self.exit()
            return
        self._show_deploying()
        # The cell shows the deploy until it ends, then what the next refresh reads.
        self.refresh_fleet()

    def _show_deploying(self) -> None:
        """The marks read from the store, and over them this console's own deploys (their
        events are newer than the last read)."""
        marks = dict(self.stored_marks)
        for tracked in self.tracked.values():
            if not tracked.finished:
                running = tracked.state is DeployState.RUNNING
                mark = Mark.DEPLOYING if running else Mark.QUEUED
                marks[tracked.pair] = PairMark(mark, tracked.release, tracked.waiting)
        # Looked up, not self.dashboard: while the app shuts down the stack may be empty.
        for screen in self.screen_stack:
            if isinstance(screen, DashboardScreen):
                screen.marks = marks
            if isinstance(screen, DashboardScreen | ProjectScreen):
                screen.findings = self.findings  # (drift)
        self.refresh_bindings()

    def open_deploy(self, key: int) -> None:
        """Show a deploy's screen (over whatever is open, never twice on the stack)."""
        tracked = self.tracked[key]
        for screen in self.screen_stack:
            if isinstance(screen, DeployScreen) and screen.key == key:
                if screen is not self.screen:
                    # Rare: bring it up by popping what is over it.
                    while self.screen is not screen:
                        self.pop_screen()
                return
        protected = self.config.cluster(tracked.request.cluster).protected
        self.push_screen(DeployScreen(tracked, self.clock, protected=protected))

    # -- the release queue ---------------------------------------------------------------

    @property
    def queue_control(self) -> QueueControl | None:
        """The runner whose queue the queue screen shows and acts on (None: no queue here)."""
        runner: QueueControl | None = getattr(self.deploys, "runner", None)
        return runner

    def on_queue_asked(self, _message: QueueAsked) -> None:
        control = self.queue_control
        if control is None or self.deploys is None:
            self.notify(
                "No queue here: this console runs no deploys.", title="Queue", severity="warning"
            )
            return
        if any(isinstance(screen, QueueScreen) for screen in self.screen_stack):
            return
        self.push_screen(QueueScreen(self.config, control, self.deploys.actor, self.clock))

    async def on_queued_deploy_chosen(self, message: QueuedDeployChosen) -> None:
        for tracked in self.tracked.values():
            if tracked.deploy_id == message.deploy_id:
                self.open_deploy(tracked.key)
                return
        # Started elsewhere (the CLI, another console): its record, steps and output as the
        # store has them, followed while it runs.
        store = await self._history_store()
        if store is None:
            return
        record = await store.deploy(message.deploy_id)
        protected = record is not None and any(
            c.name == record.cluster and c.protected for c in self.config.clusters
        )
        self.push_screen(DeployDetailScreen(store, message.deploy_id, self.clock, protected))

    async def on_deploy_log_asked(self, message: DeployLogAsked) -> None:
        """o on a deploy (history, its detail, the queue): its full log from the store."""
        store = await self._history_store()
        if store is None:
            return
        deploy_id = message.deploy_id
        if deploy_id is None:  # the pair's last deploy
            last = await store.deploys(project=message.project, cluster=message.cluster, limit=1)
            if not last:
                where = f"{message.project} → {message.cluster}"
                self.notify(f"No deploy of {where} recorded.", title="Log", severity="warning")
                return
            deploy_id = last[0].id
        record = await store.deploy(deploy_id)
        protected = record is not None and any(
            c.name == record.cluster and c.protected for c in self.config.clusters
        )
        self.push_screen(DeployLogScreen(store, deploy_id, self.clock, protected))

    def action_show_deploys(self) -> None:
        if not self.tracked or isinstance(self.screen, DeployListDialog):
            return
        self.push_screen(DeployListDialog(self.tracked.values()), self._deploy_picked)

    def _deploy_picked(self, key: int | None) -> None:
        if key is not None and key in self.tracked:
            self.open_deploy(key)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "show_deploys":
            return self.deploys is not None and bool(self.tracked)
        # "back" is Textual's App.action_back (pop a screen): nothing to pop on the dashboard.
        return not (action == "back" and len(self.screen_stack) <= 1)

    def action_help(self) -> None:
        screen = self.screen
        if isinstance(screen, HelpScreen):
            return
        namespace = getattr(screen, "HELP_NAMESPACE", "app")
        self.push_screen(HelpScreen(f"keys: {namespace}", keys_of(screen, self)))

    # -- command palette: "namespace: verb", calling the same actions as the keys --------

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        # Offered only where the key's own check_action allows it (screens/palette.py).
        return system_commands(self, screen)


build_app = DeployConsoleApp
"""The console app for the CLI and the tests alike (see DeployConsoleApp)."""
