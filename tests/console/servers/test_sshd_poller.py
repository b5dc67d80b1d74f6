"""One poller for all: twenty SSH sessions cost AWS what one costs (the world counts requests)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import asyncssh
import pytest
import tomli_w

from console.config import read_toml
from console.store import Store
from console.world import moto_patches as world_moto
from console.world.server import World
from tests.bench.sshd_sessions import private_mb
from tests.conftest import ROOT

SESSIONS = 20
REFRESH_SECONDS = 1.0
POLLS_MEASURED = 5
# Twenty consoles start at once on two cores, beside the suite's other workers.
DEADLINE = 300.0
DATA_MARK = b"2.15.0"  # a version in a dashboard cell: the session shows the fleet's data
CTRL_Q = b"\x11"


def _requests() -> int:
    return sum(world_moto.request_counts().values())


def _children(pid: int) -> list[int]:
    return [
        int(child)
        for task in Path(f"/proc/{pid}/task").iterdir()
        for child in (task / "children").read_text().split()
    ]


async def _until(condition: Callable[[], bool], what: str, detail: Callable[[], str] = str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}{detail()}")
        await asyncio.sleep(0.1)


class Session:
    """One SSH session's console: its screen bytes, until it shows the fleet."""

    def __init__(self, process: asyncssh.SSHClientProcess[bytes]) -> None:
        self.process = process
        self.tail = b""
        self.shows_data = False
        self.pump = asyncio.create_task(self._pump())

    async def _pump(self) -> None:
        while chunk := await self.process.stdout.read(65536):
            self.tail = (self.tail + chunk)[-8192:]
            self.shows_data = self.shows_data or DATA_MARK in self.tail


@pytest.fixture
async def sshd(
    world: World, world_config_path: Path, tmp_path: Path
) -> AsyncIterator[tuple[int, asyncssh.SSHKey, asyncssh.SSHKnownHosts, Path, int]]:
    """`deploy-console sshd` polling every second: (port, key, known hosts, store, pid)."""
    key = asyncssh.generate_private_key("ssh-ed25519")
    data = read_toml(world_config_path)
    data["refresh_seconds"] = REFRESH_SECONDS
    data["sshd"] = {
        "keys": [{"user": "viewer", "key": key.export_public_key().decode()}],
        "max_sessions_per_user": SESSIONS,  # one key opens them all (default: 4 per user)
    }
    config = tmp_path / "config.toml"
    config.write_bytes(tomli_w.dumps(data).encode())
    store = tmp_path / "store.db"
    env = dict(os.environ, DEPLOY_CONSOLE_DATA_DIR=str(tmp_path / "data"), PYTHONPATH=str(ROOT))
    argv = [sys.executable, "-m", "screens.main", "sshd", "--config", str(config)]
    process = subprocess.Popen(
        [*argv, "--store", str(store), "--port", "0"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = await asyncio.to_thread(process.stdout.readline)
        assert line.startswith("sshd listening on 127.0.0.1:"), line
        port = int(line.split()[3].rsplit(":", 1)[1])
        host_key = (tmp_path / "data" / "sshd_host_ed25519_key").read_bytes()
        public = asyncssh.import_private_key(host_key).export_public_key().decode()
        known = asyncssh.import_known_hosts(f"[127.0.0.1]:{port} {public}")
        yield port, key, known, store, process.pid
        process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(process.wait, 60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


async def test_twenty_ssh_sessions_cost_aws_no_more_calls_per_minute_than_one(
    sshd: tuple[int, asyncssh.SSHKey, asyncssh.SSHKnownHosts, Path, int],
) -> None:
    port, key, known, store_file, server_pid = sshd
    connections: list[asyncssh.SSHClientConnection] = []
    sessions: list[Session] = []

    async def open_sessions(count: int) -> None:
        for _ in range(count):
            conn = await asyncssh.connect(
                "127.0.0.1", port, username="viewer", client_keys=[key], known_hosts=known,
                agent_path=None,
            )  # fmt: skip
            connections.append(conn)
            process = await conn.create_process(
                term_type="xterm-256color", term_size=(160, 48), encoding=None
            )
            sessions.append(Session(process))

        def blank() -> str:
            waiting = [s for s in sessions if not s.shows_data]
            return f": {len(waiting)} without data; one shows {waiting[0].tail[-1500:]!r}"

        await _until(
            lambda: all(s.shows_data for s in sessions), f"{len(sessions)} dashboards", blank
        )

    await _until(store_file.exists, "the server to create the store")
    store = await Store.open(store_file)  # the same schema the server made (or is making)

    async def calls_per_minute() -> float:
        """AWS requests per minute over the server's next POLLS_MEASURED polls."""
        lease = await store.poller_lease()
        start_generation = lease.generation if lease else 0
        start_calls, started = _requests(), time.monotonic()
        generation = start_generation
        deadline = started + DEADLINE
        while generation < start_generation + POLLS_MEASURED:
            assert time.monotonic() < deadline, "the server stopped polling"
            await asyncio.sleep(0.1)
            lease = await store.poller_lease()
            generation = lease.generation if lease else 0
        return (_requests() - start_calls) / (time.monotonic() - started) * 60

    try:
        await open_sessions(1)
        one = await calls_per_minute()
        await open_sessions(SESSIONS - 1)
        twenty = await calls_per_minute()
        lease = await store.poller_lease()
        assert lease is not None and lease.holder.startswith(f"sshd pid {server_pid} ")
        print(f"AWS calls per minute: one session {one:.0f}, {SESSIONS} sessions {twenty:.0f}")
        # One poller for all: without it each session would poll, 20 times the calls.
        assert one > 0
        assert twenty <= one * 1.25, (one, twenty)
        # No session polls: none has a fleet worker, none loaded boto3 (~90 MB more each).
        # Each session's console is forked by the server's fork server (one preloaded process).
        (forkserver,) = [
            pid
            for pid in _children(server_pid)
            if b"forkserver" in Path(f"/proc/{pid}/cmdline").read_bytes()
        ]
        consoles = _children(forkserver)
        assert len(consoles) == SESSIONS
        print("private MB per session:", sorted(round(private_mb(pid)) for pid in consoles))
        for pid in consoles:
            assert _children(pid) == [], "a session started a fleet worker"
            assert private_mb(pid) < 80, f"a session uses {private_mb(pid):.0f} MB"
        for session in sessions:
            session.process.stdin.write(CTRL_Q)
        statuses = await asyncio.wait_for(
            asyncio.gather(*(s.process.wait() for s in sessions)), DEADLINE
        )
        assert [status.exit_status for status in statuses] == [0] * SESSIONS
    finally:
        await store.close()
        for conn in connections:
            conn.close()
