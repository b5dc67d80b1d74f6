"""The masker and the terminal-control filter on their own: every form a secret takes in
output and errors is masked, and no control a terminal acts on survives."""

from __future__ import annotations

import base64
import json
import shlex
import subprocess

import pytest

from console.safe_text import MASK, SecretMasker, harmless

# A key-like secret: several lines, and every character shells and JSON escape.
SECRET = "-----BEGIN TOKEN-----\nsk_live_'q\"uo$te`d\\9f8e7d\nlast-line-0a1b2c\n-----END TOKEN-----"


def shown(lines: str, masker: SecretMasker) -> list[str]:
    return [masker.mask(line) for line in lines.splitlines()]


def no_secret_piece(lines: list[str]) -> None:
    encoded = base64.b64encode(SECRET.encode()).decode()
    pieces = ("sk_live", "9f8e7d", "0a1b2c", "BEGIN TOKEN", "END TOKEN", encoded[:12])
    for line in lines:
        for piece in pieces:
            assert piece not in line, line


def shell(script: str) -> str:
    done = subprocess.run(
        ["/bin/sh", "-c", script], env={"S": SECRET, "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=10, check=True,
    )  # fmt: skip
    return done.stdout


@pytest.mark.parametrize(
    "form",
    [
        SECRET,
        shlex.quote(SECRET),  # the environment file as the engine writes it
        "'" + SECRET.replace("'", "'\\''") + "'",
        json.dumps({"DB_PASSWORD": SECRET}),
        repr(SECRET),
        repr(RuntimeError(SECRET)),
        str({"password": SECRET}),
        base64.b64encode(SECRET.encode()).decode(),
        base64.urlsafe_b64encode(SECRET.encode()).decode().rstrip("="),
        harmless(SECRET),
    ],
    ids=[
        "raw",
        "shlex",
        "quote-idiom",
        "json",
        "repr",
        "exception",
        "dict",
        "base64",
        "base64url",
        "visible",
    ],
)
def test_every_form_of_a_multi_line_secret_is_masked(form: str) -> None:
    masked = shown(f"before {form} after", SecretMasker([SECRET]))
    no_secret_piece(masked)
    assert masked[0].startswith("before ") and masked[-1].endswith(" after")
    assert MASK in "".join(masked)


def test_what_a_shell_prints_of_the_secret_is_masked() -> None:
    printed = shell(
        'echo "raw: $S"; echo unquoted: $S; export -p | grep -A3 " S="; '
        "printf '%s' \"$S\" | base64; printf '%s' \"$S\" | base64 -w0; echo; "
        'printf "dq: \\"%s\\"\\n" "$(printf %s "$S" | sed "s/[\\\\\\"\\$\\`]/\\\\\\\\&/g")"'
    )
    assert "sk_live" in printed and "0a1b2c" in printed
    masked = shown(printed, SecretMasker([SECRET]))
    no_secret_piece(masked)
    assert any(line.startswith("raw: ") for line in masked)


def test_bash_quoting_is_masked() -> None:
    script = 'declare -p S; printf "%q\\n" "$S"; x=${S//$\'\\n\'/ }; printf "%q\\n" "$x"'
    bash = subprocess.run(
        ["bash", "-c", script],
        env={"S": SECRET}, capture_output=True, text=True, timeout=10, check=True,
    )  # fmt: skip
    no_secret_piece(shown(bash.stdout, SecretMasker([SECRET])))


def test_single_line_secret_is_masked_however_it_is_escaped() -> None:
    secret = "p@ss w'o\"rd$1"
    masker = SecretMasker([secret])
    for form in [
        secret, shlex.quote(secret), json.dumps(secret), repr(secret),
        "p@ss\\ w\\'o\\\"rd\\$1",  # printf %q, sed and double-quoted shell strings
    ]:  # fmt: skip
        assert masker.mask(f"x={form};") in (f"x={MASK};", f'x="{MASK}";', f"x='{MASK}';"), form


def test_short_lines_of_a_secret_do_not_blank_out_the_log() -> None:
    masker = SecretMasker(['{\n  "token": "abcdef123456"\n}'])
    assert masker.mask('{"ok": true}') == '{"ok": true}'
    assert masker.mask('  "token": "abcdef123456"') == f"  {MASK}"
    # A value that is blank is not a secret to mask; a short one is still masked whole.
    assert SecretMasker(["  ", ""]).mask("a b") == "a b"
    assert SecretMasker(["42"]).mask("port 4242") == f"port {MASK}{MASK}"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("\x1b]52;c;ZWNobyBwd25lZA==\x07", "\\x1b]52;c;ZWNobyBwd25lZA==\\x07"),  # clipboard
        ("\x1b]0;owned\x1b\\", "\\x1b]0;owned\\x1b\\"),  # window title, ST-terminated
        ("\x1b[2J\x1b[H\x1b[1A\x1b[K", "\\x1b[2J\\x1b[H\\x1b[1A\\x1b[K"),  # cursor, erase
        ("\x1bP+q544e\x1b\\", "\\x1bP+q544e\\x1b\\"),  # DCS
        ("\u009b31m\u009d0;t\u0007", "\\x9b31m\\x9d0;t\\x07"),  # C1 CSI and OSC
        ("safe\rrm -rf /\b\b", "safe\\x0drm -rf /\\x08\\x08"),  # overprinting
        ("lone \x1b and \x7f", "lone \\x1b and \\x7f"),
        ("admin\u202e\u2066txt.exe", "admin\\u202e\\u2066txt.exe"),  # bidi reordering
        ("\x1b[1;31mFAILED\x1b[0m\tcol", "FAILED\tcol"),  # colour dropped, tab kept
    ],
)
def test_terminal_controls_are_rendered_visible(raw: str, expected: str) -> None:
    assert harmless(raw) == expected
    assert not any((ord(c) < 0x20 and c != "\t") or 0x7F <= ord(c) <= 0x9F for c in expected)


def test_a_secret_without_letters_or_digits_is_masked_too() -> None:
    masker = SecretMasker(["!@#$%^&*()", "hunter2-db"])
    assert masker.mask("pw=!@#$%^&*() and pw=hunter2\\-db") == f"pw={MASK} and pw={MASK}"
    assert masker.mask("nothing secret here") == "nothing secret here"
