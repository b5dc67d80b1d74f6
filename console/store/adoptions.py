"""The stack adoptions repository: a hand-made pair's resources recorded as its stack's baseline."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from console.errors import StoreError
from console.store import audit_log
from console.store.connection import Connection, Tx, text
from console.store.sqlite_store import Store

__all__ = [
    "BASELINE",
    "STACK_ADOPTED",
    "AdoptedResource",
    "Adoption",
    "Adoptions",
    "AlreadyAdopted",
    "adoptions_of",
]

BASELINE = "baseline"
STACK_ADOPTED = "stack.adopted"
_COLUMNS = "project, cluster, mode, resources, actor, adopted_at, audit_id"


@dataclass(frozen=True)
class AdoptedResource:
    """One existing resource of a pair: what it is (load_balancer, listener, target_group,
    security_group, dns_record), the stack's logical id it stands in for, its id in AWS (an
    ARN, a group id, "ZONE_ID/name./TYPE" for a record) and the properties AWS described."""

    kind: str
    logical_id: str
    physical_id: str
    name: str
    properties: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "logical_id": self.logical_id,
            "physical_id": self.physical_id,
            "name": self.name,
            "properties": self.properties,
        }


@dataclass(frozen=True)
class Adoption:
    """A pair's adoption: its resources, who recorded them, when, and the audit row."""

    project: str
    cluster: str
    mode: str
    resources: tuple[AdoptedResource, ...]
    actor: str
    adopted_at: datetime
    audit_id: int

    def resource(self, kind: str) -> AdoptedResource | None:
        return next((r for r in self.resources if r.kind == kind), None)


class AlreadyAdopted(StoreError):
    """The pair has a baseline already (replacing it is asked for explicitly)."""


class Adoptions:
    """The stack_adoptions table; each change commits with its `stack.adopted` audit row."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    async def record(
        self,
        project: str,
        cluster: str,
        resources: tuple[AdoptedResource, ...],
        *,
        actor: str,
        replace: bool = False,
    ) -> Adoption:
        """Record the pair's baseline and its audit row in one transaction; AlreadyAdopted
        when it has one and `replace` is not asked."""
        async with self._connection.write() as tx:
            old = await _one(tx, project, cluster)
            if old is not None and not replace:
                raise AlreadyAdopted(
                    f"{project} in {cluster} was adopted on {old.adopted_at:%Y-%m-%d %H:%M} UTC "
                    f"by {old.actor} (audit #{old.audit_id}): --baseline records it again"
                )
            listed = ", ".join(f"{r.kind} {r.name}" for r in resources)
            audit_id = await audit_log.append(
                tx,
                {
                    "action": STACK_ADOPTED,
                    "actor": actor,
                    "project": project,
                    "cluster": cluster,
                    "outcome": "re-baselined" if old is not None else BASELINE,
                    "reason": f"{len(resources)} resources kept as they are: {listed}",
                },
            )
            values = {
                "project": project,
                "cluster": cluster,
                "mode": BASELINE,
                "resources": json.dumps([r.as_json() for r in resources], sort_keys=True),
                "actor": actor,
                "adopted_at": text(tx.now),
                "audit_id": audit_id,
            }
            await tx.execute(
                f"INSERT OR REPLACE INTO stack_adoptions ({_COLUMNS}) VALUES "
                "(:project, :cluster, :mode, :resources, :actor, :adopted_at, :audit_id)",
                values,
            )
            found = await _one(tx, project, cluster)
        assert found is not None
        return found

    async def get(self, project: str, cluster: str) -> Adoption | None:
        async with self._connection.read() as tx:
            return await _one(tx, project, cluster)

    async def every(self) -> list[Adoption]:
        async with self._connection.read() as tx:
            rows = await tx.all(f"SELECT {_COLUMNS} FROM stack_adoptions ORDER BY project, cluster")
        return [_adoption(row) for row in rows]


def adoptions_of(store: Store) -> Adoptions:
    """The store's adoptions (as `Store.outbox` is its outbox)."""
    return Adoptions(store._connection)


async def _one(tx: Tx, project: str, cluster: str) -> Adoption | None:
    row = await tx.one(
        f"SELECT {_COLUMNS} FROM stack_adoptions WHERE project = ? AND cluster = ?",
        (project, cluster),
    )
    return None if row is None else _adoption(row)


def _adoption(row: Any) -> Adoption:
    resources = tuple(AdoptedResource(**item) for item in json.loads(row["resources"]))
    return Adoption(
        project=row["project"],
        cluster=row["cluster"],
        mode=row["mode"],
        resources=resources,
        actor=row["actor"],
        adopted_at=datetime.fromisoformat(row["adopted_at"]),
        audit_id=int(row["audit_id"]),
    )
