"""A mistyped config key is named with its file and line and the key it most likely meant,
in one line on stderr and exit 2, as `config check` shows it in a pipe."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from console.config.locate import closest, key_line, path_parts
from tests.conftest import ROOT
from tests.console.config.test_config import VALID


def config_check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "screens.main", "config", "check", "--config", str(path)],
        cwd=ROOT, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("typo", "line", "said"),
    [
        pytest.param(
            "refresh_secnds = 5\n" + VALID,
            1,
            "refresh_secnds: unknown key (did you mean refresh_seconds?)",
            id="top-level",
        ),
        pytest.param(
            VALID.replace("protected = true", "protectd = true"),
            9,
            "clusters[1].protectd: unknown key (did you mean protected?)",
            id="second-cluster",
        ),
        pytest.param(
            VALID.replace('target_groups = ["storefront-staging"]', 'target_group = ["x"]'),
            15,
            "projects[0].clusters.staging.target_group: unknown key (did you mean target_groups?)",
            id="project-in-cluster",
        ),
        pytest.param(
            VALID + "\n[sshd]\nport = 2222\nmax_sesions = 4\n",
            19,
            "sshd.max_sesions: unknown key (did you mean max_sessions?)",
            id="sshd",
        ),
    ],
)
def test_a_typo_names_file_line_and_the_key_meant(
    tmp_path: Path, typo: str, line: int, said: str
) -> None:
    path = tmp_path / "console.toml"
    path.write_text(typo)
    assert typo.splitlines()[line - 1].split("=")[0].strip() in said  # the line is the typo's
    result = config_check(path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == f"deploy-console: error: {path}:{line}: {said}\n"


def test_a_key_nothing_is_close_to_lists_the_valid_keys(tmp_path: Path) -> None:
    path = tmp_path / "console.toml"
    path.write_text(VALID.replace('region = "us-east-1"\n', 'region = "us-east-1"\nzzz = 1\n', 1))
    result = config_check(path)
    assert result.returncode == 2
    assert result.stderr.startswith(f"deploy-console: error: {path}:5: clusters[0].zzz: ")
    assert "unknown key (valid here: " in result.stderr and "protected, region" in result.stderr


def test_the_locator_reads_paths_and_survives_what_it_cannot_find(tmp_path: Path) -> None:
    assert path_parts("projects[0].clusters.staging.x") == [
        "projects",
        0,
        "clusters",
        "staging",
        "x",
    ]
    path = tmp_path / "c.toml"
    path.write_text('a = 1\n\n[t]\n"quoted key" = 2\n')
    assert key_line(path, "t.quoted key") == 4
    assert key_line(path, "t.absent") is None
    assert key_line(tmp_path / "missing.toml", "a") is None
    path.write_text("not toml [")
    assert key_line(path, "a") is None
    assert closest("regoin", ["name", "region"]) == "region"
    assert closest("zzz", ["name", "region"]) is None


@pytest.mark.parametrize(
    ("broken", "said"),
    [
        pytest.param(
            VALID.replace('name = "prod1"\nregion = "us-east-1"', 'name = "prod1"\nregion = 5'),
            ":8: clusters[1].region: must be a string, not an integer",
            id="wrong-type-at-its-line",
        ),
        pytest.param(
            VALID.replace('name = "prod1"\nregion = "us-east-1"\n', 'name = "prod1"\n'),
            ":7: clusters[1].region: is required but missing",
            id="missing-key-at-its-table",
        ),
    ],
)
def test_every_config_error_names_the_line(tmp_path: Path, broken: str, said: str) -> None:
    """Not only typos: a wrong value is shown at its line, a missing key at its table's."""
    path = tmp_path / "console.toml"
    path.write_text(broken)
    result = config_check(path)
    assert result.returncode == 2
    assert result.stderr == f"deploy-console: error: {path}{said}\n"
