"""Text from outside made safe to show: terminal controls rendered visible, secrets masked.

`harmless` is applied once where an instance's output enters the core (console.ssh.client), so
the CLI, the TUI, the store and every export get the same clean line. `SecretMasker` is the
one masker every deploy output path uses (log lines, step details, errors, audit reasons).
"""

from __future__ import annotations

import base64
import json
import re
import shlex
import textwrap
from collections.abc import Iterable

MASK = "********"
# A line of a multi-line secret (or of one of its quoted forms) is masked on its own only
# from this length on: a line like "}" or "--" must not blank out every brace in the log.
MIN_PIECE = 4

# Colour and style only (CSI ... m): dropped, so a coloured build log stays readable. Any
# escape left after that is rendered visible below, so this can never let one through.
_SGR = re.compile(r"\x1b\[[0-9;:]*m")
# C0 controls but tab, DEL, C1 controls, and the Unicode controls that reorder or break a
# line on screen (bidi overrides and isolates, line and paragraph separators).
_UNSAFE = re.compile(
    "[\x00-\x08\x0a-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)
_ALNUM_RUN = re.compile("[A-Za-z0-9]+")


def harmless(text: str) -> str:
    """`text` with no control a terminal would act on: each is shown as `\\xNN` (`\\uNNNN`).

    Tabs stay. ESC, BEL, backspace, CR, C1 controls and bidi overrides become visible text,
    so OSC 52 (clipboard), OSC 0 (title), CSI cursor moves, DCS strings and "\\r" overprints
    reach no terminal, and a reader sees that something tried.
    """
    return _UNSAFE.sub(_visible, _SGR.sub("", text))


def has_controls(text: str) -> bool:
    """Whether `text` holds a control a terminal would act on (tab aside): a reason a person
    types is refused with one, never stored to be printed later."""
    return _UNSAFE.search(text) is not None


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def secret_forms(value: str) -> set[str]:
    """The texts `value` can appear as in output or errors (escape-tolerant ones aside).

    The value itself; as the environment file writes it (shlex.quote, `'"'"'` escapes); the
    `'\\''` idiom; JSON and Python-repr escaped (errors and JSON logs); base64 (standard and
    URL-safe, with and without padding, wrapped at 76 or 64 columns); as `harmless` shows
    it. A multi-line value or form also appears one line at a time, so each of its lines is a
    form too (from MIN_PIECE).
    """
    if not value.strip():
        return set()
    encoded = value.encode()
    standard = base64.b64encode(encoded).decode()
    whole = {
        shlex.quote(value),
        "'" + value.replace("'", "'\\''") + "'",
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        repr(value)[1:-1],
        repr(value + "'\"")[1:-4],  # repr's other quoting: ' escaped as \'
        standard,
        base64.urlsafe_b64encode(encoded).decode(),
    }
    whole |= {form.rstrip("=") for form in whole if form.endswith("=")}
    # `base64` and MIME wrap at 76 columns, PEM and openssl at 64.
    whole |= {"\n".join(textwrap.wrap(standard, width)) for width in (76, 64)}
    forms = {value}
    for form in whole | {value}:
        lines = form.splitlines()
        if len(lines) > 1:
            forms |= {line.strip() for line in lines}
        elif len(form) >= MIN_PIECE:
            forms.add(form)
    forms |= {harmless(form) for form in forms}
    return {form for form in forms if form == value or len(form) >= MIN_PIECE}


def _tolerant(text: str) -> str:
    """A pattern for `text` with an optional backslash before any character: printf %q,
    double-quoted shell strings, sed and the like escape different characters that way."""
    return "".join("\\\\?" + re.escape(char) for char in text)


class SecretMasker:
    """Replaces every form of every secret it was given with MASK.

    Most lines hold no secret: a line is only searched when it holds, backslashes aside, the
    longest run of letters and digits of some form (no escaping splits such a run but with
    a backslash), which keeps a chatty deploy's log cheap.
    """

    def __init__(self, values: Iterable[str] = ()) -> None:
        self._patterns: dict[str, int] = {}  # pattern -> length of the text it stands for
        self._anchors: set[str] = set()
        self._always = False  # a form without letters or digits: search every line
        self._compiled: re.Pattern[str] | None = None
        for value in values:
            self.add(value)

    def add(self, value: str) -> None:
        texts = secret_forms(value)
        for form in texts:
            self._patterns.setdefault(re.escape(form), len(form))
        lines = value.splitlines()
        # The raw value's lines (the whole when it is one line), escape-tolerant.
        for line in [value] if len(lines) < 2 else [line.strip() for line in lines]:
            if line.strip() and (line == value or len(line) >= MIN_PIECE):
                self._patterns.setdefault(_tolerant(line), len(line) + 1)
                texts.add(line)
        for text in texts:
            runs = _ALNUM_RUN.findall(text)
            if runs:
                self._anchors.add(max(runs, key=len))
            else:
                self._always = True
        self._compiled = None

    def __bool__(self) -> bool:
        return bool(self._patterns)

    def mask(self, text: str) -> str:
        """`text` with every form of every secret replaced by MASK (longest forms first)."""
        if not self._patterns or not text:
            return text
        if not self._always:
            bare = text.replace("\\", "")
            if not any(anchor in bare for anchor in self._anchors):
                return text
        if self._compiled is None:
            ordered = sorted(self._patterns, key=lambda pattern: -self._patterns[pattern])
            self._compiled = re.compile("|".join(ordered))
        return self._compiled.sub(MASK, text)
