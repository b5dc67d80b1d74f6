"""Memory of the SSH server with N sessions held open: per session console, and the server.

Starts the embedded world (`deploy-console world`) and `deploy-console sshd` as processes of
their own on free loopback ports, opens N concurrent asyncssh sessions with a pty, waits
until every session's dashboard shows fleet data, then reads each process's private memory
(the sum of the Private_* lines of /proc/PID/smaps_rollup): every session's console process,
its fleet worker process, and the server. Then each session quits with ctrl+q.

    .venv/bin/python -m tests.bench.sshd_sessions [--sessions 20]

Prints a human summary on stderr and one JSON object on the last stdout line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
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


async def measure(sessions: int, folder: Path) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), DEPLOY_CONSOLE_DATA_DIR=str(folder / "data"))
    env.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    python = [sys.executable, "-m", "screens.main"]
    world, _ = start(
        [*python, "world", "--write-config", str(folder / "world.toml")], env, "world ready"
    )
    key = asyncssh.generate_private_key("ssh-ed25519", comment="bench")
    data = read_toml(folder / "world.toml")
    data["sshd"] = {"keys": [{"user": "bench", "key": key.export_public_key().decode()}]}
    (folder / "config.toml").write_bytes(tomli_w.dumps(data).encode())
    store = ["--store", str(folder / "store.db")]
    server, line = start(
        [*python, "sshd", "--port", "0", "--config", str(folder / "config.toml"), *store],
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
        consoles = children(server.pid)
        console_mb = [private_mb(pid) for pid in consoles]
        worker_mb = [sum(private_mb(pid) for pid in descendants(pid)) for pid in consoles]
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
        left = children(server.pid)
    finally:
        server.send_signal(signal.SIGTERM)
        server_status = server.wait(timeout=60)
        world.send_signal(signal.SIGTERM)
        world.wait(timeout=60)
    total = [c + w for c, w in zip(console_mb, worker_mb, strict=True)]
    return {
        "sessions": sessions,
        "console_processes": len(consoles),
        "console_private_mb_median": round(statistics.median(console_mb), 1),
        "console_private_mb_max": round(max(console_mb), 1),
        "fleet_worker_private_mb_median": round(statistics.median(worker_mb), 1),
        "session_private_mb_median": round(statistics.median(total), 1),
        "session_private_mb_max": round(max(total), 1),
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
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sshd-bench-") as folder:
        figures = asyncio.run(measure(args.sessions, Path(folder)))
    print(
        f"{figures['sessions']} SSH sessions held open ({figures['console_processes']} console "
        f"processes): per session {figures['session_private_mb_median']} MB private (median; "
        f"max {figures['session_private_mb_max']}) = console "
        f"{figures['console_private_mb_median']} MB + fleet worker "
        f"{figures['fleet_worker_private_mb_median']} MB; server "
        f"{figures['server_private_mb']} MB ({figures['server_private_mb_idle']} MB idle); "
        f"first draw {figures['first_draw_seconds_median']} s median, "
        f"{figures['first_draw_seconds_max']} s max; exit statuses "
        f"{figures['exit_statuses']}; consoles left {figures['consoles_left_after_quit']}",
        file=sys.stderr,
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
