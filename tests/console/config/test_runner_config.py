"""[runner] stop_grace: how long a stopping runner lets its deploys end (a duration; 0s: at
once); a mistake is one line naming the file and its line."""

from __future__ import annotations

from pathlib import Path

import pytest

from console.config import Config, load_config
from tests.console.config.test_config import VALID, one_line_error


def grace(tmp_path: Path, runner: str) -> float:
    path = tmp_path / "console.toml"
    path.write_text(VALID + runner)
    return load_config(path).runner_stop_grace


def test_the_stop_grace_is_ten_minutes_unless_set(tmp_path: Path) -> None:
    assert grace(tmp_path, "") == Config.runner_stop_grace == 600.0
    assert grace(tmp_path, '[runner]\nstop_grace = "90s"\n') == 90.0
    assert grace(tmp_path, '[runner]\nstop_grace = "0s"\n') == 0.0
    config = tmp_path / "socket.toml"
    config.write_text(VALID + '[runner]\nsocket = "/run/dc.sock"\n')
    assert load_config(config).runner_stop_grace == 600.0  # a socket alone keeps the default


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ('"soon"', "must be a duration (90s, 10m, 1h; 0s hands over at once), not 'soon'"),
        ('"2d"', "stop_grace 2d is longer than 1 days"),
        ("600", "must be"),
    ],
)
def test_a_bad_stop_grace_is_one_line_naming_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str, said: str
) -> None:
    line = one_line_error(tmp_path, VALID + f"[runner]\nstop_grace = {value}\n", capsys)
    lines = (VALID + "[runner]\n").count("\n") + 1
    assert f"console.toml:{lines}" in line and "stop_grace" in line and said in line, line
