"""Provisioning settings: a pair's stack, DNS record and desired count, and the [dns] zones."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

from console.config.reader import Table

__all__ = [
    "DnsSettings",
    "StackSettings",
    "check_dns_name",
    "desired_count",
    "pair_dns_name",
    "parse_dns",
    "parse_stack",
]

# A DNS name as Route 53 takes it (no trailing dot needed), with {project} and {cluster} to fill.
DNS_PATTERN = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9_{}*-]+\.)*[A-Za-z0-9_{}-]+\.?$")
MAX_DESIRED = 500


@dataclass(frozen=True)
class StackSettings:
    """`stack = {...}` on a project's cluster: the console owns this pair's CloudFormation
    stack (load balancer, listener, target group, security group, launch template, DNS record),
    built from these values and the pair's load balancer names and launch settings."""

    # The health check the load balancer runs, and how long a leaving target drains.
    health_path: str = "/health"
    health_interval_seconds: float = 10.0
    health_timeout_seconds: float = 5.0
    healthy_threshold: int = 2
    unhealthy_threshold: int = 2
    deregistration_delay_seconds: float = 30.0
    # The port the instances serve on (and the listener's).
    port: int = 80
    # Backed by an Auto Scaling group (red/black between two groups) instead of bare instances.
    group: bool = False


@dataclass(frozen=True)
class DnsSettings:
    """[dns]: the hosted zones the console reads records in (else found by name), cached."""

    zones: tuple[str, ...] = ()
    # How long a zone list (name -> id) is trusted before it is read again.
    zone_cache_seconds: float = 3600.0


def parse_stack(table: Table) -> StackSettings:
    path = table.string("health_path", default=StackSettings.health_path)
    if not path.startswith("/"):
        table.fail(f"must be a path starting with /, not {path!r}", "health_path")
    settings = StackSettings(
        health_path=path,
        health_interval_seconds=table.seconds(
            "health_interval", StackSettings.health_interval_seconds, timedelta(seconds=300),
            "5s, 10s, 30s", 5.0, "must be from 5s to 300s (AWS's range), not {text}",
        ),
        health_timeout_seconds=table.seconds(
            "health_timeout", StackSettings.health_timeout_seconds, timedelta(seconds=120),
            "2s, 5s", 2.0, "must be from 2s to 120s (AWS's range), not {text}",
        ),
        healthy_threshold=table.integer("healthy", StackSettings.healthy_threshold, 2, 10),
        unhealthy_threshold=table.integer("unhealthy", StackSettings.unhealthy_threshold, 2, 10),
        deregistration_delay_seconds=table.seconds(
            "deregistration_delay", StackSettings.deregistration_delay_seconds,
            timedelta(seconds=3600), "0s, 30s, 5m",
        ),
        port=table.integer("port", StackSettings.port, 1, 65535),
        group=table.boolean("group", False),
    )  # fmt: skip
    table.done()
    return settings


def parse_dns(table: Table) -> DnsSettings:
    zones = table.strings("zones")
    for zone in zones:
        if not DNS_PATTERN.match(zone) or "{" in zone:
            table.fail(f"{zone!r} is not a DNS zone name", "zones")
    cache = table.seconds(
        "zone_cache", DnsSettings.zone_cache_seconds, timedelta(days=1), "10m, 1h", 60.0,
        "must be at least 1m, not {text}",
    )  # fmt: skip
    table.done()
    return DnsSettings(zones=tuple(zone.rstrip(".") for zone in zones), zone_cache_seconds=cache)


def check_dns_name(table: Table, key: str) -> str | None:
    """The DNS name at `key` (may hold {project} and {cluster}), checked."""
    name: str | None = table.string(key)
    if name is not None and not DNS_PATTERN.match(name):
        table.fail(f"{name!r} is not a DNS name", key)
    return name


def desired_count(table: Table) -> int | None:
    return table.optional_integer("desired", 0, MAX_DESIRED)


def pair_dns_name(template: str | None, project: str, cluster: str) -> str | None:
    """The pair's record name: the pair's own `dns`, else the project's with {project} and
    {cluster} filled in; lower case, without the trailing dot."""
    if not template:
        return None
    return template.replace("{project}", project).replace("{cluster}", cluster).lower().rstrip(".")
