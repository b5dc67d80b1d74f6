"""A cluster's colour in the config: one of nine names; a mistake is one line naming the file,
its line and the valid names (exit 2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from console.config import CLUSTER_COLOURS, load_config
from tests.conftest import DEMO_CONFIG, EXAMPLE_CONFIG
from tests.console.config.test_config import VALID, check, one_line_error


def with_colour(value: str, key: str = "colour") -> str:
    """VALID with `key = value` in prod1 (its second cluster), on line 8."""
    text = VALID.replace('name = "prod1"\n', f'name = "prod1"\n{key} = {value}\n')
    assert text != VALID
    return text


def test_a_colour_is_read_and_a_protected_cluster_needs_none(tmp_path: Path) -> None:
    path = tmp_path / "console.toml"
    path.write_text(with_colour('"Purple"'))
    config = load_config(path)
    assert config.cluster("prod1").colour == "purple"  # any case, read lower-case
    assert config.cluster("staging").colour is None
    demo = load_config(DEMO_CONFIG)
    assert demo.cluster("staging").colour == "cyan"
    assert demo.cluster("prod1").colour is None and demo.cluster("prod1").protected
    assert "colour" in EXAMPLE_CONFIG.read_text()
    assert load_config(EXAMPLE_CONFIG).cluster("staging").colour == "green"


@pytest.mark.parametrize(
    ("value", "hint"),
    [('"rde"', "(did you mean red? valid: "), ('"chartreuse"', "(valid: ")],
)
def test_an_unknown_colour_is_one_line_with_its_line_and_the_valid_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str, hint: str
) -> None:
    line = one_line_error(tmp_path, with_colour(value), capsys)
    path = tmp_path / "console.toml"
    assert line.startswith(f"deploy-console: error: {path}:8: clusters[1].colour: ")
    assert f"unknown colour {value.strip(chr(34))!r} {hint}" in line
    assert line.endswith(", ".join(CLUSTER_COLOURS) + ")")


def test_a_colour_of_the_wrong_kind_or_spelling(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line = one_line_error(tmp_path, with_colour("3"), capsys)
    assert "clusters[1].colour: must be a string, not an integer" in line
    line = one_line_error(tmp_path, with_colour('"red"', key="color"), capsys)
    assert line.endswith(":8: clusters[1].color: unknown key (did you mean colour?)")
    code, _ = check(tmp_path, with_colour('"red"'), capsys)
    assert code == 0
