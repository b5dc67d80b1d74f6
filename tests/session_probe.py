"""What a forked SSH session runs in tests/console/servers/test_sshd.py instead of the console:
it reports its user, terminal, size and foreground group, answers a resize, echoes a line,
exits 3."""

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
    # Ready for a resize before saying so: the test resizes as soon as it reads the first line,
    # and a SIGWINCH that comes before the handler is ignored (seen under load).
    # os.write, not print: a signal handler's print inside another print raises RuntimeError.
    signal.signal(
        signal.SIGWINCH,
        lambda *_: os.write(1, f"resized {tuple(os.get_terminal_size(0))}\n".encode()),
    )
    print(user, argv, os.isatty(0), tuple(os.get_terminal_size(0)), foreground, flush=True)
    line = sys.stdin.readline()
    print("got", line.strip(), flush=True)
    sys.exit(3)


def command(argv: list[str]) -> None:
    """What a forked SSH command runs in tests/console/servers/test_sshd_exec.py: its actor,
    argv and terminal on stdout, a line on stderr, exit status 7."""
    actor = current_actor()
    print(f"{actor}/{','.join(actor.groups)}", argv, os.isatty(0), os.isatty(1), flush=True)
    print("on stderr", file=sys.stderr, flush=True)
    sys.exit(7)
