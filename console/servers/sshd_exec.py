"""SSH exec requests: the console subcommands a key may run (argv, never a shell), their output."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
from collections.abc import Callable

from console.errors import ConsoleError

# The subcommands an SSH client may run, one a line; None: the command with any arguments,
# a tuple: only these of its own subcommands ("" is the command alone). Who may do what is
# still the key's user's role, checked by the command itself.
EXEC_COMMANDS: dict[str, tuple[str, ...] | None] = {
    "deploy": None,
    "rollback": None,
    "promote": None,
    "check": None,
    "wait": None,
    "status": None,
    "history": None,
    "releases": None,
    "queue": ("",),  # the listing (not cancel, up, down)
    "lock": ("list",),
    "release": ("build-status",),  # the release gate's answer (read-only)
    "bake": None,  # end a bake early or roll back now (as the deploy screen's e and r)
    "approve": None,  # issue 14's approvals
    "reject": None,
    "scale": None,  # (i16-scale) a pair's instance count, queued like a deploy
}
# What the server sets itself (its config and store): never the client's to choose.
SERVER_OPTIONS = ("--config", "--store")
MAX_COMMAND = 4096  # characters: more is no console command line
CHUNK = 65536
# How long the output of a command that ended may take to reach EOF (a child it left behind
# holding the pipes is killed with its group first).
DRAIN_SECONDS = 5.0


class ExecRefused(ConsoleError):
    """An exec request the server will not run (said in one line, exit status 2)."""


def exec_argv(command: str) -> list[str]:
    """The console argv of an exec request: split like a shell's words (quotes, escapes)
    but never given to a shell, its first word an allowed subcommand; ExecRefused if not."""
    if len(command) > MAX_COMMAND:
        raise ExecRefused(f"the command is longer than {MAX_COMMAND} characters")
    try:
        argv = shlex.split(command)
    except ValueError as error:
        raise ExecRefused(f"cannot read the command: {str(error).lower()}") from None
    allowed = ", ".join(EXEC_COMMANDS)
    if not argv:
        raise ExecRefused(f"an empty command: run one of {allowed}")
    name = argv[0]
    if name not in EXEC_COMMANDS:
        raise ExecRefused(
            f"{name[:40]!r} is not a command over SSH: run one of {allowed}, or connect "
            "without a command for the console"
        )
    nested = EXEC_COMMANDS[name]
    if nested is not None:
        word = next((arg for arg in argv[1:] if not arg.startswith("-")), "")
        if word not in nested:
            raise ExecRefused(f"{f'{name} {word}'.strip()[:60]!r} is not a command over SSH")
    for arg in argv[1:]:
        option = arg.split("=", 1)[0]
        # Any prefix argparse would take for one of them (--conf, --st=...).
        if len(option) > 2 and any(full.startswith(option) for full in SERVER_OPTIONS):
            raise ExecRefused(f"{option} is the server's to set, not the command's")
    return argv


class OutputPump:
    """Copies a command's stdout and stderr (the read ends of its pipes) to the channel's
    `write` and `write_stderr`; `paused` while the client reads slower than the command
    writes. Once the channel is gone the output is read and dropped: a command is never
    stuck on a full pipe."""

    def __init__(
        self, stdout: int, stderr: int, write: Callable[[bytes], None],
        write_stderr: Callable[[bytes], None],
    ) -> None:  # fmt: skip
        self._sinks: dict[int, Callable[[bytes], None] | None] = {
            stdout: write, stderr: write_stderr
        }  # fmt: skip
        self._open = {stdout, stderr}
        self._reading: set[int] = set()
        self._ended = asyncio.get_running_loop().create_future()
        for fd in self._open:
            os.set_blocking(fd, False)
        self.resume()

    def pause(self) -> None:
        loop = asyncio.get_running_loop()
        for fd in list(self._reading):
            loop.remove_reader(fd)
        self._reading.clear()

    def resume(self) -> None:
        loop = asyncio.get_running_loop()
        for fd in self._open - self._reading:
            loop.add_reader(fd, self._ready, fd)
            self._reading.add(fd)

    def _ready(self, fd: int) -> None:
        try:
            data = os.read(fd, CHUNK)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._close(fd)
            return
        sink = self._sinks[fd]
        if sink is not None:
            try:
                sink(data)
            except Exception:  # the channel is gone (the client vanished): drop from now on
                self._sinks = dict.fromkeys(self._sinks)

    def _close(self, fd: int) -> None:
        if fd in self._reading:
            asyncio.get_running_loop().remove_reader(fd)
            self._reading.discard(fd)
        self._open.discard(fd)
        with contextlib.suppress(OSError):
            os.close(fd)
        if not self._open and not self._ended.done():
            self._ended.set_result(None)

    async def drained(self, timeout: float = DRAIN_SECONDS) -> None:
        """Until both pipes reached EOF (at most `timeout`), then closed either way."""
        self.resume()  # what is left goes out even to a slow reader: the command has ended
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._ended), timeout)
        self.close()

    def close(self) -> None:
        for fd in list(self._open):
            self._close(fd)
