"""Where the console looks for its configuration and keeps its data."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

APP_NAME = "deploy-console"
CONFIG_ENV = "DEPLOY_CONSOLE_CONFIG"
STORE_FILE = "deploy-console.db"
RUNNING_DEMO = "the running demo"
PRIVATE_DIR, PRIVATE_FILE = 0o700, 0o600


def user_config_file() -> Path:
    """The per-user config file (XDG on Linux), used when nothing else is given."""
    return Path(platformdirs.user_config_dir(APP_NAME)) / "config.toml"


def user_data_dir() -> Path:
    override = os.environ.get("DEPLOY_CONSOLE_DATA_DIR")
    if override:
        return Path(override)
    return Path(platformdirs.user_data_dir(APP_NAME))


def user_state_dir() -> Path:
    """Where the console keeps its logs: the user state dir (XDG_STATE_HOME on Linux), or
    `state/` in the data dir when that is overridden (tests, a demo's own directory)."""
    override = os.environ.get("DEPLOY_CONSOLE_DATA_DIR")
    if override:
        return Path(override) / "state"
    return Path(platformdirs.user_state_dir(APP_NAME))


@dataclass(frozen=True)
class DemoFiles:
    """What `deploy-console demo` keeps in the user data dir, apart from a real console's:
    the config of its world (a new port each run), its own store, and the pid of the demo
    that wrote them (so a second terminal finds the running demo, and only a running one)."""

    config: Path
    store: Path
    pid: Path

    @classmethod
    def here(cls) -> DemoFiles:
        folder = user_data_dir()
        return cls(folder / "demo-world.toml", folder / "demo.db", folder / "demo.pid")

    def running_pid(self) -> int | None:
        """The pid of the demo that wrote these files, if it still runs."""
        try:
            pid = int(self.pid.read_text(encoding="ascii").strip())
        except (OSError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return pid  # alive, though not ours to signal
        return pid

    def mark_running(self) -> None:
        """Record this process as the running demo (the file readable by this user only)."""
        private_dir(self.pid.parent)
        self.pid.unlink(missing_ok=True)
        create_private_file(self.pid)
        self.pid.write_text(f"{os.getpid()}\n", encoding="ascii")

    def mark_stopped(self) -> None:
        self.pid.unlink(missing_ok=True)


def config_candidates(explicit: str | None) -> list[tuple[str, Path]]:
    """The config search order: --config, then $DEPLOY_CONSOLE_CONFIG, then the user dir,
    then (with none of those) the config of a demo running for this user."""
    if explicit:
        return [("--config", Path(explicit))]
    from_env = os.environ.get(CONFIG_ENV)
    if from_env:
        return [(f"${CONFIG_ENV}", Path(from_env))]
    user = user_config_file()
    demo = DemoFiles.here()
    if not user.exists() and demo.config.exists() and demo.running_pid() is not None:
        return [(RUNNING_DEMO, demo.config)]
    return [("user config", user)]


def store_path(configured: Path | None, explicit: str | None) -> Path:
    """--store, else the config's `store`, else the user data dir."""
    if explicit:
        return Path(explicit).expanduser()
    if configured is not None:
        return configured
    return user_data_dir() / STORE_FILE


def private_dir(path: Path) -> None:
    """Create path and its missing parents 0700, whatever the umask (existing ones stay)."""
    missing: list[Path] = []
    for folder in (path, *path.parents):
        if folder.is_dir():
            break
        missing.append(folder)
    for folder in reversed(missing):
        try:
            os.mkdir(folder, PRIVATE_DIR)
        except FileExistsError:
            continue  # made meanwhile by another process: theirs to keep
        os.chmod(folder, PRIVATE_DIR)


def create_private_file(path: Path) -> None:
    """Create an empty file 0600 whatever the umask, unless it exists. SQLite gives its -wal
    and -shm files the database file's mode, so they are 0600 too."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    except FileExistsError:
        return
    try:
        os.fchmod(descriptor, PRIVATE_FILE)
    finally:
        os.close(descriptor)
