"""The listing commands' human tables: Rich ones that fit a terminal, plain columns in a pipe."""

from __future__ import annotations

from collections.abc import Sequence

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

Cell = str | Text


class TableConsole(Console):
    """Rich exits 1 on a closed pipe; screens.main ends every command alike (quietly, 0)."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        raise BrokenPipeError


def out() -> TableConsole:
    """The console of stdout: a terminal's width (COLUMNS when set), colour only at a TTY."""
    return TableConsole(highlight=False)


def plain_lines(header: Sequence[str], rows: Sequence[Sequence[Cell]]) -> list[str]:
    """Columns two spaces apart at their natural width, no colour, no trailing spaces: what
    `grep`, `cut` and `awk` read (a value is never cut)."""
    texts = [[c.plain if isinstance(c, Text) else c for c in row] for row in [header, *rows]]
    widths = [max(len(row[i]) for row in texts) for i in range(len(header))]
    return [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in texts
    ]


def print_table(
    header: Sequence[str],
    rows: Sequence[Sequence[Cell]],
    *,
    title: str | None = None,
    console: Console | None = None,
    no_wrap: int = 1,
) -> None:
    """The table on `console` (stdout's by default). At a terminal, a Rich table within its
    width (the first `no_wrap` columns kept whole, the others folded); elsewhere plain columns
    (the title, if any, on a line of its own)."""
    console = console or out()
    if not console.is_terminal:
        lines = ([title] if title else []) + plain_lines(header, rows)
        console.file.write("".join(line + "\n" for line in lines))
        console.file.flush()
        return
    table = Table(
        title=title, box=box.SIMPLE_HEAD, header_style="bold", pad_edge=False, show_edge=False
    )
    for index, name in enumerate(header):
        table.add_column(name, no_wrap=index < no_wrap, overflow="fold")
    for row in rows:
        table.add_row(*row)
    console.print(table)
