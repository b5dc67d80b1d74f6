"""The console script's first stop: plain `status` answered from a running runner's snapshot
before the command line is imported (a script's most frequent call, in well under 100 ms);
every other command, and `status` whenever this cannot answer exactly as it would, goes on to
screens.main.

It answers only `status [--json] [--project NAME]... [--cluster NAME]... [--config PATH]`, with
a config whose `[runner] socket` names a runner that answers, and project and cluster names
the config knows. It reads the config file as TOML only (the full command line validates it):
anything it does not understand, it hands over untouched.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

# The same search as console.config.paths.config_candidates (tests/screens/cli/
# test_status_fast.py holds them together), without importing the config package.
CONFIG_ENV = "DEPLOY_CONSOLE_CONFIG"
REPEATED = {"--project": "projects", "--cluster": "clusters"}


def main() -> None:
    argv = sys.argv[1:]
    code = fast_status(argv)
    if code is None:
        from screens.main import main as full

        full()
        return
    try:
        sys.stdout.flush()
    except BrokenPipeError:  # the reader went away (`| head -1`), as screens.main says
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.exit(code)


def _parse(argv: list[str]) -> dict[str, Any] | None:
    """The options of a plain `status`, or None for anything else."""
    if argv[:1] != ["status"]:
        return None
    found: dict[str, Any] = {"json": False, "config": None, "projects": [], "clusters": []}
    words = iter(argv[1:])
    for word in words:
        name, equals, value = word.partition("=")
        if word == "--json":
            found["json"] = True
            continue
        if name not in (*REPEATED, "--config"):
            return None  # --fresh, --store, --log-level, --help, a typo: the full command line
        if not equals:
            value = next(words, "")
        if not value or value.startswith("-"):
            return None
        if name == "--config":
            found["config"] = value
        else:
            found[REPEATED[name]].append(value)
    return found


def _config_file(explicit: str | None) -> Path | None:
    if explicit:
        return Path(explicit)
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV])
    import platformdirs

    user = Path(platformdirs.user_config_dir("deploy-console")) / "config.toml"
    return user if user.exists() else None  # else perhaps a running demo's: the full path


def _runner_socket(path: Path, projects: list[str], clusters: list[str]) -> Path | None:
    """The config's `[runner] socket`, if it reads and knows every name asked for."""
    import tomllib

    try:
        data = tomllib.loads(path.read_text())
        socket = data.get("runner", {}).get("socket")
        known_projects = {project["name"] for project in data.get("projects", [])}
        known_clusters = {cluster["name"] for cluster in data.get("clusters", [])}
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None
    if not isinstance(socket, str) or not socket:
        return None
    if not set(projects) <= known_projects or not set(clusters) <= known_clusters:
        return None  # the full command line says which name is unknown
    where = Path(socket).expanduser()
    return where if where.is_absolute() else path.parent / where


def fast_status(argv: list[str]) -> int | None:
    """Plain `status` from the runner's snapshot: its exit code, or None to hand over."""
    options = _parse(argv)
    if options is None:
        return None
    config = _config_file(options["config"])
    socket = None if config is None else _runner_socket(config, *_names(options))
    if socket is None:
        return None
    from console.fleet.wire import ask_runner

    answer = ask_runner(socket)
    if answer is None:  # no runner answers: the full path polls AWS, without asking again
        from screens.main import run

        return run([*argv, "--fresh"])
    from screens.cli.status_show import show

    projects, clusters = _names(options)
    return show(
        answer.snapshot,
        tuple(projects) or None,
        tuple(clusters) or None,
        as_json=options["json"],
        from_runner=True,
        findings=answer.findings,
    )


def _names(options: dict[str, Any]) -> tuple[list[str], list[str]]:
    return options["projects"], options["clusters"]
