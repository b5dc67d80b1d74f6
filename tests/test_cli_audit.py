"""`audit verify` and `audit export` as CI runs them: the real command in a child process,
against real SQLite store files made with the store's own API (and tampered with sqlite3)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from console.store import DeployRecord, Store
from tests.conftest import ROOT

ERROR_PREFIX = "deploy-console: error: "
START = datetime(2026, 11, 26, 16, 0, tzinfo=UTC)
ROWS = 8


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "screens.main", *args],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )


def one_line(text: str) -> str:
    assert "Traceback" not in text, text
    lines = text.splitlines()
    assert len(lines) == 1, text
    return lines[0]


async def _fill(path: Path) -> None:
    """ROWS audit rows a minute apart: a deploy's rows, then alice and bob in two projects."""
    moments = iter(START + timedelta(minutes=n) for n in range(100))
    async with await Store.open(path, clock=lambda: next(moments)) as store:
        record = DeployRecord(
            id="d-1", project="storefront", cluster="prod1", release="2.4.1", actor="alice"
        )
        await store.create_deploy(record)
        await store.audit(
            "deploy.queued", actor="alice", project="storefront", cluster="prod1", deploy_id="d-1"
        )
        for n in range(ROWS - 1):
            await store.audit(
                "deploy.step",
                actor=("alice", "bob")[n % 2],
                project=("storefront", "media")[n // 4],
                cluster=("prod1", "staging")[n % 3 == 0],
                deploy_id="d-1",
                instance_ids=[f"i-{n:04x}", "i-ffff"],
                step="launch",
                outcome="failed" if n == 5 else "succeeded",
                reason=f'step {n}, with "quotes"\nand a second line',
            )


@pytest.fixture
def store(tmp_path: Path) -> Path:
    path = tmp_path / "audit store.db"
    asyncio.run(_fill(path))
    return path


def tamper(path: Path, *statements: str) -> None:
    """As an attacker with write access to the file would: drop the triggers, then write."""
    with sqlite3.connect(path, isolation_level=None) as db:
        db.execute("DROP TRIGGER audit_no_update")
        db.execute("DROP TRIGGER audit_no_delete")
        for statement in statements:
            db.execute(statement)
    db.close()


# -- audit verify ------------------------------------------------------------------------------


def test_verify_counts_the_rows_and_prints_the_head(store: Path) -> None:
    result = cli("audit", "verify", "--store", str(store))
    assert (result.returncode, result.stderr) == (0, "")
    with sqlite3.connect(store) as db:
        head = db.execute("SELECT hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()[0]
    db.close()
    assert one_line(result.stdout) == f"audit ok: {ROWS} rows verified, head {head}"


@pytest.mark.parametrize(
    ("statements", "expected"),
    [
        (["UPDATE audit SET actor = 'mallory' WHERE id = 5"], "row 5 changed: "),
        (["DELETE FROM audit WHERE id = 4"], "row 4 missing: ids jump from row 3 to 5"),
        # Two rows swap places (each keeps its contents and hash, under the other's id).
        (
            [
                "UPDATE audit SET id = -3 WHERE id = 3",
                "UPDATE audit SET id = 3 WHERE id = 6",
                "UPDATE audit SET id = 6 WHERE id = -3",
            ],
            "row 3 out of order: it follows row 5, not row 2",
        ),
    ],
    ids=["changed", "deleted", "swapped"],
)
def test_verify_names_the_first_tampered_row(
    store: Path, statements: list[str], expected: str
) -> None:
    tamper(store, *statements)
    result = cli("audit", "verify", "--store", str(store))
    assert result.returncode == 1, result
    assert result.stdout == ""
    line = one_line(result.stderr)
    assert line.startswith(f"deploy-console: audit: {expected}"), line


# An attacker who rewrites a row and recomputes every hash after it leaves a chain that is
# valid from the first row to the head: verify cannot see it from the store alone. Catching it
# needs an anchor (the head hash kept or published outside the store), which is later work.
@pytest.mark.skip(
    reason="not catchable without an anchor: a chain recomputed from a changed row onwards is "
    "a valid chain. Anchoring the head hash outside the store is later work."
)
def test_verify_catches_a_chain_recomputed_after_a_change() -> None:
    raise AssertionError("needs an anchor")


def test_verify_refuses_a_store_that_does_not_exist_and_does_not_create_it(
    tmp_path: Path,
) -> None:
    missing = tmp_path / "nothing" / "here.db"
    result = cli("audit", "verify", "--store", str(missing))
    assert result.returncode == 2
    assert one_line(result.stderr) == f"{ERROR_PREFIX}no store at {missing}"
    assert not missing.parent.exists()


def test_verify_refuses_a_file_that_is_not_a_store_and_leaves_it_alone(tmp_path: Path) -> None:
    text = tmp_path / "notes.db"
    text.write_text("not a database\n" * 200)
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE audit (id INTEGER)")
    db.close()
    for path in (text, other):
        before = path.read_bytes()
        result = cli("audit", "verify", "--store", str(path))
        assert result.returncode == 2, result
        assert "is not a deploy-console store" in one_line(result.stderr)
        assert path.read_bytes() == before


def test_verify_finds_the_store_through_the_config(store: Path, tmp_path: Path) -> None:
    config = tmp_path / "console.toml"
    demo = (ROOT / "config" / "demo.toml").read_text()
    config.write_text(f"store = {json.dumps(str(store))}\n{demo}")
    result = cli("audit", "verify", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert f"{ROWS} rows verified" in result.stdout
    broken = tmp_path / "broken.toml"
    broken.write_text("store = \n")
    result = cli("audit", "verify", "--config", str(broken), "--store", str(store))
    assert result.returncode == 2
    assert one_line(result.stderr).startswith(ERROR_PREFIX)


# -- audit export ------------------------------------------------------------------------------


def test_export_csv_has_a_header_and_one_record_per_row(store: Path) -> None:
    result = cli("audit", "export", "--format", "csv", "--store", str(store))
    assert (result.returncode, result.stderr) == (0, "")
    records = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [int(record["id"]) for record in records] == list(range(1, ROWS + 1))
    assert list(records[0]) == [
        "id", "at", "actor", "action", "project", "cluster", "deploy_id", "image_id",
        "instance_ids", "step", "outcome", "reason", "ticket", "prev_hash", "hash",
    ]  # fmt: skip
    assert records[1]["instance_ids"] == "i-0000 i-ffff"
    assert records[1]["reason"] == 'step 0, with "quotes"\nand a second line'
    assert records[0]["image_id"] == ""
    assert records[1]["prev_hash"] == records[0]["hash"]


def test_export_jsonl_is_one_object_per_line(store: Path) -> None:
    result = cli("audit", "export", "--format", "jsonl", "--store", str(store))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == ROWS
    rows = [json.loads(line) for line in lines]
    assert rows[0]["at"] == START.isoformat(timespec="microseconds")
    assert rows[1]["instance_ids"] == ["i-0000", "i-ffff"]
    assert rows[0]["image_id"] is None
    assert set(rows[0]) == {
        "id", "at", "actor", "action", "project", "cluster", "deploy_id", "image_id",
        "instance_ids", "step", "outcome", "reason", "ticket", "prev_hash", "hash",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("filters", "ids"),
    [
        (["--project", "media"], [6, 7, 8]),
        (["--actor", "bob", "--project", "storefront"], [3, 5]),
        (["--cluster", "staging"], [2, 5, 8]),
        (["--outcome", "failed"], [7]),
        (["--since", "2026-11-26T16:02:00", "--until", "2026-11-26T16:05:00Z"], [3, 4, 5]),
        (["--since", "2026-11-26T17:02:00+01:00"], [3, 4, 5, 6, 7, 8]),
        (["--until", "2026-11-26"], []),
    ],
)
def test_export_filters_narrow_the_rows(store: Path, filters: list[str], ids: list[int]) -> None:
    result = cli("audit", "export", "--store", str(store), *filters)
    assert result.returncode == 0, result.stderr
    assert [json.loads(line)["id"] for line in result.stdout.splitlines()] == ids


@pytest.mark.parametrize("format_", ["csv", "jsonl"])
def test_export_to_a_file_holds_what_stdout_shows(
    store: Path, tmp_path: Path, format_: str
) -> None:
    output = tmp_path / f"audit.{format_}"
    arguments = ["audit", "export", "--format", format_, "--store", str(store), "--actor", "alice"]
    to_file = cli(*arguments, "--output", str(output))
    assert (to_file.returncode, to_file.stdout, to_file.stderr) == (0, "", "")
    shown = cli(*arguments)
    assert output.read_text() == shown.stdout != ""
    # No temporary file left beside it.
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([output.name, store.name])


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--since", "yesterday"], "--since 'yesterday' is not an ISO date or time"),
        (["--until", "2026-11-31"], "--until '2026-11-31' is not an ISO date or time"),
        (["--format", "xml"], "--format 'xml': choose csv or jsonl"),
        (["--output", "/nonexistent-folder/audit.csv"], "cannot write /nonexistent-folder"),
    ],
)
def test_export_bad_input_is_one_line_and_exit_2(
    store: Path, arguments: list[str], message: str
) -> None:
    result = cli("audit", "export", "--store", str(store), *arguments)
    assert (result.returncode, result.stdout) == (2, "")
    assert one_line(result.stderr).startswith(f"{ERROR_PREFIX}{message}")


def test_a_failed_export_leaves_the_output_as_it_was(tmp_path: Path) -> None:
    output = tmp_path / "audit.csv"
    output.write_text("yesterday's export\n")
    not_a_store = tmp_path / "not-a-store.db"
    not_a_store.write_text("nope\n" * 100)
    for store in (not_a_store, tmp_path / "missing.db"):
        result = cli("audit", "export", "--output", str(output), "--store", str(store))
        assert result.returncode == 2
        one_line(result.stderr)
        assert output.read_text() == "yesterday's export\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["audit.csv", "not-a-store.db"]
