"""How the SSH server starts a session's console: the spawner protocol and the plain one.

The plain spawner runs a command with asyncio; `deploy-console sshd` forks consoles from a
preloaded process instead (screens/cli/session_fork.py), behind the same protocol.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Protocol

from console.identity import Actor


class SessionProcess(Protocol):
    """A session's console process: asyncio's, or one forked (screens/cli/session_fork.py)."""

    pid: int

    @property
    def returncode(self) -> int | None: ...

    async def wait(self) -> int: ...


class SessionSpawner(Protocol):
    """Starts a session's console on the pty `terminal` (its stdio and controlling terminal),
    in its own session and process group, with the environment `env`, acting for `actor` (a
    spawner that can hand it over does so in memory; never through `env`). `command`: a
    console subcommand's argv (an SSH exec request) after the console's own arguments."""

    async def spawn(
        self, terminal: int, env: dict[str, str], actor: Actor, command: Sequence[str] = ()
    ) -> SessionProcess: ...

    async def spawn_command(
        self, stdio: tuple[int, int, int], env: dict[str, str], actor: Actor,
        command: Sequence[str],
    ) -> SessionProcess:  # fmt: skip
        """As `spawn`, with no terminal: `stdio` (stdin, stdout, stderr) are its own."""
        ...


class CommandSpawner:
    """Runs `command` for each session, a new process in a new session. It has no way to hand
    over the actor (an exec'd process acts as the server's account): tests and tools only;
    `deploy-console sshd` forks its consoles (screens/cli/session_fork.py)."""

    def __init__(self, command: Sequence[str]) -> None:
        self.command = list(command)

    async def spawn(
        self, terminal: int, env: dict[str, str], actor: Actor, command: Sequence[str] = ()
    ) -> SessionProcess:
        return await self.spawn_command((terminal, terminal, terminal), env, actor, command)

    async def spawn_command(
        self, stdio: tuple[int, int, int], env: dict[str, str], actor: Actor,
        command: Sequence[str],
    ) -> SessionProcess:  # fmt: skip
        process = await asyncio.create_subprocess_exec(
            *self.command,
            *command,
            stdin=stdio[0],
            stdout=stdio[1],
            stderr=stdio[2],
            env=env,
            start_new_session=True,
            close_fds=True,
        )
        return _Exec(process)


class _Exec:
    """asyncio's process as a SessionProcess."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self._process = process
        self.pid = process.pid

    @property
    def returncode(self) -> int | None:
        return self._process.returncode

    async def wait(self) -> int:
        return await self._process.wait()
