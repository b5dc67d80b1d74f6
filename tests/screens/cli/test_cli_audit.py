"""`audit verify`, `audit anchor` and `audit export` as CI runs them: the real command in a
child process, against real SQLite store files made with the store's own API (and tampered
with the sqlite3 command-line tool), the anchor in the session world's S3 (moto)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import sqlite3
import subprocess
import sys
import tomllib
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from console.config import load_config
from console.store import GENESIS_HASH, DeployRecord, Store, audit_hash
from console.world.server import World
from tests.conftest import DEMO_CONFIG, ROOT, need_tool

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
    """As an attacker with write access to the file would: drop the triggers, then write, with
    the sqlite3 command-line tool (Python's sqlite3 module where the tool is not installed)."""
    script = [
        "DROP TRIGGER IF EXISTS audit_no_update",
        "DROP TRIGGER IF EXISTS audit_no_delete",
        *statements,
    ]
    if need_tool("sqlite3", optional=True):  # in CI the tool is required
        subprocess.run(
            ["sqlite3", "-bail", str(path)],
            input="".join(f"{statement};\n" for statement in script),
            text=True,
            check=True,
            capture_output=True,
            timeout=30,
        )
        return
    with closing(sqlite3.connect(path, isolation_level=None)) as db:
        for statement in script:
            db.execute(statement)


def rewrite_chain(path: Path, *statements: str) -> None:
    """Tamper, then recompute every hash from the first changed row on, as an attacker who read
    console/store/__init__.py would: the chain alone then verifies again."""
    tamper(path, *statements)
    with closing(sqlite3.connect(path)) as db:
        db.row_factory = sqlite3.Row
        rows = db.execute("SELECT * FROM audit ORDER BY id").fetchall()
    prev_hash, updates = GENESIS_HASH, []
    for row in rows:
        new_hash = audit_hash(prev_hash, dict(row) | {"prev_hash": prev_hash})
        if (row["prev_hash"], row["hash"]) != (prev_hash, new_hash):
            updates.append(
                f"UPDATE audit SET prev_hash = '{prev_hash}', hash = '{new_hash}' "
                f"WHERE id = {row['id']}"
            )
        prev_hash = new_hash
    tamper(path, *updates)


# -- audit verify ------------------------------------------------------------------------------


def test_verify_counts_the_rows_and_prints_the_head(store: Path) -> None:
    result = cli("audit", "verify", "--store", str(store))
    assert (result.returncode, result.stderr) == (0, "")
    with sqlite3.connect(store) as db:
        head = db.execute("SELECT hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()[0]
    db.close()
    assert one_line(result.stdout) == (
        f"audit ok: {ROWS} rows verified, head {head}; no anchor configured"
    )


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


def config_without_anchor(store: Path, destination: Path) -> Path:
    """The demo config with `store` and without [audit]: its clusters have no endpoint (they
    would be real AWS), so nothing in it may be called."""
    data = tomllib.loads(DEMO_CONFIG.read_text())
    del data["audit"]
    data["store"] = str(store)
    destination.write_text(tomli_w.dumps(data))
    return destination


def test_verify_finds_the_store_through_the_config(store: Path, tmp_path: Path) -> None:
    config = config_without_anchor(store, tmp_path / "console.toml")
    result = cli("audit", "verify", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert f"{ROWS} rows verified" in result.stdout
    assert result.stdout.endswith("; no anchor configured\n")
    broken = tmp_path / "broken.toml"
    broken.write_text("store = \n")
    result = cli("audit", "verify", "--config", str(broken), "--store", str(store))
    assert result.returncode == 2
    assert one_line(result.stderr).startswith(ERROR_PREFIX)


# -- the anchor: the head kept in S3 (the session world's moto) ---------------------------------

BUCKET = load_config(DEMO_CONFIG).audit.anchor_bucket


@dataclass
class Anchored:
    """A store, a config whose [audit] anchors it under a key of this test's own, and S3."""

    store: Path
    config: Path
    key: str
    s3: Any

    def latest(self) -> dict[str, Any]:
        body = self.s3.get_object(Bucket=BUCKET, Key=self.key)["Body"].read()
        return dict(json.loads(body))

    def history(self) -> list[str]:
        prefix = self.key.removesuffix(".json") + "/history/"
        listing = self.s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix)
        return [item["Key"] for item in listing.get("Contents", [])]

    def verify(self) -> subprocess.CompletedProcess[str]:
        return cli("audit", "verify", "--config", str(self.config))

    def anchor(self) -> subprocess.CompletedProcess[str]:
        return cli("audit", "anchor", "--config", str(self.config))


def anchored_config(
    world_config_path: Path, destination: Path, store: Path, **audit: object
) -> Path:
    """The world's config (every cluster on the world's endpoint) with `store` and [audit]."""
    data = tomllib.loads(world_config_path.read_text())
    data["store"] = str(store)
    data["audit"] = {"anchor_bucket": BUCKET, "anchor_cluster": "prod1"} | audit
    destination.write_text(tomli_w.dumps(data))
    return destination


@pytest.fixture
def anchored(world: World, world_config_path: Path, store: Path, tmp_path: Path) -> Anchored:
    """An anchor written for the store's ROWS rows."""
    key = f"tests/{tmp_path.name}/audit-anchor.json"
    config = anchored_config(world_config_path, tmp_path / "anchored.toml", store, anchor_key=key)
    setup = Anchored(store, config, key, world.client("s3", "us-east-1"))
    result = setup.anchor()
    assert (result.returncode, result.stderr) == (0, ""), result
    return setup


def head_of(store: Path) -> tuple[int, str]:
    with closing(sqlite3.connect(store)) as db:
        row = db.execute("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
    return int(row[0]), str(row[1])


async def _append(path: Path, count: int) -> None:
    async with await Store.open(path) as store:
        for n in range(count):
            await store.audit("deploy.queued", actor="carol", project="storefront", reason=str(n))


def test_anchor_writes_the_head_and_keeps_each_anchor(anchored: Anchored) -> None:
    rows, head = head_of(anchored.store)
    latest = anchored.latest()
    assert (latest["rows"], latest["head"], latest["store"]) == (rows, head, str(anchored.store))
    assert rows == ROWS
    written = datetime.fromisoformat(latest["at"])
    assert abs(datetime.now(UTC) - written) < timedelta(minutes=5)
    result = anchored.verify()
    assert (result.returncode, result.stderr) == (0, "")
    assert one_line(result.stdout) == (
        f"audit ok: {ROWS} rows verified, head {head}; row {ROWS} matches the anchor written "
        f"{written:%Y-%m-%d %H:%M:%S} UTC (s3://{BUCKET}/{anchored.key}; 1 version kept, "
        "none contradicts the store; object lock on)"
    )
    # Rows written since the anchor verify by the chain; the next anchor covers them.
    asyncio.run(_append(anchored.store, 3))
    result = anchored.verify()
    assert result.returncode == 0, result.stderr
    assert f"{ROWS + 3} rows verified" in result.stdout
    assert f"row {ROWS} matches the anchor" in result.stdout
    again = anchored.anchor()
    assert again.returncode == 0, again.stderr
    rows, head = head_of(anchored.store)
    assert one_line(again.stdout).startswith(f"audit anchored: row {rows}, head {head} in s3://")
    assert (anchored.latest()["rows"], anchored.latest()["head"]) == (ROWS + 3, head)
    assert len(anchored.history()) == 2


# Each leaves a chain that verifies from its first row to its head, so only the anchor shows it.
@pytest.mark.parametrize(
    ("statements", "expected"),
    [
        # A row changed and every hash from it on recomputed.
        (
            ["UPDATE audit SET actor = 'mallory' WHERE id = 5"],
            f"row {ROWS} does not match the anchor written ",
        ),
        # A row deleted, the ids after it moved down and their hashes recomputed.
        (
            ["DELETE FROM audit WHERE id = 4", "UPDATE audit SET id = id - 1 WHERE id > 4"],
            f"row {ROWS} is missing: the anchor written ",
        ),
        # Two rows swapped, then the chain recomputed.
        (
            [
                "UPDATE audit SET id = -3 WHERE id = 3",
                "UPDATE audit SET id = 3 WHERE id = 6",
                "UPDATE audit SET id = 6 WHERE id = -3",
            ],
            f"row {ROWS} does not match the anchor written ",
        ),
        # The last rows removed: nothing in the chain itself is out of place.
        ([f"DELETE FROM audit WHERE id > {ROWS - 2}"], f"row {ROWS} is missing: the anchor "),
    ],
    ids=["changed", "deleted", "swapped", "cut-short"],
)
def test_verify_catches_a_chain_recomputed_after_a_change(
    anchored: Anchored, statements: list[str], expected: str
) -> None:
    rewrite_chain(anchored.store, *statements)
    alone = cli("audit", "verify", "--store", str(anchored.store))
    assert alone.returncode == 0, "the rewritten chain must verify without the anchor"
    result = anchored.verify()
    assert (result.returncode, result.stdout) == (1, ""), result
    line = one_line(result.stderr)
    assert line.startswith(f"deploy-console: audit: {expected}"), line
    if "removed" in expected or "missing" in expected:
        assert line.endswith("rows were removed from the end"), line


def test_anchor_refuses_to_bless_a_rewritten_history(anchored: Anchored) -> None:
    before = anchored.latest()
    rewrite_chain(anchored.store, "UPDATE audit SET reason = 'nothing happened' WHERE id = 2")
    asyncio.run(_append(anchored.store, 1))
    result = anchored.anchor()
    assert (result.returncode, result.stdout) == (1, ""), result
    line = one_line(result.stderr)
    assert line.startswith(f"deploy-console: audit: row {ROWS} does not match the anchor"), line
    assert line.endswith("; not anchored"), line
    assert anchored.latest() == before
    assert len(anchored.history()) == 1


def test_a_deleted_or_garbled_anchor_fails_verify(anchored: Anchored) -> None:
    anchored.s3.put_object(Bucket=BUCKET, Key=anchored.key, Body=b"{not json")
    result = anchored.verify()
    assert result.returncode == 1, result
    assert f"s3://{BUCKET}/{anchored.key} is not an audit anchor" in one_line(result.stderr)
    anchored.s3.delete_object(Bucket=BUCKET, Key=anchored.key)
    result = anchored.verify()
    assert result.returncode == 1, result
    line = one_line(result.stderr)
    assert f"the anchor s3://{BUCKET}/{anchored.key} is gone" in line, line
    assert line.endswith("it was deleted"), line


def test_no_anchor_written_yet_and_nothing_to_anchor(
    world: World, world_config_path: Path, tmp_path: Path
) -> None:
    store = tmp_path / "new.db"
    asyncio.run(_append(store, 0))
    key = f"tests/{tmp_path.name}/audit-anchor.json"
    config = anchored_config(world_config_path, tmp_path / "c.toml", store, anchor_key=key)
    result = cli("audit", "verify", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert one_line(result.stdout) == (
        f"audit ok: 0 rows verified, head {GENESIS_HASH}; no anchor written yet to "
        f"s3://{BUCKET}/{key}"
    )
    result = cli("audit", "anchor", "--config", str(config))
    assert (result.returncode, one_line(result.stdout)) == (0, "audit: no rows to anchor yet")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"anchor_bucket": "no-such-bucket"}, "NoSuchBucket: "),
        ({"endpoint_url": "http://127.0.0.1:9"}, "cannot reach http://127.0.0.1:9/"),
    ],
    ids=["missing-bucket", "unreachable"],
)
def test_an_anchor_that_cannot_be_reached_is_one_line_and_exit_2(
    world_config_path: Path, store: Path, tmp_path: Path, change: dict[str, str], message: str
) -> None:
    bucket = change.get("anchor_bucket", BUCKET)
    config = anchored_config(world_config_path, tmp_path / "c.toml", store, anchor_bucket=bucket)
    if "endpoint_url" in change:
        data = tomllib.loads(config.read_text())
        for cluster in data["clusters"]:
            if cluster["name"] == "prod1":
                cluster["endpoint_url"] = change["endpoint_url"]
        config.write_text(tomli_w.dumps(data))
    for command in ("verify", "anchor"):
        result = cli("audit", command, "--config", str(config))
        assert (result.returncode, result.stdout) == (2, ""), result
        line = one_line(result.stderr)
        expected = f"{ERROR_PREFIX}audit anchor s3://{bucket}/deploy-console/audit-anchor.json: "
        assert line.startswith(expected + message), line


def test_anchor_without_an_anchor_configured_is_refused(store: Path, tmp_path: Path) -> None:
    config = config_without_anchor(store, tmp_path / "console.toml")
    result = cli("audit", "anchor", "--config", str(config))
    assert (result.returncode, result.stdout) == (2, "")
    assert one_line(result.stderr) == (
        f"{ERROR_PREFIX}{config}: no anchor configured: set anchor_bucket and anchor_cluster in "
        "[audit] (see config/example.toml)"
    )


# -- audit export ------------------------------------------------------------------------------


def test_export_csv_has_a_header_and_one_record_per_row(store: Path) -> None:
    result = cli("audit", "export", "--format", "csv", "--store", str(store))
    assert (result.returncode, result.stderr) == (0, "")
    records = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [int(record["id"]) for record in records] == list(range(1, ROWS + 1))
    assert list(records[0]) == [
        "id", "at", "actor", "action", "project", "cluster", "deploy_id", "image_id",
        "instance_ids", "step", "outcome", "reason", "ticket", "prev_hash", "hash", "config",
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
        "instance_ids", "step", "outcome", "reason", "ticket", "prev_hash", "hash", "config",
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
    # No temporary file left beside it (a WAL store's reader may leave SQLite's -wal, -shm).
    left = {p.name for p in tmp_path.iterdir()} - {f"{store.name}-wal", f"{store.name}-shm"}
    assert sorted(left) == sorted([output.name, store.name])


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
