"""SSH to instances through a jump host: run a command, stream its lines, verify host keys."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncssh

from console.closing import Closing
from console.config import SshSettings
from console.errors import HostKeyError, SshError
from console.safe_text import harmless

# asyncssh logs every connection and channel at INFO: that would scribble over the screen.
logging.getLogger("asyncssh").setLevel(logging.WARNING)

LineCallback = Callable[[str, str], None]  # (stream: "stdout" | "stderr", line without newline)
KEEPALIVE_SECONDS = 15.0
KEEPALIVE_COUNT = 4
# AES-GCM first: asyncssh's chacha20-poly1305 costs a cipher context per block, which made
# tunnelled (doubly encrypted) commands measurably slower; all of these are OpenSSH defaults.
ENCRYPTION_ALGS = (
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "chacha20-poly1305@openssh.com",
    "aes128-ctr",
    "aes192-ctr",
    "aes256-ctr",
)

_JumpKey = tuple[str, str, Path, Path]


class Host:
    """One SSH connection to an instance; run() may be called many times, also concurrently."""

    def __init__(self, address: str, connection: asyncssh.SSHClientConnection) -> None:
        self.address = address
        self._connection = connection

    async def run(
        self,
        command: str,
        *,
        stdin: str | None = None,
        on_line: LineCallback | None = None,
        timeout: float | None = None,
    ) -> int:
        """Run `command`, stream its output lines to on_line, return its exit status.

        A command killed by a signal returns 128 + the signal number, as a shell reports it.
        `stdin` (it may carry secrets) is never logged nor put into an error message.
        """
        process: asyncssh.SSHClientProcess[str] | None = None
        try:
            async with asyncio.timeout(timeout):
                process = await self._connection.create_process(
                    command,
                    stdin=asyncssh.DEVNULL if stdin is None else asyncssh.PIPE,
                    encoding="utf-8",
                    errors="replace",
                )
                await asyncio.gather(
                    _feed(process, stdin),
                    _read_lines(process.stdout, "stdout", on_line),
                    _read_lines(process.stderr, "stderr", on_line),
                )
                completed = await process.wait()
        except TimeoutError:
            raise SshError(f"command timed out after {timeout:g}s on {self.address}") from None
        except asyncssh.ChannelOpenError as error:
            raise SshError(f"{self.address} refused to run a command: {_reason(error)}") from None
        except (asyncssh.Error, OSError) as error:
            raise SshError(f"lost the SSH connection to {self.address}: {_reason(error)}") from None
        finally:
            # Closing the channel ends the command on the host (on a timeout or a cancel too).
            if process is not None:
                process.close()
        if completed.exit_status is not None:
            return completed.exit_status
        if completed.returncode is not None and completed.returncode < 0:
            return 128 - completed.returncode
        raise SshError(f"{self.address} ended the command without an exit status")


class JumpHosts(Closing):
    """One shared connection per jump host, as OpenSSH's ControlMaster does.

    Optional: it saves a handshake per instance, and a burst of parallel deploys does not
    trip a bastion's MaxStartups limit on unauthenticated connections.
    """

    def __init__(self) -> None:
        self._connections: dict[_JumpKey, asyncssh.SSHClientConnection] = {}
        self._locks: dict[_JumpKey, asyncio.Lock] = {}

    async def connection(
        self,
        settings: SshSettings,
        connect: Callable[[], Awaitable[asyncssh.SSHClientConnection]],
    ) -> asyncssh.SSHClientConnection:
        assert settings.jump_host is not None
        key = (settings.jump_host, settings.user, settings.key, settings.known_hosts)
        async with self._locks.setdefault(key, asyncio.Lock()):
            connection = self._connections.get(key)
            if connection is None or connection.is_closed():
                connection = await connect()
                self._connections[key] = connection
            return connection

    async def close(self) -> None:
        connections = list(self._connections.values())
        self._connections.clear()
        for connection in connections:
            connection.close()
        for connection in connections:
            await _wait_closed(connection)


@contextlib.asynccontextmanager
async def open_host(
    settings: SshSettings, address: str, *, jumps: JumpHosts | None = None
) -> AsyncIterator[Host]:
    """Connect to `address` (through settings.jump_host when set) and verify its host key.

    Host keys are checked against settings.known_hosts (which may trust a host CA with an
    `@cert-authority` line); a key that does not verify raises HostKeyError before anything
    is sent. With `jumps`, the jump host connection is shared and outlives this block.
    """
    options = _client_options(settings, address)
    async with contextlib.AsyncExitStack() as stack:
        tunnel: asyncssh.SSHClientConnection | None = None
        jump = settings.jump_address
        if jump is not None:

            async def connect_jump() -> asyncssh.SSHClientConnection:
                return await _connect(
                    jump[0], jump[1], options, None, what=f"jump host {settings.jump_host}"
                )

            if jumps is not None:
                tunnel = await jumps.connection(settings, connect_jump)
            else:
                tunnel = await connect_jump()
                stack.push_async_callback(_close, tunnel)
        what = f"{address}:{settings.port}"
        if tunnel is not None:
            what += f" (through jump host {settings.jump_host})"
        connection = await _connect(address, settings.port, options, tunnel, what=what)
        stack.push_async_callback(_close, connection)
        yield Host(address, connection)


def _client_options(settings: SshSettings, address: str) -> dict[str, Any]:
    try:
        client_key = asyncssh.read_private_key(settings.key)
    except (OSError, asyncssh.KeyImportError) as error:
        raise SshError(f"cannot use SSH key {settings.key}: {_reason(error)}") from None
    try:
        known_hosts = asyncssh.read_known_hosts(str(settings.known_hosts))
    except (OSError, ValueError) as error:
        raise HostKeyError(
            f"cannot verify {address}: cannot read known_hosts {settings.known_hosts}: "
            f"{_reason(error)}"
        ) from None
    return {
        "username": settings.user,
        "client_keys": [client_key],
        "known_hosts": known_hosts,
        # Only what the settings say: no ssh-agent, no ~/.ssh/config, no forwarding.
        "agent_path": None,
        "config": None,
        "agent_forwarding": False,
        "x11_forwarding": False,
        "preferred_auth": "publickey",
        "encryption_algs": list(ENCRYPTION_ALGS),
        "connect_timeout": settings.connect_timeout,
        "keepalive_interval": KEEPALIVE_SECONDS,
        "keepalive_count_max": KEEPALIVE_COUNT,
    }


async def _connect(
    host: str,
    port: int,
    options: dict[str, Any],
    tunnel: asyncssh.SSHClientConnection | None,
    *,
    what: str,
) -> asyncssh.SSHClientConnection:
    """One SSH connection; every failure becomes a one-line SshError naming `what`."""
    try:
        if tunnel is None:
            return await asyncssh.connect(host, port, **options)
        return await asyncssh.connect(host, port, tunnel=tunnel, **options)
    except asyncssh.HostKeyNotVerifiable as error:
        raise HostKeyError(
            f"host key of {what} did not verify: {_reason(error)}; nothing was sent"
        ) from None
    except asyncssh.PermissionDenied:
        raise SshError(
            f"{what} refused SSH key for user {options['username']!r} (public key auth)"
        ) from None
    except asyncssh.ChannelOpenError as error:
        raise SshError(f"cannot reach {what}: {_reason(error)}") from None
    except TimeoutError:
        raise SshError(
            f"timed out after {options['connect_timeout']:g}s connecting to {what}"
        ) from None
    except asyncssh.Error as error:
        raise SshError(f"SSH to {what} failed: {_reason(error)}") from None
    except OSError as error:
        raise SshError(f"cannot connect to {what}: {_reason(error)}") from None


async def _close(connection: asyncssh.SSHClientConnection) -> None:
    connection.close()
    await _wait_closed(connection)


async def _wait_closed(connection: asyncssh.SSHClientConnection) -> None:
    with contextlib.suppress(TimeoutError, OSError, asyncssh.Error):
        await asyncio.wait_for(connection.wait_closed(), timeout=5)


async def _feed(process: asyncssh.SSHClientProcess[str], stdin: str | None) -> None:
    if stdin is None:
        return
    # A command may exit without reading its input: that is its business, not an error.
    with contextlib.suppress(OSError, asyncssh.Error):
        process.stdin.write(stdin)
        await process.stdin.drain()
        process.stdin.write_eof()


async def _read_lines(
    reader: asyncssh.SSHReader[str], stream: str, on_line: LineCallback | None
) -> None:
    while True:
        line = await reader.readline()
        if not line:
            return
        if on_line is not None:
            # The one place instance output enters the core: every consumer (CLI, TUI, store,
            # exports) gets the line with its terminal controls rendered harmless.
            on_line(stream, harmless(line.rstrip("\r\n")))


def _reason(error: BaseException) -> str:
    """The one-line reason of an asyncssh or OS error."""
    reason = getattr(error, "reason", None) or getattr(error, "strerror", None) or str(error)
    # A remote host chooses its disconnect reason: it is shown as harmlessly as its output.
    return harmless(" ".join(str(reason).split())) or type(error).__name__
