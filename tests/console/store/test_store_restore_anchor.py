"""`store restore` against the outside anchor (S3 of the session world): how far behind it the
copy is, said and audited; a copy whose history contradicts the anchor refused."""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from screens.main import run
from tests.screens.cli.test_cli_audit import (
    ROWS,
    Anchored,
    _append,
    anchored,
    anchored_config,
    rewrite_chain,
    store,
)

__all__ = ["anchored", "store"]  # fixtures, used by name


def test_restore_says_how_far_behind_the_anchor_the_copy_is(
    anchored: Anchored, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = tmp_path / "copy.db"
    assert run(["store", "backup", str(copy), "--store", str(anchored.store)]) == 0
    asyncio.run(_append(anchored.store, 3))
    assert anchored.anchor().returncode == 0
    capsys.readouterr()
    into = tmp_path / "fresh" / "console.db"
    code = run(
        ["store", "restore", str(copy), "--into", str(into), "--config", str(anchored.config)]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    gap = f"the copy ends at audit #{ROWS}; the anchor of "
    missing = f" says #{ROWS + 3}: 3 entries are missing"
    assert gap in out and missing in out
    with closing(sqlite3.connect(into)) as db:
        (reason,) = db.execute(
            "SELECT reason FROM audit WHERE action = 'store.restored'"
        ).fetchone()
    assert reason.startswith("restored from backup copy.db taken at ")
    assert f"entries after #{ROWS} were lost: {gap}" in reason and missing in reason

    # The runbook: verify keeps naming the lost rows against the old anchor; a new anchor key
    # starts again from the restored chain.
    verify = ["audit", "verify", "--config", str(anchored.config), "--store", str(into)]
    assert run(verify) == 1
    assert f"row {ROWS + 3} is missing" in capsys.readouterr().err
    moved = anchored_config(
        anchored.config, tmp_path / "moved.toml", into, anchor_key=f"{anchored.key}.after-restore"
    )
    assert run(["audit", "anchor", "--config", str(moved)]) == 0
    assert run(["audit", "verify", "--config", str(moved)]) == 0, capsys.readouterr().err


def test_restore_refuses_a_copy_whose_history_contradicts_the_anchor(
    anchored: Anchored, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = tmp_path / "copy.db"
    assert run(["store", "backup", str(copy), "--store", str(anchored.store)]) == 0
    # The chain recomputed after a change verifies alone: only the anchor shows it.
    rewrite_chain(copy, "UPDATE audit SET reason = 'nothing happened' WHERE id = 2")
    capsys.readouterr()
    into = tmp_path / "fresh" / "console.db"
    code = run(
        ["store", "restore", str(copy), "--into", str(into), "--config", str(anchored.config)]
    )
    err = capsys.readouterr().err
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "the copy contradicts the anchor: " in err and "was rewritten; not restored" in err
    assert not into.exists()
