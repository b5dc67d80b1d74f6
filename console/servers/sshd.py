"""The console's own SSH server: each session runs the console in its own process on a pty.

Public-key authentication only; the key names the user (config `[[sshd.keys]]`, or an
authorized_keys line with `environment="DEPLOY_CONSOLE_USER=alice"`). Everything but an
interactive shell on a terminal, or (with `commands`) an exec request that is an allowed
console subcommand (console/servers/sshd_exec.py), is refused: passwords,
keyboard-interactive, agent, port and X11 forwarding, other exec requests, subsystems,
sessions without a pty. The console itself never runs in this process (one slow session would
block all, colours would be lost): each session spawns `command` on a pseudo-terminal in a new
session (process group), pumps bytes both ways, forwards window changes, and ends the SSH
session with the console's exit status; a subcommand without a terminal runs on pipes, its
stdout and stderr to the channel's. A client that vanishes has its console's process group
killed (a subcommand's is hung up, as a closed terminal: a deploy goes on to its end). What
a client may ask for (terminal sizes and types, sessions, logins in progress) is bounded by
console/servers/sshd_limits.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pty
import signal
from collections.abc import Mapping, Sequence

import asyncssh

from console.config import SshdSettings
from console.identity import SSH, Actor
from console.servers.sshd_exec import ExecRefused, OutputPump, exec_argv
from console.servers.sshd_keys import (
    GROUPS_ENV,
    HOST_KEY_FILE,
    USER_ENV,
    AuthorizedKey,
    SshdError,
    authorized_keys,
    load_host_key,
    read_authorized_keys,
)
from console.servers.sshd_keys import reason_of as _reason
from console.servers.sshd_limits import (
    STARTUPS_REFUSAL,
    TermSize,
    clamp_size,
    session_refusal,
    set_size,
    term_refusal,
)
from console.servers.sshd_spawn import CommandSpawner, SessionProcess, SessionSpawner

# asyncssh logs every connection at INFO (with key fingerprints): keep the server's output ours.
logging.getLogger("asyncssh").setLevel(logging.WARNING)
_log = logging.getLogger(__name__)

# The keys' part (console/servers/sshd_keys.py), importable from here as before.
__all__ = [
    "GROUPS_ENV",
    "HOST_KEY_FILE",
    "USER_ENV",
    "AuthorizedKey",
    "SshServer",
    "SshdError",
    "authorized_keys",
    "load_host_key",
    "read_authorized_keys",
]

# A client whose TCP connection silently died is dropped after ~90 s of unanswered keepalives.
KEEPALIVE_SECONDS = 30.0
KEEPALIVE_COUNT = 3
# How long a console asked to stop (SIGTERM) gets before its process group is killed.
STOP_GRACE_SECONDS = 2.0
# A subcommand asked to stop (the server stopping) gets longer: a deploy it runs rolls back.
COMMAND_STOP_GRACE_SECONDS = 60.0
# An exit status for a session refused before any console ran.
REFUSED_STATUS = 2
NO_COMMANDS = "commands are refused: connect without one to get the console"
CHUNK = 65536


# -- the server --------------------------------------------------------------------------------


class SshServer:
    """Listens for SSH clients and runs `command` on a pty for each session (or has
    `spawner` start it: forked from a preloaded process, it shares that process's memory)."""

    def __init__(
        self,
        host_key: asyncssh.SSHKey,
        allowed: Mapping[bytes, AuthorizedKey],
        command: Sequence[str],
        *,
        environment: Mapping[str, str] | None = None,
        spawner: SessionSpawner | None = None,
        settings: SshdSettings | None = None,
        commands: bool = False,
    ) -> None:
        self.host_key = host_key
        # Whether exec requests may run allowed console subcommands (`deploy-console sshd`;
        # not its kiosk): else every exec request is refused.
        self.commands = commands
        # The limits (sessions, logins in progress, login grace time); listen/port are start's.
        self.settings = settings or SshdSettings()
        self.allowed = dict(allowed)
        self.command = list(command)
        self.spawner = spawner or CommandSpawner(command)
        self.environment = dict(os.environ if environment is None else environment)
        self.port = 0
        self._acceptor: asyncssh.SSHAcceptor | None = None
        self.sessions: set[_ConsoleSession] = set()
        # Connections not logged in yet (capped by settings.max_startups).
        self.logging_in: set[_Server] = set()
        # Sessions being ended because their client vanished (kept so the task is not lost).
        self.stopping: set[asyncio.Future[None]] = set()

    @property
    def host_fingerprint(self) -> str:
        return str(self.host_key.get_fingerprint("sha256"))

    async def start(self, listen: str, port: int) -> int:
        """Listen on `listen`:`port` (0: any free port); the port listened on."""
        try:
            self._acceptor = await asyncssh.listen(
                listen,
                port,
                server_factory=lambda: _Server(self),
                server_host_keys=[self.host_key],
                login_timeout=self.settings.login_grace_seconds,
                keepalive_interval=KEEPALIVE_SECONDS,
                keepalive_count_max=KEEPALIVE_COUNT,
                agent_forwarding=False,
                x11_forwarding=False,
                allow_scp=False,
                password_auth=False,
                kbdint_auth=False,
                gss_host=None,
                reuse_address=True,
                # Raw bytes both ways: the console's own terminal does all the editing.
                encoding=None,
                line_editor=False,
            )
        except OSError as error:
            raise SshdError(f"cannot listen on {listen}:{port}: {_reason(error)}") from None
        self.port = self._acceptor.sockets[0].getsockname()[1]
        return self.port

    async def close(self) -> None:
        """Stop listening, end every session and reap its console."""
        if self._acceptor is not None:
            self._acceptor.close()
        await asyncio.gather(*(session.stop() for session in list(self.sessions)))
        if self._acceptor is not None:
            await self._acceptor.wait_closed()
            self._acceptor = None

    def child_environment(self, term: str) -> dict[str, str]:
        env = dict(self.environment)
        # Never hand a console the server's own SSH agent or session, nor a user name: who the
        # session acts for travels with the spawn request (console.identity), not in env.
        for name in ("SSH_AUTH_SOCK", "SSH_CONNECTION", "SSH_CLIENT", "SSH_TTY", USER_ENV):
            env.pop(name, None)
        env.update({"TERM": term or "xterm-256color"}, COLORTERM="truecolor")
        env.setdefault("LANG", "C.UTF-8")
        return env


class _Server(asyncssh.SSHServer):
    def __init__(self, owner: SshServer) -> None:
        self.owner = owner
        self.peer = "unknown"
        self.conn: asyncssh.SSHServerConnection | None = None
        self._offered: AuthorizedKey | None = None
        self.who: AuthorizedKey | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self.conn = conn
        host, port = conn.get_extra_info("peername")[:2]
        self.peer = f"{host}:{port}"
        if len(self.owner.logging_in) >= self.owner.settings.max_startups:
            # After asyncssh has sent its version: a client shows the reason, not a reset.
            asyncio.get_running_loop().call_soon(
                conn.disconnect, asyncssh.DISC_TOO_MANY_CONNECTIONS, STARTUPS_REFUSAL
            )
            return
        self.owner.logging_in.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.owner.logging_in.discard(self)

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return False

    def kbdint_auth_supported(self) -> bool:
        return False

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        # Called for the key's offer and again for its signed request, right before asyncssh
        # checks the signature: the last key validated is the one that logged in.
        self._offered = self.owner.allowed.get(key.public_data)
        return self._offered is not None

    def auth_completed(self) -> None:
        self.who = self._offered
        self.owner.logging_in.discard(self)

    def session_requested(self) -> asyncssh.SSHServerSession[bytes]:
        assert self.who is not None
        actor = Actor(self.who.user, SSH, self.who.fingerprint, self.peer, groups=self.who.groups)
        return _ConsoleSession(self.owner, actor)

    def connection_requested(
        self, dest_host: str, dest_port: int, orig_host: str, orig_port: int
    ) -> bool:
        return False

    def server_requested(self, listen_host: str, listen_port: int) -> bool:
        return False

    def unix_connection_requested(self, dest_path: str) -> bool:
        return False

    def unix_server_requested(self, listen_path: str) -> bool:
        return False


class _ConsoleSession(asyncssh.SSHServerSession[bytes]):
    """One SSH session: the console on a pty, its bytes pumped to and from the channel."""

    def __init__(self, owner: SshServer, actor: Actor) -> None:
        self.owner = owner
        self.actor = actor
        self.chan: asyncssh.SSHServerChannel[bytes] | None = None
        self.term = ""
        self.size: TermSize | None = None
        self.refusal: str | None = None
        self.command: list[str] | None = None  # an exec request's subcommand
        self.pump: OutputPump | None = None  # its output, without a terminal
        self.process: SessionProcess | None = None
        self.master: int | None = None
        self._pending_input = bytearray()
        self._reading = False
        self._task: asyncio.Task[None] | None = None

    # -- what the client asks for --------------------------------------------------------

    def connection_made(self, chan: asyncssh.SSHServerChannel[bytes]) -> None:
        self.chan = chan

    def pty_requested(
        self, term_type: str, term_size: tuple[int, int, int, int], term_modes: object
    ) -> bool:
        self.term = term_type
        # Accepted either way: a refusal is said once the session starts.
        self.refusal = self.refusal or term_refusal(term_type)
        self.size = clamp_size(*term_size)
        return True

    def shell_requested(self) -> bool:
        return True

    def exec_requested(self, command: str) -> bool:
        # A refusal is accepted too, to say why no command runs: a bare refusal reads as a
        # network error.
        if not self.owner.commands:
            self.refusal = NO_COMMANDS
            return True
        try:
            self.command = exec_argv(command)
        except ExecRefused as refused:
            self.refusal = refused.message
        return True

    def subsystem_requested(self, subsystem: str) -> bool:
        self.refusal = f"subsystem {subsystem[:40]!r} is refused (no sftp, no scp)"
        return True

    def session_started(self) -> None:
        self.owner.sessions.add(self)
        if self.refusal is None and self.size is None and self.command is None:
            self.refusal = "a terminal is required: connect with ssh -t"
        if self.refusal is None:
            settings = self.owner.settings
            self.refusal = session_refusal(
                self.actor.user,
                [session.actor.user for session in self.owner.sessions if session is not self],
                settings.max_sessions_per_user,
                settings.max_sessions,
            )
        if self.refusal is not None:
            self._refuse(self.refusal)
            return
        self._task = asyncio.ensure_future(self._run())

    def _refuse(self, message: str) -> None:
        assert self.chan is not None
        _log.warning("session refused: %s", message, extra=self._who())
        self.chan.write_stderr(f"deploy-console: {message}\r\n".encode())
        self.chan.exit(REFUSED_STATUS)
        self.owner.sessions.discard(self)

    # -- the console ------------------------------------------------------------------------

    def _who(self) -> dict[str, str]:
        return {"user": self.actor.user, "key": self.actor.key, "source": self.actor.source}

    async def _run(self) -> None:
        assert self.chan is not None
        status = 1
        _log.info("session opened", extra=self._who())
        try:
            status = await self._spawn_and_pump()
        except OSError as error:
            self.chan.write_stderr(
                f"deploy-console: cannot start the console: {_reason(error)}\r\n".encode()
            )
        except Exception as error:
            # Never a session left open with nothing in it: the client hears one line, the
            # server's log gets the traceback.
            _log.exception("session of %s failed", self.actor.user)
            message = f"deploy-console: the session failed ({type(error).__name__})\r\n"
            with contextlib.suppress(OSError, asyncssh.Error):
                self.chan.write_stderr(message.encode())
        finally:
            await self._kill_group()
            self._close_master()
            self.owner.sessions.discard(self)
        _log.info("session ended (status %d)", status, extra=self._who())
        with contextlib.suppress(OSError, asyncssh.Error):
            self.chan.exit(status)

    async def _spawn_and_pump(self) -> int:
        if self.command is not None and self.size is None:
            return await self._run_command(self.command)
        master, slave = pty.openpty()
        self.master = master
        try:
            if self.size is not None:
                set_size(master, self.size)
            os.set_blocking(master, False)
            env = self.owner.child_environment(self.term)
            spawn = self.owner.spawner.spawn
            if self.command is None:  # the console
                self.process = await spawn(slave, env, self.actor)
            else:  # a subcommand on a terminal (ssh -t)
                self.process = await spawn(slave, env, self.actor, self.command)
        finally:
            os.close(slave)
        self._start_reading()
        if self._pending_input:
            self._flush_input()
        returncode = await self.process.wait()
        # What the console wrote last (its screen reset) still goes out before the exit.
        self._drain_output()
        return returncode if returncode >= 0 else 128 - returncode

    async def _run_command(self, command: list[str]) -> int:
        """A subcommand without a terminal: stdin /dev/null, stdout and stderr on pipes to
        the channel's; its exit status once it ended and its output is out."""
        assert self.chan is not None
        stdout, child_stdout = os.pipe()
        stderr, child_stderr = os.pipe()
        stdin = os.open(os.devnull, os.O_RDONLY)
        self.pump = OutputPump(stdout, stderr, self.chan.write, self.chan.write_stderr)
        try:
            env = self.owner.child_environment("dumb")
            stdio = (stdin, child_stdout, child_stderr)
            self.process = await self.owner.spawner.spawn_command(stdio, env, self.actor, command)
        except BaseException:
            self.pump.close()
            raise
        finally:
            for fd in (stdin, child_stdout, child_stderr):
                os.close(fd)
        returncode = await self.process.wait()
        # What it left behind in its group holds the pipes open no longer.
        self._signal_group(signal.SIGKILL)
        await self.pump.drained()
        return returncode if returncode >= 0 else 128 - returncode

    def _start_reading(self) -> None:
        if self.master is not None and not self._reading:
            asyncio.get_running_loop().add_reader(self.master, self._output_ready)
            self._reading = True

    def _stop_reading(self) -> None:
        if self.master is not None and self._reading:
            asyncio.get_running_loop().remove_reader(self.master)
            self._reading = False

    def _output_ready(self) -> None:
        assert self.master is not None and self.chan is not None
        try:
            data = os.read(self.master, CHUNK)
        except BlockingIOError:
            return
        except OSError:
            data = b""  # EIO: every process holding the pty's other side is gone
        if not data or not self._send(data):
            self._stop_reading()

    def _drain_output(self) -> None:
        if self.master is None or self.chan is None:
            return
        while True:
            try:
                data = os.read(self.master, CHUNK)
            except OSError:
                return
            if not data or not self._send(data):
                return

    def _send(self, data: bytes) -> bool:
        """Write to the client; False once its channel is gone (it vanished)."""
        assert self.chan is not None
        try:
            self.chan.write(data)
        except (OSError, asyncssh.Error):
            return False
        return True

    def data_received(self, data: bytes, datatype: int | None) -> None:
        if self.command is not None and self.size is None:
            return  # a subcommand without a terminal reads /dev/null: nothing is kept
        self._pending_input += data
        if self.master is not None:
            self._flush_input()

    def _flush_input(self) -> None:
        assert self.master is not None
        loop = asyncio.get_running_loop()
        try:
            written = os.write(self.master, self._pending_input)
        except BlockingIOError:
            written = 0
        except OSError:
            self._pending_input.clear()
            return
        del self._pending_input[:written]
        if self._pending_input:
            # The console reads slower than the client types: write the rest when it can.
            loop.add_writer(self.master, self._input_ready)
        else:
            loop.remove_writer(self.master)

    def _input_ready(self) -> None:
        self._flush_input()

    def terminal_size_changed(self, width: int, height: int, pixwidth: int, pixheight: int) -> None:
        self.size = clamp_size(width, height, pixwidth, pixheight)
        if self.master is None:
            return
        set_size(self.master, self.size)
        # A pty that is the console's controlling terminal has the kernel tell its foreground
        # group (a second SIGWINCH could land inside the first's handler); one that is not
        # (a command spawned without a session on it) has none: tell the console's group.
        with contextlib.suppress(OSError):
            if os.tcgetpgrp(self.master) > 0:
                return
        self._signal_group(signal.SIGWINCH)

    def pause_writing(self) -> None:
        # The client reads slower than the console draws: stop reading until it catches up.
        self._stop_reading()
        if self.pump is not None:
            self.pump.pause()

    def resume_writing(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self._start_reading()
            if self.pump is not None:
                self.pump.resume()

    def eof_received(self) -> bool:
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        # The client went away (or the session ended): the console must not outlive it. A
        # subcommand is hung up instead, as by a closed terminal: a deploy goes on to its
        # end, with nobody reading (CI's connection is not the deploy's life).
        if self.command is not None and self._task is not None and not self._task.done():
            self._signal_group(signal.SIGHUP)
            return
        if self._task is not None and not self._task.done():
            stopping = asyncio.ensure_future(self.stop())
            self.owner.stopping.add(stopping)
            stopping.add_done_callback(self.owner.stopping.discard)

    async def stop(self) -> None:
        """End the console (SIGTERM, then SIGKILL) and wait until it is reaped."""
        await self._kill_group()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError, OSError, asyncssh.Error):
                await self._task
        self.owner.sessions.discard(self)

    async def _kill_group(self) -> None:
        process = self.process
        if process is None:
            return
        if process.returncode is None:
            self._signal_group(signal.SIGTERM)
            try:
                grace = STOP_GRACE_SECONDS if self.command is None else COMMAND_STOP_GRACE_SECONDS
                await asyncio.wait_for(process.wait(), grace)
            except TimeoutError:
                self._signal_group(signal.SIGKILL)
                await process.wait()
        # Whatever the console left behind in its group (its fleet worker) goes too.
        self._signal_group(signal.SIGKILL)

    def _signal_group(self, signum: int) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signum)

    def _close_master(self) -> None:
        if self.master is None:
            return
        self._stop_reading()
        loop = asyncio.get_running_loop()
        loop.remove_writer(self.master)
        with contextlib.suppress(OSError):
            os.close(self.master)
        self.master = None
