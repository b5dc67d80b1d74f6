"""A deploy's steps, one line each: a glyph for the state, the step, its time, its detail."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from textual.content import Content
from textual.widgets import Static

from console.model import Step, StepState
from screens.widgets.format import format_age, shorten

# Readable without colour: the colour only repeats what the glyph says.
STEP_GLYPHS: dict[StepState | None, str] = {
    None: "·",
    StepState.RUNNING: "⟳",
    StepState.SUCCEEDED: "✔",
    StepState.FAILED: "✖",
    StepState.SKIPPED: "-",
}
STEP_STYLES: dict[StepState | None, str] = {
    None: "$text-disabled",
    StepState.RUNNING: "bold $text-accent",
    StepState.SUCCEEDED: "$text-success",
    StepState.FAILED: "bold $text-error",
    StepState.SKIPPED: "$text-muted",
}
NAME_WIDTH = 14
DETAIL_WIDTH = 24


def step_seconds(view: StepView, now: datetime) -> str:
    if view.seconds is not None:
        return f"{view.seconds:.1f}s"
    if view.state is StepState.RUNNING and view.started_at is not None:
        return format_age((now - view.started_at).total_seconds())
    return ""


def step_line(view: StepView, now: datetime) -> Content:
    style = STEP_STYLES[view.state]
    word = "waiting" if view.state is None else str(view.state)
    return Content.assemble(
        (STEP_GLYPHS[view.state], style),
        " ",
        (str(view.step).ljust(NAME_WIDTH), "bold" if view.state is StepState.RUNNING else ""),
        (word.ljust(10), style),
        step_seconds(view, now).rjust(7),
        "  ",
        (shorten(view.detail, DETAIL_WIDTH), "$text-muted"),
    )


@dataclass
class StepView:
    """One step as the deploy screen shows it; `state` None = not started (yet)."""

    step: Step
    state: StepState | None = None
    started_at: datetime | None = None
    seconds: float | None = None
    detail: str = ""

    @property
    def finished(self) -> bool:
        return self.state is not None and self.state is not StepState.RUNNING


class StepList(Static):
    """Set `steps` (in order) and a clock reading; the lines follow."""

    DEFAULT_CSS = """
    StepList {
        height: auto;
        padding: 0 1;
    }
    """

    def show(self, steps: Iterable[StepView], now: datetime) -> None:
        self.update(Content("\n").join(step_line(view, now) for view in steps))
