"""How a cluster's name looks in headers and tiles: its configured colour; production a bar."""

from __future__ import annotations

from dataclasses import dataclass

from rich.style import Style
from textual.color import Color

from console.config import CLUSTER_COLOURS, ClusterConfig

# Each colour a config may name (console.config.CLUSTER_COLOURS), in a shade that reads as
# text on a dark theme and carries black or white text as a bar.
SHADES: dict[str, str] = {
    "red": "#e5484d",
    "orange": "#f76b15",
    "yellow": "#ffc53d",
    "green": "#30a46c",
    "cyan": "#00a2c7",
    "blue": "#5b7cf0",
    "purple": "#9e6ad8",
    "magenta": "#d6409f",
    "grey": "#8b8d98",
}
assert set(SHADES) == set(CLUSTER_COLOURS)
PROTECTED_COLOUR = "red"


@dataclass(frozen=True)
class ClusterLook:
    """A protected cluster's name is a bar in its colour (red unless set), bold, with the
    lock beside it: without colour the lock still says it. Another cluster's name is in its
    colour, or in the theme's when it has none (`plain`)."""

    shade: str | None
    bar: bool

    @property
    def plain(self) -> bool:
        return self.shade is None

    @property
    def style(self) -> str:
        """A Content style: `bold #000000 on #e5484d`, `bold #30a46c`, or `bold`."""
        if self.shade is None:
            return "bold"
        if self.bar:
            ink = Color.parse(self.shade).get_contrast_text(1.0).hex.lower()
            return f"bold {ink} on {self.shade}"
        return f"bold {self.shade}"

    @property
    def rich_style(self) -> Style:
        return Style.parse(self.style)


def cluster_look(cluster: ClusterConfig) -> ClusterLook:
    colour = cluster.colour or (PROTECTED_COLOUR if cluster.protected else None)
    return ClusterLook(SHADES[colour] if colour else None, cluster.protected)
