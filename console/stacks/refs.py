"""What a pair's stack template names outside itself (VPC, subnets, groups, zone, image)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from console.aws.gateway import AwsGateway
from console.config import Config, LaunchSettings, ProjectClusterConfig
from console.errors import AwsError, ConfigError

__all__ = ["StackRefs", "pair_settings", "resolve_refs", "zone_for"]

ZONE_PREFIX = "/hostedzone/"


@dataclass(frozen=True)
class StackRefs:
    """The ids a stack's template names but does not own; a template is a pure function of
    the config and these."""

    vpc_id: str
    # The load balancer's subnets (the stack's `subnets`, else every subnet of the launch
    # subnet's VPC), in the order of their Name tags.
    subnet_ids: tuple[str, ...]
    # The launch settings' subnet (where a group launches) and security groups (the instances').
    instance_subnet_id: str
    security_group_ids: tuple[str, ...] = ()
    # The Route 53 zone the pair's DNS record goes in (bare id, no /hostedzone/); None without
    # a `dns` name.
    hosted_zone_id: str | None = None
    # The image the launch template starts from: what the pair's newest running instance
    # runs (None when none runs: the template then names no image).
    image_id: str | None = None


def pair_settings(
    config: Config, project: str, cluster: str
) -> tuple[ProjectClusterConfig, LaunchSettings]:
    """The pair's settings and launch settings; ConfigError when it has no stack to build."""
    settings = config.project(project).clusters.get(cluster)
    if settings is None:
        raise ConfigError(f"project {project!r} is not configured in cluster {cluster!r}")
    if settings.stack is None:
        raise ConfigError(
            f"{project} in {cluster} has no stack: add `stack = true` to "
            f"[projects.clusters.{cluster}] of {project} to let the console own it"
        )
    if settings.launch is None:
        raise ConfigError(f"{project} in {cluster}: a stack needs the pair's launch settings")
    return settings, settings.launch


def zone_for(name: str, zones: dict[str, str]) -> str | None:
    """The id of the zone (name -> id, names without the trailing dot) that holds `name`:
    the longest zone name it ends with."""
    name = name.lower().rstrip(".")
    holding = [zone for zone in zones if name == zone.lower() or name.endswith("." + zone.lower())]
    if not holding:
        return None
    return zones[max(holding, key=len)]


async def resolve_refs(
    gateway: AwsGateway, config: Config, project: str, cluster: str
) -> StackRefs:
    """Read the pair's refs from AWS: about five calls (subnets twice, security groups, hosted
    zones, instances)."""
    settings, launch = pair_settings(config, project, cluster)
    assert settings.stack is not None
    subnet = await _one_subnet(gateway, launch.subnet, f"{project} in {cluster}")
    vpc_id = str(subnet["VpcId"])
    named = await _vpc_subnets(gateway, vpc_id)
    wanted = settings.stack.subnets
    if wanted:
        missing = [name for name in wanted if name not in named]
        if missing:
            raise AwsError(f"{project} in {cluster}: no subnet named {missing[0]!r} in {vpc_id}")
        subnet_ids = tuple(named[name] for name in wanted)
    else:
        subnet_ids = tuple(named[name] for name in sorted(named))
    groups = await _security_groups(gateway, vpc_id, launch.security_groups)
    zone = await _hosted_zone(gateway, config, settings.dns) if settings.dns else None
    image = await _running_image(gateway, config, project, cluster)
    return StackRefs(
        vpc_id=vpc_id,
        subnet_ids=subnet_ids,
        instance_subnet_id=str(subnet["SubnetId"]),
        security_group_ids=groups,
        hosted_zone_id=zone,
        image_id=image,
    )


def _name_tag(resource: dict[str, Any]) -> str | None:
    for tag in resource.get("Tags", []):
        if tag.get("Key") == "Name":
            return str(tag.get("Value"))
    return None


async def _one_subnet(gateway: AwsGateway, name: str, pair: str) -> dict[str, Any]:
    """The launch subnet, by id ("subnet-...") or Name tag, as launch settings give it."""
    key = "subnet-id" if name.startswith("subnet-") else "tag:Name"
    response = await gateway.call(
        "ec2", "describe_subnets", Filters=[{"Name": key, "Values": [name]}]
    )
    found: list[dict[str, Any]] = response.get("Subnets", [])
    if not found:
        raise AwsError(f"{pair}: no subnet named {name!r} (launch.subnet) in {gateway.region}")
    return found[0]


async def _vpc_subnets(gateway: AwsGateway, vpc_id: str) -> dict[str, str]:
    """The VPC's subnets by Name tag (an unnamed one by its id)."""
    response = await gateway.call(
        "ec2", "describe_subnets", Filters=[{"Name": "vpc-id", "Values": [vpc_id]}]
    )
    return {
        _name_tag(subnet) or str(subnet["SubnetId"]): str(subnet["SubnetId"])
        for subnet in response.get("Subnets", [])
    }


async def _security_groups(
    gateway: AwsGateway, vpc_id: str, names: tuple[str, ...]
) -> tuple[str, ...]:
    """The launch settings' groups (ids "sg-...", or names in the VPC) as ids, in order."""
    found: dict[str, str] = {}
    for key, wanted in (
        ("group-id", [n for n in names if n.startswith("sg-")]),
        ("group-name", [n for n in names if not n.startswith("sg-")]),
    ):
        if not wanted:
            continue
        response = await gateway.call(
            "ec2",
            "describe_security_groups",
            Filters=[{"Name": "vpc-id", "Values": [vpc_id]}, {"Name": key, "Values": wanted}],
        )
        for group in response.get("SecurityGroups", []):
            found[str(group["GroupId"])] = found[str(group["GroupName"])] = str(group["GroupId"])
    missing = [name for name in names if name not in found]
    if missing:
        raise AwsError(f"no security group {missing[0]!r} in {vpc_id}")
    return tuple(found[name] for name in names)


async def _hosted_zone(gateway: AwsGateway, config: Config, record: str) -> str:
    """The zone holding `record`: among [dns] zones when the config lists them, else among
    every hosted zone of the account (found by name)."""
    zones: dict[str, str] = {}
    if config.dns.zones:
        for zone in config.dns.zones:
            response = await gateway.call(
                "route53", "list_hosted_zones_by_name", DNSName=zone, MaxItems="1"
            )
            for found in response.get("HostedZones", []):
                if str(found["Name"]).rstrip(".").lower() == zone.lower():
                    zones[zone] = str(found["Id"]).removeprefix(ZONE_PREFIX)
    else:
        for found in await gateway.paginate("route53", "list_hosted_zones", "HostedZones", 100):
            zones[str(found["Name"]).rstrip(".")] = str(found["Id"]).removeprefix(ZONE_PREFIX)
    zone_id = zone_for(record, zones)
    if zone_id is None:
        where = "in [dns] zones" if config.dns.zones else "among the account's hosted zones"
        raise AwsError(f"no hosted zone for {record} {where}")
    return zone_id


async def _running_image(
    gateway: AwsGateway, config: Config, project: str, cluster: str
) -> str | None:
    instances = await gateway.describe_instances(
        [
            {"Name": f"tag:{config.tags.project}", "Values": [project]},
            {"Name": f"tag:{config.tags.environment}", "Values": [cluster]},
            {"Name": "instance-state-name", "Values": ["pending", "running"]},
        ]
    )
    if not instances:
        return None
    newest = max(instances, key=lambda i: (i["LaunchTime"], i["InstanceId"]))
    return str(newest["ImageId"])
