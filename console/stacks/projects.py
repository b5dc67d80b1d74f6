"""`project add --write`: the admin's config change written atomically, with its audit row."""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from pathlib import Path

from console.access import Access, AccessDenied, Role
from console.config import Config, document_digest
from console.config.edit import ProjectAddition, write_config
from console.identity import person
from console.stacks.plan import StackPlan
from console.store import Store

__all__ = ["PROJECT_ADDED", "plan_pairs", "require_admin", "write_project"]

PROJECT_ADDED = "project.added"


async def require_admin(
    config: Config, store: Path, who: str, clusters: Sequence[str], project: str, what: str
) -> None:
    """AccessDenied (and the refusal on the audit) unless `who` is an admin in every cluster:
    changing the config or what a stack owns is an admin's."""
    access = Access(config)
    for cluster in clusters:
        role = access.role(who, cluster, project)
        if role is Role.ADMIN:
            continue
        message = f"{person(who)} is a {role} in {cluster}: may not {what} (needs admin)"
        async with await Store.open(store) as opened:
            await opened.record_denial(who, message, cluster=cluster, project=project)
        raise AccessDenied(message)


async def write_project(addition: ProjectAddition, store: Path, who: str) -> int:
    """Write the new config and its `project.added` audit row (the patch's sha256, the
    clusters, the file) in one go: the row commits only once the file is replaced, and a
    failed write leaves neither. The audit row's id."""
    digest = document_digest(tomllib.loads(addition.new))
    reason = (
        f"clusters {', '.join(addition.clusters)} · patch sha256:{addition.digest} · "
        f"{addition.path}"
    )
    async with await Store.open(store) as opened, opened.transaction() as tx:
        row = await tx.audit(
            PROJECT_ADDED,
            actor=who,
            project=addition.project,
            cluster=addition.clusters[0] if len(addition.clusters) == 1 else None,
            outcome="written",
            reason=reason,
            config=digest,
        )
        write_config(addition)
    return row


async def plan_pairs(
    config: Config, project: str, clusters: Sequence[str]
) -> list[tuple[str, StackPlan | str]]:
    """Each new pair's stack plan (console/stacks/plan.py: a CREATE change set), or why none
    could be made (the config is written all the same: `stack plan` makes it later)."""
    import asyncio

    from console.errors import ConsoleError
    from console.fleet.inventory import Fleet
    from console.stacks.plan import plan_stack

    fleet = Fleet(config)
    plans: list[tuple[str, StackPlan | str]] = []
    try:
        for cluster in clusters:
            if config.world is not None and config.cluster(cluster).endpoint_url is None:
                # The demo's own config, its world not started: never ask the real AWS.
                plans.append((cluster, "the demo's config without its world (no endpoint_url)"))
                continue
            try:
                gateway = await asyncio.to_thread(fleet.gateway, cluster)
                plans.append((cluster, await plan_stack(gateway, config, project, cluster)))
            except ConsoleError as error:
                plans.append((cluster, error.message))
    finally:
        fleet.close()
    return plans
