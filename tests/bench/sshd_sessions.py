"""Memory of the SSH server with N sessions held open: per session, and what all share.

Starts the embedded world (`deploy-console world`) and `deploy-console sshd` as processes of
their own on free loopback ports, opens N concurrent asyncssh sessions with a pty, waits
until every session's dashboard shows fleet data, holds them open through several refreshes,
then reads each process's private memory (the sum of the Private_* lines of
/proc/PID/smaps_rollup): every session's console (forked by the server's fork server) and
anything below it, the fork server, the fleet poller's worker, the server. Each session then
quits with ctrl+q. The baseline, in the same run: one console started as a fresh interpreter
on a pty, reading the same store.

    .venv/bin/python -m tests.bench.sshd_sessions [--sessions 20] [--hold 30]

Prints a human summary on stderr and one JSON object on the last stdout line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import json
import os
import pty
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path
from typing import Any

import asyncssh
import tomli_w

from console.config import read_toml

ROOT = Path(__file__).resolve().parents[2]
# 20 consoles and their fleet workers start at once: on 2 cores that takes minutes.
WAIT_LIMIT_SECONDS = 600.0
TERMINAL_SIZE = (160, 45)
DATA_MARK = b"2.15.0"


def private_mb(pid: int) -> float:
    """The process's private memory: the Private_* lines of smaps_rollup, in MB."""
    total_kb = 0
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Private_"):
            total_kb += int(line.split()[1])
    return total_kb / 1024


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def descendants(pid: int) -> list[int]:
    below = children(pid)
    for child in list(below):
        below += descendants(child)
    return below


def start(argv: list[str], env: dict[str, str], ready: str) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    if not line.startswith(ready):
        process.kill()
        raise SystemExit(f"{argv[3]} did not start: {line!r}")
    return process, line


class Session:
    def __init__(self) -> None:
        self.tail = b""
        self.first_draw: float | None = None
        self.data_shown = asyncio.Event()
        self.process: asyncssh.SSHClientProcess[bytes] | None = None

    async def pump(self, started: float) -> None:
        assert self.process is not None
        while True:
            chunk = await self.process.stdout.read(65536)
            if not chunk:
                if not self.data_shown.is_set():
                    text = self.tail.decode(errors="replace")
                    raise SystemExit(f"a session ended before showing the fleet: {text[-600:]!r}")
                return
            if self.first_draw is None and b"projects" in chunk:
                self.first_draw = time.monotonic() - started
            self.tail = (self.tail + chunk)[-4096:]
            # A version in a cell: the dashboard shows the fleet read from AWS.
            if DATA_MARK in self.tail:
                self.data_shown.set()


async def open_session(
    port: int, key: asyncssh.SSHKey, known: asyncssh.SSHKnownHosts, tasks: list[Any]
) -> tuple[asyncssh.SSHClientConnection, Session]:
    started = time.monotonic()
    conn = await asyncssh.connect(
        "127.0.0.1", port, username="bench", client_keys=[key], known_hosts=known, agent_path=None
    )
    session = Session()
    session.process = await conn.create_process(
        term_type="xterm-256color", term_size=TERMINAL_SIZE, encoding=None
    )
    tasks.append(asyncio.create_task(session.pump(started)))
    return conn, session


async def fresh_console(env: dict[str, str], config: Path, store: Path, hold: float) -> float:
    """The baseline: one console started as a fresh interpreter on a pty (as `sshd` did before
    it forked sessions), reading the fleet from the store like a session; its private MB."""
    master, slave = pty.openpty()
    fcntl.ioctl(
        slave, termios.TIOCSWINSZ, struct.pack("HHHH", TERMINAL_SIZE[1], TERMINAL_SIZE[0], 0, 0)
    )
    argv = [sys.executable, "-m", "screens.main", "--config", str(config), "--store", str(store)]
    child_env = dict(env, DEPLOY_CONSOLE_FLEET_FROM_STORE="1", TERM="xterm-256color")
    process = subprocess.Popen(
        argv, cwd=ROOT, env=child_env, stdin=slave, stdout=slave, stderr=slave,
        start_new_session=True,
    )  # fmt: skip
    os.close(slave)
    os.set_blocking(master, False)
    tail = b""
    deadline = time.monotonic() + WAIT_LIMIT_SECONDS
    try:
        while DATA_MARK not in tail:
            if time.monotonic() > deadline or process.poll() is not None:
                raise SystemExit(f"the fresh console showed no fleet: {tail[-600:]!r}")
            await asyncio.sleep(0.05)
            with contextlib.suppress(BlockingIOError):
                tail = (tail + os.read(master, 65536))[-4096:]
        held = time.monotonic() + hold
        while time.monotonic() < held:  # keep its output drained while it refreshes
            await asyncio.sleep(0.2)
            with contextlib.suppress(BlockingIOError, OSError):
                os.read(master, 65536)
        return private_mb(process.pid)
    finally:
        process.kill()
        process.wait()
        os.close(master)


def named(pids: list[int], word: bytes) -> list[int]:
    return [pid for pid in pids if word in Path(f"/proc/{pid}/cmdline").read_bytes()]


async def measure(sessions: int, hold: float, folder: Path) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), DEPLOY_CONSOLE_DATA_DIR=str(folder / "data"))
    env.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    python = [sys.executable, "-m", "screens.main"]
    world, _ = start(
        [*python, "world", "--write-config", str(folder / "world.toml")], env, "world ready"
    )
    key = asyncssh.generate_private_key("ssh-ed25519", comment="bench")
    data = read_toml(folder / "world.toml")
    data["sshd"] = {
        "keys": [{"user": "bench", "key": key.export_public_key().decode()}],
        "max_sessions_per_user": max(sessions, 1),  # one key opens them all (default: 4)
        "max_sessions": max(sessions, 64),
    }
    config = folder / "config.toml"
    config.write_bytes(tomli_w.dumps(data).encode())
    store = folder / "store.db"
    server, line = start(
        [*python, "sshd", "--port", "0", "--config", str(config), "--store", str(store)],
        env,
        "sshd listening",
    )
    try:
        port = int(line.split()[3].rsplit(":", 1)[1])
        host_key = (folder / "data" / "sshd_host_ed25519_key").read_bytes()
        public = asyncssh.import_private_key(host_key).export_public_key().decode()
        known = asyncssh.import_known_hosts(f"[127.0.0.1]:{port} {public}")
        server_idle = private_mb(server.pid)
        tasks: list[Any] = []
        opened = await asyncio.gather(
            *(open_session(port, key, known, tasks) for _ in range(sessions))
        )
        shown = asyncio.gather(*(session.data_shown.wait() for _, session in opened))
        # A session that ends before showing the fleet ends the bench with its last output.
        deadline = time.monotonic() + WAIT_LIMIT_SECONDS
        pending = {shown, *tasks}
        while not shown.done():
            if time.monotonic() > deadline:
                raise SystemExit(f"not every session showed the fleet in {WAIT_LIMIT_SECONDS:g} s")
            done, pending = await asyncio.wait(
                pending, timeout=deadline - time.monotonic(), return_when=asyncio.FIRST_COMPLETED
            )
            for task in done:
                task.result()
        # Held open through several refreshes (each reads the stored snapshot) before measuring.
        await asyncio.sleep(hold)
        (forkserver,) = named(children(server.pid), b"forkserver")
        consoles = children(forkserver)
        console_mb = [private_mb(pid) for pid in consoles]
        below_mb = [sum(private_mb(pid) for pid in descendants(pid)) for pid in consoles]
        forkserver_mb = private_mb(forkserver)
        poller_mb = sum(private_mb(pid) for pid in named(children(server.pid), b"spawn_main"))
        server_mb = private_mb(server.pid)
        draws = [session.first_draw or 0.0 for _, session in opened]
        statuses = []
        for _conn, session in opened:
            assert session.process is not None
            session.process.stdin.write(b"\x11")  # ctrl+q
        for conn, session in opened:
            assert session.process is not None
            done = await asyncio.wait_for(session.process.wait(), WAIT_LIMIT_SECONDS)
            statuses.append(done.exit_status)
            conn.close()
        for task in tasks:
            task.cancel()
        left = children(forkserver)
        fresh_mb = await fresh_console(env, config, store, hold)
    finally:
        server.send_signal(signal.SIGTERM)
        server_status = server.wait(timeout=60)
        world.send_signal(signal.SIGTERM)
        world.wait(timeout=60)
    total = [c + b for c, b in zip(console_mb, below_mb, strict=True)]
    median = statistics.median(total)
    return {
        "sessions": sessions,
        "hold_seconds": hold,
        "console_processes": len(consoles),
        "session_private_mb_median": round(median, 1),
        "session_private_mb_max": round(max(total), 1),
        "session_children_private_mb_max": round(max(below_mb), 1),
        "fresh_console_private_mb": round(fresh_mb, 1),
        "ratio_session_to_fresh": round(median / fresh_mb, 2),
        "forkserver_private_mb": round(forkserver_mb, 1),
        "poller_worker_private_mb": round(poller_mb, 1),
        "server_private_mb_idle": round(server_idle, 1),
        "server_private_mb": round(server_mb, 1),
        "first_draw_seconds_median": round(statistics.median(draws), 2),
        "first_draw_seconds_max": round(max(draws), 2),
        "exit_statuses": sorted(set(statuses)),
        "consoles_left_after_quit": len(left),
        "server_exit_status": server_status,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument(
        "--hold", type=float, default=30.0, help="seconds held open before measuring"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sshd-bench-") as folder:
        figures = asyncio.run(measure(args.sessions, args.hold, Path(folder)))
    f = figures
    print(
        f"{f['sessions']} SSH sessions held open {f['hold_seconds']:g} s: per session "
        f"{f['session_private_mb_median']} MB private (median; max {f['session_private_mb_max']}; "
        f"children {f['session_children_private_mb_max']} MB); a fresh console process "
        f"{f['fresh_console_private_mb']} MB (ratio {f['ratio_session_to_fresh']}). Shared by "
        f"all: fork server {f['forkserver_private_mb']} MB, poller worker "
        f"{f['poller_worker_private_mb']} MB, server {f['server_private_mb']} MB "
        f"({f['server_private_mb_idle']} MB idle). First draw {f['first_draw_seconds_median']} s "
        f"median, {f['first_draw_seconds_max']} s max; exit statuses {f['exit_statuses']}; "
        f"consoles left {f['consoles_left_after_quit']}",
        file=sys.stderr,
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
