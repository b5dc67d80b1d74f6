"""SSH session consoles forked from one preloaded process, so they share its memory pages.

A fresh interpreter that imports Textual and the console costs about 43 MB private; forked
from a fork server (multiprocessing's "forkserver") that imported them once, a session's
console costs what it changes: about 17 MB. The server process itself never imports Textual:
only its fork server does.
"""

from __future__ import annotations

import asyncio
import fcntl
import gc
import importlib
import multiprocessing
import os
import sys
import termios
import warnings
from collections.abc import Sequence
from multiprocessing import forkserver, reduction
from multiprocessing.connection import Connection
from typing import Any

from console.errors import ConfigError, ConsoleError
from console.identity import Actor, enter_session
from screens import PROG

# multiprocessing re-runs the server's __main__ (screens.main) in each child, as __mp_main__
# (nothing runs: its main() is behind `if __name__ == "__main__"`); runpy warns each time.
warnings.filterwarnings(
    "ignore", message="'screens.main' found in sys.modules", category=RuntimeWarning
)

CONSOLE_ENTRY = "screens.main:main"
# How long the fork server's first child may take to import and check the config (a loaded
# host, a fresh clone compiling every module).
WARM_UP_SECONDS = 300.0

# What every session runs, imported once by the fork server.
PRELOAD = (
    "screens.main",
    "screens.app",
    "screens.kiosk.screen",
    "console.deploy.services",
    "console.queue.runner",
    "console.fleet.share",
    "console.queue.board",
    "screens.cli.session_fork",
)


class _PassedFd:
    """A file descriptor that travels to the fork server with the request (SCM_RIGHTS)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __reduce__(self) -> tuple[Any, tuple[Any]]:
        return (_received_fd, (reduction.DupFd(self.fd),))


def _received_fd(duplicate: Any) -> _PassedFd:
    return _PassedFd(duplicate.detach())


def _session_main(
    terminal: _PassedFd, entry: str, argv: list[str], env: dict[str, str], actor: Actor
) -> None:
    """In the forked child: the pty as controlling terminal and stdio, the session's
    environment, the actor the server authenticated (handed in memory: nothing the session's
    user sets can change it), then `entry` ("module:function", the console's main) with `argv`
    (its SystemExit is the exit status)."""
    gc.freeze()  # the inherited objects stay out of collections: their pages stay shared
    os.setsid()
    fcntl.ioctl(terminal.fd, termios.TIOCSCTTY, 0)
    for std in (0, 1, 2):
        os.dup2(terminal.fd, std)
    if terminal.fd > 2:
        os.close(terminal.fd)
    _run_entry(entry, argv, env, actor)


def _piped_session_main(
    stdio: tuple[_PassedFd, _PassedFd, _PassedFd],
    entry: str,
    argv: list[str],
    env: dict[str, str],
    actor: Actor,
) -> None:
    """In the forked child of a web session (pipes as stdio, textual-serve's protocol) or of
    an SSH command (pipes and /dev/null): its own session and process group, then as
    `_session_main`."""
    gc.freeze()
    os.setsid()
    for std, passed in enumerate(stdio):
        os.dup2(passed.fd, std)
    for passed in stdio:
        if passed.fd > 2:
            os.close(passed.fd)
    _run_entry(entry, argv, env, actor)


def _run_entry(entry: str, argv: list[str], env: dict[str, str], actor: Actor) -> None:
    os.environ.clear()
    os.environ.update(env)
    enter_session(actor)
    for name, fd, mode in (("stdin", 0, "r"), ("stdout", 1, "w"), ("stderr", 2, "w")):
        stream = open(fd, mode, encoding="utf-8", closefd=False, buffering=1)  # noqa: SIM115
        setattr(sys, name, stream)
        setattr(sys, f"__{name}__", stream)
    sys.argv = [PROG, *argv]
    module, function = entry.split(":")
    getattr(importlib.import_module(module), function)(argv)


def _started(argv: list[str] | None, answer: Connection) -> None:
    """In a child of the fork server (ForkedConsoles.start waits for its start): with the
    console's `argv`, what each session would refuse at its start (the config's [keymap],
    checked against the screens' bindings), so that the server says it once, before serving."""
    problem = ""
    if argv is not None:
        from console.config import find_config
        from screens.keymap import config_keymap

        # The doors' argv: --config PATH first (sshd.console_command, web.served_argv).
        explicit = argv[argv.index("--config") + 1] if "--config" in argv[:-1] else None
        try:
            config_keymap(find_config(explicit))
        except ConsoleError as error:
            problem = error.message
    answer.send(problem)
    answer.close()


class ForkedConsole:
    """A session's console started by the fork server (the sshd's view of its process)."""

    def __init__(self, process: multiprocessing.process.BaseProcess) -> None:
        self._process = process
        assert process.pid is not None
        self.pid: int = process.pid
        self._ended: asyncio.Future[int] | None = None

    @property
    def returncode(self) -> int | None:
        return self._process.exitcode

    async def wait(self) -> int:
        """The exit status (negative: the signal); any number of callers wait together."""
        if self._ended is None:
            # One reader on the sentinel: a second add_reader on one fd would replace the first.
            loop = asyncio.get_running_loop()
            self._ended = loop.create_future()
            loop.add_reader(self._process.sentinel, self._reap)
            self._reap()
        return await asyncio.shield(self._ended)

    def _reap(self) -> None:
        """The fork server wrote the exit status on the sentinel: read it, once."""
        assert self._ended is not None
        if self._ended.done():
            return
        self._process.join(0)
        code = self._process.exitcode
        if code is not None:
            asyncio.get_running_loop().remove_reader(self._process.sentinel)
            self._ended.set_result(code)


class ForkedConsoles:
    """Starts each session's console (`entry`, `screens.main:main`, with `argv`) from the
    fork server."""

    def __init__(self, argv: Sequence[str], entry: str = CONSOLE_ENTRY) -> None:
        self.argv = list(argv)
        self.entry = entry
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload(list(PRELOAD))

    async def start(self) -> None:
        """Start the fork server and wait until it has imported the console: the first
        session then starts like the others, not after that import (seconds on a loaded host,
        more in a fresh clone that compiles every module first)."""
        await asyncio.to_thread(self._warm_up)

    def _warm_up(self) -> None:
        # The fork server imports PRELOAD before it forks anything: a child that started has
        # waited for the import to finish.
        forkserver.ensure_running()
        argv = self.argv if self.entry == CONSOLE_ENTRY else None
        answer, send = self._context.Pipe(duplex=False)
        child = self._context.Process(target=_started, args=(argv, send), daemon=False)
        child.start()
        send.close()
        try:
            problem = answer.recv() if answer.poll(WARM_UP_SECONDS) else ""
        except EOFError:
            problem = ""  # the child ended without a word: the sessions will say what is wrong
        finally:
            answer.close()
        child.join()
        if problem:
            raise ConfigError(problem)

    async def spawn(
        self, terminal: int, env: dict[str, str], actor: Actor, command: Sequence[str] = ()
    ) -> ForkedConsole:
        """A session's console on the pty `terminal`; `command`: a subcommand's argv after
        the console's own (an SSH exec request on a terminal)."""
        process = self._context.Process(
            target=_session_main,
            args=(_PassedFd(terminal), self.entry, [*self.argv, *command], env, actor),
            daemon=False,
        )
        await asyncio.to_thread(process.start)
        return ForkedConsole(process)

    async def spawn_command(
        self, stdio: tuple[int, int, int], env: dict[str, str], actor: Actor,
        command: Sequence[str],
    ) -> ForkedConsole:  # fmt: skip
        """A console subcommand (an SSH exec request without a terminal) on the three file
        descriptors `stdio`, in its own session, acting for `actor` handed in memory as for
        an interactive session: `command` is its argv after the console's own."""
        process = self._context.Process(
            target=_piped_session_main,
            args=(
                tuple(_PassedFd(fd) for fd in stdio), self.entry, [*self.argv, *command], env,
                actor,
            ),
            daemon=False,
        )  # fmt: skip
        await asyncio.to_thread(process.start)
        return ForkedConsole(process)

    async def spawn_piped(self, env: dict[str, str], actor: Actor) -> PipedConsole:
        """A session's console on three pipes (stdin, stdout, stderr), as textual-serve runs
        its app; the actor is handed in memory as for an SSH session."""
        loop = asyncio.get_running_loop()
        stdin_r, stdin_w = os.pipe()
        stdout_r, stdout_w = os.pipe()
        stderr_r, stderr_w = os.pipe()
        child_ends = (stdin_r, stdout_w, stderr_w)
        process = self._context.Process(
            target=_piped_session_main,
            args=(tuple(_PassedFd(fd) for fd in child_ends), self.entry, self.argv, env, actor),
            daemon=False,
        )
        try:
            await asyncio.to_thread(process.start)
        except BaseException:
            for fd in (stdin_w, stdout_r, stderr_r):
                os.close(fd)
            raise
        finally:
            for fd in child_ends:
                os.close(fd)
        stdout = await _reader(loop, stdout_r)
        stderr = await _reader(loop, stderr_r)
        transport, protocol = await loop.connect_write_pipe(
            lambda: asyncio.streams.FlowControlMixin(loop),
            open(stdin_w, "wb", buffering=0),  # noqa: SIM115
        )
        stdin = asyncio.StreamWriter(transport, protocol, None, loop)
        return PipedConsole(process, stdin, stdout, stderr)


async def _reader(loop: asyncio.AbstractEventLoop, fd: int) -> asyncio.StreamReader:
    reader = asyncio.StreamReader(loop=loop)
    await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader, loop=loop),
        open(fd, "rb", buffering=0),  # noqa: SIM115  # the transport owns and closes it
    )
    return reader


class PipedConsole(ForkedConsole):
    """A web session's console: its process and the streams of its stdin, stdout, stderr."""

    def __init__(
        self,
        process: multiprocessing.process.BaseProcess,
        stdin: asyncio.StreamWriter,
        stdout: asyncio.StreamReader,
        stderr: asyncio.StreamReader,
    ) -> None:
        super().__init__(process)
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
