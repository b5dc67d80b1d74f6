"""The kiosk: a read-only wall screen of the fleet. Tiles per project and cluster (health,
version, the deploy in flight, its mark, the last deploy), a clock, the data's age, a ticker
of the latest deploys; pages rotate; one key quits, none acts."""

from __future__ import annotations

import contextlib
import math
import string
import unicodedata
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import PurePath
from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingsMap
from textual.containers import Grid, Horizontal
from textual.content import Content
from textual.css.query import NoMatches
from textual.keys import Keys
from textual.message import Message
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Static

from console.config import Config
from console.fleet.inventory import FleetSource
from console.model import EnvStatus, FleetSnapshot, Health
from console.queue.board import DeployBoard, finished_at
from console.queue.marks import Mark
from console.queue.wall import PairNotes
from screens import PROG
from screens.kiosk.tile import OUTCOME_GLYPHS, KioskTile, TileView, clock_text, rough_age
from screens.messages import error_text
from screens.refresh import FleetRefreshApp
from screens.widgets.cluster_look import cluster_look
from screens.widgets.format import (
    HEALTH_GLYPHS,
    HEALTH_STYLES,
    MARK_GLYPHS,
    MARK_STYLES,
    format_age,
    health_word,
)

BoardSource = Callable[[], Awaitable[DeployBoard]]
"""Reads the deploys to show (in flight, latest finished) from the store."""
NotesSource = Callable[[], Awaitable[PairNotes]]
"""Reads each pair's mark and last deploy from the store (console.queue.wall)."""

TILE_WIDTH = 26
TILE_HEIGHT = 6  # the border, and four lines: cluster, health, version, deploy or staleness
# (a fifth, the last deploy, when the tile has room)
DENSE_WIDTH = 40  # one line: glyph, project, cluster, version, deploy progress
DENSE_AFTER_PAGES = 4
"""Past this many pages of large tiles, the tiles are dense (one line each)."""
CHROME_HEIGHT = 3  # the header's two lines and the ticker
BOARD_SECONDS = 2.0
MODIFIERS = {"ctrl", "shift", "alt", "meta", "super", "hyper"}


def check_quit_key(key: str) -> str:
    """The key as Textual names it; ValueError with why, for a key Textual has no name for."""
    *modifiers, name = key.strip().split("+")
    unknown = [m for m in modifiers if m not in MODIFIERS]
    if unknown or not name:
        raise ValueError(f"--quit-key {key!r}: not a key (e.g. ctrl+q, f10, escape, x)")
    known = {k.value for k in Keys}
    if len(name) == 1 and name in string.printable and not name.isspace():
        return key.strip()
    if name in known or f"ctrl+{name}" in known:
        return key.strip()
    try:
        unicodedata.lookup(name.replace("_", " "))
    except KeyError:
        raise ValueError(f"--quit-key {key!r}: not a key (e.g. ctrl+q, f10, escape, x)") from None
    return key.strip()


@dataclass(frozen=True)
class PageLayout:
    columns: int
    rows: int
    dense: bool = False

    @property
    def per_page(self) -> int:
        return self.columns * self.rows


def page_layout(tiles: int, width: int, height: int) -> PageLayout:
    """Columns and rows of tiles: all on one page with the largest tiles that fit, else as
    many as fit at the smallest size (the pages then rotate); a dense grid of one-line tiles
    when large ones would take more than DENSE_AFTER_PAGES pages."""
    most_columns = max(1, width // TILE_WIDTH)
    most_rows = max(1, height // TILE_HEIGHT)
    if tiles > most_columns * most_rows * DENSE_AFTER_PAGES:
        return PageLayout(max(1, width // DENSE_WIDTH), max(1, height), dense=True)
    if tiles > most_columns * most_rows:
        return PageLayout(most_columns, most_rows)
    best = PageLayout(most_columns, most_rows)
    best_scale = 0.0
    for columns in range(1, most_columns + 1):
        rows = math.ceil(max(1, tiles) / columns)
        if rows > most_rows:
            continue
        scale = min(width / columns / TILE_WIDTH, height / rows / TILE_HEIGHT)
        if scale > best_scale:
            best, best_scale = PageLayout(columns, rows), scale
    return best


@dataclass
class DeployBoardRead(Message):
    """The deploys were read from the store (or not: `error`, and the last board stays)."""

    board: DeployBoard | None
    error: str | None = None
    notes: PairNotes | None = None


class KioskScreen(Screen[None], inherit_bindings=False):
    """Header (clock, data age, page), the page of tiles, the ticker."""

    CSS_PATH = "../styles/kiosk.tcss"
    ALLOW_SELECT = False

    def compose(self) -> ComposeResult:
        with Horizontal(id="kiosk-top"):
            yield Static(id="kiosk-age")
            yield Static(id="kiosk-clock")
        with Horizontal(id="kiosk-status"):
            yield Static(id="kiosk-summary")
            yield Static(id="kiosk-page")
        yield Grid(id="kiosk-tiles")
        yield Static(id="kiosk-ticker")

    def on_mount(self) -> None:
        self._lay_out()

    def on_resize(self) -> None:
        self._lay_out()

    def _lay_out(self) -> None:
        app = self.app
        if isinstance(app, KioskApp):
            app.lay_out()


class KioskApp(FleetRefreshApp, inherit_bindings=False):
    """Read-only whatever the user's role: no action but quitting, no palette, no footer."""

    TITLE = f"{PROG} kiosk"
    REFRESH_TIMER = "kiosk-refresh"
    CSS_PATH: ClassVar[list[str | PurePath]] = ["../styles/kiosk.tcss"]
    ENABLE_COMMAND_PALETTE = False
    ALLOW_SELECT = False
    ALLOWED_ACTIONS = frozenset({"quit"})

    def __init__(
        self,
        config: Config,
        fleet: FleetSource,
        board: BoardSource | None = None,
        *,
        notes: NotesSource | None = None,
        clock: Callable[[], datetime] | None = None,
        local_zone: tzinfo | None = None,
        rotate_seconds: float = 15.0,
        quit_key: str = "ctrl+q",
        auto_refresh: bool = True,
    ) -> None:
        super().__init__(config, fleet, auto_refresh=auto_refresh)
        quit_key = check_quit_key(quit_key)
        # The only binding: priority, so no widget can take the key first.
        self._bindings = BindingsMap(
            [Binding(quit_key, "quit", "Quit", show=False, priority=True, id="kiosk.quit")]
        )
        self.board_source = board
        self.notes_source = notes
        self.looks = {cluster.name: cluster_look(cluster) for cluster in config.clusters}
        self.clock = clock or (lambda: datetime.now(UTC))
        self.local_zone = local_zone
        self.rotate_seconds = rotate_seconds
        self.quit_key = quit_key
        self.pairs = [
            (project.name, cluster.name, cluster.protected)
            for project in config.projects
            for cluster in config.clusters
            if cluster.name in project.clusters
        ]
        self.last_good: dict[tuple[str, str], EnvStatus] = {}
        """Each pair's last data read without error: what a stale tile keeps showing."""
        self.failed_at: datetime | None = None
        self.board: DeployBoard | None = None
        self.notes = PairNotes()
        self.board_error: str | None = None
        self.board_count = 0
        """Reads of the deploys ended: tests wait on it."""
        self.page_shape = PageLayout(1, 1)
        self.page = 0
        self._board_timer: Timer | None = None

    def get_default_screen(self) -> KioskScreen:
        return KioskScreen()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # The one place that decides: whatever a key, a link or a widget asks, only quit runs.
        return action in self.ALLOWED_ACTIONS

    def on_mount(self) -> None:
        self.refresh_fleet()
        self.read_board()
        self.set_interval(1.0, self.update_view, name="kiosk-clock")
        self.set_interval(self.rotate_seconds, self.action_next_page, name="kiosk-rotate")

    # -- the fleet (screens/refresh.py): what a stale tile keeps showing ----------------

    def fleet_read(self, snapshot: FleetSnapshot) -> None:
        self.failed_at = None
        for pair, env in snapshot.envs.items():
            if env.error is None and env.health is not Health.UNKNOWN:
                self.last_good[pair] = env

    def fleet_unreadable(self, error: str) -> None:
        self.failed_at = self.failed_at or self.clock()

    def refresh_shown(self) -> None:
        self.update_view()

    def stale_since(self, pair: tuple[str, str]) -> datetime | None:
        """When a pair's data was last read, if it is stale now (None when it is live)."""
        if self.snapshot is None and self.refresh_error is None:
            return None  # nothing read yet
        env = self.snapshot.env(*pair) if self.snapshot is not None else None
        if self.refresh_error is None and (env is None or env.error is None):
            return None
        last = self.last_good.get(pair)
        if last is not None and last.fetched_at is not None:
            return last.fetched_at
        return self.failed_at or (self.snapshot.generated_at if self.snapshot else None)

    # -- the deploys: read from the store on a short cadence ---------------------------

    def read_board(self) -> None:
        self._board_timer = None
        if self.board_source is not None:
            self._board_worker()

    @work(exclusive=True, group="board", exit_on_error=False)
    async def _board_worker(self) -> None:
        assert self.board_source is not None
        try:
            board = await self.board_source()
            notes = await self.notes_source() if self.notes_source is not None else None
            self.post_message(DeployBoardRead(board, notes=notes))
        except Exception as error:
            self.post_message(DeployBoardRead(None, error_text(error)))

    def on_deploy_board_read(self, message: DeployBoardRead) -> None:
        if message.board is not None:
            self.board = message.board
        if message.notes is not None:
            self.notes = message.notes
        self.board_error = message.error
        self.board_count += 1
        self.update_view()
        if self._board_timer is None:
            self._board_timer = self.set_timer(BOARD_SECONDS, self.read_board, name="kiosk-board")

    # -- pages ---------------------------------------------------------------------------

    @property
    def page_count(self) -> int:
        return max(1, math.ceil(len(self.pairs) / self.page_shape.per_page))

    def action_next_page(self) -> None:
        """Rotate to the next page (the timer's; no key is bound to it)."""
        self.page = (self.page + 1) % self.page_count
        self.update_view()

    def lay_out(self) -> None:
        """Fit the tiles to the screen: as many tile widgets as a page holds."""
        screen = self.screen
        if not isinstance(screen, KioskScreen):
            return
        width, height = screen.size.width, screen.size.height - CHROME_HEIGHT
        layout = page_layout(len(self.pairs), width, height)
        grid = screen.query_one("#kiosk-tiles", Grid)
        if layout != self.page_shape or not grid.children:
            self.page_shape = layout
            grid.styles.grid_size_columns = layout.columns
            grid.styles.grid_size_rows = layout.rows
            grid.remove_children()
            classes = "-dense" if layout.dense else ""
            grid.mount_all(
                KioskTile(classes=classes) for _ in range(min(layout.per_page, len(self.pairs)))
            )
            self.page = min(self.page, self.page_count - 1)
        self.call_after_refresh(self.update_view)

    # -- what the screen shows -----------------------------------------------------------

    def update_view(self) -> None:
        screen = self.screen if self.screen_stack else None
        if not isinstance(screen, KioskScreen) or not screen.is_mounted:
            return
        # Composing or shutting down, the widgets may be missing: the next tick shows it.
        with contextlib.suppress(NoMatches):
            self._update(screen)

    def _update(self, screen: KioskScreen) -> None:
        now = self.clock()
        screen.query_one("#kiosk-summary", Static).update(self._summary())
        screen.query_one("#kiosk-clock", Static).update(self._clock(now))
        screen.query_one("#kiosk-age", Static).update(self._age(now))
        screen.query_one("#kiosk-page", Static).update(
            f"page {self.page + 1}/{self.page_count}" if self.page_count > 1 else ""
        )
        screen.query_one("#kiosk-ticker", Static).update(self._ticker(now))
        start = self.page * self.page_shape.per_page
        on_page = self.pairs[start : start + self.page_shape.per_page]
        for index, tile in enumerate(screen.query(KioskTile)):
            tile.display = index < len(on_page)
            if index < len(on_page):
                tile.show(self._tile_view(*on_page[index]), now, self.local_zone)

    def _tile_view(self, project: str, cluster: str, protected: bool) -> TileView:
        pair = (project, cluster)
        since = self.stale_since(pair)
        env = self.last_good.get(pair) if since is not None else None
        if env is None and self.snapshot is not None:
            env = self.snapshot.env(project, cluster)
        in_flight = self.board.in_flight if self.board is not None else {}
        return TileView(
            project,
            cluster,
            protected,
            self.looks[cluster],
            env,
            since,
            in_flight.get(pair),
            self.notes.marks.get(pair),
            self.notes.last.get(pair),
        )

    def _summary(self) -> Content:
        """How many pairs are in each health, then in each mark: ● 24 healthy  ❄ 4 frozen."""
        counts: dict[Health, int] = {}
        marks: dict[Mark, int] = {}
        for project, cluster, _ in self.pairs:
            env = self.snapshot.env(project, cluster) if self.snapshot else None
            health = env.health if env is not None else Health.UNKNOWN
            counts[health] = counts.get(health, 0) + 1
            mark = self.notes.marks.get((project, cluster))
            if mark is not None and mark.mark is not None:
                marks[mark.mark] = marks.get(mark.mark, 0) + 1
        parts: list[str | tuple[str, str]] = []
        for health, glyph in HEALTH_GLYPHS.items():
            if counts.get(health):
                words = f"{glyph} {counts[health]} {health_word(health)}"
                parts.extend([(words, HEALTH_STYLES[health]), "  "])
        for kind, glyph in MARK_GLYPHS.items():
            if marks.get(kind):
                parts.extend([(f"{glyph} {marks[kind]} {kind}", MARK_STYLES[kind]), "  "])
        return Content.assemble(*parts)

    def _clock(self, now: datetime) -> Content:
        utc = Content.assemble((clock_text(now.astimezone(UTC)), "bold"), " UTC")
        local = now.astimezone(self.local_zone)
        if local.utcoffset() == timedelta(0):
            return Content.assemble(utc, " (local time too)")
        return Content.assemble(
            utc, "  ", (clock_text(local), "bold"), f" {local.tzname() or 'local'}"
        )

    def _age(self, now: datetime) -> Content:
        if self.snapshot is None:
            age = Content.styled("no data yet", "italic $text-muted")
        else:
            seconds = (now - self.snapshot.generated_at).total_seconds()
            age = Content(f"data {format_age(seconds)} old")
        troubles: list[Content] = []
        if self.refresh_error is not None:
            troubles.append(
                Content.styled(f"✖ AWS unreachable: {self.refresh_error}", "$text-error")
            )
        elif self.snapshot is not None:
            for status in self.snapshot.clusters:
                if status.error:
                    troubles.append(
                        Content.styled(f"✖ {status.name}: {status.error}", "$text-error")
                    )
        return Content("  ").join([age, *troubles])

    def _ticker(self, now: datetime) -> Content:
        if self.board_error is not None:
            return Content.styled(f"deploys: {self.board_error}", "$text-error")
        if self.board is None or not self.board.latest:
            return Content.styled("no deploys recorded yet", "italic $text-muted")
        items = []
        for record in self.board.latest:
            glyph, style = OUTCOME_GLYPHS.get(record.state, ("?", "$text-muted"))
            items.append(
                Content.assemble(
                    (f"{glyph} ", style),
                    (f"{record.project} → {record.cluster}", "bold"),
                    f" {record.release} ",
                    (record.state.replace("_", " "), style),
                    (f" {rough_age(now - finished_at(record))} ago", "$text-muted"),
                )
            )
        return Content("   ").join([Content.styled("latest", "bold reverse"), *items])


build_kiosk = KioskApp
"""The kiosk for the CLI and the tests alike; the caller owns the fleet and the store."""
