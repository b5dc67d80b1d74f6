"""Bad input through the real door: every mistake is one line on stderr and exit code 2."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from screens.main import run
from tests.conftest import DEMO_CONFIG, ROOT

# Every numeric setting of the config, each with a valid value; a test spoils one at a time.
NUMERIC = {
    "refresh_seconds": "10",
    "ssh_port": "22",
    "ssh_connect_timeout": "10",
    "startup_timeout_seconds": "120",
    "health_interval_seconds": "2",
    "instance_ready_timeout_seconds": "600",
    "health_gate_margin_seconds": "60",
    "rollback_timeout_seconds": "1800",
    "poll_seconds": "2",
    "lock_stale_seconds": "30",
    "parallel": "4",
    "anchor_every_seconds": "300",
    "sshd_port": "2222",
    "seed": "42",
    "registration_seconds": "3",
    "health_check_interval_seconds": "5",
    "healthy_threshold": "2",
    "deregistration_delay_seconds": "30",
    "instances": "2",
    "stopped": "0",
    "unhealthy": "0",
    "older": "0",
}
# The settings of the [engine] and [world] tables (all numeric).
ENGINE = (
    "instance_ready_timeout_seconds",
    "health_gate_margin_seconds",
    "rollback_timeout_seconds",
    "poll_seconds",
    "lock_stale_seconds",
)
WORLD = (
    "seed",
    "registration_seconds",
    "health_check_interval_seconds",
    "healthy_threshold",
    "deregistration_delay_seconds",
)
KEY_PATHS = {
    "refresh_seconds": "refresh_seconds",
    **{name: f"engine.{name}" for name in ENGINE},
    **{name: f"world.{name}" for name in WORLD},
    "ssh_port": "clusters[0].ssh.port",
    "ssh_connect_timeout": "clusters[0].ssh.connect_timeout",
    "startup_timeout_seconds": "projects[0].deploy.startup_timeout_seconds",
    "health_interval_seconds": "projects[0].deploy.health_interval_seconds",
    "parallel": "queue.parallel",
    "anchor_every_seconds": "audit.anchor_every_seconds",
    "sshd_port": "sshd.port",
    "instances": "world.projects.storefront.clusters.staging.instances",
    "stopped": "world.projects.storefront.clusters.staging.stopped",
    "unhealthy": "world.projects.storefront.clusters.staging.unhealthy",
    "older": "world.projects.storefront.clusters.staging.older",
}
INTEGERS = {
    "ssh_port",
    "parallel",
    "sshd_port",
    "seed",
    "health_check_interval_seconds",
    "healthy_threshold",
    "deregistration_delay_seconds",
    "instances",
    "stopped",
    "unhealthy",
    "older",
}


def table(name: str, settings: tuple[str, ...]) -> str:
    """A TOML table whose every setting is a placeholder for config_text (`poll_seconds =
    {poll_seconds}`)."""
    return f"\n[{name}]\n" + "".join(f"{setting} = {{{setting}}}\n" for setting in settings)


TEMPLATE = (
    "refresh_seconds = {refresh_seconds}\n"
    + table("engine", ENGINE)
    + """
[queue]
parallel = {parallel}

[audit]
anchor_bucket = "audit-anchors"
anchor_cluster = "staging"
anchor_every_seconds = {anchor_every_seconds}

[sshd]
port = {sshd_port}

[[clusters]]
name = "staging"
region = "us-east-1"
[clusters.ssh]
user = "deploy"
key = "/keys/deploy"
known_hosts = "/keys/known_hosts"
port = {ssh_port}
connect_timeout = {ssh_connect_timeout}

[[projects]]
name = "storefront"
repository = "https://github.com/example/storefront"
[projects.clusters.staging]
target_groups = ["storefront-staging"]
[projects.deploy]
start = "start"
health = "health"
startup_timeout_seconds = {startup_timeout_seconds}
health_interval_seconds = {health_interval_seconds}
"""
    + table("world", WORLD)
    + """
[world.projects.storefront]
versions = ["1.0.0"]
[world.projects.storefront.clusters.staging]
version = "1.0.0"
instances = {instances}
stopped = {stopped}
unhealthy = {unhealthy}
older = {older}
"""
)


def config_text(**spoiled: str) -> str:
    return TEMPLATE.format(**{**NUMERIC, **spoiled})


def console(*args: str, **options: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "screens.main", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=60, **options,  # type: ignore[call-overload]
    )  # fmt: skip


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """The error a person sees: exit code 2, exactly one line on stderr, no traceback."""
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("deploy-console: error: "), lines[0]
    return lines[0]


# -- the config's numbers ----------------------------------------------------------------------


def test_the_template_is_valid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "console.toml"
    path.write_text(config_text())
    assert run(["config", "check", "--config", str(path)]) == 0, capsys.readouterr().err


@pytest.mark.parametrize("field", sorted(NUMERIC))
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e300", "9223372036854775807"])
def test_every_numeric_setting_refuses_non_finite_and_huge_values(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], field: str, value: str
) -> None:
    path = tmp_path / "console.toml"
    path.write_text(config_text(**{field: value}))
    assert run(["config", "check", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1, err
    # The file and the line of the key, then the key's path.
    at = rf"deploy-console: error: {re.escape(str(path))}:\d+: {re.escape(KEY_PATHS[field])}: "
    assert re.match(at + "must be ", err), err
    if field in INTEGERS and value in ("nan", "inf", "-inf", "1e300"):
        assert "must be an integer, not a number" in err
    elif value == "-inf":
        assert "must be a number from" in err and "not -inf" in err
    elif value in ("nan", "inf"):
        assert "must be a number from" in err and f"not {value}" in err
    else:
        assert "must be at most" in err


def test_nan_settings_fail_through_the_command_line(tmp_path: Path) -> None:
    for field in ("poll_seconds", "lock_stale_seconds"):
        path = tmp_path / f"{field}.toml"
        path.write_text(config_text(**{field: "nan"}))
        line = one_line_error(console("config", "check", "--config", str(path)))
        written = path.read_text().splitlines().index(f"{field} = nan") + 1
        assert line == (
            f"deploy-console: error: {path}:{written}: engine.{field}: must be a number from "
            f"{'0.05 to 3600' if field == 'poll_seconds' else '1 to 86400'}, not nan"
        )


def test_a_deeply_nested_toml_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "deep.toml"
    path.write_text("a = " + "[" * 100_000)
    line = one_line_error(console("config", "check", "--config", str(path)))
    assert (
        line == f"deploy-console: error: {path}: invalid TOML: arrays or tables nested too deeply"
    )


def test_a_config_that_is_not_a_file_is_one_line() -> None:
    line = one_line_error(console("config", "check", "--config", "/proc/self/mem"))
    assert "/proc/self/mem: cannot read" in line
    line = one_line_error(console("config", "check", "--config", "/dev/zero"))
    assert "/dev/zero: larger than 8 MiB" in line


# -- integers, durations and times on the command line ----------------------------------------


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with a lock and an audit row: each command below reaches the store today."""
    path = tmp_path_factory.mktemp("store") / "store.db"
    result = console(
        "lock", "add", "--reason", "maintenance", "--config", str(DEMO_CONFIG), "--store", str(path)
    )
    assert result.returncode == 0, result.stderr
    return path


HUGE = "1" + "0" * 22


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["history", "--limit", HUGE], f"--limit must be between 1 and 1000000, not {HUGE}"),
        (["lock", "remove", HUGE + "000"], f"LOCK_ID must be between 1 and {2**63 - 1}, not"),
        (
            ["lock", "add", "--reason", "x", "--until", "99999999999d"],
            "--until 99999999999d is longer than 3650 days",
        ),
        (
            ["lock", "add", "--reason", "x", "--until", "9999-12-31T23:59:59-05:00"],
            "--until '9999-12-31T23:59:59-05:00' is outside the years 1 to 9999 once in UTC",
        ),
        (
            ["audit", "export", "--until", "9999-12-31T23:59:59-05:00"],
            "--until '9999-12-31T23:59:59-05:00' is outside the years 1 to 9999 once in UTC",
        ),
        (
            ["audit", "export", "--since", "0001-01-01T00:00:00+05:00"],
            "--since '0001-01-01T00:00:00+05:00' is outside the years 1 to 9999 once in UTC",
        ),
    ],
    ids=["history-limit", "lock-remove", "lock-until-days", "lock-until-iso", "export-until",
         "export-since"],
)  # fmt: skip
def test_huge_numbers_and_times_are_one_line(store: Path, argv: list[str], message: str) -> None:
    before = store.read_bytes()
    result = console(*argv, "--config", str(DEMO_CONFIG), "--store", str(store))
    assert message in one_line_error(result)
    assert store.read_bytes() == before


def test_a_5000_digit_number_is_named_not_printed(store: Path) -> None:
    digits = "9" * 5000
    result = console(
        "history", "--limit", digits, "--config", str(DEMO_CONFIG), "--store", str(store)
    )
    line = one_line_error(result)
    assert line == (
        f"deploy-console: error: argument --limit: invalid int value: '{'9' * 40}… "
        "(5000 characters)' (see deploy-console history --help)"
    )


# -- a reader that leaves early ----------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["status", "--json"],
        ["status"],
        ["releases", "storefront", "--json"],
        ["config", "check"],
        ["history", "--json"],
        ["history"],
        ["queue", "--json"],
        ["lock", "list"],
        ["lock", "list", "--json"],
        ["freeze", "list"],
        ["freeze", "list", "--json"],
        ["audit", "verify"],
        ["audit", "verify", "--json"],
        ["audit", "export"],
    ],
    ids=" ".join,
)
def test_a_closed_pipe_ends_every_command_quietly(
    world_config_path: Path, store: Path, argv: list[str]
) -> None:
    """`deploy-console … | head -1`, with the reader gone before the first line is written
    (so that it does not depend on how much fits in the pipe)."""
    args = [*argv, "--config", str(world_config_path)]
    if argv[0] in ("history", "queue", "lock", "freeze", "audit"):
        args += ["--store", str(store)]
    child = subprocess.Popen(
        [sys.executable, "-m", "screens.main", *args],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "COLUMNS": "120"},
    )  # fmt: skip
    assert child.stdout is not None and child.stderr is not None
    child.stdout.close()
    err = child.stderr.read().decode()
    assert child.wait(timeout=60) == 0, err
    assert err == ""


def test_an_argument_that_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    """A reason typed in Latin-1 (café): today SQLite raises UnicodeEncodeError on it."""
    store = tmp_path / "store.db"
    argv = [sys.executable, "-m", "screens.main", "lock", "add", "--reason"]
    result = subprocess.run(
        [*map(os.fsencode, argv), b"caf\xe9",
         b"--config", os.fsencode(DEMO_CONFIG), b"--store", os.fsencode(store)],
        cwd=ROOT, capture_output=True, timeout=60,
    )  # fmt: skip
    assert (result.returncode, result.stderr) == (
        2,
        b"deploy-console: error: reason b'caf\\xe9' is not UTF-8 text\n",
    )
    assert not store.exists()
