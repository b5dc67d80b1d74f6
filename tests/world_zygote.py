"""Test worlds forked from one process that imported the world's code once: a world then starts
without paying for its imports (moto's EC2 models alone take seconds on a loaded machine).

tests/deploy_world.py's world_process asks this module for each `deploy-console world`; the
child runs exactly what `python -m screens.main world ...` runs (screens.main.main), in a
session of its own, its stdout and stderr where the caller says. Run alone, it is the zygote:
`python -m tests.world_zygote FD` serves requests on the socket FD until it closes.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
MESSAGE = 1 << 20
SET_PER_WORLD = ("DEPLOY_CONSOLE_DATA_DIR", "PYTEST_CURRENT_TEST")


class ForkedWorld:
    """A world forked by the zygote: what world_process needs of a subprocess.Popen."""

    def __init__(self, pid: int, stdout: IO[bytes]) -> None:
        self.pid = pid
        self.stdout = stdout

    def poll(self) -> int | None:
        """None while it runs (the zygote reaps it the moment it ends)."""
        try:
            os.kill(self.pid, 0)
        except (ProcessLookupError, PermissionError):  # gone (its pid perhaps another's now)
            return 0
        return None

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"world {self.pid}", timeout or 0.0)
            time.sleep(0.05)
        self.stdout.close()
        return 0


class Zygote:
    """The test process's end: one zygote per test process, started on first use."""

    def __init__(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._socket = ours
        self._lock = threading.Lock()
        self.env = dict(os.environ)
        self._process = subprocess.Popen(
            [sys.executable, "-m", "tests.world_zygote", str(theirs.fileno())],
            cwd=ROOT, env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, pass_fds=(theirs.fileno(),),
        )  # fmt: skip
        theirs.close()

    def serves(self, env: dict[str, str]) -> bool:
        """Whether a world with `env` may come from this zygote: moto reads some of its
        settings from the environment when it is imported, so only the data folder (and the
        running test's name) may differ from the zygote's own environment."""
        return _but_data(env) == _but_data(self.env)

    def fork(self, argv: list[str], env: dict[str, str], stderr: IO[bytes]) -> ForkedWorld:
        """`deploy-console ARGV` forked in ROOT with `env`; its stdout a pipe to read."""
        read, write = os.pipe()
        try:
            request = json.dumps({"argv": argv, "env": env, "cwd": str(ROOT)}).encode()
            with self._lock:
                socket.send_fds(self._socket, [request], [write, stderr.fileno()])
                answer = self._socket.recv(MESSAGE)
        except BaseException:
            os.close(read)
            raise
        finally:
            os.close(write)
        if not answer:
            os.close(read)
            raise RuntimeError("the world zygote ended")
        return ForkedWorld(int(json.loads(answer)), os.fdopen(read, "rb"))

    def close(self) -> None:
        self._socket.close()  # the zygote reads EOF and ends
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._process.wait(timeout=10)
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait()


def _but_data(env: dict[str, str]) -> dict[str, str]:
    """The environment but the world's data folder and pytest's name of the running test."""
    return {k: v for k, v in env.items() if k not in SET_PER_WORLD}


def _child(request: dict[str, Any], fds: list[int]) -> None:
    """In the forked child: become `deploy-console ARGV` and never return."""
    code = 1
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.setsid()
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(fds[0], 1)
        os.dup2(fds[1], 2)
        for fd in (devnull, *fds):
            os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.argv = ["deploy-console", *request["argv"]]
        from screens.main import main

        main(request["argv"])
        code = 0
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def serve(fd: int) -> None:
    """The zygote: import the world once, then fork one child per request until EOF."""
    import console.world.server  # noqa: F401  (what each world imports: moto, boto3)
    import screens.main  # noqa: F401

    # A fork copies only the thread that forks: the zygote must have no other.
    assert threading.active_count() == 1, threading.enumerate()
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps the children
    with socket.socket(fileno=fd) as channel:
        while True:
            message, fds, _flags, _address = socket.recv_fds(channel, MESSAGE, 2)
            if not message:
                return
            pid = os.fork()
            if pid == 0:
                channel.close()
                _child(json.loads(message), fds)
            for received in fds:
                os.close(received)
            channel.send(json.dumps(pid).encode())


if __name__ == "__main__":
    serve(int(sys.argv[1]))
