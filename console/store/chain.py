"""The audit hash chain, pure: how a row's hash is computed and how a broken link is described.

Each audit row's hash covers the previous row's hash and the row's stored fields, so that a
row changed, removed or reordered shows when the chain is walked again. The hash is part of
the rows' on-disk format (the store computes it in the transaction that appends a row), so
it lives beside the store; reading rows is console/store/audit_log.py's job, anchoring the
head outside the store console/audit/'s.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Mapping
from dataclasses import fields

from console.store.records import AuditProblem, AuditRow

GENESIS_HASH = "0" * 64

AUDIT_HASHED = [item.name for item in fields(AuditRow) if item.name != "hash"]
# Fields added after rows were first chained: left out of a row's hash when empty, so that
# the rows written before them keep verifying.
OPTIONAL_HASHED = frozenset({"config"})
# A row as stored: its fields by name.
Row = Mapping[str, object] | sqlite3.Row


def audit_hash(prev_hash: str, row: Row) -> str:
    """sha256 of the previous hash + the canonical JSON of the row's stored fields but its hash."""
    hashed = {
        name: row[name]
        for name in AUDIT_HASHED
        if name not in OPTIONAL_HASHED or row[name] is not None
    }
    canonical = json.dumps(hashed, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256((prev_hash + canonical).encode()).hexdigest()


def missing(prev_id: int, row_id: int) -> AuditProblem:
    """Ids jump from prev_id to row_id: the rows between are gone."""
    gap = f"{prev_id + 1}" if row_id == prev_id + 2 else f"{prev_id + 1}-{row_id - 1}"
    last = f"row {prev_id}" if prev_id else "the start"
    return AuditProblem(prev_id + 1, "missing", f"ids jump from {last} to {row_id} ({gap} gone)")


def changed(row_id: int) -> AuditProblem:
    return AuditProblem(row_id, "changed", "its contents do not match its hash")


def unchained(row: Row, prev_id: int, follows: int | None) -> AuditProblem:
    """Why a row's prev_hash is not the hash of row prev_id: `follows` is the other row whose
    hash it names, if one does."""
    row_id = int(str(row["id"]))
    before = f"row {prev_id}" if prev_id else "the start of the chain"
    if row["prev_hash"] == GENESIS_HASH:
        return AuditProblem(row_id, "out of order", "it claims to be the first row")
    if follows is not None:
        return AuditProblem(row_id, "out of order", f"it follows row {follows}, not {before}")
    if row["hash"] != audit_hash(str(row["prev_hash"]), row):
        return changed(row_id)
    return AuditProblem(
        row_id,
        "changed",
        f"it does not chain to {before}: one of them was rewritten with a new hash",
    )
