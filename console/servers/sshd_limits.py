"""What the SSH server accepts from a client: terminal sizes, terminal types, session counts.

A client chooses its terminal's size and type and how many sessions and connections it opens;
none of them may cost the server without bound or reach a console unchecked. Sizes are
clamped (a pty holds at most 65535 columns or rows, and every screen the console draws grows
with them); a terminal type is a terminfo name, never control characters; sessions are
counted per user and in total; connections that have not logged in yet are counted apart
(OpenSSH's MaxStartups) and `[sshd] login_grace_seconds` ends each one that takes too long.
"""

from __future__ import annotations

import contextlib
import fcntl
import re
import struct
import termios
from collections.abc import Iterable

# Wider than any screen a person reads; what a console draws is sized by these.
MAX_COLUMNS = 1000
MAX_ROWS = 500
# RFC 4254 says a zero size is to be ignored: the console then gets a classic terminal's.
DEFAULT_COLUMNS = 80
DEFAULT_ROWS = 24
MAX_PIXELS = 65535  # a pty's winsize holds 16 bits per field
MAX_TERM_LENGTH = 64
TERM_PATTERN = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._+-]{{0,{MAX_TERM_LENGTH - 1}}}")

TermSize = tuple[int, int, int, int]


def clamp_size(width: int, height: int, pixwidth: int, pixheight: int) -> TermSize:
    """The (columns, rows, pixel width, pixel height) a pty gets for what a client asked."""
    columns = DEFAULT_COLUMNS if width == 0 else max(1, min(width, MAX_COLUMNS))
    rows = DEFAULT_ROWS if height == 0 else max(1, min(height, MAX_ROWS))
    pixels_fit = 0 <= pixwidth <= MAX_PIXELS and 0 <= pixheight <= MAX_PIXELS
    # Pixel sizes only help image protocols: ones that do not fit say nothing true.
    return (columns, rows, pixwidth, pixheight) if pixels_fit else (columns, rows, 0, 0)


def set_size(fd: int, size: TermSize) -> None:
    """Give the pty `fd` the size `size` (already clamped)."""
    columns, rows, pixwidth, pixheight = size
    with contextlib.suppress(OSError):
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, pixwidth, pixheight))


def term_refusal(term: str) -> str | None:
    """Why the terminal type `term` is refused, or None (an empty one gets the default)."""
    if term == "" or TERM_PATTERN.fullmatch(term):  # match's $ lets a final newline in
        return None
    # The type itself is never echoed back: it may be escape sequences for the client's screen.
    return (
        "the terminal type (TERM) must be letters, digits and . _ + - "
        f"(at most {MAX_TERM_LENGTH} characters)"
    )


def session_refusal(
    user: str, running_users: Iterable[str], per_user: int, in_total: int
) -> str | None:
    """Why a new session of `user` is refused beside the sessions running (one user each)."""
    running = list(running_users)
    mine = running.count(user)
    if mine >= per_user:
        return f"{user} already has {_sessions(mine)} (at most {per_user}): end one first"
    if len(running) >= in_total:
        return f"the server is full ({_sessions(len(running))}): try again later"
    return None


def _sessions(count: int) -> str:
    return f"{count} session" if count == 1 else f"{count} sessions"


STARTUPS_REFUSAL = "too many connections are logging in at once: try again later"
