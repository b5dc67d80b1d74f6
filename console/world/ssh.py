"""The embedded world's SSH side (demo and tests only): a jump host serving instances in-process.

Nothing here is used against a real fleet. The jump host listens on 127.0.0.1 and never opens a
connection of its own: a direct-tcpip request to port 22 of an instance address the world knows
is answered by an SSH server for that instance, run in this process over a socketpair, whose
host certificate (principal: the instance's private address) is signed by the world's CA. An
exec request runs `/bin/sh -c COMMAND` in the instance's sandbox directory, which is seeded
with a small fake release (app/VERSION, app/routes and
app/bin/{start,stop,migrate,healthcheck,configure}).

What a load balancer's health check sees is `is_serving(instance, path)`: the service must be
started (run/started), configured (the env file) and answer 200 on the check's path, that is
list it in app/routes (one path per line; the release's routes, by default /health and
/status). A target group whose HealthCheckPath the release does not serve sees the instance
unhealthy (404) while another load balancer of the same instance sees it healthy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shlex
import signal
import socket
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncssh

from console.errors import WorldError

# asyncssh logs every connection at INFO: that would scribble over the console's screen.
logging.getLogger("asyncssh").setLevel(logging.WARNING)

INSTANCE_SSH_PORT = 22
INSTANCE_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
CHUNK = 65536


# The paths a release answers 200 on unless the world says otherwise.
DEFAULT_ROUTES = ("/health", "/status")


def _version_says_broken(project: str, version: str) -> bool:
    return "-broken" in version


def _default_routes(project: str, version: str) -> tuple[str, ...]:
    return DEFAULT_ROUTES


@dataclass(frozen=True)
class _Release:
    project: str
    version: str
    broken: bool
    routes: tuple[str, ...] = DEFAULT_ROUTES


class WorldSsh:
    """The world's jump host and its instances' SSH servers (demo and tests only)."""

    def __init__(
        self,
        root: Path,
        instance_for_address: Callable[[str], str | None],
        image_for_instance: Callable[[str], tuple[str, str] | None],
        *,
        broken: Callable[[str, str], bool] = _version_says_broken,
        routes: Callable[[str, str], tuple[str, ...]] = _default_routes,
        env_file: str = "app.env",
    ) -> None:
        self.root = root
        self.instance_for_address = instance_for_address
        self.image_for_instance = image_for_instance
        self.broken = broken
        self.routes = routes
        self.env_file = env_file
        self.client_key_path = root / "ssh" / "id_ed25519"
        self.known_hosts_path = root / "ssh" / "known_hosts"
        self.port = 0
        self._ca_key: asyncssh.SSHKey | None = None
        self._client_key: asyncssh.SSHKey | None = None
        self._authorized: asyncssh.SSHAuthorizedKeys | None = None
        self._host_keys: dict[str, tuple[asyncssh.SSHKey, asyncssh.SSHCertificate]] = {}
        self._releases: dict[str, _Release | None] = {}
        # The release of instances without a sandbox, looked up once (health reads are many).
        self._images: dict[str, _Release | None] = {}
        self._acceptor: asyncssh.SSHAcceptor | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        # Jump host connections and the instances' in-process server connections.
        self._connections: set[asyncssh.SSHServerConnection] = set()
        self._children: set[asyncio.subprocess.Process] = set()
        self._reapers: set[asyncio.Task[None]] = set()

    # -- life cycle ------------------------------------------------------------------------

    async def start(self) -> int:
        """Listen on 127.0.0.1 (a free port); write the client key and known_hosts; the port."""
        ssh_dir = self.root / "ssh"
        ssh_dir.mkdir(parents=True, exist_ok=True)
        self._ca_key = asyncssh.generate_private_key("ssh-ed25519", comment="world-ca")
        self._client_key = asyncssh.generate_private_key("ssh-ed25519", comment="world-client")
        jump_key = asyncssh.generate_private_key("ssh-ed25519", comment="world-jump")
        self._authorized = asyncssh.import_authorized_keys(
            self._client_key.export_public_key().decode()
        )
        _write_private(self.client_key_path, self._client_key.export_private_key())
        try:
            self._acceptor = await asyncssh.listen(
                "127.0.0.1",
                self.port,
                server_factory=lambda: _JumpServer(self),
                server_host_keys=[jump_key],
                authorized_client_keys=self._authorized,
                allow_pty=False,
                agent_forwarding=False,
                x11_forwarding=False,
                login_timeout=30,
            )
        except OSError as error:
            raise WorldError(
                f"cannot listen on 127.0.0.1:{self.port} for SSH: {error.strerror}"
            ) from None
        self.port = self._acceptor.get_port()
        ca_line = self._ca_key.export_public_key().decode().strip()
        jump_line = jump_key.export_public_key().decode().strip()
        self.known_hosts_path.write_text(
            f"@cert-authority * {ca_line}\n[127.0.0.1]:{self.port} {jump_line}\n"
        )
        return self.port

    async def stop(self) -> None:
        """Stop listening, close every connection, kill every command still running."""
        acceptor, self._acceptor = self._acceptor, None
        if acceptor is not None:
            acceptor.close()
        for child in list(self._children):
            _kill(child)
        for connection in list(self._connections):
            connection.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)
        if self._reapers:
            await asyncio.wait(self._reapers, timeout=5)
        if acceptor is not None:
            # Python 3.12's wait_closed waits for the connections too: they are closed above.
            await asyncio.wait_for(acceptor.wait_closed(), timeout=5)

    @property
    def jump_host(self) -> str:
        """The jump host as SshSettings.jump_host wants it."""
        return f"127.0.0.1:{self.port}"

    # -- sandboxes -------------------------------------------------------------------------

    def sandbox(self, instance_id: str) -> Path:
        """root/instances/<id>/, created and seeded with the instance's release on first use."""
        if not INSTANCE_ID_PATTERN.match(instance_id):
            raise WorldError(f"not an instance id: {instance_id!r}")
        path = self.root / "instances" / instance_id
        if instance_id not in self._releases:
            release = self._release(instance_id)
            if not path.is_dir():
                _seed_sandbox(path, release, self.env_file)
            self._releases[instance_id] = release
        return path

    def _release(self, instance_id: str) -> _Release | None:
        image = self.image_for_instance(instance_id)
        if image is None:
            return None
        return _Release(*image, self.broken(*image), tuple(self.routes(*image)))

    def is_serving(self, instance_id: str, path: str | None = None) -> bool | None:
        """Whether a health check of `path` (None: a TCP check) passes on the instance.

        Without a sandbox (an instance nobody deployed to): False if its release does not serve
        `path`, else None (the world's own rules). With one: whether the service is started and
        configured (what app/bin/healthcheck checks) and lists `path` in app/routes.
        """
        if instance_id not in self._releases:
            if not INSTANCE_ID_PATTERN.match(instance_id):
                return None
            if not (self.root / "instances" / instance_id).is_dir():
                if path is None:
                    return None
                if instance_id not in self._images:
                    self._images[instance_id] = self._release(instance_id)
                image = self._images[instance_id]
                return False if image is not None and path not in image.routes else None
        sandbox = self.sandbox(instance_id)
        release = self._releases[instance_id]
        if release is not None and release.broken:
            return False
        if not (sandbox / "run" / "started").is_file() or not (sandbox / self.env_file).is_file():
            return False
        return path is None or path in _read_routes(sandbox)

    # -- the jump host ---------------------------------------------------------------------

    def _open_channel(
        self, dest_host: str, dest_port: int
    ) -> Callable[[asyncssh.SSHReader[bytes], asyncssh.SSHWriter[bytes]], Awaitable[None]]:
        instance_id = self.instance_for_address(dest_host)
        if instance_id is None or dest_port != INSTANCE_SSH_PORT:
            raise asyncssh.ChannelOpenError(
                asyncssh.OPEN_CONNECT_FAILED, f"no route to {dest_host}:{dest_port}"
            )

        async def serve(
            reader: asyncssh.SSHReader[bytes], writer: asyncssh.SSHWriter[bytes]
        ) -> None:
            await self._serve_instance(instance_id, dest_host, reader, writer)

        return serve

    async def _serve_instance(
        self,
        instance_id: str,
        address: str,
        reader: asyncssh.SSHReader[bytes],
        writer: asyncssh.SSHWriter[bytes],
    ) -> None:
        """Pump a direct-tcpip channel to an in-process SSH server for the instance."""
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        server_end, pump_end = socket.socketpair()
        server: asyncio.Task[asyncssh.SSHServerConnection] | None = None
        try:
            server = asyncio.create_task(
                self._run_instance_server(instance_id, address, server_end)
            )
            server.add_done_callback(self._track_connection)
            sock_reader, sock_writer = await asyncio.open_connection(sock=pump_end)
            try:
                await asyncio.gather(
                    _pump(reader.read, _stream_writer(sock_writer)),
                    _pump(sock_reader.read, _channel_writer(writer)),
                )
            finally:
                sock_writer.close()
        except (OSError, asyncssh.Error):
            pass  # the client went away: nothing to report to anyone
        finally:
            writer.close()
            pump_end.close()
            if server is not None and not server.done():
                server.cancel()
                server_end.close()
            elif server is None or server.cancelled() or server.exception() is not None:
                server_end.close()  # no transport took it over
            else:
                server.result().close()
                self._connections.discard(server.result())
            self._tasks.discard(task)

    async def _run_instance_server(
        self, instance_id: str, address: str, sock: socket.socket
    ) -> asyncssh.SSHServerConnection:
        key, certificate = self._host_key(address)
        return await asyncssh.run_server(
            sock,
            server_host_keys=[(key, certificate)],
            authorized_client_keys=self._authorized,
            process_factory=lambda process: self._exec(instance_id, process),
            encoding=None,
            allow_pty=False,
            agent_forwarding=False,
            x11_forwarding=False,
            allow_scp=False,
            login_timeout=30,
        )

    def _track_connection(self, server: asyncio.Task[asyncssh.SSHServerConnection]) -> None:
        # Reading the exception also keeps asyncio from logging a failed handshake.
        if not server.cancelled() and server.exception() is None:
            self._connections.add(server.result())

    def _host_key(self, address: str) -> tuple[asyncssh.SSHKey, asyncssh.SSHCertificate]:
        """The instance's host key and certificate: made once per address (ed25519: cheap)."""
        cached = self._host_keys.get(address)
        if cached is None:
            assert self._ca_key is not None
            key = asyncssh.generate_private_key("ssh-ed25519", comment=address)
            certificate = self._ca_key.generate_host_certificate(
                key, address, principals=[address], comment=address
            )
            cached = (key, certificate)
            self._host_keys[address] = cached
        return cached

    # -- exec requests ---------------------------------------------------------------------

    async def _exec(self, instance_id: str, process: asyncssh.SSHServerProcess[bytes]) -> None:
        command = process.command
        if command is None or process.subsystem:
            process.stderr.write(b"this host runs commands only (no shell, no subsystems)\n")
            process.exit(1)
            return
        sandbox = self.sandbox(instance_id)
        release = self._releases.get(instance_id)
        env = {
            "PATH": os.environ.get("PATH", DEFAULT_PATH),
            "HOME": str(sandbox),
            "INSTANCE_ID": instance_id,
            "RELEASE_VERSION": release.version if release else "",
            "LANG": "C.UTF-8",
        }
        try:
            child = await asyncio.create_subprocess_exec(
                "/bin/sh",
                "-c",
                command,
                cwd=sandbox,
                env=env,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,  # so a closed channel can kill the whole group
            )
        except OSError as error:
            process.stderr.write(f"cannot run /bin/sh: {error.strerror}\n".encode())
            process.exit(127)
            return
        self._children.add(child)
        assert child.stdin is not None and child.stdout is not None and child.stderr is not None
        feeding = asyncio.create_task(_pump(process.stdin.read, _stream_writer(child.stdin)))
        watching = asyncio.create_task(_kill_when_closed(process, child))
        try:
            await asyncio.gather(
                _pump(child.stdout.read, _channel_output(process.stdout)),
                _pump(child.stderr.read, _channel_output(process.stderr)),
            )
            status = await child.wait()
        finally:
            feeding.cancel()
            watching.cancel()
            # Even when this handler is cancelled: kill the group and drain its pipes, so that
            # no process or pipe outlives the channel.
            reaping = asyncio.create_task(_reap(child))
            self._reapers.add(reaping)
            reaping.add_done_callback(self._reapers.discard)
            reaping.add_done_callback(lambda _: self._children.discard(child))
            await asyncio.shield(reaping)
        with contextlib.suppress(OSError, asyncssh.Error):
            process.exit(status if status >= 0 else 128 - status)


class _JumpServer(asyncssh.SSHServer):
    """Public-key auth by the world's client key; direct-tcpip to known instances only."""

    def __init__(self, world: WorldSsh) -> None:
        self.world = world
        self.connection: asyncssh.SSHServerConnection | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self.connection = conn
        self.world._connections.add(conn)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.connection is not None:
            self.world._connections.discard(self.connection)

    def connection_requested(
        self, dest_host: str, dest_port: int, orig_host: str, orig_port: int
    ) -> Any:
        return self.world._open_channel(dest_host, dest_port)


async def _pump(
    read: Callable[[int], Awaitable[bytes]], write: Callable[[bytes | None], Awaitable[None]]
) -> None:
    """Copy until end of file, then pass the end of file on (write(None))."""
    try:
        while True:
            data = await read(CHUNK)
            if not data:
                break
            await write(data)
    except (OSError, asyncssh.Error):
        pass
    with contextlib.suppress(OSError, asyncssh.Error):
        await write(None)


def _stream_writer(writer: asyncio.StreamWriter) -> Callable[[bytes | None], Awaitable[None]]:
    async def write(data: bytes | None) -> None:
        if data is None:
            if writer.can_write_eof() and not writer.is_closing():
                writer.write_eof()
            return
        writer.write(data)
        await writer.drain()

    return write


def _channel_writer(
    writer: asyncssh.SSHWriter[bytes],
) -> Callable[[bytes | None], Awaitable[None]]:
    async def write(data: bytes | None) -> None:
        if data is None:
            writer.write_eof()
            return
        writer.write(data)
        await writer.drain()

    return write


def _channel_output(writer: asyncssh.SSHWriter[bytes]) -> Callable[[bytes | None], Awaitable[None]]:
    """Like _channel_writer, but leaves the end of file to process.exit()."""

    async def write(data: bytes | None) -> None:
        if data is not None:
            writer.write(data)
            await writer.drain()

    return write


async def _kill_when_closed(
    process: asyncssh.SSHServerProcess[bytes], child: asyncio.subprocess.Process
) -> None:
    await process.channel.wait_closed()
    _kill(child)


async def _reap(child: asyncio.subprocess.Process) -> None:
    _kill(child)
    assert child.stdout is not None and child.stderr is not None
    with contextlib.suppress(OSError):
        await asyncio.gather(child.stdout.read(), child.stderr.read(), child.wait())


def _kill(child: asyncio.subprocess.Process) -> None:
    if child.returncode is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.pid, signal.SIGKILL)


def _write_private(path: Path, data: bytes) -> None:
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)


def _read_routes(sandbox: Path) -> set[str]:
    """The paths the sandbox's service answers 200 on (app/routes, one per line)."""
    try:
        text = (sandbox / "app" / "routes").read_text()
    except OSError:
        return set()
    return {line.strip() for line in text.splitlines() if line.strip()}


def _seed_sandbox(path: Path, release: _Release | None, env_file: str) -> None:
    """A fake release: scripts that behave like a small web service's."""
    bin_dir = path / "app" / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    (path / "run").mkdir(exist_ok=True)
    if release is None:
        return
    project = shlex.quote(release.project)
    version = shlex.quote(release.version)
    env = shlex.quote(env_file)
    (path / "app" / "VERSION").write_text(release.version + "\n")
    (path / "app" / "routes").write_text("".join(f"{route}\n" for route in release.routes))
    health = (
        f"[ -f run/started ] || {{ echo 'health: service is not running' >&2; exit 1; }}\n"
        f"[ -f {env} ] || {{ echo 'health: '{env}' is missing' >&2; exit 1; }}\n"
    )
    if release.broken:
        health += "echo 'health: GET /status returned 503' >&2\nexit 1\n"
    else:
        health += f"echo 'health: GET /status returned 200 ('{version}')'\n"
    scripts = {
        "start": f"mkdir -p run\ntouch run/started\necho {project}' '{version}' started'\n",
        "stop": f"rm -f run/started\necho {project}' stopped'\n",
        "migrate": (
            "mkdir -p run\n"
            f'echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) "{version} >> run/migrations.log\n'
            f"echo 'migrations applied for '{version}\n"
        ),
        "healthcheck": health,
        "configure": "echo configured\n",
    }
    for name, body in scripts.items():
        script = bin_dir / name
        # Every script runs from the sandbox, wherever it is called from.
        script.write_text(f'#!/bin/sh\ncd "$(dirname "$0")/../.." || exit 1\n{body}')
        script.chmod(0o755)


class WorldSshThread:
    """Runs a WorldSsh on an event loop of its own thread, for the synchronous World.

    The console's loop (the UI in `deploy-console demo`) never serves the world's SSH side.
    """

    def __init__(self, ssh: WorldSsh) -> None:
        self.ssh = ssh
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="world-ssh", daemon=True
        )

    def start(self, timeout: float = 30.0) -> int:
        self._thread.start()
        return asyncio.run_coroutine_threadsafe(self.ssh.start(), self._loop).result(timeout)

    def stop(self, timeout: float = 15.0) -> None:
        if not self._thread.is_alive():
            return
        try:
            asyncio.run_coroutine_threadsafe(self.ssh.stop(), self._loop).result(timeout)
        except Exception as error:  # stopping: say so and go on shutting the loop down
            logging.getLogger(__name__).warning("the world's SSH side did not stop: %s", error)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)
        if not self._thread.is_alive():
            self._loop.close()
