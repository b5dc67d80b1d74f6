"""What AWS runs for each resource of a stack, in the template's property names, and how it
differs from the template (moto has no DetectStackDrift: the console compares itself)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from console.aws.gateway import AwsGateway
from console.errors import AwsError, AwsNoAnswer
from console.stacks.diff import flatten, readable, references

__all__ = [
    "Difference",
    "LiveResource",
    "PropertyRow",
    "differences",
    "property_rows",
    "read_live",
    "resolve",
    "stack_resources",
]


@dataclass(frozen=True)
class LiveResource:
    """One resource of a stack as AWS describes it now."""

    logical_id: str
    resource_type: str
    physical_id: str
    status: str
    # The template's property names -> what AWS says (only what the console reads); None when
    # the type is not read or the resource is gone (then `problem` says why).
    properties: dict[str, Any] | None = None
    # What Fn::GetAtt reads (a load balancer's DNSName, a launch template's latest version).
    attributes: dict[str, Any] = field(default_factory=dict)
    problem: str | None = None


@dataclass(frozen=True)
class Difference:
    """One property where what runs is not what the template says (or the resource is gone)."""

    logical_id: str
    resource_type: str
    path: str
    expected: Any
    actual: Any

    def describe(self) -> str:
        return f"{self.path}: template {readable(self.expected)}, running {readable(self.actual)}"

    def as_json(self) -> dict[str, Any]:
        return {
            "logical_id": self.logical_id,
            "type": self.resource_type,
            "property": self.path,
            "template": self.expected,
            "running": self.actual,
        }


async def stack_resources(gateway: AwsGateway, stack: str) -> list[dict[str, Any]]:
    """describe_stack_resources: logical id, type, physical id, status of each resource."""
    answer = await gateway.call("cloudformation", "describe_stack_resources", StackName=stack)
    resources: list[dict[str, Any]] = answer.get("StackResources", [])
    return resources


async def read_live(
    gateway: AwsGateway, stack: str, template: Mapping[str, Any] | None = None
) -> list[LiveResource]:
    """Each resource of `stack` as AWS runs it (one or two describes per resource, at once).
    The template (the stack's own) says where a DNS record lives."""
    resources = await stack_resources(gateway, stack)
    declared = dict((template or {}).get("Resources") or {})
    return list(
        await asyncio.gather(*(_read_one(gateway, resource, declared) for resource in resources))
    )


async def _read_one(
    gateway: AwsGateway, resource: Mapping[str, Any], declared: Mapping[str, Any]
) -> LiveResource:
    logical_id = str(resource["LogicalResourceId"])
    kind = str(resource["ResourceType"])
    physical = str(resource.get("PhysicalResourceId") or "")
    status = str(resource.get("ResourceStatus", ""))
    reader = READERS.get(kind)
    if reader is None or not physical:
        return LiveResource(logical_id, kind, physical, status)
    properties = (declared.get(logical_id) or {}).get("Properties") or {}
    try:
        found = await reader(gateway, physical, properties)
    except AwsNoAnswer:
        raise
    except AwsError as error:
        return LiveResource(logical_id, kind, physical, status, problem=error.message)
    if found is None:
        return LiveResource(logical_id, kind, physical, status, problem="not found in AWS")
    live, attributes = found
    return LiveResource(logical_id, kind, physical, status, live, attributes)


Read = tuple[dict[str, Any], dict[str, Any]] | None
Reader = Callable[[AwsGateway, str, Mapping[str, Any]], Awaitable[Read]]


async def _target_group(gateway: AwsGateway, arn: str, _: Mapping[str, Any]) -> Read:
    answer = await gateway.call("elbv2", "describe_target_groups", TargetGroupArns=[arn])
    if not answer.get("TargetGroups"):
        return None
    group = answer["TargetGroups"][0]
    attributes = await gateway.target_group_attributes(arn)
    names = (
        "Protocol", "Port", "VpcId", "TargetType", "HealthCheckProtocol", "HealthCheckPath",
        "HealthCheckIntervalSeconds", "HealthCheckTimeoutSeconds", "HealthyThresholdCount",
        "UnhealthyThresholdCount", "Matcher", "HealthCheckPort", "ProtocolVersion",
    )  # fmt: skip
    live = {"Name": group.get("TargetGroupName")} | _pick(group, names)
    live["TargetGroupAttributes"] = [{"Key": k, "Value": v} for k, v in attributes.items()]
    return live, {"TargetGroupName": group.get("TargetGroupName")}


async def _application(gateway: AwsGateway, arn: str, _: Mapping[str, Any]) -> Read:
    answer = await gateway.call("elbv2", "describe_load_balancers", LoadBalancerArns=[arn])
    if not answer.get("LoadBalancers"):
        return None
    balancer = answer["LoadBalancers"][0]
    live = {"Name": balancer.get("LoadBalancerName")} | _pick(
        balancer, ("Scheme", "Type", "SecurityGroups", "IpAddressType")
    )
    live["Subnets"] = [zone["SubnetId"] for zone in balancer.get("AvailabilityZones", [])]
    attributes = {
        "DNSName": balancer.get("DNSName"),
        "CanonicalHostedZoneID": balancer.get("CanonicalHostedZoneId"),
        "LoadBalancerName": balancer.get("LoadBalancerName"),
    }
    return live, attributes


async def _listener(gateway: AwsGateway, arn: str, _: Mapping[str, Any]) -> Read:
    answer = await gateway.call("elbv2", "describe_listeners", ListenerArns=[arn])
    if not answer.get("Listeners"):
        return None
    listener = answer["Listeners"][0]
    live = _pick(listener, ("LoadBalancerArn", "Port", "Protocol", "SslPolicy"))
    live["DefaultActions"] = [
        _pick(action, ("Type", "TargetGroupArn")) for action in listener.get("DefaultActions", [])
    ]
    return live, {}


async def _classic(gateway: AwsGateway, name: str, _: Mapping[str, Any]) -> Read:
    answer = await gateway.call("elb", "describe_load_balancers", LoadBalancerNames=[name])
    if not answer.get("LoadBalancerDescriptions"):
        return None
    balancer = answer["LoadBalancerDescriptions"][0]
    draining = (await gateway.classic_attributes(name)).get("ConnectionDraining") or {}
    live = _pick(balancer, ("LoadBalancerName", "Scheme", "Subnets", "SecurityGroups"))
    live["Listeners"] = [
        _pick(
            item["Listener"], ("Protocol", "LoadBalancerPort", "InstanceProtocol", "InstancePort")
        )
        for item in balancer.get("ListenerDescriptions", [])
    ]
    live["HealthCheck"] = _pick(
        balancer.get("HealthCheck") or {},
        ("Target", "Interval", "Timeout", "HealthyThreshold", "UnhealthyThreshold"),
    )
    live["ConnectionDrainingPolicy"] = _pick(draining, ("Enabled", "Timeout"))
    attributes = {
        "DNSName": balancer.get("DNSName"),
        "CanonicalHostedZoneNameID": balancer.get("CanonicalHostedZoneNameID"),
    }
    return live, attributes


async def _security_group(gateway: AwsGateway, group_id: str, _: Mapping[str, Any]) -> Read:
    answer = await gateway.call("ec2", "describe_security_groups", GroupIds=[group_id])
    if not answer.get("SecurityGroups"):
        return None
    group = answer["SecurityGroups"][0]
    live = {"GroupDescription": group.get("Description")} | _pick(group, ("GroupName", "VpcId"))
    live["SecurityGroupIngress"] = [
        {**_pick(rule, ("IpProtocol", "FromPort", "ToPort")), "CidrIp": ip_range["CidrIp"]}
        for rule in group.get("IpPermissions", [])
        for ip_range in rule.get("IpRanges", [])
    ]
    return live, {"GroupId": group.get("GroupId"), "VpcId": group.get("VpcId")}


async def _launch_template(gateway: AwsGateway, template_id: str, _: Mapping[str, Any]) -> Read:
    answer = await gateway.call(
        "ec2", "describe_launch_template_versions", LaunchTemplateId=template_id,
        Versions=["$Latest"],
    )  # fmt: skip
    versions = answer.get("LaunchTemplateVersions") or []
    if not versions:
        return None
    latest = versions[0]
    live = {
        "LaunchTemplateName": latest.get("LaunchTemplateName"),
        "LaunchTemplateData": latest.get("LaunchTemplateData") or {},
    }
    return live, {"LatestVersionNumber": str(latest.get("VersionNumber"))}


async def _record(gateway: AwsGateway, name: str, properties: Mapping[str, Any]) -> Read:
    """The record `name` (what CloudFormation calls its physical id) in the template's zone."""
    zone = properties.get("HostedZoneId")
    kind = properties.get("Type")
    if not isinstance(zone, str) or not isinstance(kind, str):
        return None  # a zone by name, or an intrinsic: not read
    answer = await gateway.call(
        "route53", "list_resource_record_sets", HostedZoneId=zone, StartRecordName=name,
        StartRecordType=kind, MaxItems="1",
    )  # fmt: skip
    found = answer.get("ResourceRecordSets") or []
    wanted = name.lower().rstrip(".")
    if not found or found[0]["Name"].lower().rstrip(".") != wanted or found[0]["Type"] != kind:
        return None
    record = found[0]
    live = {"HostedZoneId": zone, "Name": record["Name"], "Type": record["Type"]}
    if "TTL" in record:
        live["TTL"] = record["TTL"]
    if "ResourceRecords" in record:
        live["ResourceRecords"] = [item["Value"] for item in record["ResourceRecords"]]
    if "AliasTarget" in record:
        live["AliasTarget"] = record["AliasTarget"]
    return live, {}


async def _group(gateway: AwsGateway, name: str, _: Mapping[str, Any]) -> Read:
    answer = await gateway.call(
        "autoscaling", "describe_auto_scaling_groups", AutoScalingGroupNames=[name]
    )
    if not answer.get("AutoScalingGroups"):
        return None
    group = answer["AutoScalingGroups"][0]
    names = (
        "AutoScalingGroupName", "MinSize", "MaxSize", "DesiredCapacity", "TargetGroupARNs",
        "LoadBalancerNames", "HealthCheckType", "HealthCheckGracePeriod", "LaunchTemplate",
    )  # fmt: skip
    live = _pick(group, names)
    zones = str(group.get("VPCZoneIdentifier") or "")
    live["VPCZoneIdentifier"] = [subnet for subnet in zones.split(",") if subnet]
    return live, {}


READERS: dict[str, Reader] = {
    "AWS::ElasticLoadBalancingV2::TargetGroup": _target_group,
    "AWS::ElasticLoadBalancingV2::LoadBalancer": _application,
    "AWS::ElasticLoadBalancingV2::Listener": _listener,
    "AWS::ElasticLoadBalancing::LoadBalancer": _classic,
    "AWS::EC2::SecurityGroup": _security_group,
    "AWS::EC2::LaunchTemplate": _launch_template,
    "AWS::Route53::RecordSet": _record,
    "AWS::AutoScaling::AutoScalingGroup": _group,
}


def _pick(source: Mapping[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    return {name: source[name] for name in names if name in source}


# -- comparing ---------------------------------------------------------------------------------


def resolve(value: Any, live: Mapping[str, LiveResource]) -> Any:
    """A template value with Ref and Fn::GetAtt replaced by what they name in the running
    stack (a physical id, a DNS name); one that cannot be resolved stays as it is."""
    if isinstance(value, Mapping):
        if set(value) == {"Ref"} and value["Ref"] in live:
            return live[value["Ref"]].physical_id
        if set(value) == {"Fn::GetAtt"}:
            argument = value["Fn::GetAtt"]
            parts = argument if isinstance(argument, list) else str(argument).split(".", 1)
            target = live.get(str(parts[0]))
            if target is not None and len(parts) > 1 and str(parts[1]) in target.attributes:
                return target.attributes[str(parts[1])]
            return value
        return {key: resolve(item, live) for key, item in value.items()}
    if isinstance(value, list):
        return [resolve(item, live) for item in value]
    return value


def _normal(value: Any) -> Any:
    """A value as compared: scalars as lower-case text (80 == "80", True == "true", 10.0 ==
    10), a DNS name without its trailing dot, lists in any order."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, int | float | str):
        return str(value).lower().rstrip(".")
    if isinstance(value, Mapping):
        return {str(key): _normal(item) for key, item in value.items()}
    if isinstance(value, list):
        return sorted(
            (_normal(item) for item in value), key=lambda v: json.dumps(v, sort_keys=True)
        )
    return value


def _contains(expected: Any, actual: Any) -> bool:
    """What the template says is what runs; AWS's extra keys (defaults) do not count."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        return all(key in actual and _contains(v, actual[key]) for key, v in expected.items())
    if isinstance(expected, list) and isinstance(actual, list):
        return len(expected) == len(actual) and all(
            _contains(e, a) for e, a in zip(expected, actual, strict=True)
        )
    return bool(expected == actual)


def differences(template: Mapping[str, Any], live: list[LiveResource]) -> list[Difference]:
    """Where the running stack is not its template: per property the template names and the
    console reads (tags are not read), and each resource gone or never made."""
    by_id = {resource.logical_id: resource for resource in live}
    found: list[Difference] = []
    for logical_id, declared in (template.get("Resources") or {}).items():
        kind = str(declared.get("Type", ""))
        running = by_id.get(logical_id)
        if running is None or running.problem is not None:
            why = "not in the stack" if running is None else running.problem
            found.append(Difference(logical_id, kind, "(resource)", "exists", why))
            continue
        if running.properties is None:
            continue
        expected = flatten(resolve(declared.get("Properties") or {}, by_id))
        actual = flatten(running.properties)
        for path, value in expected.items():
            if not _readable(path, value, running):
                continue
            now = actual.get(path)
            if not _contains(_normal(value), _normal(now)):
                found.append(Difference(logical_id, kind, path, value, now))
    return found


def _readable(path: str, value: Any, running: LiveResource) -> bool:
    """Whether the running value of `path` can be compared: the console reads it (not tags)
    and the template's value names nothing left unresolved."""
    if running.properties is None or path.split(".", 1)[0] not in running.properties:
        return False
    return not any(True for _ in references(value))


NOT_READ = object()
"""A running value the console does not read (tags) or could not (the resource is gone)."""


@dataclass(frozen=True)
class PropertyRow:
    """One property three ways: what the config asks, what the stack's template says, what
    runs (NOT_READ when not read); None where one side does not have it."""

    logical_id: str
    path: str
    config: Any
    stack: Any
    running: Any

    @property
    def planned(self) -> bool:
        """The config asks for something the stack's template does not say: `stack plan`."""
        return not _contains(_normal(self.config), _normal(self.stack))

    @property
    def drifted(self) -> bool:
        """What runs is not what the stack's template says: changed outside the console."""
        if self.running is NOT_READ or self.stack is None:
            return False
        return not _contains(_normal(self.stack), _normal(self.running))

    def as_json(self) -> dict[str, Any]:
        return {
            "logical_id": self.logical_id,
            "property": self.path,
            "config": self.config,
            "stack": self.stack,
            "running": None if self.running is NOT_READ else self.running,
            "running_read": self.running is not NOT_READ,
            "planned": self.planned,
            "drifted": self.drifted,
        }


def property_rows(
    desired: Mapping[str, Any], template: Mapping[str, Any] | None, live: list[LiveResource]
) -> list[PropertyRow]:
    """Every property of every resource, config vs stack vs running, with Ref and GetAtt
    resolved in the running stack; a resource missing on a side is one `(resource)` row."""
    by_id = {resource.logical_id: resource for resource in live}
    wanted = dict(desired.get("Resources") or {})
    running_now = dict((template or {}).get("Resources") or {})
    rows: list[PropertyRow] = []
    for logical_id in list(wanted) + [i for i in running_now if i not in wanted]:
        in_config, in_stack = wanted.get(logical_id), running_now.get(logical_id)
        resource = by_id.get(logical_id)
        if in_config is None or in_stack is None or resource is None or resource.problem:
            where = "exists" if resource is not None and not resource.problem else "(none)"
            rows.append(PropertyRow(
                logical_id, "(resource)", "exists" if in_config else "(none)",
                "exists" if in_stack else "(none)", where,
            ))  # fmt: skip
            if in_config is None or in_stack is None:
                continue
        config = flatten(resolve(in_config.get("Properties") or {}, by_id))
        stack = flatten(resolve(in_stack.get("Properties") or {}, by_id))
        running = flatten(resource.properties) if resource and resource.properties else {}
        for path in list(config) + [p for p in stack if p not in config]:
            value = stack.get(path, config.get(path))
            read = resource is not None and _readable(path, value, resource)
            rows.append(PropertyRow(
                logical_id, path, config.get(path), stack.get(path),
                running.get(path) if read else NOT_READ,
            ))  # fmt: skip
    return rows
