"""The world's load balancers: a cluster's classic ELBs and target groups, seeded through boto3."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from console.config import ClusterConfig, ProjectConfig, WorldConfig
from console.world.network import Network

# Load balancer settings per cluster: tight in staging, AWS defaults in production.
TARGET_GROUP_SETTINGS = {
    "staging": {"interval": 10, "healthy": 2, "unhealthy": 2, "delay": 30},
    "qaprod1": {"interval": 15, "healthy": 3, "unhealthy": 2, "delay": 60},
}
PRODUCTION_TARGET_GROUP = {"interval": 30, "healthy": 5, "unhealthy": 2, "delay": 300}
CLASSIC_SETTINGS = {
    "staging": {"interval": 10, "healthy": 3, "unhealthy": 2, "draining": 30},
    "qaprod1": {"interval": 15, "healthy": 3, "unhealthy": 2, "draining": 60},
}
PRODUCTION_CLASSIC = {"interval": 30, "healthy": 10, "unhealthy": 2, "draining": 300}
HEALTH_CHECK_TIMEOUT = 5
HEALTH_PATH = "/health"


def seed_load_balancers(
    client: Callable[[str, str], Any],
    world: WorldConfig,
    project: ProjectConfig,
    cluster: ClusterConfig,
    network: Network,
    instance_ids: list[str],
) -> tuple[str, int]:
    """The project's load balancers in the cluster, with the instances registered: the DNS name
    of the first (empty without any) and how many were made."""
    settings = project.clusters[cluster.name]
    names: list[str] = []
    if settings.classic_elbs:
        elb = client("elb", cluster.region)
        tuning = _tuning(world, CLASSIC_SETTINGS.get(cluster.name, PRODUCTION_CLASSIC), "draining")
        for name in settings.classic_elbs:
            names.append(_seed_classic(elb, name, project, cluster, network, tuning, instance_ids))
    if settings.target_groups:
        elbv2 = client("elbv2", cluster.region)
        defaults = TARGET_GROUP_SETTINGS.get(cluster.name, PRODUCTION_TARGET_GROUP)
        tuning = _tuning(world, defaults, "delay")
        for name in settings.target_groups:
            names.append(_seed_target_group(elbv2, name, cluster, network, tuning, instance_ids))
    return (names[0] if names else ""), len(names)


def _seed_classic(
    elb: Any,
    name: str,
    project: ProjectConfig,
    cluster: ClusterConfig,
    network: Network,
    tuning: dict[str, int],
    instance_ids: list[str],
) -> str:
    """A classic ELB with its health check and connection draining; returns its DNS name."""
    created = elb.create_load_balancer(
        LoadBalancerName=name,
        Listeners=[
            {
                "Protocol": "HTTP",
                "LoadBalancerPort": 80,
                "InstanceProtocol": "HTTP",
                "InstancePort": 80,
            }
        ],
        Subnets=list(network.subnet_ids.values()),
        SecurityGroups=[network.security_groups[f"{cluster.name}-web"]],
        Tags=[
            {"Key": "Project", "Value": project.name},
            {"Key": "Environment", "Value": cluster.name},
        ],
    )
    elb.configure_health_check(
        LoadBalancerName=name,
        HealthCheck={
            "Target": f"HTTP:80{HEALTH_PATH}",
            "Interval": tuning["interval"],
            "Timeout": tuning["timeout"],
            "UnhealthyThreshold": tuning["unhealthy"],
            "HealthyThreshold": tuning["healthy"],
        },
    )
    elb.modify_load_balancer_attributes(
        LoadBalancerName=name,
        LoadBalancerAttributes={
            # AWS takes a timeout of 1-3,600 s: a delay of 0 is draining off.
            "ConnectionDraining": {
                "Enabled": tuning["draining"] > 0,
                "Timeout": max(1, tuning["draining"]),
            }
        },
    )
    if instance_ids:
        elb.register_instances_with_load_balancer(
            LoadBalancerName=name, Instances=[{"InstanceId": i} for i in instance_ids]
        )
    return str(created["DNSName"])


def _seed_target_group(
    elbv2: Any,
    name: str,
    cluster: ClusterConfig,
    network: Network,
    tuning: dict[str, int],
    instance_ids: list[str],
) -> str:
    """A target group behind an application load balancer of its own; returns the ALB's DNS
    name."""
    group_arn = elbv2.create_target_group(
        Name=name,
        Protocol="HTTP",
        Port=80,
        VpcId=network.vpc_id,
        HealthCheckProtocol="HTTP",
        HealthCheckPath=HEALTH_PATH,
        HealthCheckIntervalSeconds=tuning["interval"],
        HealthCheckTimeoutSeconds=tuning["timeout"],
        HealthyThresholdCount=tuning["healthy"],
        UnhealthyThresholdCount=tuning["unhealthy"],
        Matcher={"HttpCode": "200"},
        TargetType="instance",
    )["TargetGroups"][0]["TargetGroupArn"]
    elbv2.modify_target_group_attributes(
        TargetGroupArn=group_arn,
        Attributes=[{"Key": "deregistration_delay.timeout_seconds", "Value": str(tuning["delay"])}],
    )
    alb = elbv2.create_load_balancer(
        Name=f"{name}-alb"[:32],
        Subnets=list(network.subnet_ids.values()),
        SecurityGroups=[network.security_groups[f"{cluster.name}-web"]],
        Scheme="internet-facing" if cluster.protected else "internal",
        Type="application",
    )["LoadBalancers"][0]
    elbv2.create_listener(
        LoadBalancerArn=alb["LoadBalancerArn"],
        Protocol="HTTP",
        Port=80,
        DefaultActions=[{"Type": "forward", "TargetGroupArn": group_arn}],
    )
    if instance_ids:
        elbv2.register_targets(
            TargetGroupArn=group_arn, Targets=[{"Id": i, "Port": 80} for i in instance_ids]
        )
    return str(alb["DNSName"])


def _tuning(world: WorldConfig, defaults: dict[str, int], delay_key: str) -> dict[str, int]:
    """A cluster's load balancer settings with the world's overrides applied."""
    tuning = dict(defaults)
    if world.health_check_interval_seconds is not None:
        tuning["interval"] = world.health_check_interval_seconds
    if world.healthy_threshold is not None:
        tuning["healthy"] = world.healthy_threshold
    if world.deregistration_delay_seconds is not None:
        tuning[delay_key] = world.deregistration_delay_seconds
    # AWS refuses a health check timeout that is not shorter than its interval.
    tuning["timeout"] = min(HEALTH_CHECK_TIMEOUT, tuning["interval"] - 1)
    return tuning
