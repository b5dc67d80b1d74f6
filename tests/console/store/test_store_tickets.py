"""A deploy's change ticket in the store: on its record, on every audit row about it, kept
by the migration that added it, and covered by the audit chain."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from console.model import DeployRequest
from console.store import MIGRATIONS, DeployRecord, Store

AT = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


async def test_the_ticket_is_on_the_record_and_every_audit_row_of_its_deploy(
    tmp_path: Path,
) -> None:
    request = DeployRequest("storefront", "prod1", "2.15.0", "alice", ticket="CHG-123")
    async with await Store.open(tmp_path / "console.db") as store:
        await store.create_deploy(DeployRecord.new("d-1", request, AT))
        await store.create_deploy(
            DeployRecord.new("d-2", DeployRequest("storefront", "staging", "2.15.0", "bob"), AT)
        )
        await store.audit("deploy.queued", actor="alice", deploy_id="d-1", project="storefront")
        await store.set_deploy_state(
            "d-1", "succeeded", audit={"action": "deploy.succeeded", "actor": "alice",
                                       "deploy_id": "d-1"},
        )  # fmt: skip
        await store.audit("deploy.queued", actor="bob", deploy_id="d-2")
        await store.audit("lock.added", actor="carol", reason="no deploy named")

        record = await store.deploy("d-1")
        assert record is not None and record.ticket == "CHG-123"
        other = await store.deploy("d-2")
        assert other is not None and other.ticket is None
        rows = await store.audit_rows()
        assert [(row.deploy_id, row.ticket) for row in rows] == [
            ("d-1", "CHG-123"),
            ("d-1", "CHG-123"),
            ("d-2", None),
            (None, None),
        ]
        assert (await store.verify_audit()) is None  # the ticket is part of each row's hash


async def test_a_store_of_schema_6_gets_the_ticket_column_and_keeps_its_deploys(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        for statements in MIGRATIONS[:6]:
            for statement in statements:
                db.execute(statement)
        db.execute("PRAGMA user_version = 6")
        db.execute(
            "INSERT INTO deploys (id, project, cluster, release, actor, state, created_at) "
            "VALUES ('d-old', 'storefront', 'staging', '2.14.0', 'alice', 'succeeded', "
            "'2026-11-01T10:00:00+00:00')"
        )
    async with await Store.open(path) as store:
        record = await store.deploy("d-old")
        assert record is not None and record.release == "2.14.0" and record.ticket is None
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
