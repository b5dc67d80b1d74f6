"""Desired counts: the instance count `scale` set per pair, audited, and the one reading of it.

The config's `desired` (ProjectClusterConfig.desired) is where a pair's count lives, in git;
a runner cannot write the config, so a scale is kept here with the config's value at the time
(`config_count`). `desired_count` answers for every part (runner, CLI, drift):

- no scale on record: the config's value (None when it has none);
- the config still says what it said at the scale: the scale's count (the git copy has not
  followed yet; `scale` printed the patch that makes it follow);
- the config says something else now (it followed, or someone changed it since): the config.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from console.config import Config
from console.errors import StoreError
from console.store.connection import Tx, text
from console.store.sqlite_store import Store, Transaction


@dataclass(frozen=True)
class ScaledCount:
    """A pair's count as the last scale set it, and what the config said then."""

    project: str
    cluster: str
    count: int
    config_count: int | None
    actor: str
    deploy_id: str | None
    changed_at: datetime


def _tx(transaction: Transaction) -> Tx:
    # The repositories take the raw transaction; Transaction keeps it private.
    return transaction._tx


def config_count(config: Config, project: str, cluster: str) -> int | None:
    """The pair's `desired` in the config (None: unknown pair, or no count configured)."""
    found = next((p for p in config.projects if p.name == project), None)
    if found is None or cluster not in found.clusters:
        return None
    return found.clusters[cluster].desired


def effective(config_value: int | None, scaled: ScaledCount | None) -> int | None:
    """The desired count from the config's value and the last scale on record (pure)."""
    if scaled is None:
        return config_value
    if config_value == scaled.config_count:
        return scaled.count  # the config has not moved since the scale
    return config_value if config_value is not None else scaled.count


async def scaled(store: Store, project: str, cluster: str) -> ScaledCount | None:
    """The last scale of the pair on record, if any."""
    async with store.snapshot() as transaction:
        return await scaled_in(transaction, project, cluster)


async def scaled_in(transaction: Transaction, project: str, cluster: str) -> ScaledCount | None:
    row = await _tx(transaction).one(
        "SELECT project, cluster, count, config_count, actor, deploy_id, changed_at "
        "FROM desired_counts WHERE project = ? AND cluster = ?",
        (project, cluster),
    )
    if row is None:
        return None
    values = dict(zip(row.keys(), row, strict=True))
    values["changed_at"] = datetime.fromisoformat(values["changed_at"])
    return ScaledCount(**values)


async def desired_count(
    store: Store | None, config: Config, project: str, cluster: str
) -> int | None:
    """THE desired count of a pair: the last audited scale while the config has not moved
    since, else the config's `desired` (module docstring). `store` None: the config's alone."""
    config_value = config_count(config, project, cluster)
    if store is None:
        return config_value
    return effective(config_value, await scaled(store, project, cluster))


async def record_scale(
    transaction: Transaction,
    *,
    project: str,
    cluster: str,
    count: int,
    config_value: int | None,
    actor: str,
    deploy_id: str | None,
    reason: str,
) -> None:
    """The pair's new desired count, with its `scale.desired` audit row (one transaction:
    the caller's)."""
    if count < 1:
        raise StoreError(f"a desired count of {count}: a pair keeps at least one instance")
    tx = _tx(transaction)
    await tx.execute(
        "INSERT INTO desired_counts "
        "(project, cluster, count, config_count, actor, deploy_id, changed_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (project, cluster) DO UPDATE SET "
        "count = excluded.count, config_count = excluded.config_count, actor = excluded.actor, "
        "deploy_id = excluded.deploy_id, changed_at = excluded.changed_at",
        (project, cluster, count, config_value, actor, deploy_id, text(tx.now)),
    )
    await transaction.audit(
        "scale.desired",
        actor=actor,
        project=project,
        cluster=cluster,
        deploy_id=deploy_id,
        outcome=str(count),
        reason=reason,
    )
