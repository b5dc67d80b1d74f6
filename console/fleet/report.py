"""The fleet as plain data for scripts: the `status --json` shape."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from console.model import DnsRecord, EnvStatus, FleetSnapshot, Instance


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def instance_json(instance: Instance) -> dict[str, Any]:
    return {
        "id": instance.id,
        "state": instance.state,
        "image_id": instance.image_id,
        "version": instance.version,
        "launched_at": _iso(instance.launched_at),
        "private_address": instance.private_address,
        "load_balancers": [
            {
                "name": target.load_balancer,
                "kind": str(target.kind),
                "state": target.state,
                "reason": target.reason,
            }
            for target in instance.targets
        ],
    }


def env_json(
    env: EnvStatus, now: datetime, findings: Sequence[Mapping[str, Any]] = ()
) -> dict[str, Any]:
    age = env.age_seconds(now)
    return {
        "health": str(env.health),
        "versions": list(env.versions),
        "healthy": env.serving_count,
        "total": env.total_count,
        "instances": [instance_json(instance) for instance in env.instances],
        "error": env.error,
        "age_seconds": round(age, 1) if age is not None else None,
        # (drift) The pair's drift findings (console/drift/review.py: Reviewed.json).
        "findings": [
            dict(f) for f in findings if (f["project"], f["cluster"]) == (env.project, env.cluster)
        ],
        "dns": dns_json(env.dns),
    }


def dns_json(record: DnsRecord | None) -> dict[str, Any] | None:
    """(dns) The pair's Route 53 record; None when the pair has no DNS name configured."""
    if record is None:
        return None
    return {
        "name": record.name,
        "type": record.type,
        "values": list(record.values),
        "ttl": record.ttl,
        "alias": record.alias,
        "points_to_pair": record.points_to_pair,
        "finding": record.finding,
        "error": record.error,
    }


def snapshot_json(
    snapshot: FleetSnapshot,
    projects: tuple[str, ...] | None = None,
    clusters: tuple[str, ...] | None = None,
    findings: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The documented JSON shape; projects and clusters narrow it down."""
    now = snapshot.generated_at
    shown_clusters = [c for c in snapshot.clusters if clusters is None or c.name in clusters]
    shown_projects = [p for p in snapshot.projects if projects is None or p in projects]
    return {
        "generated_at": now.isoformat(),
        "clusters": [
            {"name": cluster.name, "protected": cluster.protected, "error": cluster.error}
            for cluster in shown_clusters
        ],
        "projects": [
            {
                "name": project,
                "clusters": {
                    cluster.name: env_json(env, now, findings)
                    for cluster in shown_clusters
                    if (env := snapshot.env(project, cluster.name)) is not None
                },
            }
            for project in shown_projects
        ],
    }
