"""The config's `[keymap]` checked against the screens' bindings, as Textual applies it, and
every binding with its keys in effect (`deploy-console config keys`)."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from textual.binding import Binding
from textual.keys import (
    KEY_TO_UNICODE_NAME,
    REPLACED_KEYS,
    Keys,
    _character_to_key,
    format_key,
)

from console.config import Config
from console.config.keymap import KnownBinding, check_keymap
from console.config.locate import closest
from screens.keys import KEYMAP

# The namespaces whose keys are live under every screen's own (the app's, the tables').
SHARED = ("app", "table")
# Screens of their own app: nothing else is live with them.
ALONE = ("kiosk",)
# Keys Textual binds itself on every screen of the console: no keymap reaches them.
TEXTUAL_KEYS = (
    KnownBinding("", ("ctrl+p",), "the command palette"),
    KnownBinding("", ("ctrl+c",), "copy (or the reminder of ctrl+q)"),
    KnownBinding("", ("tab",), "focus next"),
    KnownBinding("", ("shift+tab",), "focus previous"),
)
# A binding id -> the key no keymap takes from it: ctrl+q always quits.
KEPT = {"app.quit": "ctrl+q"}
_NAMED = frozenset(
    key.value.rpartition("+")[2] for key in Keys if not key.value.startswith("<")
) - {"ctrl-at"}


def textual_key(key: str) -> str:
    """`key` as Textual spells it ("?" -> "question_mark", "ctrl+/" -> "ctrl+slash");
    ValueError saying why for a name Textual has no key for."""
    *modifiers, name = key.split("+")
    if len(name) == 1:
        if not name.isprintable() or name.isspace():
            raise ValueError('not a printable character (e.g. "x", "f5", "space")')
        return "+".join([*modifiers, _character_to_key(name)])
    if name not in _NAMED and not _names_a_character(name):
        meant = closest(name.lower(), _NAMED)
        raise ValueError(
            f"Textual has no key {name!r}" + (f" (did you mean {meant}?)" if meant else "")
        )
    return key


def _names_a_character(name: str) -> bool:
    """Whether Textual names a character so: "question_mark", "slash", "comma"."""
    original = REPLACED_KEYS.get(name, name)  # "slash" is Unicode's "solidus"
    unicode_name = KEY_TO_UNICODE_NAME.get(original, original.replace("_", " "))
    try:
        character = unicodedata.lookup(unicode_name)
    except KeyError:
        return False
    return _character_to_key(character) == name


def _known(bindings: list[Binding]) -> list[KnownBinding]:
    return [
        KnownBinding(b.id or "", tuple(key.strip() for key in b.key.split(",")), b.description)
        for b in bindings
    ]


def _bindings(namespace: str) -> list[Binding]:
    return [b for b in KEYMAP[namespace] if isinstance(b, Binding)]


def binding_groups() -> dict[str, list[KnownBinding]]:
    """Each screen's bindings with every binding live while it shows."""
    shared = [known for name in SHARED for known in _known(_bindings(name))]
    groups: dict[str, list[KnownBinding]] = {}
    for namespace in KEYMAP:
        if namespace in ALONE:
            groups[namespace] = _known(_bindings(namespace))
        elif namespace not in SHARED:
            groups[namespace] = [*_known(_bindings(namespace)), *shared, *TEXTUAL_KEYS]
    return groups


def config_keymap(config: Config) -> dict[str, str]:
    """The config's keymap as App.set_keymap takes it; ConfigError (one line naming the file,
    line and binding) for an unknown binding, a key Textual has no name for, or a clash."""
    return check_keymap(config.keymap, binding_groups(), textual_key, KEPT)


@dataclass(frozen=True)
class BindingLine:
    """One binding as `config keys` lists it."""

    id: str
    keys: str
    where: str
    description: str
    default: str

    @property
    def remapped(self) -> bool:
        return self.keys != self.default


def binding_lines(config: Config) -> list[BindingLine]:
    """Every binding id once, in the help's order, with its keys in effect under `config`."""
    keymap = config_keymap(config)
    found: dict[str, BindingLine] = {}
    for namespace in KEYMAP:
        for binding in _bindings(namespace):
            if not binding.id:
                continue
            line = found.get(binding.id)
            if line is not None:
                found[binding.id] = BindingLine(
                    line.id, line.keys, f"{line.where},{namespace}", line.description, line.default
                )
                continue
            keys = keymap.get(binding.id, binding.key)
            found[binding.id] = BindingLine(
                binding.id, keys, namespace, binding.description, binding.key
            )
    return list(found.values())


def shown_key(keymap: dict[str, str], binding_id: str) -> str:
    """The first key of a binding under `keymap`, as the footer shows it ("d", "^d", "f5")."""
    for namespace in KEYMAP.values():
        for binding in namespace:
            if isinstance(binding, Binding) and binding.id == binding_id:
                key = keymap.get(binding_id, binding.key).split(",")[0]
                return format_key(key) if "+" not in key else key.replace("ctrl+", "^")
    raise KeyError(binding_id)


def kiosk_keymap(config: Config) -> dict[str, str]:
    """The kiosk's part of the config's keymap (its quit key), after checking all of it."""
    return {key: keys for key, keys in config_keymap(config).items() if key.startswith("kiosk.")}
