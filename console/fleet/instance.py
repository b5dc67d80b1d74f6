"""One instance read on demand (the instance screen): its tags, its health in each load
balancer with AWS's reason, and its EC2 console output."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from console.config import Config
from console.errors import AwsError
from console.model import SERVING_STATES, LoadBalancerKind
from console.safe_text import harmless

if TYPE_CHECKING:
    from console.aws.gateway import AwsGateway
    from console.fleet.inventory import Fleet

# The console output is kept to its last lines: what a person scrolls through on a screen.
MAX_CONSOLE_LINES = 500
NOT_REGISTERED = "Target.NotRegistered"


@dataclass(frozen=True)
class BalancerHealth:
    """The instance in one load balancer, in AWS's words: state, reason code, description."""

    name: str
    kind: LoadBalancerKind
    state: str
    reason: str = ""
    description: str = ""

    @property
    def serving(self) -> bool:
        return self.state in SERVING_STATES

    @property
    def kind_word(self) -> str:
        return "classic ELB" if self.kind is LoadBalancerKind.CLASSIC else "target group"


@dataclass(frozen=True)
class ConsoleOutput:
    """The last lines of the instance's console output (terminal controls made visible)."""

    lines: tuple[str, ...] = ()
    total_lines: int = 0
    timestamp: datetime | None = None
    error: str | None = None

    @property
    def empty(self) -> bool:
        return not self.lines and self.error is None


@dataclass(frozen=True)
class InstanceDetails:
    """What the instance screen shows; each part read apart, with its own one-line error."""

    id: str
    project: str
    cluster: str
    state: str = "unknown"
    image_id: str = ""
    version: str = "?"
    launched_at: datetime | None = None
    private_address: str = ""
    public_address: str = ""
    instance_type: str = ""
    zone: str = ""
    tags: tuple[tuple[str, str], ...] = ()
    error: str | None = None  # the instance itself could not be read
    health: tuple[BalancerHealth, ...] = ()
    console: ConsoleOutput = field(default_factory=ConsoleOutput)


def console_lines(text: str | None, limit: int = MAX_CONSOLE_LINES) -> tuple[tuple[str, ...], int]:
    """The last `limit` lines of a console output (botocore has base64-decoded it), each made
    harmless; and how many lines there were. Trailing blank lines are dropped."""
    if not text:
        return (), 0
    lines = text.replace("\r\n", "\n").split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    return tuple(harmless(line) for line in lines[-limit:]), len(lines)


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _classic_text(value: object) -> str:
    text = str(value or "")
    return "" if text == "N/A" else text


async def _describe(
    gateway: AwsGateway, details: InstanceDetails, config: Config
) -> dict[str, Any]:
    try:
        answer = await gateway.call("ec2", "describe_instances", InstanceIds=[details.id])
    except AwsError as error:
        if "InvalidInstanceID" in error.message:
            return {"error": f"{details.id} is not in {details.cluster} any more (terminated?)"}
        return {"error": f"cannot read {details.id}: {error.message}"}
    found = [i for r in answer.get("Reservations", []) for i in r.get("Instances", [])]
    if not found:
        return {"error": f"{details.id} is not in {details.cluster} any more (terminated?)"}
    raw = found[0]
    tags = tuple(
        sorted(
            (harmless(t.get("Key", "")), harmless(t.get("Value", "")))
            for t in raw.get("Tags") or ()
        )
    )
    return {
        "state": raw.get("State", {}).get("Name", "unknown"),
        "image_id": raw.get("ImageId", ""),
        "version": dict(tags).get(config.tags.version, "?"),
        "launched_at": _utc(raw.get("LaunchTime")),
        "private_address": raw.get("PrivateIpAddress", "") or "",
        "public_address": raw.get("PublicIpAddress", "") or "",
        "instance_type": raw.get("InstanceType", ""),
        "zone": raw.get("Placement", {}).get("AvailabilityZone", ""),
        "tags": tags,
    }


async def _classic(gateway: AwsGateway, name: str, instance_id: str) -> BalancerHealth:
    kind = LoadBalancerKind.CLASSIC
    try:
        states = await gateway.classic_health(name)
    except AwsError as error:
        return BalancerHealth(name, kind, "unknown", description=error.message)
    for state in states:
        if state.get("InstanceId") == instance_id:
            return BalancerHealth(
                name,
                kind,
                state.get("State", "Unknown"),
                _classic_text(state.get("ReasonCode")),
                _classic_text(state.get("Description")),
            )
    return BalancerHealth(name, kind, "OutOfService", description="not registered")


async def _target_group(gateway: AwsGateway, name: str, instance_id: str) -> BalancerHealth:
    kind = LoadBalancerKind.TARGET_GROUP
    try:
        groups = await gateway.call("elbv2", "describe_target_groups", Names=[name])
        arn = groups["TargetGroups"][0]["TargetGroupArn"]
        targets = await gateway.target_health(arn)
    except AwsError as error:
        return BalancerHealth(name, kind, "unknown", description=error.message)
    for target in targets:
        if target.get("Target", {}).get("Id") == instance_id:
            health = target.get("TargetHealth", {})
            return BalancerHealth(
                name,
                kind,
                health.get("State", "unavailable"),
                health.get("Reason", ""),
                health.get("Description", ""),
            )
    return BalancerHealth(
        name, kind, "unused", NOT_REGISTERED, "Target is not registered to the target group"
    )


async def _console(gateway: AwsGateway, instance_id: str) -> ConsoleOutput:
    try:
        answer = await gateway.call("ec2", "get_console_output", InstanceId=instance_id)
    except AwsError as error:
        return ConsoleOutput(error=f"cannot read the console output: {error.message}")
    lines, total = console_lines(answer.get("Output"))
    return ConsoleOutput(lines, total, _utc(answer.get("Timestamp")))


async def read_instance(
    gateway: AwsGateway, config: Config, project: str, cluster: str, instance_id: str
) -> InstanceDetails:
    """The instance, its health in each of the project's load balancers in the cluster, and
    its console output: read side by side; a part that fails says so and hides no other."""
    details = InstanceDetails(instance_id, project, cluster)
    settings = config.project(project).clusters.get(cluster)
    classic = settings.classic_elbs if settings is not None else ()
    groups = settings.target_groups if settings is not None else ()
    described, console, *health = await asyncio.gather(
        _describe(gateway, details, config),
        _console(gateway, instance_id),
        *(_classic(gateway, name, instance_id) for name in classic),
        *(_target_group(gateway, name, instance_id) for name in groups),
    )
    assert isinstance(described, dict) and isinstance(console, ConsoleOutput)
    return InstanceDetails(
        instance_id,
        project,
        cluster,
        console=console,
        health=tuple(h for h in health if isinstance(h, BalancerHealth)),
        **described,
    )


class InstanceReader:
    """Reads instances for a screen, with gateways of its own (the fleet's may be in a worker
    process): made on first use, closed with close()."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._fleet: Fleet | None = None

    async def read(self, project: str, cluster: str, instance_id: str) -> InstanceDetails:
        if self._fleet is None:
            from console.fleet.inventory import Fleet

            self._fleet = Fleet(self.config)
        try:
            gateway = await asyncio.to_thread(self._fleet.gateway, cluster)
        except AwsError as error:
            return InstanceDetails(instance_id, project, cluster, error=error.message)
        return await read_instance(gateway, self.config, project, cluster, instance_id)

    def close(self) -> None:
        if self._fleet is not None:
            self._fleet.close()
            self._fleet = None
