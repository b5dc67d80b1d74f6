"""`stack adopt`: a hand-made pair's resources, described from AWS, kept as its stack's baseline.

Why a baseline and not a CloudFormation import: an IMPORT change set cannot take the pair's
Route 53 record (CloudFormation has no import for AWS::Route53::RecordSet: see
aws-cloudformation/cloudformation-coverage-roadmap#560), and moto takes ChangeSetType="IMPORT"
as a CREATE that ignores ResourcesToImport (executed, it makes new resources beside the old
ones); teaching moto to adopt existing load balancers, groups and records into a stack's
resource map is not a small patch. So the pair's load balancer, listener, target group,
security groups and DNS record are recorded with their ids and described properties; the
pair's stack references them instead of creating them (console/stacks/adopted.py), and never
changes or deletes them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from console.config import Config
from console.errors import AwsError, AwsNoAnswer, ConfigError, ConsoleError
from console.stacks.template import stack_name
from console.store import Store
from console.store.adoptions import AdoptedResource, Adoption, adoptions_of

__all__ = [
    "LOGICAL_IDS",
    "Discovered",
    "adopt_pair",
    "adoption_of",
    "adoptions",
    "check_pair",
    "discover",
    "resource_line",
]

# The template's logical id each adopted kind stands in for (i16-template's names).
LOGICAL_IDS = {
    "load_balancer": "LoadBalancer",
    "listener": "Listener",
    "target_group": "TargetGroup",
    "security_group": "SecurityGroup",
    "dns_record": "DnsRecord",
}
KIND_NAMES = {
    "load_balancer": "load balancer",
    "listener": "listener",
    "target_group": "target group",
    "security_group": "security group",
    "dns_record": "dns record",
}
ROUTE53_REGION = "us-east-1"
ZONE_PREFIX = "/hostedzone/"


class Gateway(Protocol):
    async def call(self, service: str, operation: str, **kwargs: Any) -> dict[str, Any]: ...

    async def paginate(
        self, service: str, operation: str, key: str, page_size: int, **kwargs: Any
    ) -> list[Any]: ...


@dataclass(frozen=True)
class Discovered:
    """What AWS holds of a pair: its resources, and what was looked for and not found."""

    resources: tuple[AdoptedResource, ...]
    missing: tuple[str, ...]


def check_pair(config: Config, project: str, cluster: str) -> str:
    """The pair's one load balancer name; ConfigError (exit 2) for an unknown project or
    cluster, a pair the config lacks, or one with no load balancer or more than one."""
    config.cluster(cluster)
    settings = config.project(project).clusters.get(cluster)
    if settings is None:
        raise ConfigError(f"project {project} is not configured in {cluster}")
    names = settings.load_balancers
    if len(names) != 1:
        raise ConfigError(
            f"{project} in {cluster} names {len(names)} load balancers: a stack adopts exactly "
            "one (classic_elbs or target_groups)"
        )
    return names[0]


async def discover(config: Config, gateway: Gateway, project: str, cluster: str) -> Discovered:
    """Describe the pair's load balancer (and listener, target group, security groups) and
    its DNS record; ConfigError when its load balancer does not exist (nothing to adopt)."""
    name = check_pair(config, project, cluster)
    settings = config.project(project).clusters[cluster]
    missing: list[str] = []
    if settings.target_groups:
        found = await _target_group_pair(gateway, name, missing)
    else:
        found = await _classic_pair(gateway, name)
    balancer = next((r for r in found if r.kind == "load_balancer"), None)
    groups = balancer.properties.get("SecurityGroups", []) if balancer else []
    found += await _security_groups(gateway, groups)
    target = str(balancer.properties.get("DNSName", "")) if balancer else ""
    record = await _dns_record(config, gateway, settings.dns, target)
    if record is None:
        missing.append(f"dns record {settings.dns}" if settings.dns else "dns record")
    else:
        found.append(record)
    return Discovered(tuple(found), tuple(missing))


def _resource(
    kind: str, physical_id: str, name: str, properties: dict[str, Any], n: int = 0
) -> AdoptedResource:
    logical = LOGICAL_IDS[kind] + (str(n + 1) if n else "")
    return AdoptedResource(kind, logical, physical_id, name, properties)


def _not_found(error: AwsError) -> bool:
    return not isinstance(error, AwsNoAnswer) and "NotFound" in error.message


async def _target_group_pair(
    gateway: Gateway, name: str, missing: list[str]
) -> list[AdoptedResource]:
    try:
        described = await gateway.call("elbv2", "describe_target_groups", Names=[name])
    except AwsError as error:
        if _not_found(error):
            raise ConfigError(f"no target group {name} in AWS: nothing to adopt") from None
        raise
    group = described["TargetGroups"][0]
    arn = group["TargetGroupArn"]
    attributes = await gateway.call("elbv2", "describe_target_group_attributes", TargetGroupArn=arn)
    health = await gateway.call("elbv2", "describe_target_health", TargetGroupArn=arn)
    properties = _picked(group, TARGET_GROUP_KEYS) | {
        "Attributes": {a["Key"]: a["Value"] for a in attributes.get("Attributes", [])},
        "Targets": sorted(t["Target"]["Id"] for t in health.get("TargetHealthDescriptions", [])),
    }
    found = [_resource("target_group", arn, name, properties)]
    balancers = group.get("LoadBalancerArns", [])
    if not balancers:
        missing.append(f"load balancer (target group {name} is attached to none)")
        return found
    lb = (await gateway.call("elbv2", "describe_load_balancers", LoadBalancerArns=balancers[:1]))[
        "LoadBalancers"
    ][0]
    lb_properties = _picked(lb, ALB_KEYS) | {
        "Subnets": sorted(z.get("SubnetId", "") for z in lb.get("AvailabilityZones", [])),
    }
    found.insert(
        0, _resource("load_balancer", lb["LoadBalancerArn"], lb["LoadBalancerName"], lb_properties)
    )
    listeners = await gateway.call(
        "elbv2", "describe_listeners", LoadBalancerArn=lb["LoadBalancerArn"]
    )
    for n, listener in enumerate(x for x in listeners.get("Listeners", []) if _forwards_to(x, arn)):
        label = f"{listener.get('Protocol', '')}:{listener.get('Port', '')}"
        found.insert(
            1 + n,
            _resource(
                "listener", listener["ListenerArn"], label, _picked(listener, LISTENER_KEYS), n
            ),
        )
    return found


def _forwards_to(listener: dict[str, Any], group_arn: str) -> bool:
    return any(
        action.get("TargetGroupArn") == group_arn
        or any(
            g.get("TargetGroupArn") == group_arn
            for g in action.get("ForwardConfig", {}).get("TargetGroups", [])
        )
        for action in listener.get("DefaultActions", [])
    )


async def _classic_pair(gateway: Gateway, name: str) -> list[AdoptedResource]:
    try:
        described = await gateway.call("elb", "describe_load_balancers", LoadBalancerNames=[name])
    except AwsError as error:
        if _not_found(error) or "LoadBalancerNotFound" in error.message:
            raise ConfigError(f"no classic ELB {name} in AWS: nothing to adopt") from None
        raise
    lb = described["LoadBalancerDescriptions"][0]
    attributes = await gateway.call(
        "elb", "describe_load_balancer_attributes", LoadBalancerName=name
    )
    draining = attributes.get("LoadBalancerAttributes", {}).get("ConnectionDraining", {})
    properties = _picked(lb, CLASSIC_KEYS) | {
        "Listeners": [d.get("Listener", {}) for d in lb.get("ListenerDescriptions", [])],
        "ConnectionDraining": draining,
        "Instances": sorted(i["InstanceId"] for i in lb.get("Instances", [])),
    }
    return [_resource("load_balancer", name, name, properties)]


async def _security_groups(gateway: Gateway, ids: Iterable[str]) -> list[AdoptedResource]:
    wanted = sorted(set(ids))
    if not wanted:
        return []
    described = await gateway.call("ec2", "describe_security_groups", GroupIds=wanted)
    return [
        _resource(
            "security_group",
            group["GroupId"],
            group.get("GroupName", group["GroupId"]),
            _picked(group, ("GroupName", "Description", "VpcId"))
            | {"Ingress": [_rule(p) for p in group.get("IpPermissions", [])]},
            n,
        )
        for n, group in enumerate(described.get("SecurityGroups", []))
    ]


def _rule(permission: dict[str, Any]) -> str:
    """An ingress rule in one line: tcp 80-80 from 0.0.0.0/0, sg-..."""
    sources = [r.get("CidrIp", "") for r in permission.get("IpRanges", [])]
    sources += [p.get("GroupId", "") for p in permission.get("UserIdGroupPairs", [])]
    ports = f"{permission.get('FromPort', '*')}-{permission.get('ToPort', '*')}"
    return f"{permission.get('IpProtocol', '')} {ports} from {', '.join(sources) or '-'}"


async def _dns_record(
    config: Config, gateway: Gateway, name: str | None, target: str
) -> AdoptedResource | None:
    """The pair's record: by its configured name, else the one pointing at its load balancer
    (in the [dns] zones, else every hosted zone). One ListHostedZones page, then one
    ListResourceRecordSets call per zone searched."""
    zones = await gateway.paginate("route53", "list_hosted_zones", "HostedZones", 100)
    wanted = set(config.dns.zones)
    zones = [z for z in zones if not wanted or z["Name"].rstrip(".").lower() in wanted]
    if name:
        zones = [z for z in zones if _in_zone(name, z["Name"])]
        zones.sort(key=lambda z: -len(z["Name"]))
        zones = zones[:1]
    for zone in zones:
        zone_id = zone["Id"].removeprefix(ZONE_PREFIX)
        records = await gateway.paginate(
            "route53", "list_resource_record_sets", "ResourceRecordSets", 300,
            HostedZoneId=zone_id,
        )  # fmt: skip
        for record in records:
            values = _values(record)
            record_name = record["Name"].rstrip(".").lower()
            if (name and record_name == name) or (not name and target and target.lower() in values):
                properties = _picked(record, ("Name", "Type", "TTL")) | {
                    "Values": sorted(values),
                    "Zone": zone["Name"],
                    "PointsAtLoadBalancer": bool(target) and target.lower() in values,
                }
                physical = f"{zone_id}/{record['Name']}/{record['Type']}"
                return _resource("dns_record", physical, record_name, properties)
    return None


def _in_zone(name: str, zone: str) -> bool:
    zone = zone.rstrip(".").lower()
    return name == zone or name.endswith("." + zone)


def _values(record: dict[str, Any]) -> set[str]:
    values = {
        str(r.get("Value", "")).rstrip(".").lower() for r in record.get("ResourceRecords", [])
    }
    alias = record.get("AliasTarget", {}).get("DNSName")
    if alias:
        values.add(str(alias).rstrip(".").lower().removeprefix("dualstack."))
    return values


TARGET_GROUP_KEYS = (
    "TargetGroupName", "Protocol", "Port", "VpcId", "TargetType", "HealthCheckProtocol",
    "HealthCheckPath", "HealthCheckIntervalSeconds", "HealthCheckTimeoutSeconds",
    "HealthyThresholdCount", "UnhealthyThresholdCount",
)  # fmt: skip
ALB_KEYS = (
    "LoadBalancerName", "DNSName", "CanonicalHostedZoneId", "Scheme", "Type", "VpcId",
    "SecurityGroups", "IpAddressType",
)  # fmt: skip
LISTENER_KEYS = ("Port", "Protocol", "DefaultActions")
CLASSIC_KEYS = (
    "LoadBalancerName", "DNSName", "CanonicalHostedZoneNameID", "Scheme", "VPCId", "Subnets",
    "SecurityGroups", "HealthCheck",
)  # fmt: skip


def _picked(described: dict[str, Any], keys: Iterable[str]) -> dict[str, Any]:
    """The keys AWS described, as JSON keeps them (no datetimes)."""
    return {key: _plain(described[key]) for key in keys if key in described}


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def resource_line(resource: AdoptedResource) -> tuple[str, str, str]:
    """(kind, name, what it is) for a table: the record's type and values, a group's rules."""
    props = resource.properties
    if resource.kind == "dns_record":
        where = "this load balancer" if props.get("PointsAtLoadBalancer") else "ANOTHER target"
        values = ", ".join(props.get("Values", []))
        detail = f"{props.get('Type', '')} → {values} (TTL {props.get('TTL', '-')}; {where})"
    elif resource.kind == "security_group":
        detail = f"{resource.physical_id}: {'; '.join(props.get('Ingress', [])) or 'no ingress'}"
    elif resource.kind == "target_group":
        targets = len(props.get("Targets", []))
        detail = f"health {props.get('HealthCheckPath', '-')}, {targets} target(s)"
    else:
        detail = resource.physical_id
    return KIND_NAMES[resource.kind], resource.name, detail


async def adopt_pair(
    config: Config, store: Path, project: str, cluster: str, who: str, *, replace: bool
) -> tuple[Adoption, Discovered]:
    """Describe the pair from AWS and record it as its stack's baseline, audited
    (stack.adopted). Refused (ConfigError, nothing recorded) for a pair whose stack exists
    already or whose load balancer does not; an admin's (see require_admin)."""
    from console.fleet.inventory import Fleet
    from console.stacks.projects import require_admin

    check_pair(config, project, cluster)
    if config.runner_socket is not None:
        raise ConfigError(
            "stack adopt writes the runner's store: run it on the runner's host with --store"
        )
    await require_admin(config, store, who, [cluster], project, "adopt a stack")
    fleet = Fleet(config)
    try:
        gateway = await asyncio.to_thread(fleet.gateway, cluster)
        await _no_stack_yet(gateway, project, cluster)
        found = await discover(config, gateway, project, cluster)
    finally:
        fleet.close()
    async with await Store.open(store) as opened:
        adoption = await adoptions_of(opened).record(
            project, cluster, found.resources, actor=who, replace=replace
        )
    return adoption, found


async def adoption_of(store: Path, project: str, cluster: str) -> Adoption | None:
    """The pair's recorded baseline (None without one, or without a store)."""
    return (await adoptions(store)).get((project, cluster))


async def adoptions(store: Path) -> dict[tuple[str, str], Adoption]:
    """Every recorded baseline by (project, cluster) (none without a store: none is made)."""
    if not store.exists():
        return {}
    async with await Store.open(store, create=False) as opened:
        return {(a.project, a.cluster): a for a in await adoptions_of(opened).every()}


async def _no_stack_yet(gateway: Gateway, project: str, cluster: str) -> None:
    name = stack_name(project, cluster)
    try:
        stacks = await gateway.call("cloudformation", "describe_stacks", StackName=name)
    except AwsError as error:
        if not isinstance(error, AwsNoAnswer) and "does not exist" in error.message:
            return
        raise
    for stack in stacks.get("Stacks", []):
        if stack.get("StackStatus") not in ("REVIEW_IN_PROGRESS", "DELETE_COMPLETE"):
            raise ConsoleError(
                f"{project} in {cluster} has its stack {name} already "
                f"({stack.get('StackStatus')}): nothing to adopt"
            )
