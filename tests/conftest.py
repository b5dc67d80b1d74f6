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
# A runner started with --exit-when-idle (a console's, a scheduled deploy's) leaves after 4 s
# idle, not 10: tests that wait for it to leave wait less (console/servers/runner_service.py).
os.environ.setdefault("DEPLOY_CONSOLE_IDLE_SECONDS", "4")
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


# -- the order test files start in, under xdist ------------------------------------------------
# `make test` runs whole files on each worker (--dist loadfile) in collection order
# (--no-loadscope-reorder): the slowest files go first, so that no worker is left alone with a
# long file at the end while the others are idle. Measured with --durations (seconds of one
# run on 2 busy cores); a file not listed runs after these, in its usual order.
SLOWEST_FIRST = (
    "console/queue/test_queue_crash.py",  # 133
    "screens/cli/test_cli_scale.py",  # ~85 at -n 2 (issue 16)
    "console/servers/test_deploy_outlives_session.py",  # 93
    "screens/ui/test_dashboard_jump.py",  # 79
    "screens/ui/test_deploy_real.py",  # 72
    "screens/cli/test_demo.py",  # 63
    "screens/ui/test_instance.py",  # 62
    "screens/cli/test_cli_approvals.py",  # 62
    "console/audit/test_anchor_retained.py",  # 60
    "screens/cli/test_cli_deploy.py",  # 57
    "console/deploy/test_engine_groups.py",  # ~50 (issue 16)
    "screens/cli/test_cli_stack_apply.py",  # ~45 (issue 16)
    "screens/cli/test_cli_bake.py",  # 55
    "console/queue/test_queue_runners.py",  # 53
    "console/deploy/test_bake.py",  # 51
    "screens/cli/test_cli_gate.py",  # 47
    "screens/cli/test_cli_schedule.py",  # 45
    "console/store/test_store_crash.py",  # 43
    "console/deploy/test_engine.py",  # 42
    "screens/cli/test_cli_audit.py",  # 42
    "screens/cli/test_logs_cli.py",  # 40
    "console/servers/test_ci_over_ssh.py",  # 40
    "console/deploy/test_step_audit_kill.py",  # 39
    "screens/cli/test_cli_drift.py",  # ~35 (issue 16)
    "console/deploy/test_stack_apply.py",  # ~30 (issue 16)
    "screens/ui/test_dns_findings.py",  # ~30 (issue 16)
    "screens/ui/test_roles.py",  # 39
    "screens/ui/test_dashboard.py",  # 39
    "screens/cli/test_cli_notify_demo.py",  # 37
    "screens/ui/test_project.py",  # 36
    "test_packaging.py",  # 36
    "console/servers/test_web.py",  # 36
    "console/servers/test_runner_signals.py",  # 34
    "screens/ui/test_queue_screen.py",  # 34
    "console/deploy/test_engine_target_groups.py",  # 33
    "screens/cli/test_cli_gates.py",  # 33
    "console/servers/test_sshd.py",  # 32
    "screens/ui/test_rollback_real.py",  # 32
    "console/deploy/test_deploy_output.py",  # 32
    "screens/ui/test_history_redeploy.py",  # 31
    "console/deploy/test_engine_deadlines.py",  # 31
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: n for n, name in enumerate(SLOWEST_FIRST)}
    tests = Path(__file__).resolve().parent

    def order(item: pytest.Item) -> int:
        path = Path(str(item.path))
        relative = path.relative_to(tests).as_posix() if path.is_relative_to(tests) else ""
        return rank.get(relative, len(rank))

    items.sort(key=order)  # stable: a file's tests keep their order
