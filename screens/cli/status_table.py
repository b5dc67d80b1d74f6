"""The `status` command's matrix as a Rich table, for people at a terminal."""

from __future__ import annotations

from rich.console import Console
from rich.text import Text

from console.model import FleetSnapshot, Health
from screens.cli.tables import out, print_table
from screens.widgets.format import health_word

GLYPHS = {
    Health.HEALTHY: ("●", "green"),
    Health.DEGRADED: ("◐", "yellow"),
    Health.DOWN: ("✖", "red"),
    Health.EMPTY: ("○", "dim"),
    Health.UNKNOWN: ("?", "magenta"),
}


def print_status(
    snapshot: FleetSnapshot,
    projects: tuple[str, ...] | None = None,
    clusters: tuple[str, ...] | None = None,
    console: Console | None = None,
) -> None:
    """The matrix as a table (a Rich one at a terminal, plain columns in a pipe), then each
    shown cluster's error."""
    shown = [c for c in snapshot.clusters if clusters is None or c.name in clusters]
    header = ["project"]
    header += [f"{c.name} (protected)" if c.protected else c.name for c in shown]
    rows: list[list[str | Text]] = []
    shown_pairs = {
        (p, c.name) for p in snapshot.projects for c in shown if projects is None or p in projects
    }
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
        rows.append([Text(project, style="bold"), *cells])
    console = console or out()
    title = f"fleet at {snapshot.generated_at:%Y-%m-%d %H:%M:%S} UTC"
    print_table(header, rows, title=title, console=console)
    for cluster in shown:
        if cluster.error:
            console.print(Text(f"{cluster.name}: {cluster.error}", style="red"))
    for (project, cluster_name), env in snapshot.envs.items():  # (dns) a record gone astray
        if env.dns is not None and env.dns.finding and (project, cluster_name) in shown_pairs:
            line = f"{project} {cluster_name}: DNS {env.dns.name}: {env.dns.finding}"
            console.print(Text(line, style="red"), soft_wrap=True)
