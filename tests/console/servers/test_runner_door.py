"""A shared console host: the runner service, as its own account, owns the store; people's
commands ask it over its Unix socket, and it learns who they are from the socket (real OS
accounts, created by the test), never from what they claim."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import os_account
from tests.console.test_access import with_access
from tests.deploy_world import ROOT

CLAIMS = {"DEPLOY_CONSOLE_USER": "ada", "LOGNAME": "ada", "USER": "ada"}
WHOAMI = (
    "import asyncio, sys\n"
    "from pathlib import Path\n"
    "from console.identity import Actor\n"
    "from console.servers.runner_door import DoorClient\n"
    "claimed = Actor('alice', 'ssh', 'SHA256:abc', '127.0.0.1:5', ('oncall',))\n"
    "answer = asyncio.run(DoorClient(Path(sys.argv[1]), claimed).call('whoami'))\n"
    "print(answer['actor'], answer['groups'])\n"
)


class Host:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.store = folder / "store" / "console.db"
        self.socket = folder / "run" / "runner.sock"
        config = with_access(folder)
        self.config = folder / "host.toml"
        self.config.write_text(
            config.source.read_text() + f'\n[runner]\nsocket = "{self.socket}"\n'
        )

    def run(self, user: str, *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
        account = os_account(user)
        return subprocess.run(
            [sys.executable, *argv],
            cwd=ROOT, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
            env={"PATH": "/usr/bin:/bin", "HOME": str(self.folder), **env},
            user=account.pw_uid, group=account.pw_gid, extra_groups=[],
        )  # fmt: skip

    def cli(self, user: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return self.run(
            user, "-m", "screens.main", *args, "--config", str(self.config),
            "--store", str(self.store), **env,
        )  # fmt: skip


@pytest.fixture
def host(open_dir: Path) -> Iterator[Host]:
    """The runner service running as its own account, dcsvc, which alone can reach the store."""
    shared = Host(open_dir)
    service = os_account("dcsvc")
    for folder in (shared.store.parent, shared.socket.parent):
        folder.mkdir(mode=0o700)
        os.chown(folder, service.pw_uid, service.pw_gid)
    shared.socket.parent.chmod(0o755)  # others reach the socket, not the store
    process = subprocess.Popen(
        [sys.executable, "-m", "screens.main", "runner", "--config", str(shared.config),
         "--store", str(shared.store)],
        cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env={"PATH": "/usr/bin:/bin", "HOME": str(open_dir)},
        user=service.pw_uid, group=service.pw_gid, extra_groups=[],
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not shared.socket.is_socket():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the runner service never listened"
        time.sleep(0.05)
    yield shared
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, (out, err)


def audit(host: Host) -> list[tuple[str, str, str]]:
    with sqlite3.connect(host.store) as db:  # the test is root: it reads what users cannot
        rows = db.execute("SELECT actor, action, outcome FROM audit WHERE action != 'config'")
        return [tuple(row) for row in rows]


def test_the_service_knows_who_asks_from_the_socket(host: Host) -> None:
    refused = host.cli("victor", "deploy", "storefront", "prod1", "2.15.0", "--yes", **CLAIMS)
    assert refused.returncode == 3, (refused.stdout, refused.stderr)
    assert "refused: victor is a viewer in prod1: may not deploy" in refused.stderr
    locked = host.cli("ada", "lock", "add", "--project", "storefront", "--reason", "sale")
    assert locked.returncode == 0, locked.stderr
    assert "locked on project storefront by ada" in locked.stdout
    frozen = host.cli("dana", "freeze", "prod1", "--reason", "launch", **CLAIMS)
    assert frozen.returncode == 0, frozen.stderr  # dana is an admin in prod1, and says so
    assert "by dana" in frozen.stdout
    assert audit(host) == [
        ("victor", "denied", "refused"),
        ("ada", "lock.add", "locked"),
        ("dana", "queue.freeze", "frozen"),
    ]


def test_users_cannot_write_the_store_themselves(host: Host) -> None:
    forged = host.run(
        "victor", "-c",
        "import sqlite3, sys; sqlite3.connect(sys.argv[1]).execute('DELETE FROM freezes')",
        str(host.store),
    )  # fmt: skip
    assert forged.returncode != 0 and "unable to open database" in forged.stderr


def test_only_the_services_own_account_may_say_whom_it_acts_for(host: Host) -> None:
    """The SSH server and the web front run as the service's account: they name the person
    they authenticated. Anyone else who claims a person is themselves."""
    door = host.run("dcsvc", "-c", WHOAMI, str(host.socket))
    assert door.returncode == 0, door.stderr
    assert door.stdout.strip() == "alice (ssh SHA256:abc from 127.0.0.1:5) ['oncall']"
    claim = host.run("victor", "-c", WHOAMI, str(host.socket))
    assert claim.returncode == 0, claim.stderr
    assert claim.stdout.strip().startswith("victor [")


def test_a_command_says_in_one_line_when_the_service_is_not_there(open_dir: Path) -> None:
    lonely = Host(open_dir)
    result = lonely.cli("ada", "lock", "add", "--reason", "x")
    assert result.returncode == 2, (result.stdout, result.stderr)
    (line,) = result.stderr.strip().splitlines()
    assert "the runner at" in line and "does not answer" in line


def test_a_second_runner_never_takes_the_door_of_a_live_one(host: Host) -> None:
    second = host.cli("dcsvc", "runner", "--socket", str(host.socket))
    assert second.returncode == 2, (second.stdout, second.stderr)
    assert f"another runner already serves {host.socket}" in second.stderr
    asked = host.cli("ada", "lock", "add", "--reason", "still served")
    assert asked.returncode == 0, asked.stderr  # the first runner still answers
