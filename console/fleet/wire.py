"""A fleet snapshot as JSON data (the store's copy, the runner's answer), and the light client
that asks a running runner for its last snapshot (plain `status`: no boto3, no store)."""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from console import model
from console.model import FleetSnapshot

SNAPSHOT_FORMAT = 1
SNAPSHOT_OP = "snapshot"
# The runner answers at once once it holds a snapshot; its first one takes one refresh.
ASK_TIMEOUT = 30.0
ANSWER_LIMIT = 64 << 20


def _when(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _at(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def snapshot_data(snapshot: FleetSnapshot) -> dict[str, Any]:
    return {
        "format": SNAPSHOT_FORMAT,
        "generated_at": _when(snapshot.generated_at),
        "projects": list(snapshot.projects),
        "clusters": [
            [c.name, c.protected, c.error, _when(c.fetched_at)] for c in snapshot.clusters
        ],
        "envs": [
            [
                env.project,
                env.cluster,
                env.health.value,
                [
                    [
                        i.id,
                        i.state,
                        i.image_id,
                        i.version,
                        _when(i.launched_at),
                        i.private_address,
                        [[t.load_balancer, t.kind.value, t.state, t.reason] for t in i.targets],
                        i.deploy_id,
                        i.managed_by,
                    ]
                    for i in env.instances
                ],
                list(env.load_balancers),
                env.error,
                _when(env.fetched_at),
                _dns_data(env.dns),
            ]
            for env in snapshot.envs.values()
        ],
    }


def snapshot_from_data(data: dict[str, Any]) -> FleetSnapshot:
    """The snapshot `snapshot_data` described (its format checked by the caller)."""
    envs: dict[tuple[str, str], model.EnvStatus] = {}
    for project, cluster, health, instances, balancers, error, fetched, *more in data["envs"]:
        envs[(project, cluster)] = model.EnvStatus(
            project,
            cluster,
            model.Health(health),
            tuple(
                model.Instance(
                    id_,
                    state,
                    image,
                    version,
                    _at(launched),
                    address,
                    tuple(
                        model.TargetState(lb, model.LoadBalancerKind(kind), s, r)
                        for lb, kind, s, r in targets
                    ),
                    *tags,  # (drift) DeployId and ManagedBy
                )
                for id_, state, image, version, launched, address, targets, *tags in instances
            ),
            tuple(balancers),
            error,
            _at(fetched),
            _dns_from(more[0] if more else None),
        )
    generated = _at(data["generated_at"])
    assert generated is not None
    return FleetSnapshot(
        generated_at=generated,
        clusters=tuple(
            model.ClusterStatus(name, protected, error, _at(fetched))
            for name, protected, error, fetched in data["clusters"]
        ),
        projects=tuple(data["projects"]),
        envs=envs,
    )


def _dns_data(record: model.DnsRecord | None) -> list[Any] | None:
    """(dns) A pair's record, or None (no DNS name configured)."""
    if record is None:
        return None
    return [
        record.name, record.type, list(record.values), record.ttl, record.alias,
        record.points_to_pair, record.finding, record.error,
    ]  # fmt: skip


def _dns_from(data: list[Any] | None) -> model.DnsRecord | None:
    if data is None:
        return None
    name, kind, values, ttl, alias, points, finding, error = data
    return model.DnsRecord(name, kind, tuple(values), ttl, alias, points, finding, error)


@dataclass(frozen=True)
class RunnerSnapshot:
    """The runner's last snapshot and who took it."""

    snapshot: FleetSnapshot
    runner: str
    # (drift) The findings the runner read beside it (console/drift/review.py findings_json).
    findings: list[dict[str, Any]] = field(default_factory=list)


def ask_runner(path: Path, timeout: float = ASK_TIMEOUT) -> RunnerSnapshot | None:
    """The last snapshot of the runner serving `path` (its door, a Unix socket), or None when
    no runner answers there, or it answers something else (an older runner): the caller polls
    AWS itself then. Plain sockets and no asyncio: this path is the one a script calls."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
            connection.settimeout(timeout)
            connection.connect(str(path))
            connection.sendall(json.dumps({"op": SNAPSHOT_OP, "args": {}}).encode() + b"\n")
            received = bytearray()
            while not received.endswith(b"\n") and len(received) < ANSWER_LIMIT:
                chunk = connection.recv(1 << 20)
                if not chunk:
                    break
                received += chunk
        answer = json.loads(received)
        result = answer["result"]
        if result.get("format") != SNAPSHOT_FORMAT:
            return None
        return RunnerSnapshot(
            snapshot_from_data(result), str(result.get("runner", "")), result.get("findings", [])
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
