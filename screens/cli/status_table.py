"""The `status` command's matrix as a Rich table, for people at a terminal."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from console.model import FleetSnapshot, Health
from screens.widgets.format import health_word

GLYPHS = {
    Health.HEALTHY: ("●", "green"),
    Health.DEGRADED: ("◐", "yellow"),
    Health.DOWN: ("✖", "red"),
    Health.EMPTY: ("○", "dim"),
    Health.UNKNOWN: ("?", "magenta"),
}


class _Console(Console):
    """Rich exits 1 on a closed pipe; screens.main ends every command alike (quietly, 0)."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        raise BrokenPipeError


def print_status(
    snapshot: FleetSnapshot,
    projects: tuple[str, ...] | None = None,
    clusters: tuple[str, ...] | None = None,
) -> None:
    shown = [c for c in snapshot.clusters if clusters is None or c.name in clusters]
    table = Table(title=f"fleet at {snapshot.generated_at:%Y-%m-%d %H:%M:%S} UTC")
    table.add_column("project", style="bold", no_wrap=True)
    for cluster in shown:
        table.add_column(f"{cluster.name} (protected)" if cluster.protected else cluster.name)
    for project in snapshot.projects:
        if projects is not None and project not in projects:
            continue
        cells: list[Text] = []
        for cluster in shown:
            env = snapshot.env(project, cluster.name)
            if env is None:
                cells.append(Text("·", style="dim"))
                continue
            glyph, colour = GLYPHS[env.health]
            versions = env.versions
            version = versions[0] if versions else ""
            if len(versions) > 1:
                version += f"+{len(versions) - 1}"
            cell = Text(f"{glyph} ", style=colour)
            # The TUI's words: "no instances" (not the JSON's "empty"), with no 0/0 after it.
            counts = "" if env.health is Health.EMPTY else f"{env.serving_count}/{env.total_count}"
            words = [health_word(env.health), version, counts]
            cell.append(" ".join(word for word in words if word))
            cells.append(cell)
        table.add_row(project, *cells)
    console = _Console()
    console.print(table)
    for cluster in shown:
        if cluster.error:
            console.print(Text(f"{cluster.name}: {cluster.error}", style="red"))
