"""`--json` on every listing command: one object, its `schema` first, the data a script looks
for; docs/json.md kept honest (each documented command emits its schema and its keys); and the
human tables: within 80 columns at a terminal, plain columns in a pipe."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from rich.text import Text

from console.aws.iam import ROLES
from console.config import Config
from screens.cli.json_out import SCHEMAS, schema_name
from screens.cli.tables import TableConsole, print_table
from screens.main import run
from tests.screens.cli.json_examples import Section, documented, seeded_store
from tests.screens.cli.test_cli_audit import tamper

BOX = set("─│┃━┏┓┗┛┡┩╇╈┼├┤┬┴╭╮╰╯═║")
TIMES = {"at", "since", "until", "not_before", "next_retry", "received_at"}


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory, world_config: Config) -> Path:
    return seeded_store(tmp_path_factory.mktemp("seeded"), world_config)


@pytest.fixture
def store(tmp_path: Path, seeded: Path) -> Path:
    """A copy of the seeded store of its own (a command may change it: promote, tampering)."""
    return Path(shutil.copy(seeded, tmp_path / "store.db"))


def cli(
    capsys: pytest.CaptureFixture[str], config: Path, store: Path, *argv: str, code: int = 0
) -> str:
    """The command's stdout, in this process (its exit code checked)."""
    capsys.readouterr()
    assert run(["--config", str(config), "--store", str(store), *argv]) == code
    return capsys.readouterr().out


def json_of(
    capsys: pytest.CaptureFixture[str], config: Path, store: Path, *argv: str, code: int = 0
) -> dict[str, Any]:
    data = json.loads(cli(capsys, config, store, *argv, code=code))
    assert isinstance(data, dict) and next(iter(data)) == "schema", data
    return data


def times_are_utc(value: Any, key: str = "") -> None:
    """Every time in the JSON is ISO 8601 in UTC."""
    if isinstance(value, dict):
        for name, item in value.items():
            times_are_utc(item, name)
    elif isinstance(value, list):
        for item in value:
            times_are_utc(item, key)
    elif isinstance(value, str) and (key.endswith("_at") or key in TIMES):
        assert datetime.fromisoformat(value).utcoffset() == timedelta(0), (key, value)


def shape(value: Any) -> Any:
    """The keys of a JSON value, down its objects and the first item of its lists."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return None


def same_shape(found: Any, documented: Any, where: str = "") -> None:
    """The keys the docs show are the keys printed (a list empty on either side is not
    compared further; values are the world's)."""
    if isinstance(documented, dict):
        assert isinstance(found, dict) and set(found) == set(documented), where
        for key in documented:
            same_shape(found[key], documented[key], f"{where}.{key}")
    elif isinstance(documented, list) and documented and found:
        same_shape(found[0], documented[0], f"{where}[0]")


# -- docs/json.md ----------------------------------------------------------------------------


def test_every_schema_is_documented_once_with_its_example() -> None:
    sections = documented()
    assert sorted(s.schema for s in sections) == sorted(schema_name(name) for name in SCHEMAS)
    for section in sections:
        assert section.example["schema"] == section.schema
        assert section.argv[-1] == "--json", section.argv


@pytest.mark.parametrize("section", documented(), ids=lambda section: section.schema)
def test_each_documented_command_emits_its_schema_and_keys(
    section: Section, world_config_path: Path, store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if section.argv[:2] == ["notify", "inbox"]:  # a message in the world's inbox first
        cli(capsys, world_config_path, store, "notify", "test", "oncall")
    # (drift) The demo's fleet, taken over with no history, has findings: drift exits 1.
    code = 1 if section.argv[0] == "drift" else 0
    data = json_of(capsys, world_config_path, store, *section.argv, code=code)
    assert data["schema"] == section.schema
    if section.argv[:2] == ["notify", "inbox"]:
        # The session world's inbox is shared: another test of this worker may have posted a
        # text-format message (team-chat) first. The shape compared is the one sent here.
        data["messages"] = [m for m in data["messages"] if m["channel"] == "oncall"]
        assert data["messages"]
    same_shape(data, section.example)
    times_are_utc(data)


# -- what a script looks for -------------------------------------------------------------------


def test_queue_locks_and_freezes(
    world_config_path: Path, store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    queue = json_of(capsys, world_config_path, store, "queue", "--json")
    assert [(d["id"], d["state"]) for d in queue["deploys"]] == [
        ("d-2", "queued"),
        ("d-3", "queued"),
    ]
    assert queue["deploys"][0]["waiting"].startswith("prod2 frozen by bob since ")
    locks = json_of(capsys, world_config_path, store, "lock", "list", "--json")
    assert locks["schema"] == "deploy-console.lock-list/1"
    (lock,) = locks["locks"]
    assert (lock["id"], lock["project"], lock["owner"], lock["reason"], lock["until"]) == (
        1,
        "search-api",
        "carol",
        "db migration",
        None,
    )
    assert queue["locks"] == locks["locks"]
    freezes = json_of(capsys, world_config_path, store, "freeze", "list", "--json")
    assert freezes["schema"] == "deploy-console.freeze-list/1"
    assert [(f["cluster"], f["actor"], f["reason"]) for f in freezes["freezes"]] == [
        ("prod2", "bob", "Black Friday")
    ]
    assert queue["freezes"] == freezes["freezes"]


def test_history_a_deploy_its_rules_and_wait(
    world_config_path: Path, store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    listed = json_of(capsys, world_config_path, store, "history", "--json")
    assert [d["id"] for d in listed["deploys"]] == ["d-3", "d-2", "d-1"]
    one = json_of(capsys, world_config_path, store, "history", "d-1", "--json")
    assert (one["schema"], one["state"], one["previous_release"]) == (
        "deploy-console.history-deploy/1",
        "succeeded",
        "2.14.1",
    )
    assert [s["step"] for s in one["steps"]] == ["lock", "resolve", "launch"]
    waited = json_of(capsys, world_config_path, store, "wait", "d-1", "--json")
    assert waited["schema"] == "deploy-console.wait/1"
    assert {k: v for k, v in waited.items() if k != "schema"} == {
        k: v for k, v in one.items() if k not in ("schema", "steps")
    }
    rules = json_of(capsys, world_config_path, store, "history", "--rules", "--json")
    assert [c["outcome"] for c in rules["changes"]] == ["first"]


def test_audit_verify_says_ok_or_the_problem_with_its_exit_code(
    world_config_path: Path, store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    verified = json_of(capsys, world_config_path, store, "audit", "verify", "--json")
    assert (verified["ok"], verified["problem"]) == (True, None)
    assert verified["rows"] >= 5 and len(verified["head"]) == 64
    tamper(store, "UPDATE audit SET actor = 'mallory' WHERE id = 2")
    broken = json_of(capsys, world_config_path, store, "audit", "verify", "--json", code=1)
    assert broken["ok"] is False and broken["problem"].startswith("row 2 changed")
    assert broken["rows"] == 1


def test_config_check_and_keys(
    world_config_path: Path,
    world_config: Config,
    store: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    checked = json_of(capsys, world_config_path, store, "config", "check", "--json")
    assert checked["ok"] is True and checked["source"] == str(world_config_path)
    assert [(c["name"], c["protected"]) for c in checked["clusters"]] == [
        (c.name, c.protected) for c in world_config.clusters
    ]
    assert [p["name"] for p in checked["projects"]] == [p.name for p in world_config.projects]
    keys = json_of(capsys, world_config_path, store, "config", "keys", "--json")
    ids = [binding["id"] for binding in keys["bindings"]]
    assert len(ids) == len(set(ids)) > 10
    assert all(isinstance(binding["where"], list) for binding in keys["bindings"])


def test_notify_status_and_the_roles(
    world_config_path: Path, store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = json_of(capsys, world_config_path, store, "notify", "status", "--json")
    assert set(status["counts"]) == {"pending", "delivered", "failed", "unrouted"}
    assert status["deliveries"] == []
    roles = json_of(capsys, world_config_path, store, "iam-policy", "--json")
    assert [role["name"] for role in roles["roles"]] == list(ROLES)


# -- the human tables -------------------------------------------------------------------------

LISTINGS = [
    ["queue"],
    ["lock", "list"],
    ["freeze", "list"],
    ["history"],
    ["history", "--rules"],
    ["releases", "checkout-api"],
    ["status"],
    ["config", "keys"],
]


@pytest.mark.parametrize("argv", LISTINGS, ids=" ".join)
def test_a_pipe_gets_plain_columns(
    argv: list[str], world_config_path: Path, store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No box drawing, no colour, no trailing blanks: what grep and awk read."""
    text = cli(capsys, world_config_path, store, *argv)
    assert text.strip()
    assert not BOX & set(text) and "\x1b[" not in text
    assert all(line == line.rstrip() for line in text.splitlines())


@pytest.mark.parametrize("argv", LISTINGS, ids=" ".join)
def test_a_terminal_of_80_columns_gets_a_table_that_fits(
    argv: list[str],
    world_config_path: Path,
    store: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")  # Rich takes stdout for a terminal
    monkeypatch.setenv("COLUMNS", "80")
    text = cli(capsys, world_config_path, store, *argv)
    lines = Text.from_ansi(text).plain.splitlines()
    assert lines and max(len(line) for line in lines) <= 80
    assert BOX & set(text)  # the table's rules: not the pipe's plain columns


def test_a_long_cell_folds_at_a_terminal_and_stays_whole_in_a_pipe() -> None:
    rows = [("d-1", "x" * 150), ("d-2", "short")]
    screen = StringIO()
    print_table(("deploy", "why"), rows, console=TableConsole(file=screen, width=80,
                force_terminal=True))  # fmt: skip
    shown = Text.from_ansi(screen.getvalue()).plain
    assert max(len(line) for line in shown.splitlines()) <= 80
    assert "".join(shown.split()).count("x") == 150  # folded, nothing cut
    pipe = StringIO()
    print_table(("deploy", "why"), rows, console=TableConsole(file=pipe, width=80))
    assert pipe.getvalue().splitlines() == [
        "deploy  why",
        "d-1     " + "x" * 150,
        "d-2     short",
    ]
