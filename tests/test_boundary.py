"""The core never loads the UI: every console module imports without textual or rich."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT, run_python


def test_console_modules_do_not_import_textual_rich_or_screens() -> None:
    modules = sorted(
        ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for path in (ROOT / "console").rglob("*.py")
    )
    assert "console.fleet.inventory" in modules and "console.world.server" in modules
    script = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "roots = ('textual', 'rich', 'screens')\n"
        "leaked = sorted(m for m in sys.modules if m.split('.')[0] in roots)\n"
        "print(','.join(leaked))\n"
    )
    result = run_python(script)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_console_package_init_is_empty() -> None:
    assert (ROOT / "console" / "__init__.py").read_text().strip() == ""


def test_non_ui_commands_never_start_textual() -> None:
    script = (
        "import sys\n"
        "from screens.main import run\n"
        "code = run(['config', 'check', '--config', 'config/demo.toml'])\n"
        "print('textual' in sys.modules, code)\n"
    )
    result = run_python(script)
    assert result.stdout.strip().splitlines()[-1] == "False 0", result.stderr


def test_the_import_contracts_hold_and_no_part_imports_in_a_circle() -> None:
    """The house's rules (pyproject.toml, import-linter): the core never loads the UI, its parts
    import down the layers only, only the gateway imports boto3 and only the world moto, and
    no package's parts import each other in a circle."""
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    for contract in (
        "console (the core) never imports the UI KEPT",
        "no import circles between the parts of the core or of the UI KEPT",
        "inside the core, parts import one way",
        "only console.world imports moto (the demo extra) KEPT",
    ):
        assert contract in result.stdout, result.stdout
    assert " 0 broken" in result.stdout
