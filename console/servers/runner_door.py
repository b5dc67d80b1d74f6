"""The runner's local door on a shared console host: one runner, as its own account, owns the
store and runs every deploy; people's commands ask it over a Unix socket.

Who asks is learnt from the socket itself (SO_PEERCRED: the caller's uid, looked up in the
password database), never from what the caller says. Only a caller running as the service's
own account (the SSH server and the web front, which authenticated their people) may say whom
it acts for. Each request is one connection: one JSON line in, JSON lines out (a deploy that is
followed streams its events), the connection closed at the end. A caller that goes away changes
nothing: what it asked for belongs to the runner.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import pwd
import socket
import struct
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Unpack

from console import errors
from console.access import AccessDenied, Action
from console.config.tickets import TicketSettings
from console.errors import ConsoleError, DeployError, ReleaseWarned
from console.events import DeployFinished, event_json
from console.identity import LOCAL, Actor, IdentityError, acting_for, unix_groups
from console.model import DeployPlan, DeployRequest
from console.queue.release_queue import Freeze, ManualLock
from console.servers import stack_door
from console.store import DeployRecord, NewManualLock

if TYPE_CHECKING:
    from console.fleet.keeper import SnapshotKeeper
    from console.queue.runner import Runner

# Anyone on the host may ask; the service decides who they are and what they may do.
SOCKET_MODE = 0o666
LINE_LIMIT = 64 * 1024
WIRE_TYPES = {cls.__name__: cls for cls in (DeployRecord, ManualLock, Freeze)}


class DoorError(ConsoleError):
    """The runner service cannot be reached, or answered something this client cannot read."""


# -- what travels ------------------------------------------------------------------------------


def to_wire(value: Any) -> Any:
    """A record (dataclass) as JSON-ready data that names its type; lists of them likewise."""
    if isinstance(value, list | tuple):
        return [to_wire(item) for item in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        data = {}
        for item in dataclasses.fields(value):
            field_value = getattr(value, item.name)
            if isinstance(field_value, datetime):
                field_value = field_value.isoformat()
            elif isinstance(field_value, tuple):
                field_value = list(field_value)
            data[item.name] = field_value
        return {"type": type(value).__name__, "fields": data}
    return value


def from_wire(value: Any) -> Any:
    """The record `to_wire` made (only the queue's own record types are accepted)."""
    if isinstance(value, list):
        return [from_wire(item) for item in value]
    if not isinstance(value, dict) or "type" not in value:
        return value
    cls = WIRE_TYPES.get(str(value["type"]))
    if cls is None:
        raise DoorError(f"the runner service sent an unknown record {value['type']!r}")
    values = dict(value["fields"])
    for item in dataclasses.fields(cls):
        found = values.get(item.name)
        if found is not None and "datetime" in str(item.type):
            values[item.name] = datetime.fromisoformat(found)
        elif isinstance(found, list):
            values[item.name] = tuple(found)
    return cls(**values)


def peer_uid(connection: socket.socket) -> int:
    """The uid of the process at the other end of a Unix socket, as the kernel knows it."""
    credentials = connection.getsockopt(
        socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")
    )
    _pid, uid, _gid = struct.unpack("3i", credentials)
    return int(uid)


def local_account(uid: int) -> Actor:
    """The actor of a local caller: their account and its Unix groups."""
    try:
        account = pwd.getpwuid(uid)
    except KeyError:
        raise IdentityError(f"uid {uid} has no account in the password database") from None
    return Actor(account.pw_name, LOCAL, groups=unix_groups(account.pw_name, account.pw_gid))


# -- the server ----------------------------------------------------------------------------------


class RunnerDoor:
    """Serves one runner's queue on a Unix socket (see the module's docstring)."""

    def __init__(self, runner: Runner, path: Path) -> None:
        self.runner = runner
        self.queue = runner.queue
        self.path = path
        self.own_uid = os.geteuid()
        self._server: asyncio.AbstractServer | None = None
        self.requests = 0  # connections being answered now (a followed deploy stays open)
        self._snapshots: SnapshotKeeper | None = None  # from the first `status` that asks

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.is_socket():
            try:
                _, writer = await asyncio.open_unix_connection(str(self.path))
            except OSError:
                self.path.unlink(missing_ok=True)  # a socket left by a runner that died
            else:
                writer.close()
                raise DoorError(f"another runner already serves {self.path}")
        try:
            self._server = await asyncio.start_unix_server(
                self._serve, path=str(self.path), limit=LINE_LIMIT
            )
            os.chmod(self.path, SOCKET_MODE)
        except OSError as error:
            raise DoorError(f"cannot listen on {self.path}: {error.strerror}") from None

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        if self._snapshots is not None:
            await self._snapshots.aclose()

    def actor(self, uid: int, claimed: dict[str, Any] | None) -> Actor:
        """Who a request acts for: the caller's account; a trusted door (a caller running as
        the service's own account) may name the person it authenticated."""
        if claimed is not None and uid == self.own_uid:
            return Actor(
                str(claimed["user"]),
                str(claimed.get("door", LOCAL)),
                str(claimed.get("key", "")),
                str(claimed.get("source", "")),
                tuple(str(group) for group in claimed.get("groups", ())),
            )
        return local_account(uid)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async def send(data: dict[str, Any]) -> None:
            writer.write(json.dumps(data).encode() + b"\n")
            await writer.drain()

        self.requests += 1
        try:
            request = json.loads(await reader.readline())
            if not isinstance(request, dict):
                raise DoorError("a request is one JSON object")
            who = self.actor(peer_uid(writer.get_extra_info("socket")), request.get("as"))
            with acting_for(who):
                async for answer in self._answer(who, str(request.get("op")), request):
                    await send(answer)
        except ConsoleError as error:
            with contextlib.suppress(ConnectionError):
                await send({"error": error.message, "kind": type(error).__name__})
        except (ValueError, KeyError, TypeError) as error:
            with contextlib.suppress(ConnectionError):
                await send({"error": f"malformed request: {error}", "kind": "DoorError"})
        except ConnectionError:
            pass  # the caller left: what it asked for goes on regardless
        finally:
            self.requests -= 1
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _findings(self) -> list[dict[str, Any]]:
        """(drift) The findings of the last snapshot, against the runner's store."""
        from console.drift.review import findings_json

        assert self._snapshots is not None
        snapshot = await self._snapshots.latest()  # the one just answered: no wait
        return await findings_json(self.queue.config, snapshot, self.runner.engine.store)

    async def _answer(
        self, who: Actor, op: str, request: dict[str, Any]
    ) -> AsyncIterator[dict[str, Any]]:
        actor = str(who)
        args: dict[str, Any] = request.get("args") or {}
        if op == "whoami":
            yield {"result": {"actor": actor, "groups": list(who.groups)}}
            return
        if op == "snapshot":  # plain `status`: the fleet as last refreshed (console/fleet/wire)
            if self._snapshots is None:
                from console.fleet.keeper import SnapshotKeeper

                self._snapshots = SnapshotKeeper(self.queue.config, self.runner.name)
            answer = await self._snapshots.answer()
            # (drift) Its findings too: `status --json` gives each pair's.
            answer["findings"] = await self._findings()
            yield {"result": answer}
            return
        if op == "scale":  # (i16-scale) queued and run here for whom the door says asks
            from console.servers import scale_door

            async for answer in scale_door.answer(self.runner, self.queue, actor, args, to_wire):
                yield answer
            return
        if op in stack_door.OPERATIONS:  # `stack apply` (console/servers/stack_door.py)
            async for answer in stack_door.stack_answers(self.runner, actor, op, args):
                yield answer
            return
        if op == "deploy":
            ticket = args.get("ticket")
            at = args.get("at")  # `deploy --at`, checked ahead by the queue
            deploy_request = DeployRequest(
                args["project"],
                args["cluster"],
                args["release"],
                actor,
                ticket=ticket,
                not_before=None if at is None else datetime.fromisoformat(str(at)),
                window_override=args.get("outside_window"),
            )
            try:
                # The cluster's ticket rule holds on a shared host too (the caller's own
                # command checked it; the service does not take its word for it).
                settings = self.queue.config.cluster(args["cluster"]).ticket or TicketSettings()
                problem = settings.problem(ticket, args["cluster"])
                if problem is not None:
                    raise DeployError(f"{problem}: nothing deployed")
                # Who asks first, then AWS (an unknown release is refused before anything).
                self.queue.access.check(
                    actor, Action.DEPLOY, args["cluster"], project=args["project"]
                )
                if deploy_request.window_override is not None:
                    self.queue.access.check(
                        actor,
                        Action.DEPLOY_OUTSIDE_WINDOW,
                        args["cluster"],
                        project=args["project"],
                    )
                plan = await self.runner.engine.plan(deploy_request)
                if not args.get("anyway"):  # the same warnings as a deploy on one's own
                    await self._refuse_warned(plan, actor)
                record = await self.runner.enqueue(deploy_request)
            except AccessDenied as denied:
                await self.queue.record_denial(actor, denied, args["cluster"], args["project"])
                raise
            yield {"result": to_wire(record)}
            if args.get("follow"):
                async for event in self.runner.follow(record.id):
                    yield {"event": event_json(event)}
                    if isinstance(event, DeployFinished):
                        break
            return
        result = await self._queue_operation(actor, op, args)
        yield {"result": to_wire(result)}

    async def _refuse_warned(self, plan: DeployPlan, actor: str) -> None:
        """ReleaseWarned when the release warns: the asker confirms, then asks again with
        `anyway` (its own console reads neither the store nor AWS on a shared host)."""
        warnings = await self.runner.engine.release_warnings(plan, actor)
        if warnings:
            said = "; ".join(warning.text for warning in warnings)
            raise ReleaseWarned(f"release {plan.release.version} {said}")

    async def _queue_operation(self, actor: str, op: str, args: dict[str, Any]) -> Any:
        queue = self.queue
        try:
            if op == "cancel":
                return await self.runner.cancel(args["deploy_id"], actor, args.get("reason", ""))
            if op == "move":
                return await queue.move(args["deploy_id"], int(args["steps"]), actor)
            if op == "override_window":
                return await queue.override_window(args["deploy_id"], actor, args["reason"])
            if op == "freeze":
                return await queue.freeze(args["cluster"], actor, args["reason"])
            if op == "unfreeze":
                return await queue.unfreeze(args["cluster"], actor)
            if op == "lock":
                expires = args.get("expires_at")
                return await queue.lock(
                    owner=actor,
                    reason=args["reason"],
                    project=args.get("project"),
                    cluster=args.get("cluster"),
                    expires_at=None if expires is None else datetime.fromisoformat(expires),
                    warning=bool(args.get("warning")),
                )
            if op == "unlock":
                return await queue.unlock(int(args["lock_id"]), actor)
            if op == "promote":
                clusters = [c for stage in queue.config.promotion for c in stage]
                first = [c for c in clusters if c in queue.config.project(args["project"]).clusters]
                if first:  # the release is checked where the chain starts, before anything
                    plan = DeployRequest(args["project"], first[0], args["release"], actor)
                    await self.runner.engine.plan(plan)
                return await queue.promote(
                    args["project"], args["release"], actor, args["ids"], ticket=args.get("ticket")
                )
        except AccessDenied as denied:
            await queue.record_denial(actor, denied, args.get("cluster"), args.get("project"))
            raise
        raise DoorError(f"unknown request {op!r}")


# -- the client -----------------------------------------------------------------------------------


class DoorClient:
    """Asks the runner service; `claimed` only for a trusted door (see RunnerDoor.actor)."""

    def __init__(self, path: Path, claimed: Actor | None = None) -> None:
        self.path = path
        self.claimed = claimed

    async def stream(self, op: str, **args: Any) -> AsyncIterator[dict[str, Any]]:
        """The service's answers to one request, in order; its refusal raised as the same
        error the core raises (AccessDenied, QueueError, ...)."""
        try:
            reader, writer = await asyncio.open_unix_connection(str(self.path), limit=LINE_LIMIT)
        except OSError as error:
            raise DoorError(
                f"the runner at {self.path} does not answer ({error.strerror}): "
                "is `deploy-console runner --socket` running?"
            ) from None
        request: dict[str, Any] = {"op": op, "args": args}
        if self.claimed is not None:
            request["as"] = {
                **dataclasses.asdict(self.claimed),
                "groups": list(self.claimed.groups),
            }
        try:
            writer.write(json.dumps(request).encode() + b"\n")
            await writer.drain()
            while line := await reader.readline():
                answer = json.loads(line)
                if "error" in answer:
                    raise _error(str(answer.get("kind")), str(answer["error"]))
                yield answer
        except (ConnectionError, ValueError) as error:
            raise DoorError(f"the runner at {self.path} broke off: {error}") from None
        finally:
            writer.close()

    async def call(self, op: str, **args: Any) -> Any:
        """The one result of a request."""
        async for answer in self.stream(op, **args):
            if "result" in answer:
                return from_wire(answer["result"])
        raise DoorError(f"the runner at {self.path} answered nothing to {op}")


def _error(kind: str, message: str) -> ConsoleError:
    """The core's own error class for a refusal the service sent (ConsoleError otherwise)."""
    from console.queue import release_queue as queue

    for module in (errors, queue):
        cls = getattr(module, kind, None)
        if isinstance(cls, type) and issubclass(cls, ConsoleError):
            return cls(message)
    if kind == "AccessDenied":
        return AccessDenied(message)
    return DoorError(message) if kind == "DoorError" else ConsoleError(message)


class RemoteQueue:
    """The queue's operations that the command line uses, asked of the runner service. The
    `actor` arguments are ignored: the service knows who asks."""

    def __init__(self, client: DoorClient) -> None:
        self.client = client

    async def cancel(self, deploy_id: str, actor: str, reason: str = "") -> DeployRecord | None:
        result: DeployRecord | None = await self.client.call(
            "cancel", deploy_id=deploy_id, reason=reason
        )
        return result

    async def move(self, deploy_id: str, steps: int, actor: str) -> DeployRecord:
        result: DeployRecord = await self.client.call("move", deploy_id=deploy_id, steps=steps)
        return result

    async def override_window(self, deploy_id: str, actor: str, reason: str) -> DeployRecord:
        result: DeployRecord = await self.client.call(
            "override_window", deploy_id=deploy_id, reason=reason
        )
        return result

    async def freeze(self, cluster: str, actor: str, reason: str) -> Freeze:
        result: Freeze = await self.client.call("freeze", cluster=cluster, reason=reason)
        return result

    async def unfreeze(self, cluster: str, actor: str) -> None:
        await self.client.call("unfreeze", cluster=cluster)

    async def lock(self, **lock: Unpack[NewManualLock]) -> ManualLock:
        """The runner takes the lock as its caller's (the door knows who that is)."""
        expires_at = lock.get("expires_at")
        result: ManualLock = await self.client.call(
            "lock",
            reason=lock["reason"],
            project=lock.get("project"),
            cluster=lock.get("cluster"),
            expires_at=None if expires_at is None else expires_at.isoformat(),
            warning=lock.get("warning", False),
        )
        return result

    async def unlock(self, lock_id: int, actor: str) -> ManualLock:
        result: ManualLock = await self.client.call("unlock", lock_id=lock_id)
        return result

    async def promote(
        self,
        project: str,
        release: str,
        actor: str,
        ids: Sequence[str],
        ticket: str | None = None,
    ) -> list[DeployRecord]:
        result: list[DeployRecord] = await self.client.call(
            "promote", project=project, release=release, ids=list(ids), ticket=ticket
        )
        return result
