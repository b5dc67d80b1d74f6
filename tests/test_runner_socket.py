"""The runner's Unix socket: a caller is known by the uid the kernel reports (SO_PEERCRED),
never by what it claims; real OS accounts made for the test, never an environment variable."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.conftest import os_account
from tests.deploy_world import ROOT
from tests.test_access import with_access

TIMEOUT = 60.0
# The caller: only the interpreter, none of the console (the account need not reach it).
CLIENT = (
    "import socket, sys\n"
    "s = socket.socket(socket.AF_UNIX)\n"
    "s.connect(sys.argv[1])\n"
    "s.sendall(sys.argv[2].encode() + b'\\n')\n"
    "print(s.makefile().readline(), end='')\n"
)
CLAIMS = {"DEPLOY_CONSOLE_USER": "ada", "LOGNAME": "ada", "USER": "ada", "USERNAME": "ada"}


def _ask_as(user: str, socket_path: Path, request: dict[str, Any]) -> Any:
    account = os_account(user)
    result = subprocess.run(
        [sys.executable, "-c", CLIENT, str(socket_path), json.dumps(request)],
        capture_output=True, text=True, timeout=TIMEOUT,
        env={"PATH": "/usr/bin:/bin", **CLAIMS},
        user=account.pw_uid, group=account.pw_gid, extra_groups=[],
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_the_runner_socket_knows_its_caller_by_uid_whatever_they_claim(open_dir: Path) -> None:
    config = with_access(open_dir)  # victor: a viewer; ada: an admin
    store = open_dir / "console.db"
    socket_path = open_dir / "runner.sock"
    runner = subprocess.Popen(
        [sys.executable, "-m", "screens.main", "runner", "--socket", str(socket_path),
         "--config", str(config.source), "--store", str(store)],
        cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        assert runner.stdout is not None
        line = runner.stdout.readline()
        assert line.endswith(f"requests on {socket_path}\n"), line
        victor = os_account("victor")
        assert _ask_as("victor", socket_path, {"op": "whoami"}) == {
            "ok": True,
            "user": "victor",
            "uid": victor.pw_uid,
        }
        named = _ask_as("victor", socket_path, {"op": "whoami", "user": "ada"})
        assert named == {"ok": False, "error": "the caller is known from the socket: name no user"}
        deploy = {"op": "deploy", "project": "storefront", "cluster": "staging"}
        deploy["release"] = "2.15.0"
        refused = _ask_as("victor", socket_path, deploy)
        assert refused["ok"] is False and "victor is a viewer in staging" in refused["error"]
    finally:
        runner.send_signal(signal.SIGTERM)
        try:
            runner.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            runner.kill()
            runner.wait()
    assert runner.returncode == 0
    assert not socket_path.exists()
