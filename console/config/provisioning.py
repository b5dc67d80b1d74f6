"""Provisioning settings: a pair's stack, DNS record and desired count, and the [dns] zones."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from console.config.reader import Table

__all__ = [
    "DnsSettings",
    "StackSettings",
    "check_dns_name",
    "desired_count",
    "pair_dns_name",
    "parse_dns",
    "parse_pair_stack",
    "parse_stack",
    "world_tuned",
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
    # The load balancer's subnets by Name tag (empty: every subnet of the launch subnet's VPC).
    subnets: tuple[str, ...] = ()


@dataclass(frozen=True)
class DnsSettings:
    """[dns]: the hosted zones the console reads records in (else found by name), cached."""

    zones: tuple[str, ...] = ()
    # How long a zone list (name -> id) is trusted before it is read again.
    zone_cache_seconds: float = 3600.0


def parse_stack(table: Table, base: StackSettings | None = None) -> StackSettings:
    """A `stack = {...}` table: each key it leaves out is `base`'s (a cluster's defaults)."""
    base = base or StackSettings()
    path = table.string("health_path", default=base.health_path)
    if not path.startswith("/"):
        table.fail(f"must be a path starting with /, not {path!r}", "health_path")
    settings = StackSettings(
        health_path=path,
        health_interval_seconds=table.seconds(
            "health_interval", base.health_interval_seconds, timedelta(seconds=300),
            "5s, 10s, 30s", 5.0, "must be from 5s to 300s (AWS's range), not {text}",
        ),
        health_timeout_seconds=table.seconds(
            "health_timeout", base.health_timeout_seconds, timedelta(seconds=120),
            "2s, 5s", 2.0, "must be from 2s to 120s (AWS's range), not {text}",
        ),
        healthy_threshold=table.integer("healthy", base.healthy_threshold, 2, 10),
        unhealthy_threshold=table.integer("unhealthy", base.unhealthy_threshold, 2, 10),
        deregistration_delay_seconds=table.seconds(
            "deregistration_delay", base.deregistration_delay_seconds,
            timedelta(seconds=3600), "0s, 30s, 5m",
        ),
        port=table.integer("port", base.port, 1, 65535),
        group=table.boolean("group", base.group),
        subnets=table.strings("subnets") or base.subnets,
    )  # fmt: skip
    if settings.health_timeout_seconds >= settings.health_interval_seconds:
        # AWS refuses a health check that times out no sooner than the next one starts.
        key = "health_timeout" if "health_timeout" in table.data else "health_interval"
        table.fail(
            f"the health check timeout ({settings.health_timeout_seconds:g}s) must be shorter "
            f"than its interval ({settings.health_interval_seconds:g}s)",
            key,
        )
    table.done()
    return settings


def parse_pair_stack(table: Table, base: StackSettings | None) -> StackSettings | None:
    """A pair's `stack`: absent or false, no stack; true, its cluster's defaults (`base`, else
    StackSettings()); a table, those defaults with the table's keys changed."""
    value: Any = table.data.get("stack")
    if value is None or value is False:
        table.read.add("stack")
        return None
    if value is True:
        table.read.add("stack")
        return base or StackSettings()
    sub = table.table("stack")
    assert sub is not None
    return parse_stack(sub, base)


def world_tuned(
    stack: StackSettings, interval: int | None, healthy: int | None, delay: int | None
) -> StackSettings:
    """A stack's settings with the embedded world's load balancer tuning ([world]
    health_check_interval_seconds, healthy_threshold, deregistration_delay_seconds) applied:
    the world builds its stacks from the same config, so the console plans what it built. A
    timeout not shorter than the new interval becomes interval - 1 (AWS's rule)."""
    changes: dict[str, Any] = {}
    if interval is not None:
        changes["health_interval_seconds"] = float(interval)
        changes["health_timeout_seconds"] = min(stack.health_timeout_seconds, interval - 1.0)
    if healthy is not None:
        changes["healthy_threshold"] = healthy
    if delay is not None:
        changes["deregistration_delay_seconds"] = float(delay)
    return dataclasses.replace(stack, **changes) if changes else stack


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
