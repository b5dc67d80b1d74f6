"""Every non-ASCII character the UI can put on screen: what the web view's fonts must cover."""

from __future__ import annotations

import ast
import inspect
import sys
from collections.abc import Iterable, Iterator
from functools import cache
from pathlib import Path
from types import ModuleType

import textual
from textual._border import BORDER_CHARS
from textual.keys import KEY_DISPLAY_ALIASES
from textual.scrollbar import ScrollBarRender

from screens.widgets.format import (
    HEALTH_GLYPHS,
    LOCK,
    MARK_GLYPHS,
    NOT_DEPLOYED_GLYPH,
)

SCREENS = Path(__file__).resolve().parent.parent
# Textual's parts every screen may show whatever the UI imports: notifications, tooltips, the
# command palette, the loading indicator, scrollbars, borders and the footer's key names.
TEXTUAL_ALWAYS = (
    "textual.widgets._toast",
    "textual.widgets._tooltip",
    "textual.widgets._loading_indicator",
    "textual.command",
    "textual.scrollbar",
    "textual.renderables.bar",
    "textual.widgets._footer",
)
# Rich's mark of a cut text (overflow="ellipsis").
RICH_ELLIPSIS = "…"


def ui_glyphs() -> frozenset[str]:
    """The non-ASCII characters of the UI's glyph tables, of every string in screens/ (code and
    styles, not docstrings or comments), and of the Textual parts it shows."""
    return _tables() | _in_screens() | _textual_glyphs()


def _tables() -> frozenset[str]:
    glyphs = [*HEALTH_GLYPHS.values(), *MARK_GLYPHS.values(), LOCK, NOT_DEPLOYED_GLYPH]
    return _non_ascii(glyphs)


@cache
def _in_screens() -> frozenset[str]:
    # The command line's own output (screens/cli) goes to a terminal, never into the app.
    sources = sorted(path for path in SCREENS.rglob("*.py") if path.parent.name != "cli")
    styles = sorted(SCREENS.rglob("*.tcss"))
    found = _non_ascii(literal for path in sources for literal in _literals(path.read_text()))
    return found | _non_ascii(path.read_text() for path in styles)


@cache
def _textual_glyphs() -> frozenset[str]:
    edges = [char for rows in BORDER_CHARS.values() for row in rows for char in row]
    bars = [*ScrollBarRender.VERTICAL_BARS, *ScrollBarRender.HORIZONTAL_BARS]
    keys = list(KEY_DISPLAY_ALIASES.values())
    modules = {*_imported_textual_modules(), *TEXTUAL_ALWAYS}
    literals = (
        literal
        for name in sorted(modules)
        for literal in _literals(inspect.getsource(_module(name)))
    )
    return _non_ascii([*edges, *bars, *keys, RICH_ELLIPSIS]) | _non_ascii(literals)


def _imported_textual_modules() -> Iterator[str]:
    """The modules of every Textual class screens/ imports, and of the classes it extends."""
    for path in SCREENS.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.ImportFrom) and (node.module or "").startswith("textual")):
                continue
            for alias in node.names:
                thing = getattr(_module(node.module or ""), alias.name, None)
                if inspect.isclass(thing):
                    yield from _textual_bases(thing)


def _textual_bases(cls: type) -> Iterator[str]:
    for base in cls.__mro__:
        if base.__module__.split(".")[0] == textual.__name__:
            yield base.__module__


def _module(name: str) -> ModuleType:
    __import__(name)
    return sys.modules[name]


def _literals(source: str) -> Iterator[str]:
    """The string constants of a module's code, without its docstrings."""
    tree = ast.parse(source)
    docstrings = {
        id(body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and (body := node.body)
        and isinstance(body[0], ast.Expr)
        and isinstance(body[0].value, ast.Constant)
    }
    for node in ast.walk(tree):
        if not isinstance(node, ast.Constant) or id(node) in docstrings:
            continue
        if isinstance(node.value, str):
            yield node.value


def _non_ascii(texts: Iterable[str]) -> frozenset[str]:
    """The printable non-ASCII characters of `texts` (not spaces or control characters)."""
    return frozenset(
        char for text in texts for char in text if ord(char) > 0x7E and char.isprintable()
    )
