"""Dashboard timings, headless: first frame with data, one refresh, key press -> repaint.

Runs the real app (`build_app`) with `run_test()` against a world in another process (give
it the config `deploy-console world --write-config` wrote), so the AWS endpoint never shares
the UI's GIL, as a real one would not.

A frame is a compositor update: Textual calls `App.post_display_hook()` after each one. Keys
go in the way a terminal driver delivers them (`driver.send_message`), not through Pilot,
whose waits (~63 ms a key) would hide the latency being measured.

    .venv/bin/python -m tests.bench.ui_timing --config WORLD.toml [--presses 50]

Prints a human summary on stderr and one JSON object on the last stdout line.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from textual import events
from textual.css.query import NoMatches

from console.config import load_config
from console.fleet.inventory import Fleet
from console.fleet.process import ProcessFleet

TERMINAL_SIZE = (160, 48)
LATENCY_GOAL_MS = 50.0
# The event loop held this long is a stall worth recording.
STALL_SECONDS = 0.025
# A slow moment this close to the new snapshot's display is the snapshot being applied.
END_WINDOW_SECONDS = 0.5
# Between key presses with no refresh in flight (a quick typist).
IDLE_GAP_SECONDS = 0.05
# Give up on any single wait after this long: a hung app must not hang the bench.
WAIT_LIMIT_SECONDS = 600.0


@dataclass
class UiFigures:
    projects: int
    clusters: int
    terminal: str
    first_frame_seconds: float
    refresh_seconds: list[float] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    idle_latencies_ms: list[float] = field(default_factory=list)
    presses_outside_refresh: int = 0
    frames: int = 0
    # The slow moments: (milliseconds, seconds into the refresh, whether it touched the
    # moment the new snapshot was applied). Stalls: the event loop did not run that long.
    slow_presses: list[tuple[float, float, bool]] = field(default_factory=list)
    stalls: list[tuple[float, float, bool]] = field(default_factory=list)
    stalled_fraction: float = 0.0
    # Python's full (generation 2) garbage collections while presses were timed: each one
    # stops every thread, the event loop's included.
    full_collections_ms: list[float] = field(default_factory=list)

    def percentile(self, fraction: float, idle: bool = False) -> float:
        ordered = sorted(self.idle_latencies_ms if idle else self.latencies_ms)
        if not ordered:
            return float("nan")
        # Nearest rank: the smallest value with at least `fraction` of them at or below it.
        return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]

    def summary(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(
            refresh_median_seconds=statistics.median(self.refresh_seconds),
            latency_p50_ms=self.percentile(0.50),
            latency_p95_ms=self.percentile(0.95),
            latency_max_ms=max(self.latencies_ms),
            idle_p50_ms=self.percentile(0.50, idle=True),
            idle_p95_ms=self.percentile(0.95, idle=True),
            idle_max_ms=max(self.idle_latencies_ms),
            latency_goal_ms=LATENCY_GOAL_MS,
        )
        return data


class FrameClock:
    """Times of the frames the app composed, with what the matrix showed at each."""

    def __init__(self) -> None:
        self.frames: list[tuple[float, int, int]] = []  # (time, refreshes done, cursor row)
        self.new_frame = asyncio.Event()

    def record(self, refreshes: int, cursor_row: int) -> None:
        self.frames.append((time.perf_counter(), refreshes, cursor_row))
        self.new_frame.set()

    async def first(self, after: float, predicate: Any) -> float:
        """The time of the first frame after `after` for which predicate(refreshes, row)."""
        deadline = time.perf_counter() + WAIT_LIMIT_SECONDS
        seen = 0
        while True:
            for moment, refreshes, row in self.frames[seen:]:
                if moment >= after and predicate(refreshes, row):
                    return moment
            seen = len(self.frames)
            self.new_frame.clear()
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                raise TimeoutError("no such frame within the wait limit")
            try:
                await asyncio.wait_for(self.new_frame.wait(), timeout=remaining)
            except TimeoutError:
                raise TimeoutError("no such frame within the wait limit") from None

    def shown_times(self) -> list[float]:
        """When each refresh's snapshot first appeared on screen."""
        shown: list[float] = []
        previous = 0
        for moment, refreshes, _row in self.frames:
            if refreshes > previous:
                shown.append(moment)
                previous = refreshes
        return shown


async def until(condition: Any) -> None:
    """Wait (polling every millisecond) until condition() is true."""
    deadline = time.perf_counter() + WAIT_LIMIT_SECONDS
    while not condition():
        if time.perf_counter() > deadline:
            raise TimeoutError("condition not met within the wait limit")
        await asyncio.sleep(0.001)


async def watch_loop(stalls: list[tuple[float, float]], period: float = 0.005) -> None:
    """Record (start, seconds) whenever the event loop was held far longer than asked."""
    while True:
        before = time.perf_counter()
        await asyncio.sleep(period)
        late = time.perf_counter() - before - period
        if late > STALL_SECONDS:
            stalls.append((before, late))


def place(begin: float, end: float, windows: list[tuple[float, float]]) -> tuple[float, bool]:
    """(seconds into its refresh, whether it overlaps the snapshot being applied) of a span.

    Applying a snapshot (building it from the responses, then updating the cells) is the
    last stretch before it shows: a span ending within END_WINDOW_SECONDS before that frame,
    or running into it, counts as part of it.
    """
    into = float("nan")
    for start, shown in windows:
        if start <= begin <= shown:
            into = begin - start
        if begin <= shown and end >= shown - END_WINDOW_SECONDS:
            return into, True
    return into, False


async def measure(
    config_path: Path, presses: int, refreshes: int, in_process: bool = False
) -> UiFigures:
    from screens.app import build_app

    config = load_config(config_path)
    started = time.perf_counter()
    # The console's own choice (a worker process), or the in-process Fleet as a baseline.
    fleet: Fleet | ProcessFleet = Fleet(config) if in_process else ProcessFleet(config)
    app = build_app(config, fleet, auto_refresh=False)
    clock = FrameClock()

    def on_frame() -> None:
        try:
            row = app.dashboard.matrix.cursor_coordinate.row
        except (IndexError, AssertionError, NoMatches):  # the dashboard is not mounted yet
            row = -1
        clock.record(app.refresh_count, row)

    # An instance attribute: Textual calls self.post_display_hook() after every frame.
    app.post_display_hook = on_frame  # type: ignore[method-assign]

    def send_key(key: str) -> None:
        driver = app._driver  # the terminal driver's own way in, as for a real key press
        assert driver is not None
        event = events.Key(key, key if len(key) == 1 else None)
        event.set_sender(app)
        driver.send_message(event)

    collections: list[tuple[int, float]] = []  # (generation, milliseconds)
    collection_started = [0.0]

    def on_collection(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collection_started[0] = time.perf_counter()
        else:
            elapsed = (time.perf_counter() - collection_started[0]) * 1000
            collections.append((info["generation"], elapsed))

    refresh_starts: list[float] = [started]
    raw_stalls: list[tuple[float, float]] = []
    raw_slow: list[tuple[float, float]] = []  # (pressed, repainted)
    try:
        async with app.run_test(size=TERMINAL_SIZE):
            watcher = asyncio.create_task(watch_loop(raw_stalls))
            first_frame = await clock.first(started, lambda done, _row: done >= 1)
            matrix = app.dashboard.matrix
            if app.refresh_error:
                raise RuntimeError(f"the first refresh failed: {app.refresh_error}")
            rows = matrix.row_count
            loading = [
                (project, cluster.name)
                for project in matrix.visible_projects
                for cluster in config.clusters
                if cluster.name in config.project(project).clusters
                and matrix.cell_plain(project, cluster.name).startswith("…")
            ]
            if rows != len(config.projects) or loading:
                raise RuntimeError(
                    f"first frame: {rows} rows of {len(config.projects)}, "
                    f"{len(loading)} cells still loading"
                )
            figures = UiFigures(
                projects=len(config.projects),
                clusters=len(config.clusters),
                terminal=f"{TERMINAL_SIZE[0]}x{TERMINAL_SIZE[1]}",
                first_frame_seconds=first_frame - started,
            )

            async def arrow() -> tuple[float, float]:
                """Move the cursor one row (down, up at the bottom): (pressed, repainted)."""
                row = matrix.cursor_coordinate.row
                key, target = ("down", row + 1) if row < matrix.row_count - 1 else ("up", row - 1)
                pressed = time.perf_counter()
                send_key(key)
                repainted = await clock.first(pressed, lambda _c, r, t=target: r == t)
                return pressed, repainted

            async def cursor_home() -> None:
                # The same walk in both phases: down from the top, scrolling past the screen.
                if matrix.cursor_coordinate.row != 0:
                    matrix.move_cursor(row=0, column=1, animate=False)
                    await clock.first(time.perf_counter(), lambda _c, r: r == 0)

            # The baseline: the same key presses with no refresh in flight.
            await cursor_home()
            gc.callbacks.append(on_collection)
            for _ in range(presses):
                pressed, repainted = await arrow()
                figures.idle_latencies_ms.append((repainted - pressed) * 1000)
                await asyncio.sleep(IDLE_GAP_SECONDS)

            # One refresh: r pressed -> the frame showing the new snapshot.
            done = app.refresh_count
            refresh_starts.append(time.perf_counter())
            send_key("r")
            await clock.first(refresh_starts[-1], lambda count, _row: count > done)
            first_refresh = clock.shown_times()[-1] - refresh_starts[-1]
            gap = max(IDLE_GAP_SECONDS, first_refresh / max(1, presses // refreshes))

            # Key press -> repaint while a refresh is in flight: arrows spread over refreshes.
            await cursor_home()
            while len(figures.latencies_ms) < presses:
                if not app.refreshing:
                    refresh_starts.append(time.perf_counter())
                    send_key("r")
                    await until(lambda: app.refreshing)
                in_refresh = app.refreshing
                pressed, repainted = await arrow()
                if in_refresh:
                    figures.latencies_ms.append((repainted - pressed) * 1000)
                    if figures.latencies_ms[-1] > LATENCY_GOAL_MS:
                        raw_slow.append((pressed, repainted))
                else:
                    figures.presses_outside_refresh += 1
                await asyncio.sleep(gap)
            # Let the last refresh finish before the app (and its workers) close.
            await until(lambda: not app.refreshing)
            await clock.first(0.0, lambda count, _row: count >= app.refresh_count)
            watcher.cancel()
            gc.callbacks.remove(on_collection)
            figures.full_collections_ms = [ms for generation, ms in collections if generation == 2]
            figures.frames = len(clock.frames)
            windows = list(zip(refresh_starts, clock.shown_times(), strict=False))
            figures.refresh_seconds = [shown - start for start, shown in windows[1:]]
            figures.slow_presses = [
                ((end - begin) * 1000, *place(begin, end, windows)) for begin, end in raw_slow
            ]
            # Only the refreshes measured, not the first one (it overlaps the app's start-up).
            measured = windows[1:]
            figures.stalls = [
                (late * 1000, *place(begin, begin + late, measured))
                for begin, late in raw_stalls
                if measured and begin >= measured[0][0]
            ]
            figures.stalled_fraction = (
                sum(ms for ms, *_ in figures.stalls)
                / 1000
                / max(1e-9, sum(shown - start for start, shown in measured))
            )
            return figures
    finally:
        if on_collection in gc.callbacks:
            gc.callbacks.remove(on_collection)
        fleet.close()


def from_summary(data: dict[str, Any]) -> UiFigures:
    """The figures back from the JSON line `main` prints."""
    names = {item.name for item in fields(UiFigures)}
    return UiFigures(**{key: value for key, value in data.items() if key in names})


def report(figures: UiFigures) -> str:
    data = figures.summary()
    goal = "meets" if data["latency_p95_ms"] <= LATENCY_GOAL_MS else "MISSES"
    lines = [
        f"dashboard at {figures.projects}x{figures.clusters}, headless {figures.terminal}:",
        f"  first frame with data    {figures.first_frame_seconds:6.2f} s (app start -> all "
        f"{figures.projects} rows shown with data)",
        f"  one refresh (r -> shown) {data['refresh_median_seconds']:6.2f} s median of "
        f"{len(figures.refresh_seconds)}",
        f"  key -> repaint in a refresh: p50 {data['latency_p50_ms']:.1f} ms, "
        f"p95 {data['latency_p95_ms']:.1f} ms, max {data['latency_max_ms']:.1f} ms over "
        f"{len(figures.latencies_ms)} presses ({goal} the goal p95 <= {LATENCY_GOAL_MS:.0f} ms)",
        f"  the same presses, no refresh in flight: p50 {data['idle_p50_ms']:.1f} ms, "
        f"p95 {data['idle_p95_ms']:.1f} ms, max {data['idle_max_ms']:.1f} ms",
    ]
    lines += [f"  {line}" for line in where(figures)]
    lines.append(
        f"  the event loop was held > {STALL_SECONDS * 1000:.0f} ms at a time for "
        f"{figures.stalled_fraction:.0%} of the refreshes' time"
    )
    if figures.full_collections_ms:
        lines.append(
            f"  full garbage collections while timing: {len(figures.full_collections_ms)}, "
            f"longest {max(figures.full_collections_ms):.0f} ms, "
            f"{sum(figures.full_collections_ms) / 1000:.1f} s in all"
        )
    return "\n".join(lines)


def where(figures: UiFigures) -> list[str]:
    """Where in the refreshes the slow presses and the event loop's stalls fell."""
    lines: list[str] = []
    for label, items in (("slow presses", figures.slow_presses), ("loop stalls", figures.stalls)):
        if not items:
            continue
        threshold = LATENCY_GOAL_MS if label == "slow presses" else STALL_SECONDS * 1000
        applying = [ms for ms, _into, at_apply in items if at_apply]
        fetching = [ms for ms, _into, at_apply in items if not at_apply]
        lines.append(
            f"{label} (> {threshold:.0f} ms): {len(fetching)} while the responses came in"
            + (f" (longest {max(fetching):.0f} ms)" if fetching else "")
            + f", {len(applying)} while a snapshot was applied"
            + (f" (longest {max(applying):.0f} ms)" if applying else "")
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, required=True, help="a config pointing at a world")
    parser.add_argument("--presses", type=int, default=100)
    parser.add_argument(
        "--in-process", action="store_true", help="refresh in the UI's process (the baseline)"
    )
    parser.add_argument("--refreshes", type=int, default=3, help="spread the presses over N")
    args = parser.parse_args()
    figures = asyncio.run(
        measure(args.config, args.presses, args.refreshes, in_process=args.in_process)
    )
    print(report(figures), file=sys.stderr)
    print(json.dumps(figures.summary()))


if __name__ == "__main__":
    main()
