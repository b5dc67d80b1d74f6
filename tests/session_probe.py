"""What a forked SSH session runs in tests/test_sshd.py instead of the console: it reports its
user, terminal, size and foreground group, answers a resize, echoes a line, exits 3."""

from __future__ import annotations

import os
import signal
import sys

from console.identity import current_actor


def main(argv: list[str]) -> None:
    assert "DEPLOY_CONSOLE_USER" not in os.environ  # the actor is handed, not in env
    actor = current_actor()
    user = f"{actor}/{','.join(actor.groups)}"
    foreground = os.tcgetpgrp(0) == os.getpgrp()  # SIGWINCH and ctrl+c reach this process
    print(user, argv, os.isatty(0), tuple(os.get_terminal_size(0)), foreground, flush=True)
    signal.signal(
        signal.SIGWINCH,
        lambda *_: print("resized", tuple(os.get_terminal_size(0)), flush=True),
    )
    line = sys.stdin.readline()
    print("got", line.strip(), flush=True)
    sys.exit(3)
