"""The config's [keymap]: each mistake is one line naming the file, the line and the binding,
with exit code 2, as `config check` (and the console itself) say it; `config keys` lists
every binding with the keys in effect."""

from __future__ import annotations

import re
import string
from pathlib import Path

import pytest
from textual.keys import _character_to_key

from console.config import load_config
from console.config.keymap import KeymapSettings, KnownBinding, check_keymap
from screens.keymap import config_keymap, shown_key, textual_key
from screens.main import run
from tests.conftest import EXAMPLE_CONFIG
from tests.console.config.test_config import VALID


def keymap_check(
    tmp_path: Path, keymap: str, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str, int]:
    """`config check` of VALID with `keymap` after it: exit code, stderr, and the line
    number where the [keymap] table's first entry stands."""
    path = tmp_path / "console.toml"
    text = VALID + "\n[keymap]\n" + keymap
    path.write_text(text)
    code = run(["config", "check", "--config", str(path)])
    first = text.splitlines().index("[keymap]") + 2
    return code, capsys.readouterr().err, first


def one_line(tmp_path: Path, keymap: str, capsys: pytest.CaptureFixture[str], line: int) -> str:
    """The one error line (after `deploy-console: error: FILE:LINE: `) of a [keymap] whose
    mistake is on its `line`-th entry line (from 0)."""
    code, err, first = keymap_check(tmp_path, keymap, capsys)
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    prefix = f"deploy-console: error: {tmp_path / 'console.toml'}:{first + line}: "
    assert err.startswith(prefix), err
    return err[len(prefix) :].strip()


def test_an_unknown_binding_id_names_the_closest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    said = one_line(tmp_path, 'app.help = "f1"\ndashboard.refrsh = "f5"\n', capsys, 1)
    assert said == "keymap.dashboard.refrsh: unknown key binding (did you mean dashboard.refresh?)"


def test_an_unknown_quoted_binding_id_with_nothing_close_points_at_the_listing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    said = one_line(tmp_path, '"zzz.qqq" = "f5"\n', capsys, 0)
    assert said == "keymap.zzz.qqq: unknown key binding (`deploy-console config keys` lists them)"


@pytest.mark.parametrize(
    ("value", "said"),
    [
        pytest.param('""', "an empty key", id="empty"),
        pytest.param('"f5,"', "an empty key", id="empty-after-comma"),
        pytest.param('"page up"', "'page up' is not a key: a key name has no spaces", id="space"),
        pytest.param('"ctl+r"', "'ctl+r' is not a key: modifiers are alt, ctrl,", id="modifier"),
        pytest.param('"F5"', "'F5' is not a key: Textual has no key 'F5' (did you mean f5?)"),
        pytest.param('"f5,f5"', "'f5,f5' lists a key twice", id="twice"),
        pytest.param('"ctrl++"', "'ctrl++' is not a key: the + key is \"plus\"", id="plus"),
        pytest.param("5", "must be a string of keys", id="not-a-string"),
    ],
)
def test_a_bad_key_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str, said: str
) -> None:
    assert one_line(tmp_path, f"dashboard.refresh = {value}\n", capsys, 0).startswith(
        f"keymap.dashboard.refresh: {said}"
    )


def test_two_bindings_of_one_screen_on_one_key_name_both(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    said = one_line(tmp_path, 'queue.freeze = "x"\nqueue.lock = "x"\n', capsys, 0)
    assert said == (
        "keymap.queue.freeze: x is also keymap.queue.lock on the queue screen: pick another key"
    )


def test_a_key_another_binding_has_by_default_is_a_clash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    said = one_line(tmp_path, 'dashboard.refresh = "d"\n', capsys, 0)
    assert said == (
        "keymap.dashboard.refresh: d is also deploy.open (its default key) "
        "on the dashboard screen: pick another key"
    )
    # The app's keys are live on every screen, Textual's own too.
    said = one_line(tmp_path, 'history.time_range = "ctrl+p"\n', capsys, 0)
    assert said.startswith("keymap.history.time_range: ctrl+p is also the command palette")


def test_quit_may_gain_keys_but_keeps_ctrl_q(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    said = one_line(tmp_path, 'app.quit = "f10"\n', capsys, 0)
    assert said == (
        "keymap.app.quit: must keep ctrl+q, so that the console can always be left "
        '(add keys to it: "ctrl+q,f10")'
    )
    code, err, _ = keymap_check(tmp_path, 'app.quit = "ctrl+q,f10"\n', capsys)
    assert (code, err) == (0, "")


def test_a_valid_keymap_is_listed_with_the_keys_in_effect(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keymap = (
        'dashboard.refresh = "f5"\n'
        '"queue.freeze" = "ctrl+f, F"\n'  # quoted, and a space after the comma
        'app.help = "?,f1"\n'
        'dashboard.open_project = "r"\n'  # r is free once refresh has moved
    )
    code, err, _ = keymap_check(tmp_path, keymap, capsys)
    assert (code, err) == (0, "")
    assert run(["config", "keys", "--config", str(tmp_path / "console.toml")]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split(None, 3) for line in out.splitlines()[1:]}
    assert out.splitlines()[0].split() == ["binding", "id", "keys", "where", "what", "it", "does"]
    assert rows["dashboard.refresh"] == [
        "dashboard.refresh", "f5", "dashboard", "Refresh (keymap; default r)"
    ]  # fmt: skip
    assert rows["queue.freeze"][1] == "ctrl+f,F"
    assert rows["app.help"][1] == "question_mark,f1"
    assert rows["deploy.open"] == ["deploy.open", "d", "dashboard,project", "Deploy"]
    assert rows["kiosk.quit"][1] == "ctrl+q"


def test_the_listing_has_every_binding_once_in_plain_text(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "console.toml"
    path.write_text(VALID)
    assert run(["config", "keys", "--config", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    ids = [line.split()[0] for line in lines[1:]]
    assert len(ids) == len(set(ids)) > 40
    assert all(re.fullmatch(r"[a-z_]+(\.[a-z_]+)+", binding_id) for binding_id in ids)
    assert not any("\x1b" in line for line in lines)  # no colour codes in a pipe


def test_the_example_configs_keymap_uncommented_is_valid(tmp_path: Path) -> None:
    text = EXAMPLE_CONFIG.read_text()
    start = text.index("# [keymap]")
    block = text[start : text.index("\n\n", start)]
    uncommented = "\n".join(line.removeprefix("# ") for line in block.splitlines())
    path = tmp_path / "example.toml"
    path.write_text(text + "\n" + uncommented + "\n")
    config = load_config(path)
    assert len(config.keymap.keys) >= 2
    assert config_keymap(config)


def test_the_check_alone_takes_the_bindings_it_is_given() -> None:
    groups = {"a": [KnownBinding("a.x", ("x",), "X"), KnownBinding("a.y", ("y",), "Y")]}
    settings = KeymapSettings({"a.x": ("Z",)})
    assert check_keymap(settings, groups, str.lower) == {"a.x": "z"}  # spelled as Textual does
    with pytest.raises(Exception, match=r"^keymap\.a\.x: y is also a\.y \(its default key\)"):
        check_keymap(KeymapSettings({"a.x": ("y",)}), groups, str)


def test_a_message_naming_a_key_names_the_one_in_effect() -> None:
    assert shown_key({}, "deploy.open") == "d"
    assert shown_key({}, "app.help") == "?"
    assert shown_key({"deploy.open": "ctrl+d,d"}, "deploy.open") == "^d"


def test_every_name_textual_gives_a_character_is_a_key() -> None:
    for character in string.punctuation:
        name = _character_to_key(character)  # "minus", "slash", "question_mark"...
        assert textual_key(name) == name
        # "+" joins modifiers and "," separates keys: the config spells them "plus", "comma".
        assert character in "+," or textual_key(character) == name
    with pytest.raises(ValueError, match=r"no key 'pgup' \(did you mean pageup\?\)"):
        textual_key("pgup")
