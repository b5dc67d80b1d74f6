"""The console as a user installs it: a wheel (not this checkout) ships every package, the
sample configs and the styles; installed into a fresh venv it checks the packaged example and
runs the embedded world from the packaged demo, from a folder that is not the repository."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_python
from tests.waiting import wait_until

SOURCES = ("console", "screens", "config", "pyproject.toml", "README.md")
BUILD_WARNINGS = ("BuildBackendWarning", "SetuptoolsDeprecationWarning", "SetuptoolsWarning")


def _run(*argv: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [str(arg) for arg in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout + result.stderr


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built from a copy of the sources (the checkout gets no build/ folder), with
    this venv's setuptools: nothing is downloaded."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    skip = shutil.ignore_patterns("__pycache__")
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=skip)
        else:
            shutil.copy2(ROOT / name, source / name)
    output = _run(
        sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
        "-v", "-w", work / "dist", source, cwd=work,
    )  # fmt: skip
    assert not [w for w in BUILD_WARNINGS if w in output], output
    (built,) = (work / "dist").glob("deploy_console-*.whl")
    return built


def test_the_wheel_ships_every_package_the_samples_and_the_styles(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    packages = {
        str(init.parent.relative_to(ROOT))
        for top in ("console", "screens")
        for init in (ROOT / top).rglob("__init__.py")
    }
    shipped = {name.rsplit("/", 1)[0] for name in names if name.endswith("/__init__.py")}
    assert packages <= shipped, f"not in pyproject's packages: {sorted(packages - shipped)}"
    assert {"console/config/samples/demo.toml", "console/config/samples/example.toml"} <= names
    styles = {f"screens/styles/{path.name}" for path in (ROOT / "screens/styles").glob("*.tcss")}
    assert styles and styles <= names
    # The web view's fallback fonts, their licences and their index.
    folder = ROOT / "screens/cli/fonts"
    fonts = {f"screens/cli/fonts/{path.name}" for path in folder.iterdir() if path.is_file()}
    assert any(name.endswith(".woff") for name in fonts) and fonts <= names


def _fresh_venv(wheel: Path, root: Path) -> Path:
    """A venv at root with the wheel installed; its dependencies are this venv's (a .pth file
    adds this site-packages after its own, so the installed console comes first). Returns its
    site-packages folder."""
    _run(sys.executable, "-m", "venv", "--without-pip", root, cwd=root.parent)
    python = root / "bin" / "python"
    _run(
        sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index",
        "--quiet", wheel, cwd=root.parent,
    )  # fmt: skip
    site = _run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=root)
    (Path(site.strip()) / "test-dependencies.pth").write_text(sysconfig.get_paths()["purelib"])
    return Path(site.strip())


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel installed (and this venv's dependencies)."""
    root = tmp_path_factory.mktemp("venv") / "venv"
    _fresh_venv(wheel, root)
    return root


# Stands in for an install without the [demo] extra: every `import moto...` fails as it does
# where moto is not installed, and is logged (with the module that asked) to $MOTO_ASKED_LOG.
NO_MOTO = """\
import os
import sys


class NoMoto:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] != "moto":
            return None
        log = os.environ.get("MOTO_ASKED_LOG")
        if log:
            frame = sys._getframe(1)
            while frame and frame.f_globals.get("__name__", "").startswith("importlib"):
                frame = frame.f_back
            asker = frame.f_globals.get("__name__") if frame else "?"
            with open(log, "a") as out:
                out.write(f"{name} imported by {asker}\\n")
        raise ModuleNotFoundError(f"No module named {name!r}", name=name)


sys.meta_path.insert(0, NoMoto())
"""


@pytest.fixture(scope="module")
def venv_without_moto(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel, where moto (the [demo] extra) cannot be imported."""
    root = tmp_path_factory.mktemp("plain") / "venv"
    site = _fresh_venv(wheel, root)
    (site / "no_moto.py").write_text(NO_MOTO)
    (site / "00-no-moto.pth").write_text("import no_moto\n")
    return root


def test_installed_console_checks_the_packaged_example(venv: Path, tmp_path: Path) -> None:
    script = (
        "import console, screens.main\n"
        "from console.config import sample_config\n"
        "print(console.__file__)\n"
        "print(sample_config('example.toml'))\n"
        "print(screens.main.DEMO_CONFIG)\n"
    )
    found = _run(venv / "bin" / "python", "-c", script, cwd=tmp_path).split()
    assert all(Path(path).is_relative_to(venv) for path in found), found
    example = found[1]
    checked = _run(venv / "bin" / "deploy-console", "config", "check", "--config", example,
                   cwd=tmp_path)  # fmt: skip
    assert checked.startswith(f"{example}: ok: ")


def test_installed_world_runs_from_the_packaged_demo(venv: Path, tmp_path: Path) -> None:
    written = tmp_path / "world.toml"
    out, err = tmp_path / "world.out", tmp_path / "world.err"
    env = {**os.environ, "DEPLOY_CONSOLE_DATA_DIR": str(tmp_path / "data")}
    with out.open("wb") as stdout, err.open("wb") as stderr:
        world = subprocess.Popen(
            [venv / "bin" / "deploy-console", "world", "--write-config", written],
            cwd=tmp_path, env=env, stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    try:
        # Seeding takes a few seconds alone, much longer on two busy cores.
        wait_until(
            lambda: out.read_text().startswith("world ready: ") or world.poll() is not None,
            "the world to start",
            timeout=60,
        )
        assert out.read_text().startswith("world ready: "), err.read_text()[-2000:]
    finally:
        world.send_signal(signal.SIGTERM)
        world.wait(timeout=30)
    checked = _run(venv / "bin" / "deploy-console", "config", "check", "--config", written,
                   cwd=tmp_path)  # fmt: skip
    assert "ok: 4 clusters" in checked


@pytest.mark.parametrize("command", ["world", "demo"])
def test_without_the_demo_extra_config_check_works_and_world_says_what_to_install(
    tmp_path: Path, command: str
) -> None:
    """moto missing (a plain install, without [demo]): `config check` of the packaged example
    works; `world` and `demo` say in one line (nothing before it) which extra they need, exit 2."""
    argv = ["world", "--write-config", str(tmp_path / "world.toml")] if command == "world" else []
    argv = argv or ["demo", "--store", str(tmp_path / "demo.db")]
    script = (
        "import sys\n"
        "sys.modules['moto'] = None  # what an install without the extra finds\n"
        "from console.config import sample_config\n"
        "from screens.main import main, run\n"
        "assert run(['config', 'check', '--config', str(sample_config('example.toml'))]) == 0\n"
        f"main({argv!r})\n"
    )
    result = run_python(script, cwd=tmp_path, timeout=60)
    assert result.returncode == 2, result.stderr
    assert "example.toml: ok: " in result.stdout
    assert result.stderr == (
        "deploy-console: error: the embedded world needs the demo extra: "
        "pip install 'deploy-console[demo]'\n"
    )


def test_a_plain_install_runs_the_service_commands_and_says_how_to_get_the_world(
    venv_without_moto: Path, wheel: Path, tmp_path: Path
) -> None:
    """Without the [demo] extra: --version, completion and the --help of the commands a host
    runs work; `demo` and `world` say in one line which extra to install (exit 2)."""
    console = venv_without_moto / "bin" / "deploy-console"
    env = {**os.environ, "DEPLOY_CONSOLE_DATA_DIR": str(tmp_path / "data")}
    absent = subprocess.run(
        [venv_without_moto / "bin" / "python", "-c", "import moto"], capture_output=True, text=True
    )
    assert absent.returncode == 1 and "No module named 'moto'" in absent.stderr
    version = wheel.name.split("-")[1]
    assert _run(console, "--version", cwd=tmp_path, env=env) == f"deploy-console {version}\n"
    script = _run(console, "completion", "bash", cwd=tmp_path, env=env)
    assert "complete -F _deploy_console deploy-console" in script
    for command in ("status", "runner", "sshd", "web"):
        shown = _run(console, command, "--help", cwd=tmp_path, env=env)
        assert shown.startswith(f"usage: deploy-console {command}"), shown
    for argv in (["demo"], ["world", "--write-config", str(tmp_path / "world.toml")]):
        result = subprocess.run(
            [console, *argv], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 2, result.stderr
        assert result.stderr == (
            "deploy-console: error: the embedded world needs the demo extra: "
            "pip install 'deploy-console[demo]'\n"
        )


def test_no_module_but_the_worlds_asks_for_moto_on_import(tmp_path: Path) -> None:
    """Every module of console/ and screens/ but console.world's imports with moto missing,
    and none even tries: the runner, sshd, web and status paths never need the extra."""
    asked = tmp_path / "asked.log"
    script = NO_MOTO + (
        "import importlib, pkgutil\n"
        "import console, screens\n"
        "count = 0\n"
        "for package in (console, screens):\n"
        "    for found in pkgutil.walk_packages(package.__path__, package.__name__ + '.'):\n"
        "        if not found.name.startswith('console.world'):\n"
        "            importlib.import_module(found.name)\n"
        "            count += 1\n"
        "print(count)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={**os.environ, "MOTO_ASKED_LOG": str(asked)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert int(result.stdout) > 150, result.stdout
    assert not asked.exists(), asked.read_text()
