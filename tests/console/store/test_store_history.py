"""Store.deploys as the history screen reads it: a time range on created_at and keyset pages."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from console.store import DeployRecord, Store

START = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with await Store.open(tmp_path / "console.db") as opened:
        # d-0 .. d-9, one an hour; d-3 by bob in prod1, the rest by alice in staging.
        for n in range(10):
            await opened.create_deploy(
                DeployRecord(
                    id=f"d-{n}",
                    project="storefront",
                    cluster="prod1" if n == 3 else "staging",
                    release=f"2.{n}.0",
                    actor="bob" if n == 3 else "alice",
                    state="succeeded",
                    created_at=START + timedelta(hours=n),
                )
            )
        yield opened


def ids(records: list[DeployRecord]) -> list[str]:
    return [record.id for record in records]


async def test_since_is_inclusive_and_until_exclusive(store: Store) -> None:
    since, until = START + timedelta(hours=2), START + timedelta(hours=5)
    assert ids(await store.deploys(since=since)) == [f"d-{n}" for n in range(9, 1, -1)]
    assert ids(await store.deploys(until=until)) == ["d-4", "d-3", "d-2", "d-1", "d-0"]
    assert ids(await store.deploys(since=since, until=until)) == ["d-4", "d-3", "d-2"]
    # Another zone is the same moment: 10:00 UTC is 11:00 in Paris.
    paris = since.astimezone(timezone(timedelta(hours=1)))
    assert ids(await store.deploys(since=paris, until=until)) == ["d-4", "d-3", "d-2"]
    assert ids(await store.deploys(since=since, until=until, actor="bob")) == ["d-3"]


async def test_before_pages_back_by_key_with_the_same_filters(store: Store) -> None:
    first = await store.deploys(cluster="staging", limit=4)
    assert ids(first) == ["d-9", "d-8", "d-7", "d-6"]
    second = await store.deploys(cluster="staging", limit=4, before=first[-1].id)
    assert ids(second) == ["d-5", "d-4", "d-2", "d-1"]
    third = await store.deploys(cluster="staging", limit=4, before=second[-1].id)
    assert ids(third) == ["d-0"]
    assert await store.deploys(before="d-0") == []
    assert await store.deploys(before="no-such-deploy") == []
