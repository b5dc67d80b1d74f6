"""`deploy-console --version` and shell completion, driven through the real shells: bash's
completion function, zsh's (its compsys builtins stood in, and compsys itself on a tmux
terminal), fish's `complete -C`."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import pytest

from console.fleet.share import encode_snapshot
from console.model import ClusterStatus, EnvStatus, FleetSnapshot, Health, Instance
from console.store import DeployRecord, Store
from tests.conftest import DEMO_CONFIG, ROOT, run_python
from tests.waiting import wait_until

BIN = Path(sys.executable).parent
PROJECTS = ["storefront", "checkout-api", "search-api"]


def _env(folder: Path, config: Path | None = None) -> dict[str, str]:
    """The console of this venv first on PATH; the config and data dir of this test only."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    env["DEPLOY_CONSOLE_DATA_DIR"] = str(folder / "data")
    env["DEPLOY_CONSOLE_CONFIG"] = str(config or folder / "config.toml")
    env.pop("CI_FORCE_COLOUR", None)
    return env


def _console(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BIN / "deploy-console", *args], env=env, capture_output=True, text=True, timeout=60
    )


async def _fill_store(path: Path) -> None:
    """A store as a console leaves it: two deploys of storefront, and the poller's last
    snapshot with search-api 3.1.0 running (encoded as console/fleet/share.py does)."""
    now = datetime.now(UTC)
    snapshot = FleetSnapshot(
        generated_at=now,
        clusters=(ClusterStatus("prod1", protected=True, fetched_at=now),),
        projects=("storefront", "search-api"),
        envs={
            ("search-api", "prod1"): EnvStatus(
                "search-api",
                "prod1",
                Health.HEALTHY,
                (Instance("i-1", "running", "ami-1", "3.1.0", now, "10.0.0.1"),),
            )
        },
    )
    async with await Store.open(path) as store:
        for number, (release, state) in enumerate([("2.4.0", "succeeded"), ("2.5.0", "failed")]):
            record = DeployRecord(
                id=f"d-{number}",
                project="storefront",
                cluster="staging",
                release=release,
                actor="alice",
                state=state,
            )
            await store.create_deploy(record)
        await store.take_poller_lease("test", stale_after=60)
        await store.write_fleet_snapshot("test", encode_snapshot(snapshot))


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo config as the user's config, and its store (the data dir's) with deploys."""
    folder = tmp_path_factory.mktemp("completion")
    shutil.copy(DEMO_CONFIG, folder / "config.toml")
    (folder / "data").mkdir()
    asyncio.run(_fill_store(folder / "data" / "deploy-console.db"))
    return folder


def _bash(folder: Path, *words: str, env: dict[str, str] | None = None) -> list[str]:
    """COMPREPLY of the completion function for `deploy-console WORDS` (the last: being typed)."""
    quoted = " ".join(f"'{word}'" for word in ("deploy-console", *words))
    script = (
        "source <(deploy-console completion bash)\n"
        f"COMP_WORDS=({quoted}); COMP_CWORD={len(words)}\n"
        "_deploy_console; printf '%s\\n' \"${COMPREPLY[@]}\"\n"
    )
    result = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", script],
        env=env or _env(folder),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and not result.stderr, result.stderr
    return sorted(line for line in result.stdout.splitlines() if line)


def test_version_is_the_installed_distributions() -> None:
    result = run_python("from screens.main import main; main(['--version'])")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"deploy-console {metadata.version('deploy-console')}\n"
    assert "--version" in run_python("from screens.main import main; main(['--help'])").stdout


def test_an_unknown_shell_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = _console("completion", "tcsh", env=_env(tmp_path))
    assert result.returncode == 2
    assert result.stderr.startswith("deploy-console: error: argument SHELL: invalid choice")
    assert result.stderr.count("\n") == 1 and not result.stdout


def test_completion_help_says_how_to_install_it_in_each_shell(tmp_path: Path) -> None:
    shown = _console("completion", "--help", env=_env(tmp_path)).stdout
    assert "source <(deploy-console completion bash)" in shown
    assert "deploy-console completion fish | source" in shown


def test_bash_completes_commands_and_options(folder: Path) -> None:
    assert _bash(folder, "de") == ["demo", "deploy"]
    assert "completion" in _bash(folder, "")
    assert _bash(folder, "status", "--j") == ["--json"]
    # Given once, --json is not offered again; --cluster may come again.
    assert "--json" not in _bash(folder, "status", "--json", "--")
    assert "--cluster" in _bash(folder, "status", "--cluster", "prod1", "--")
    assert _bash(folder, "completion", "") == ["bash", "fish", "zsh"]
    assert _bash(folder, "queue", "c") == ["cancel"]


def test_bash_completes_project_and_cluster_names_from_the_config(folder: Path) -> None:
    projects = _bash(folder, "deploy", "")
    assert set(PROJECTS) <= set(projects)
    assert _bash(folder, "deploy", "check") == ["checkout-api"]
    # The clusters a project is configured in (search-api is not in qaprod1).
    assert _bash(folder, "deploy", "storefront", "") == ["prod1", "prod2", "qaprod1", "staging"]
    assert _bash(folder, "deploy", "search-api", "") == ["prod1", "prod2", "staging"]
    assert _bash(folder, "status", "--cluster", "prod") == ["prod1", "prod2"]
    assert _bash(folder, "--config", str(folder / "config.toml"), "status", "--project", "sto") == [
        "storefront"
    ]


def test_bash_completes_releases_from_the_store_and_its_last_snapshot(folder: Path) -> None:
    assert _bash(folder, "deploy", "storefront", "prod1", "") == ["2.4.0", "2.5.0"]
    assert _bash(folder, "promote", "search-api", "") == ["3.1.0"]
    assert _bash(folder, "rollback", "d-") == ["d-0", "d-1"]


def test_a_path_option_completes_files(folder: Path) -> None:
    assert _bash(folder, "status", "--config", str(folder / "conf")) == [
        str(folder / "config.toml")
    ]
    # bash splits `--config=PATH` at "=": the value is still a path, and still names the config.
    assert _bash(folder, "status", "--config", "=", str(folder / "conf")) == [
        str(folder / "config.toml")
    ]
    config = str(folder / "config.toml")
    assert _bash(folder, "--config", "=", config, "deploy", "sto") == ["storefront"]


def test_a_broken_or_missing_config_completes_no_names_and_says_nothing(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("[clusters\nnot toml")
    for config in (broken, tmp_path / "missing.toml"):
        env = _env(tmp_path, config)
        assert _bash(tmp_path, "deploy", "", env=env) == []
        assert _bash(tmp_path, "de", env=env) == ["demo", "deploy"]
        helper = _console("__complete", "bash", "--", "deploy", "", env=env)
        assert (helper.returncode, helper.stdout, helper.stderr) == (0, "names\n", "")


def test_the_helper_refuses_a_bad_call_in_one_line(tmp_path: Path) -> None:
    result = _console("__complete", "tcsh", "--", "x", env=_env(tmp_path))
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr


def test_completion_loads_neither_aws_nor_textual_nor_the_async_store(folder: Path) -> None:
    """What keeps a Tab fast: the config and one read-only SQLite query, nothing heavier."""
    script = (
        "import sys, io, contextlib\n"
        "from screens.main import run\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        "    run(['__complete', 'zsh', '--', 'deploy', 'storefront', 'prod1', ''])\n"
        "assert '2.4.0' in out.getvalue(), out.getvalue()\n"
        "heavy = {'boto3', 'botocore', 'textual', 'aiosqlite', 'asyncssh', 'moto', 'aiohttp'}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        env=_env(folder),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "[]\n"


@pytest.mark.tools("zsh")
def test_zsh_completes_names_with_their_descriptions(folder: Path) -> None:
    """The script's function under real zsh; _describe and compdef (compsys, which needs a
    terminal) print what they were given."""

    def described(*words: str) -> list[str]:
        quoted = " ".join(f"'{word}'" for word in ("deploy-console", *words))
        script = (
            "compdef() { :; }\n"
            "source <(deploy-console completion zsh)\n"
            '_describe() { print -rl -- "${(@P)4}"; }\n'
            "_files() { print FILES; }\n"
            f"words=({quoted}); CURRENT={len(words) + 1}\n"
            "_deploy_console\n"
        )
        result = subprocess.run(
            ["zsh", "-f", "-c", script], env=_env(folder), capture_output=True, text=True,
            timeout=60,
        )  # fmt: skip
        assert result.returncode == 0 and not result.stderr, result.stderr
        return result.stdout.splitlines()

    assert described("deploy", "storefront", "pro") == [
        "prod1:us-east-1, protected",
        "prod2:us-west-2, protected",
    ]
    assert "storefront:PHP storefront web app" in described("deploy", "")
    assert "2.4.0:deployed to staging: succeeded" in described("deploy", "storefront", "x", "")
    assert described("status", "--config", "") == ["FILES"]


@pytest.mark.tools("fish")
def test_fish_completes_names_with_their_descriptions(folder: Path) -> None:
    """fish's own completion (`complete -C`) of a command line, with the script loaded."""

    def completed(line: str) -> list[str]:
        script = f"deploy-console completion fish | source; complete -C '{line}'"
        result = subprocess.run(
            ["fish", "--no-config", "-c", script], env=_env(folder), capture_output=True,
            text=True, timeout=60,
        )  # fmt: skip
        assert result.returncode == 0 and not result.stderr, result.stderr
        return result.stdout.splitlines()

    assert completed("deploy-console deploy storefront ") == [
        "prod1\tus-east-1, protected",
        "prod2\tus-west-2, protected",
        "qaprod1\tus-east-1",
        "staging\tus-east-1",
    ]
    assert "search-api\tNode.js product search API" in completed("deploy-console deploy ")
    assert completed("deploy-console promote search-api ") == ["3.1.0\trunning in prod1"]
    assert completed("deploy-console --vers") == ["--version\tprint the installed version and exit"]


@pytest.mark.tools("zsh", "tmux")
def test_zsh_completion_system_lists_the_clusters_on_tab(folder: Path) -> None:
    """The whole path as a zsh user meets it: compinit, the script sourced, Tab on a terminal
    (tmux), and compsys lists the project's clusters with their regions."""
    socket = str(folder / "zsh.tmux")
    tmux = ["tmux", "-S", socket, "-f", "/dev/null"]
    env = {**_env(folder), "HOME": str(folder), "ZDOTDIR": str(folder)}
    subprocess.run([*tmux, "new-session", "-d", "-s", "z", "-x", "100", "-y", "24", "zsh -f"],
                   env=env, check=True)  # fmt: skip

    def screen() -> str:
        return subprocess.run(
            [*tmux, "capture-pane", "-p", "-t", "z"], capture_output=True, text=True
        ).stdout

    try:
        setup = "autoload -Uz compinit && compinit -u && source <(deploy-console completion zsh)"
        subprocess.run([*tmux, "send-keys", "-t", "z", setup, "Enter"], check=True)
        typed = "deploy-console deploy search-api "
        subprocess.run([*tmux, "send-keys", "-t", "z", typed, "Tab"], check=True)
        wait_until(lambda: "-- us-west-2, protected" in screen(), "zsh to list", timeout=60)
        assert "prod2" in screen() and "qaprod1" not in screen(), screen()
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True)
