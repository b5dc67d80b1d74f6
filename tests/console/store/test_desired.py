"""Desired counts: a scale's count holds until the config says something else (one reading)."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from pathlib import Path

import pytest

from console.config import Config
from console.errors import StoreError
from console.store import Store
from console.store.desired import ScaledCount, desired_count, effective, record_scale


def with_desired(config: Config, project: str, cluster: str, count: int | None) -> Config:
    """The config with a pair's `desired` set (as if its file said so)."""
    projects = []
    for entry in config.projects:
        if entry.name == project:
            pair = dataclasses.replace(entry.clusters[cluster], desired=count)
            entry = dataclasses.replace(entry, clusters={**entry.clusters, cluster: pair})
        projects.append(entry)
    return dataclasses.replace(config, projects=tuple(projects))


def scaled(count: int, config_count: int | None) -> ScaledCount:
    return ScaledCount("p", "c", count, config_count, "alice", "d-1", datetime(2026, 1, 1))


def test_the_config_rules_until_a_scale_and_again_once_it_moves() -> None:
    assert effective(None, None) is None
    assert effective(2, None) == 2
    assert effective(2, scaled(3, 2)) == 3  # the config has not followed the scale yet
    assert effective(3, scaled(3, 2)) == 3  # it followed
    assert effective(5, scaled(3, 2)) == 5  # someone changed it since: the config
    assert effective(None, scaled(3, None)) == 3
    assert effective(None, scaled(3, 2)) == 3  # the key removed: the scale still counts


async def test_a_scale_on_record_with_its_audit_row(world_config: Config, tmp_path: Path) -> None:
    config = with_desired(world_config, "storefront", "staging", 1)
    async with await Store.open(tmp_path / "store.db") as store:
        assert await desired_count(store, config, "storefront", "staging") == 1
        assert await desired_count(store, config, "storefront", "nosuch") is None
        async with store.transaction() as tx:
            await record_scale(
                tx, project="storefront", cluster="staging", count=3, config_value=1,
                actor="alice", deploy_id="d-1", reason="desired 1 -> 3",
            )  # fmt: skip
        assert await desired_count(store, config, "storefront", "staging") == 3
        assert await desired_count(None, config, "storefront", "staging") == 1
        followed = with_desired(config, "storefront", "staging", 3)
        assert await desired_count(store, followed, "storefront", "staging") == 3
        (row,) = [r for r in await store.audit_rows(project="storefront")]
        assert (row.action, row.actor, row.outcome, row.deploy_id) == (
            "scale.desired", "alice", "3", "d-1",
        )  # fmt: skip
        with pytest.raises(StoreError, match="at least one instance"):
            async with store.transaction() as tx:
                await record_scale(
                    tx, project="storefront", cluster="staging", count=0, config_value=1,
                    actor="alice", deploy_id=None, reason="",
                )  # fmt: skip
