"""The dashboard's `:` prompt: type a project or cluster name, see the best match, Enter goes."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.content import Content
from textual.message import Message
from textual.widgets import Input, Static

from console.fleet.jump import Jump, resolve

PLACEHOLDER = "project, cluster, or project/cluster"


def hint(jump: Jump | None, typed: str, *, submitted: bool = False) -> Content:
    """What the line says beside what was typed: the match Enter goes to, or that none does."""
    if jump is None:
        return Content.styled("Enter jumps · Escape cancels", "$text-muted")
    if jump.found:
        parts: list[str | tuple[str, str]] = [("→ ", "$text-muted"), (jump.describe(), "bold")]
        if jump.others:
            parts.append((f"  also {', '.join(jump.others)}", "$text-muted"))
        return Content.assemble(*parts)
    closest = ", ".join(jump.closest)
    style = "bold $text-error" if submitted else "$text-warning"
    # Content, not markup: what a person typed may hold square brackets.
    return Content.assemble(
        (f"nothing matches {typed.strip()!r}", style),
        (f" · closest: {closest}" if closest else "", "$text-muted"),
    )


class JumpLine(Horizontal):
    """`:` then an Input and a hint of where Enter goes; hidden until `open()`."""

    DEFAULT_CSS = """
    JumpLine {
        display: none;
        height: 1;
        padding: 0 1;
        background: $panel;
    }
    JumpLine > #jump-colon { width: 2; color: $text-accent; text-style: bold; }
    JumpLine > Input {
        width: 1fr;
        max-width: 34;
        height: 1;
        border: none;
        padding: 0;
        background: $panel;
    }
    JumpLine > Input:focus { border: none; background: $panel; }
    JumpLine > #jump-hint { width: 1fr; padding: 0 0 0 1; }
    """

    class Chosen(Message):
        """Enter on a name that matches: where to go (None: Enter on nothing typed)."""

        def __init__(self, jump: Jump | None) -> None:
            super().__init__()
            self.jump = jump

    def __init__(
        self,
        projects: tuple[str, ...],
        clusters: tuple[str, ...],
        *,
        id: str | None = None,
    ) -> None:
        super().__init__(id=id)
        self.projects = projects
        self.clusters = clusters

    def compose(self) -> ComposeResult:
        yield Static(":", id="jump-colon")
        yield Input(placeholder=PLACEHOLDER, id="jump", select_on_focus=False)
        yield Static(hint(None, ""), id="jump-hint")

    @property
    def input(self) -> Input:
        return self.query_one("#jump", Input)

    @property
    def hint_text(self) -> str:
        """The hint as plain text (for tests)."""
        visual = self.query_one("#jump-hint", Static).visual
        return visual.plain if isinstance(visual, Content) else str(visual)

    @property
    def is_open(self) -> bool:
        return bool(self.display)

    def open(self) -> None:
        """Show the line, empty, with the keys going to it."""
        self.input.value = ""
        self.query_one("#jump-hint", Static).update(hint(None, ""))
        self.display = True
        # set_focus, not focus(): the next key typed must already land here.
        self.screen.set_focus(self.input)

    def close(self) -> None:
        self.display = False

    def resolve(self, typed: str) -> Jump | None:
        return resolve(typed, self.projects, self.clusters)

    @on(Input.Changed, "#jump")
    def _changed(self, event: Input.Changed) -> None:
        event.stop()
        self.query_one("#jump-hint", Static).update(hint(self.resolve(event.value), event.value))

    @on(Input.Submitted, "#jump")
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        jump = self.resolve(event.value)
        if jump is None or jump.found:
            self.post_message(self.Chosen(jump))
        else:
            # Stay open with the typo in place: the line says what is closest.
            self.query_one("#jump-hint", Static).update(hint(jump, event.value, submitted=True))
