"""Old instances kept stopped after a deploy: their EC2 tags, starting them again, the reaper.

The marks are EC2 tags on the instances themselves, not store rows: what is kept, until when
and for which deploy is read where the instances are (one describe_instances filter), survives
a lost or replaced store, shows in the AWS console, and every console host's reaper sees the
same thing. Only a stopped instance is ever reaped: a kept instance that serves again (a
rollback started it) loses its marks first, and a running one is never terminated here.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from console.deploy.deployment import Cadence, Deployment
from console.errors import DeployError

if TYPE_CHECKING:
    from console.aws.gateway import AwsGateway

KEPT_UNTIL = "deploy-console:kept-until"
REPLACED_BY = "deploy-console:replaced-by"
KEPT_STATES = ["stopping", "stopped"]


def stamp(at: datetime) -> str:
    """A tag's time: UTC, to the second, ISO 8601."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse(text: str) -> datetime | None:
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None


def _tag(raw: dict[str, Any], key: str) -> str | None:
    for tag in raw.get("Tags") or ():
        if tag.get("Key") == key:
            return str(tag.get("Value"))
    return None


@dataclass(frozen=True)
class Kept:
    """One kept instance: its id, until when, which deploy replaced it, its release."""

    instance_id: str
    until: datetime | None
    replaced_by: str
    version: str | None


async def keep(gateway: AwsGateway, ids: list[str], until: datetime, replaced_by: str) -> None:
    """Marks the instances kept until `until` for `replaced_by`, then stops them (marked first:
    an instance stopped unmarked would never be reaped)."""
    if not ids:
        return
    await gateway.call(
        "ec2",
        "create_tags",
        Resources=ids,
        Tags=[
            {"Key": KEPT_UNTIL, "Value": stamp(until)},
            {"Key": REPLACED_BY, "Value": replaced_by},
        ],
    )
    await gateway.call("ec2", "stop_instances", InstanceIds=ids)


async def keep_until(gateway: AwsGateway, ids: list[str], until: datetime) -> None:
    """The instances' retention ends at `until` (the bake ended: keep_old from now)."""
    if ids:
        await gateway.call(
            "ec2", "create_tags", Resources=ids, Tags=[{"Key": KEPT_UNTIL, "Value": stamp(until)}]
        )


async def forget(gateway: AwsGateway, ids: list[str]) -> None:
    """The instances serve again: no longer kept, never reaped."""
    if ids:
        await gateway.call(
            "ec2",
            "delete_tags",
            Resources=ids,
            Tags=[{"Key": KEPT_UNTIL}, {"Key": REPLACED_BY}],
        )


async def start(
    deployment: Deployment, gateway: AwsGateway, ids: list[str], timeout: float, poll: float
) -> None:
    """Starts kept instances and waits until every one runs (DeployError at `timeout`)."""
    async with deployment.io():
        await gateway.call("ec2", "start_instances", InstanceIds=ids)
    deployment.note(f"started kept {', '.join(ids)}")
    cadence = Cadence(poll)
    deadline = time.monotonic() + timeout
    while True:
        async with deployment.io():
            found = await gateway.describe_instances([{"Name": "instance-id", "Values": list(ids)}])
        states = {raw["InstanceId"]: raw.get("State", {}).get("Name", "?") for raw in found}
        waiting = [f"{i} {states.get(i, 'missing')}" for i in ids if states.get(i) != "running"]
        if not waiting:
            return
        if time.monotonic() >= deadline:
            raise DeployError(f"kept instances not running after {timeout:.0f} s: {waiting[0]}")
        async with deployment.io():
            await asyncio.sleep(min(cadence.delay(), max(0.0, deadline - time.monotonic())))


async def kept(
    gateway: AwsGateway, filters: list[dict[str, Any]], version_tag: str = "Version"
) -> list[Kept]:
    """The kept instances (stopped or stopping, marked) matching `filters`."""
    found = await gateway.describe_instances(
        [
            *filters,
            {"Name": "tag-key", "Values": [KEPT_UNTIL]},
            {"Name": "instance-state-name", "Values": KEPT_STATES},
        ]
    )
    return [
        Kept(
            raw["InstanceId"],
            _parse(_tag(raw, KEPT_UNTIL) or ""),
            _tag(raw, REPLACED_BY) or "",
            _tag(raw, version_tag),
        )
        for raw in sorted(found, key=lambda raw: str(raw["InstanceId"]))
    ]


async def reusable(
    gateway: AwsGateway,
    pair: tuple[dict[str, str], str],
    deploy_id: str,
    version: str,
    now: datetime,
) -> list[str]:
    """The kept instances a rollback of `deploy_id` to `version` can start instead of
    launching: replaced by that deploy, of that release, not yet expired. `pair`: the
    project's and cluster's tag filters (tag key -> value) and the release's tag key."""
    tags, version_tag = pair
    filters = [{"Name": f"tag:{key}", "Values": [value]} for key, value in tags.items()]
    return [
        k.instance_id
        for k in await kept(gateway, filters, version_tag)
        if k.replaced_by == deploy_id
        and k.version == version
        and (k.until is None or k.until > now)
    ]


async def reap(gateway: AwsGateway, now: datetime) -> list[str]:
    """Terminates the stopped instances whose retention ended; the ids terminated."""
    expired = [
        k.instance_id for k in await kept(gateway, []) if k.until is not None and k.until <= now
    ]
    if expired:
        await gateway.call("ec2", "terminate_instances", InstanceIds=expired)
    return expired
