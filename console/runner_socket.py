"""The runner's local door: a Unix socket where a caller's identity comes from the kernel.

`deploy-console runner --socket PATH` answers one JSON request per line on PATH. Who asks is
read from the connection itself (SO_PEERCRED: the uid of the process at the other end), never
from anything the caller sends; a request that names a user is refused. Requests:

  {"op": "whoami"}                                   -> {"ok": true, "user": "alice", "uid": 1001}
  {"op": "deploy", "project": P, "cluster": C, "release": R}  (+ "confirm": C if protected)
                                                     -> {"ok": true, "deploy_id": "d-..."}
  anything refused                                   -> {"ok": false, "error": "one line"}

This is the start of the shared-host model (the runner, as its own service user, owns the
store; callers ask it): the CLI and the console do not use it yet.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pwd
import socket
import stat
import struct
from pathlib import Path
from typing import Any

from console.access import Action
from console.errors import ConsoleError
from console.identity import LOCAL, Actor, IdentityError, unix_groups
from console.model import DeployRequest
from console.runner import Runner

MAX_REQUEST = 4096  # bytes in one request line
READ_SECONDS = 10.0  # a caller that sends nothing for this long is dropped
_PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


class RunnerSocketError(ConsoleError):
    """The socket cannot be served, or a request to it failed."""


def peer_actor(connection: socket.socket) -> tuple[Actor, int]:
    """The OS account of the process at the other end of a Unix socket, and its uid."""
    raw = connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
    _pid, uid, _gid = _PEERCRED.unpack(raw)
    try:
        account = pwd.getpwuid(uid)
    except KeyError:
        raise IdentityError(f"uid {uid} has no account in the password database") from None
    groups = unix_groups(account.pw_name, account.pw_gid)
    return Actor(account.pw_name, LOCAL, groups=groups), uid


class RunnerSocket:
    """Serves `runner`'s requests on a Unix socket at `path` (0666: the kernel names the caller;
    the folder's permissions decide who may reach it)."""

    def __init__(self, path: Path, runner: Runner) -> None:
        self.path = path
        self.runner = runner
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        if self.path.is_symlink() or (
            self.path.exists() and not stat.S_ISSOCK(self.path.lstat().st_mode)
        ):
            raise RunnerSocketError(f"{self.path} exists and is not a socket")
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # a socket left by a runner that died
        try:
            self._server = await asyncio.start_unix_server(
                self._serve, path=str(self.path), limit=MAX_REQUEST
            )
            os.chmod(self.path, 0o666)
        except OSError as error:
            raise RunnerSocketError(f"cannot listen on {self.path}: {error.strerror}") from None

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            connection = writer.get_extra_info("socket")
            actor, uid = peer_actor(connection)
            while True:
                try:
                    async with asyncio.timeout(READ_SECONDS):
                        line = await reader.readline()
                except (TimeoutError, ValueError):  # silent, or a line over MAX_REQUEST
                    break
                if not line:
                    break
                reply = await self._answer(line, actor, uid)
                writer.write(json.dumps(reply).encode() + b"\n")
                await writer.drain()
        except (ConsoleError, OSError) as error:
            message = error.message if isinstance(error, ConsoleError) else str(error)
            with contextlib.suppress(OSError):
                writer.write(json.dumps({"ok": False, "error": message}).encode() + b"\n")
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _answer(self, line: bytes, actor: Actor, uid: int) -> dict[str, Any]:
        try:
            request = json.loads(line)
        except ValueError:
            return {"ok": False, "error": "not a JSON request"}
        if not isinstance(request, dict):
            return {"ok": False, "error": "a request is a JSON object"}
        if any(key in request for key in ("user", "actor", "uid")):
            return {"ok": False, "error": "the caller is known from the socket: name no user"}
        op = request.get("op")
        if op == "whoami":
            return {"ok": True, "user": actor.user, "uid": uid}
        if op == "deploy":
            return await self._deploy(request, actor)
        return {"ok": False, "error": f"unknown op {op!r} (whoami, deploy)"}

    async def _deploy(self, request: dict[str, Any], actor: Actor) -> dict[str, Any]:
        fields = [request.get(name) for name in ("project", "cluster", "release")]
        if not all(isinstance(value, str) and value for value in fields):
            return {"ok": False, "error": "deploy needs project, cluster and release"}
        project, cluster, release = (str(value) for value in fields)
        deploy = DeployRequest(project, cluster, release, str(actor))
        try:
            # Checked before AWS is asked (the queue checks again as it enqueues).
            self.runner.queue.access.check(str(actor), Action.DEPLOY, cluster)
            if self.runner.queue.config.cluster(cluster).protected and (
                request.get("confirm") != cluster
            ):
                return {
                    "ok": False,
                    "error": f'{cluster} is protected: confirm with "confirm": "{cluster}"',
                }
            await self.runner.engine.plan(deploy)  # an unknown release is refused here
            record = await self.runner.enqueue(deploy)
        except ConsoleError as error:
            return {"ok": False, "error": error.message}
        return {"ok": True, "deploy_id": record.id}


async def ask(path: Path, request: dict[str, Any], timeout: float = READ_SECONDS) -> Any:
    """One request to a runner's socket, its reply (a caller's side, for scripts and tests)."""
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_unix_connection(str(path))
            try:
                writer.write(json.dumps(request).encode() + b"\n")
                await writer.drain()
                line = await reader.readline()
            finally:
                writer.close()
    except (OSError, TimeoutError) as error:
        raise RunnerSocketError(f"cannot ask the runner at {path}: {error}") from None
    if not line:
        raise RunnerSocketError(f"the runner at {path} closed the connection")
    return json.loads(line)
