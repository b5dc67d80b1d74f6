"""Where a key stands in a config file: its line number, found with tomlkit (tomllib gives
none), and the valid key closest to a mistyped one."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.exceptions import TOMLKitError

# A value no config holds: the first line that changes when a key is set to it is the key's.
_MARK = "\x00deploy-console: here\x00"
_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def path_parts(key_path: str) -> list[str | int]:
    """`clusters[2].ssh.port` -> ["clusters", 2, "ssh", "port"]."""
    return [int(index) if index else name for name, index in _PART.findall(key_path)]


def key_line(source: Path, key_path: str) -> int | None:
    """The line (from 1) where `key_path` is written in `source`; None when the file cannot
    be read or the key is not found in it (a config built in memory, a file since changed)."""
    return parts_line(source, path_parts(key_path))


def parts_line(source: Path, parts: Sequence[str | int]) -> int | None:
    """key_line for a path already split (a quoted key may hold dots: `"deploy.open"`)."""
    try:
        text = source.read_text(encoding="utf-8")
        document = tomlkit.parse(text)
        node: Any = document
        for part in parts[:-1]:
            node = node[part]
        last = parts[-1]
        # A table is found by its first key: marking a whole table moves tomlkit's layout.
        while isinstance(target := node[last], dict) and target:
            node, last = target, next(iter(target))
        node[last] = _MARK
        marked = document.as_string()
    except (OSError, UnicodeDecodeError, TOMLKitError, LookupError, TypeError, ValueError):
        return None
    for number, (before, after) in enumerate(
        zip(text.splitlines(), marked.splitlines(), strict=False), 1
    ):
        if before != after:
            return number
    return None


def closest(word: str, choices: Iterable[str]) -> str | None:
    """The choice a typo most likely meant, if one is close enough."""
    found = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return found[0] if found else None
