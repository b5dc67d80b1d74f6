"""What an instance prints during a deploy, as the operator and the store see it: real CLI
deploys (`deploy-console deploy`, which waits) against a world of their own.

A configure step and a health command that print terminal escapes (OSC 52 clipboard, OSC 0
title, cursor moves, DCS, C1, backspace and CR overprints) reach neither the terminal nor
the store raw; a multi-line secret with quotes, printed by the instance in every form a shell
gives it, appears nowhere: not on stdout, not in the store's files, not in the audit export.
"""

from __future__ import annotations

import base64
import csv
import io
import os
import sqlite3
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
import tomli_w

from console.config import Config
from tests.conftest import DEMO_CONFIG, ROOT
from tests.console.deploy.test_engine import world_of
from tests.deploy_world import client, live, watching

ESCAPES = (
    r"\033]52;c;ZWNobyBwd25lZA==\007"  # OSC 52: write the operator's clipboard
    r"\033]0;owned\007"  # OSC 0: the window title
    r"\033[2J\033[H\033[3A\033[K"  # erase the screen, home, cursor up, erase line
    r"\033P+q544e\033\\"  # DCS (a terminfo query)
    r"\302\233"
    "31m"  # C1 CSI, as UTF-8
    r"FAKE OK\b\b\b\b\b\b\brm -rf /\rall good"  # backspace and CR overprints
)
CONFIGURE = f"printf '{ESCAPES}\\n'; printf 'tab\\tkept\\n'; sh app/bin/configure"
HEALTH = r"printf '\033]0;health-title\007\033[1A\a\n' >&2; sh app/bin/healthcheck"

SECRET = "-----BEGIN TOKEN-----\nsk_live_'q\"uo$te`d\\9f8e7d\nlast-line-0a1b2c\n-----END TOKEN-----"
PIECES = ("sk_live", "9f8e7d", "0a1b2c", "BEGIN TOKEN", base64.b64encode(SECRET.encode())[:12])
PRINT_SECRET = (
    "cat app.env; set -a; . ./app.env; set +a; "
    'echo "raw: $PAYMENT_API_KEY"; echo unquoted: $PAYMENT_API_KEY; '
    "export -p | grep -A4 PAYMENT_API_KEY; "
    'printf %s "$PAYMENT_API_KEY" | base64; printf %s "$PAYMENT_API_KEY" | base64 -w0; echo; '
    "sh app/bin/configure"
)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Config]:
    data = tomllib.loads(DEMO_CONFIG.read_text())
    for project in data["projects"]:
        if project["name"] == "storefront":
            project["deploy"] |= {"configure": CONFIGURE, "health": HEALTH}
        if project["name"] == "checkout-api":
            project["deploy"]["configure"] = PRINT_SECRET
    with world_of(tmp_path_factory, "output", tomli_w.dumps(data)) as config:
        yield config


def deploy(config: Config, store: Path, *argv: str) -> subprocess.CompletedProcess[bytes]:
    assert config.source is not None
    return subprocess.run(
        [sys.executable, "-m", "screens.main", "deploy", "--anyway", *argv,
         "--config", str(config.source), "--store", str(store)],
        cwd=ROOT, env=os.environ, stdin=subprocess.DEVNULL, capture_output=True, timeout=240,
    )  # fmt: skip


def stored_log(store: Path) -> list[str]:
    with closing(sqlite3.connect(f"file:{store}?mode=ro", uri=True)) as db:
        return [line for (line,) in db.execute("SELECT line FROM deploy_log ORDER BY seq")]


def audit_export(store: Path, format_: str) -> bytes:
    done = subprocess.run(
        [sys.executable, "-m", "screens.main", "audit", "export", "--format", format_,
         "--store", str(store)],
        cwd=ROOT, stdin=subprocess.DEVNULL, capture_output=True, timeout=60, check=True,
    )  # fmt: skip
    return done.stdout


def terminal_controls(data: bytes) -> list[str]:
    return [
        f"{ord(c):#x}"
        for c in data.decode()
        if (ord(c) < 0x20 and c not in "\t\n") or 0x7F <= ord(c) <= 0x9F
    ]


def stored_texts(store: Path) -> Iterator[str]:
    """Every text value in every table of the store, read with sqlite3."""
    with closing(sqlite3.connect(f"file:{store}?mode=ro", uri=True)) as db:
        tables = [
            name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")
        ]
        for table in tables:
            for row in db.execute(f'SELECT * FROM "{table}"'):
                yield from (value for value in row if isinstance(value, str))


def test_escape_sequences_an_instance_prints_reach_no_terminal_and_no_store(
    world: Config, tmp_path: Path
) -> None:
    store = tmp_path / "store.db"
    old = live(world, "storefront", "staging")
    with watching(world, "storefront", "staging"):
        done = deploy(world, store, "storefront", "staging", "2.14.1")
    assert done.returncode == 0, (done.stdout.decode()[-3000:], done.stderr.decode())
    assert live(world, "storefront", "staging").isdisjoint(old)
    assert terminal_controls(done.stdout) == [] and terminal_controls(done.stderr) == []
    shown = done.stdout.decode()
    # The operator sees that something was printed, and what, without their terminal acting.
    assert r"\x1b]52;c;ZWNobyBwd25lZA==\x07\x1b]0;owned\x07\x1b[2J\x1b[H" in shown
    assert r"FAKE OK\x08\x08\x08\x08\x08\x08\x08rm -rf /\x0dall good" in shown
    assert r"\x1b]0;health-title\x07\x1b[1A\x07" in shown
    assert "tab\tkept" in shown
    lines = stored_log(store)
    assert any(r"\x1b]52;c;" in line for line in lines) and "tab\tkept" in lines
    assert all(terminal_controls(line.encode()) == [] for line in lines)
    texts = list(stored_texts(store))
    assert any(r"\x1b]0;owned" in text for text in texts)
    assert [t for t in texts if terminal_controls(t.encode())] == []
    history = subprocess.run(
        [sys.executable, "-m", "screens.main", "history", "--store", str(store),
         "--config", str(world.source)],
        cwd=ROOT, stdin=subprocess.DEVNULL, capture_output=True, timeout=60, check=True,
    )  # fmt: skip
    assert terminal_controls(history.stdout) == []
    for format_ in ("csv", "jsonl"):
        assert b"\x1b" not in audit_export(store, format_)


def test_a_multi_line_secret_with_quotes_is_masked_in_every_form(
    world: Config, tmp_path: Path
) -> None:
    ssm = client(world, "qaprod1", "ssm")
    ssm.put_parameter(
        Name="/checkout-api/payment-api-key", Value=SECRET, Type="SecureString", Overwrite=True
    )
    store = tmp_path / "store.db"
    done = deploy(world, store, "checkout-api", "qaprod1", "5.2.0")
    assert done.returncode == 0, (done.stdout.decode()[-3000:], done.stderr.decode())
    shown = done.stdout.decode()
    # The instance printed the secret in each form (the lines are there), each one masked.
    assert "| raw: ********" in shown and "| PAYMENT_API_KEY=********" in shown
    assert "| unquoted: ******** ******** ******** ********" in shown
    sandboxes = world.cluster("qaprod1").ssh.key.parent.parent / "instances"  # type: ignore[union-attr]
    written = [p for p in sandboxes.glob("*/app.env") if b"sk_live" in p.read_bytes()]
    assert written, "the instance got the secret: that is the point"
    everything = [
        done.stdout,
        done.stderr,
        audit_export(store, "csv"),
        audit_export(store, "jsonl"),
    ]
    everything += [path.read_bytes() for path in tmp_path.iterdir()]
    for data in everything:
        for piece in PIECES:
            assert (piece if isinstance(piece, bytes) else piece.encode()) not in data, piece
    assert "********" in "\n".join(stored_log(store))
    rows = list(csv.DictReader(io.StringIO(audit_export(store, "csv").decode(), newline="")))
    assert rows and all("sk_live" not in value for row in rows for value in row.values())
