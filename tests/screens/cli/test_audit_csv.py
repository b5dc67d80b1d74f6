"""`audit export --format csv` opened in a spreadsheet: text people typed (a freeze's reason)
that starts like a formula is exported as text, never as a formula a spreadsheet would run."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import subprocess
import sys
from pathlib import Path

from console.store import Store
from tests.conftest import DEMO_CONFIG, ROOT

# OWASP's CSV injection triggers, each at the start of a reason; the last two are plain text.
REASONS = [
    "=cmd|' /C calc'!A0",
    "+1+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
    '  =HYPERLINK("http://127.0.0.1/")',
    "Black Friday",
    "a=b, 1-2, x@y",
    "one cell\r=cmd|' /C calc'!A0",
]


def cli(*args: str, store: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "screens.main", *args, "--store", str(store)],
        cwd=ROOT, stdin=subprocess.DEVNULL, capture_output=True, timeout=60,
    )  # fmt: skip
    # Decoded by hand: text mode would turn the "\r" inside a quoted cell into "\n".
    return subprocess.CompletedProcess(
        done.args, done.returncode, done.stdout.decode(), done.stderr.decode()
    )


async def _freezes(store: Path) -> None:
    """The reasons as rows: typed at `freeze` (plain ones), or written by an older console
    (those with a tab or CR, which `freeze` now refuses)."""
    async with await Store.open(store) as opened:
        for reason in REASONS:
            await opened.audit(
                "queue.freeze", actor="root", cluster="prod1", outcome="frozen", reason=reason
            )
            await opened.audit("queue.unfreeze", actor="root", cluster="prod1", outcome="unfrozen")


def test_a_reason_with_controls_is_refused_in_one_line(tmp_path: Path) -> None:
    store = tmp_path / "audit.db"
    for reason in ("one cell\r=cmd|' /C calc'!A0", "sale\x1b]52;c;ZWNobw==\x07", "two\nlines"):
        refused = cli("freeze", "prod1", "--reason", reason, "--config", str(DEMO_CONFIG),
                      store=store)  # fmt: skip
        assert refused.returncode == 2, refused.stderr
        (line,) = refused.stderr.strip().splitlines()
        assert "a reason is one line of plain text" in line


def test_csv_cells_that_start_like_a_formula_are_exported_as_text(tmp_path: Path) -> None:
    store = tmp_path / "audit.db"
    plain = [reason for reason in REASONS if "\r" not in reason and "\t" not in reason]
    for reason in plain:  # typed by a person, through the real command
        frozen = cli("freeze", "prod1", "--reason", reason, "--config", str(DEMO_CONFIG),
                     store=store)  # fmt: skip
        assert frozen.returncode == 0, frozen.stderr
        unfrozen = cli("unfreeze", "prod1", "--config", str(DEMO_CONFIG), store=store)
        assert unfrozen.returncode == 0, unfrozen.stderr
    asyncio.run(_freezes(store))
    exported = cli("audit", "export", "--format", "csv", store=store)
    assert (exported.returncode, exported.stderr) == (0, "")
    rows = list(csv.DictReader(io.StringIO(exported.stdout, newline="")))
    typed = [row["reason"] for row in rows if row["action"] == "queue.freeze"][: len(plain)]
    assert typed == ["'" + r if r.lstrip(" ")[0] in "=+-@" else r for r in plain]
    shown = [row["reason"] for row in rows if row["action"] == "queue.freeze"][len(plain) :]
    assert shown == [
        "'=cmd|' /C calc'!A0",
        "'+1+cmd|' /C calc'!A0",
        "'-2+3+cmd|' /C calc'!A0",
        "'@SUM(1+1)*cmd|' /C calc'!A0",
        "'\t=1+1",
        "'\r=1+1",
        '\'  =HYPERLINK("http://127.0.0.1/")',
        "Black Friday",
        "a=b, 1-2, x@y",
        "one cell\r=cmd|' /C calc'!A0",
    ]
    # No cell of the file starts like a formula; ids, times and hashes are left as they are.
    for row in rows:
        for cell in row.values():
            assert not cell.lstrip(" ").startswith(("=", "+", "-", "@", "\t", "\r")), row
    assert [int(row["id"]) for row in rows] == list(range(1, 2 * (len(plain) + len(REASONS)) + 1))
    # JSON lines keep the values exactly as stored (a script recomputes hashes from them).
    as_json = cli("audit", "export", "--format", "jsonl", store=store)
    reasons = [json.loads(line)["reason"] for line in as_json.stdout.splitlines()]
    assert [r for r in reasons if r in REASONS] == plain + REASONS
