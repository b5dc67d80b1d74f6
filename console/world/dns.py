"""The world's Route 53 records changed by hand (`world dns NAME --points-to VALUE`), to show
a record that points elsewhere than its pair's load balancer."""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit

import boto3

from console.config import Config
from console.errors import ConsoleError

LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
TTL = 60


class WorldDnsError(ConsoleError):
    """A name no zone of the world holds, a load balancer it does not have, or a config that
    does not point at the world."""


def _session() -> Any:
    return boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing")


def _endpoint(config: Config) -> str:
    """The world's endpoint; refuses a config whose clusters are not all on a loopback world
    (this command never changes a real account's records)."""
    endpoints = {cluster.endpoint_url for cluster in config.clusters}
    for endpoint in endpoints:
        if endpoint is None or urlsplit(endpoint).hostname not in LOOPBACK:
            raise WorldDnsError(
                f"the config's clusters are not all on the embedded world ({endpoint or 'AWS'}"
                "): use the config `world`/`demo` wrote"
            )
    return str(sorted(endpoints, key=str)[0])


def _balancer_dns(config: Config, endpoint: str, name: str) -> str:
    """The DNS name of the world's load balancer `name`: a classic ELB, an ALB, or the ALB
    behind a target group of that name."""
    session = _session()
    for region in sorted({cluster.region for cluster in config.clusters}):
        elb = session.client("elb", region_name=region, endpoint_url=endpoint)
        for lb in elb.describe_load_balancers()["LoadBalancerDescriptions"]:
            if lb["LoadBalancerName"] == name:
                return str(lb["DNSName"])
        elbv2 = session.client("elbv2", region_name=region, endpoint_url=endpoint)
        albs = elbv2.describe_load_balancers()["LoadBalancers"]
        groups = elbv2.describe_target_groups()["TargetGroups"]
        arns = {
            arn for tg in groups if tg["TargetGroupName"] == name for arn in tg["LoadBalancerArns"]
        }
        for lb in albs:
            if lb["LoadBalancerName"] == name or lb["LoadBalancerArn"] in arns:
                return str(lb["DNSName"])
    raise WorldDnsError(f"the world has no load balancer or target group {name!r}")


def point_record(config: Config, name: str, value: str | None) -> str:
    """Points the world's record `name` at `value` (a DNS name, an IPv4 address, or the name
    of one of its load balancers or target groups), or deletes it (None); what it did."""
    endpoint = _endpoint(config)
    route53 = _session().client("route53", region_name="us-east-1", endpoint_url=endpoint)
    wanted = name.lower().rstrip(".")
    zones = route53.list_hosted_zones()["HostedZones"]
    holding = [
        z for z in zones
        if wanted == z["Name"].rstrip(".") or wanted.endswith("." + z["Name"].rstrip("."))
    ]  # fmt: skip
    if not holding:
        known = ", ".join(z["Name"].rstrip(".") for z in zones) or "none"
        raise WorldDnsError(f"no hosted zone of the world holds {name} (its zones: {known})")
    zone = max(holding, key=lambda z: len(z["Name"]))["Id"]
    existing = [
        r
        for r in route53.list_resource_record_sets(HostedZoneId=zone)["ResourceRecordSets"]
        if r["Name"].rstrip(".") == wanted and r["Type"] in ("CNAME", "A", "AAAA")
    ]
    changes = [{"Action": "DELETE", "ResourceRecordSet": r} for r in existing]
    if value is not None:
        target = value if "." in value else _balancer_dns(config, endpoint, value)
        kind = "A" if _is_ipv4(target) else "CNAME"
        record = {"Name": wanted, "Type": kind, "TTL": TTL, "ResourceRecords": [{"Value": target}]}
        changes.append({"Action": "CREATE", "ResourceRecordSet": record})
    elif not existing:
        raise WorldDnsError(f"the world has no record {wanted}")
    route53.change_resource_record_sets(HostedZoneId=zone, ChangeBatch={"Changes": changes})
    if value is None:
        return f"record {wanted} deleted"
    return f"record {wanted} is {kind} {target}"


def _is_ipv4(text: str) -> bool:
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True
