"""The `[keymap]` table: binding ids mapped to keys, and its check against the bindings the
screens define (passed in: the core knows no screen)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from console.config.locate import closest, parts_line
from console.config.reader import Table
from console.errors import ConfigError

MODIFIERS = frozenset({"ctrl", "shift", "alt", "meta", "super", "hyper"})
EXAMPLES = 'e.g. "ctrl+d", "f5", "x" or "ctrl+d,f5"'
# A value no config holds: the first line that changes when a key is set to it is the key's.
_SPACE = re.compile(r"\s")


@dataclass(frozen=True)
class KeymapSettings:
    """Binding id -> the keys the config gives it (in the order written)."""

    keys: dict[str, tuple[str, ...]] = field(default_factory=dict)
    source: Path | None = field(default=None, compare=False)
    # Each id's path in the TOML document (`dashboard.refresh = ...` is a dotted key: two
    # tables deep; `"dashboard.refresh" = ...` one), to name its line in errors.
    spelled: dict[str, tuple[str, ...]] = field(default_factory=dict, compare=False)

    def fail(self, binding_id: str, message: str) -> NoReturn:
        """One line: `file:line: keymap.<id>: message`."""
        _fail(self.source, self.spelled.get(binding_id, (binding_id,)), binding_id, message)


@dataclass(frozen=True)
class KnownBinding:
    """A binding the screens define: its id ("" for the toolkit's own keys, which no keymap
    reaches), its default keys, what it does."""

    id: str
    keys: tuple[str, ...]
    description: str


def parse_keymap(table: Table) -> KeymapSettings:
    """`[keymap]`: each binding id (quoted, or a dotted key) to a string of keys."""
    keys: dict[str, tuple[str, ...]] = {}
    spelled: dict[str, tuple[str, ...]] = {}
    for parts, value in _entries(table.data, ()):
        binding_id = ".".join(parts)
        if binding_id in keys:
            _fail(table.source, parts, binding_id, "is given twice (quoted and as a dotted key)")
        spelled[binding_id] = parts
        keys[binding_id] = _keys(table.source, parts, binding_id, value)
    table.read.update(table.data)
    table.done()
    return KeymapSettings(keys, table.source, spelled)


def _entries(data: dict[str, Any], prefix: tuple[str, ...]) -> list[tuple[tuple[str, ...], Any]]:
    """Every (path, value) under `data`: a dotted key is a table in TOML."""
    found: list[tuple[tuple[str, ...], Any]] = []
    for name, value in data.items():
        parts = (*prefix, name)
        if isinstance(value, dict):
            found.extend(_entries(value, parts))
        else:
            found.append((parts, value))
    return found


def _keys(source: Path, parts: tuple[str, ...], binding_id: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, str):
        _fail(source, parts, binding_id, f"must be a string of keys ({EXAMPLES})")
    keys = tuple(key.strip() for key in value.split(","))
    for key in keys:
        problem = key_problem(key)
        if problem:
            _fail(source, parts, binding_id, problem)
    if len(set(keys)) != len(keys):
        _fail(source, parts, binding_id, f"{value!r} lists a key twice")
    return keys


def _fail(source: Path | None, parts: tuple[str, ...], binding_id: str, message: str) -> NoReturn:
    line = None if source is None else parts_line(source, ("keymap", *parts))
    where = "" if source is None else f"{source}:{line}: " if line is not None else f"{source}: "
    raise ConfigError(f"{where}keymap.{binding_id}: {message}")


def key_problem(key: str) -> str:
    """Why `key` is no key name as Textual spells them ("" if it may be one)."""
    if not key:
        return f"an empty key ({EXAMPLES})"
    if _SPACE.search(key):
        return f'{key!r} is not a key: a key name has no spaces ("pageup", "space"; {EXAMPLES})'
    if key.endswith("+"):
        return f'{key!r} is not a key: the + key is "plus" (and the comma "comma")'
    *modifiers, name = key.split("+")
    unknown = [modifier for modifier in modifiers if modifier not in MODIFIERS]
    if unknown or not name:
        return f"{key!r} is not a key: modifiers are {', '.join(sorted(MODIFIERS))} ({EXAMPLES})"
    return ""


def check_keymap(
    settings: KeymapSettings,
    groups: Mapping[str, Sequence[KnownBinding]],
    key_name: Callable[[str], str],
    kept: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The keymap as Textual takes it (binding id -> "key1,key2"), after checking it against
    the bindings the screens define.

    `groups`: each screen's bindings with every other binding live while it shows (the app's,
    the tables'). `key_name` spells a key as Textual does, or raises ValueError (no such key).
    `kept`: binding id -> a key no keymap may take from it (ctrl+q always quits).
    """
    known = {binding.id for group in groups.values() for binding in group if binding.id}
    mapped: dict[str, tuple[str, ...]] = {}
    for binding_id, keys in settings.keys.items():
        if binding_id not in known:
            meant = closest(binding_id, known)
            hint = f"did you mean {meant}?" if meant else "`deploy-console config keys` lists them"
            settings.fail(binding_id, f"unknown key binding ({hint})")
        mapped[binding_id] = tuple(_named(settings, binding_id, key, key_name) for key in keys)
    for binding_id, key in (kept or {}).items():
        if binding_id in mapped and key not in mapped[binding_id]:
            settings.fail(
                binding_id,
                f"must keep {key}, so that the console can always be left "
                f'(add keys to it: "{key},{",".join(mapped[binding_id])}")',
            )
    for group, bindings in groups.items():
        _check_clashes(settings, group, bindings, mapped)
    return {binding_id: ",".join(keys) for binding_id, keys in mapped.items()}


def _named(
    settings: KeymapSettings, binding_id: str, key: str, key_name: Callable[[str], str]
) -> str:
    try:
        return key_name(key)
    except ValueError as error:
        settings.fail(binding_id, f"{key!r} is not a key: {error}")


def _check_clashes(
    settings: KeymapSettings,
    group: str,
    bindings: Sequence[KnownBinding],
    mapped: Mapping[str, tuple[str, ...]],
) -> None:
    """Two bindings live together on one key because of the keymap: one would never run.
    (Keys shared by default stay shared: Escape clears a filter, else goes back.)"""
    before: dict[str, set[str]] = {}
    after: dict[str, list[KnownBinding]] = {}
    for binding in bindings:
        for key in binding.keys:
            before.setdefault(key, set()).add(binding.id)
        for key in mapped.get(binding.id, binding.keys) if binding.id else binding.keys:
            if binding not in after.setdefault(key, []):
                after[key].append(binding)
    for key, sharing in after.items():
        ids = {binding.id for binding in sharing}
        if len(sharing) < 2 or len(ids) < 2 or ids <= before.get(key, set()):
            continue
        remapped = [b for b in sharing if b.id in mapped and key in mapped[b.id]]
        first = remapped[0] if remapped else sharing[0]
        other = next(b for b in sharing if b.id != first.id)
        what = f"keymap.{other.id}" if other.id else f"{other.description} (not remappable)"
        if other.id and other.id not in mapped:
            what = f"{other.id} (its default key)"
        settings.fail(first.id, f"{key} is also {what} on the {group} screen: pick another key")
