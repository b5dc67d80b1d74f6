"""Shared fixtures: one embedded world per test session, configs that point at it."""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from console.config import Config, load_config, write_world_config
from console.world.server import World

os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.pop("AWS_PROFILE", None)
# No test reads the developer's own data dir: a `make demo` running beside the suite (whose
# config commands fall back to) or their real store. Workers inherit the controller's.
if "DEPLOY_CONSOLE_DATA_DIR" not in os.environ:
    _data = os.environ["DEPLOY_CONSOLE_DATA_DIR"] = tempfile.mkdtemp(prefix="deploy-console-tests-")
    atexit.register(shutil.rmtree, _data, ignore_errors=True)

ROOT = Path(__file__).resolve().parent.parent
DEMO_CONFIG = ROOT / "config" / "demo.toml"
EXAMPLE_CONFIG = ROOT / "config" / "example.toml"


@pytest.fixture(scope="session")
def world() -> Iterator[World]:
    """The demo fleet on a moto server on 127.0.0.1 (moto's state is per process)."""
    demo = World(load_config(DEMO_CONFIG))
    demo.start()
    yield demo
    demo.stop()


@pytest.fixture(scope="session")
def world_config_path(world: World, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("world") / "world.toml"
    write_world_config(DEMO_CONFIG, world.endpoint_url, path)
    return path


@pytest.fixture(scope="session")
def world_config(world_config_path: Path) -> Config:
    return load_config(world_config_path)


# -- a fresh interpreter, and the sockets a test's process opens ----------------------------


def run_python(
    script: str, *, cwd: Path = ROOT, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`python -c script` in a child process (a fresh interpreter: nothing imported yet)."""
    return subprocess.run(
        [sys.executable, "-c", script], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture
def dialled(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every address this process connects a socket to, from here on."""
    seen: list[Any] = []
    original = socket.socket.connect

    def recording_connect(self: socket.socket, address: Any) -> Any:
        seen.append(address)
        return original(self, address)

    monkeypatch.setattr(socket.socket, "connect", recording_connect)
    return seen


# -- the world's SSH side (console/world/ssh.py) ---------------------------------------------
# Imported here, not at the top, so that this block stays one append to the file.
from collections.abc import AsyncIterator  # noqa: E402

from console.config import SshSettings  # noqa: E402
from console.world.ssh import WorldSsh  # noqa: E402

SSH_INSTANCES = {f"10.20.0.{n}": f"i-{n:08x}" for n in range(1, 31)}
SSH_BROKEN_INSTANCE = "i-0000001e"  # 10.20.0.30 runs a release whose health check fails


def _ssh_image(instance_id: str) -> tuple[str, str] | None:
    if instance_id == SSH_BROKEN_INSTANCE:
        return ("storefront", "2.1.0-broken")
    return ("storefront", "2.0.0") if instance_id in SSH_INSTANCES.values() else None


@pytest.fixture
async def world_ssh(tmp_path: Path) -> AsyncIterator[WorldSsh]:
    """A jump host on 127.0.0.1 serving 30 instances (10.20.0.1-30) in-process."""
    ssh = WorldSsh(tmp_path / "world-ssh", SSH_INSTANCES.get, _ssh_image)
    await ssh.start()
    yield ssh
    await ssh.stop()


@pytest.fixture
def ssh_settings(world_ssh: WorldSsh) -> SshSettings:
    """The console's SSH settings for the world: its client key, known_hosts and jump host."""
    return SshSettings(
        user="deploy",
        key=world_ssh.client_key_path,
        known_hosts=world_ssh.known_hosts_path,
        jump_host=world_ssh.jump_host,
        connect_timeout=10.0,
    )


# -- real OS accounts: the local door's identity is the process's uid, never a variable ----------
import contextlib  # noqa: E402
import pwd  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402


def os_group(name: str) -> None:
    """A real Unix group named `name`, created for the tests if missing."""
    import grp

    with contextlib.suppress(KeyError):
        grp.getgrnam(name)
        return
    if shutil.which("groupadd") is None:
        need_tool("groupadd")
    subprocess.run(["groupadd", "-f", name], capture_output=True, check=False)
    grp.getgrnam(name)


def os_account(name: str, groups: tuple[str, ...] = ()) -> pwd.struct_passwd:
    """A real OS account named `name` (in `groups`), created for the tests if missing (CI
    runs as root)."""
    runs_as_others()
    for group in groups:
        os_group(group)
    if groups:
        # An account made by an earlier run may lack a group: add it (usermod is idempotent).
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            subprocess.run(["usermod", "-a", "-G", ",".join(groups), name], check=True)
    deadline = time.monotonic() + 30
    while True:
        try:
            return pwd.getpwnam(name)
        except KeyError:
            pass
        if os.geteuid() != 0 or shutil.which("useradd") is None:
            message = f"creating the OS account {name!r} needs root and useradd (passwd)"
            if os.environ.get("CI") == "true":
                pytest.fail(message)
            pytest.skip(message)
        # Several test workers may add accounts at once: useradd refuses while another holds
        # the password file's lock; try again until the account is there.
        subprocess.run(
            ["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name]
            + (["-G", ",".join(groups)] if groups else []),
            capture_output=True,
            check=False,
        )
        if time.monotonic() > deadline:
            return pwd.getpwnam(name)


def runs_as_others() -> None:
    """Skip (fail in CI) unless another account can run this interpreter: .ci/run opens the
    folders above it (a pyenv under /root is private)."""
    interpreter = Path(os.path.realpath(sys.executable))
    for folder in interpreter.parents:
        if not folder.stat().st_mode & 0o001:
            message = f"other accounts cannot reach {interpreter} ({folder} is private)"
            if os.environ.get("CI") == "true":
                pytest.fail(message)
            pytest.skip(message)


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A folder every OS account can read and write (for processes run as other accounts)."""
    folder = Path(tempfile.mkdtemp(prefix="dc-accounts-"))
    folder.chmod(0o777)
    yield folder
    subprocess.run(["rm", "-rf", str(folder)], check=False)


# -- command-line tools the tests drive (OpenSSH, tmux, sqlite3, Chromium) --------------------
import shutil  # noqa: E402


def need_tool(*names: str, optional: bool = False) -> bool:
    """True when every tool in `names` is on PATH. When one is missing: in CI (CI=true, where
    .ci/run installs them all) the test fails; elsewhere it is skipped, or with `optional`
    it goes on without the tool (False)."""
    missing = [name for name in names if shutil.which(name) is None]
    if not missing:
        return True
    message = f"needs {', '.join(missing)} on PATH (.ci/run installs it)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message}; CI=true, so a missing tool fails", pytrace=False)
    if optional:
        return False
    pytest.skip(message)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "tools(*names): the test drives these command-line tools")


def pytest_runtest_setup(item: pytest.Item) -> None:
    # Before the test's fixtures: a missing tool costs no world, server or browser start.
    for marker in item.iter_markers("tools"):
        need_tool(*marker.args)
