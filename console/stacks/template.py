"""A pair's CloudFormation template, built from the config and its refs (a pure function)."""

from __future__ import annotations

import json
from typing import Any

from console.config import ClusterConfig, Config, LaunchSettings, ProjectClusterConfig
from console.config.provisioning import StackSettings
from console.stacks.refs import StackRefs, pair_settings

__all__ = [
    "MANAGED_BY",
    "RETAINED",
    "build_template",
    "render",
    "stack_name",
    "stack_tags",
]

MANAGED_BY = "deploy-console"
# Logical ids kept when the stack is deleted or the resource replaced: what people reach.
RETAINED = ("LoadBalancer", "DnsRecord")
RECORD_TTL = 60
HEALTHY_CODES = "200"
# A group never goes below one instance, and may grow to twice its size (room for `scale`).
GROUP_HEADROOM = 2


def stack_name(project: str, cluster: str) -> str:
    """The stack's name: "dc-storefront-staging" (dc: deploy-console)."""
    return f"dc-{project}-{cluster}"


def stack_tags(config: Config, project: str, cluster: str) -> list[dict[str, str]]:
    """The tags on the stack and on each of its resources that takes tags."""
    return [
        {"Key": config.tags.project, "Value": project},
        {"Key": config.tags.environment, "Value": cluster},
        {"Key": "ManagedBy", "Value": MANAGED_BY},
    ]


def render(template: dict[str, Any]) -> str:
    """The template as the text CloudFormation is given (and a person reads)."""
    return json.dumps(template, indent=2)


def build_template(
    config: Config, project_name: str, cluster_name: str, refs: StackRefs
) -> dict[str, Any]:
    """The template of the pair's stack: its load balancer (an ALB with listener and target
    group, or a classic ELB), the load balancer's security group, the launch template, the
    DNS record and, for `group = true`, the Auto Scaling group. ConfigError when the pair has
    no stack settings or no launch settings."""
    settings, launch = pair_settings(config, project_name, cluster_name)
    stack = settings.stack
    assert stack is not None
    cluster = config.cluster(cluster_name)
    tags = stack_tags(config, project_name, cluster_name)
    name = stack_name(project_name, cluster_name)
    resources: dict[str, Any] = {
        "SecurityGroup": _security_group(name, project_name, cluster, stack, refs, tags)
    }
    outputs: dict[str, Any] = {}
    if settings.target_groups:
        resources.update(_application(settings.target_groups[0], cluster, stack, refs, tags))
        outputs["TargetGroupArn"] = _output("the target group", {"Ref": "TargetGroup"})
        outputs["LoadBalancerArn"] = _output("the load balancer", {"Ref": "LoadBalancer"})
    else:
        resources["LoadBalancer"] = _classic(settings.classic_elbs[0], cluster, stack, refs, tags)
        outputs["LoadBalancerName"] = _output("the load balancer", {"Ref": "LoadBalancer"})
    outputs["LoadBalancerDns"] = _output(
        "the load balancer's DNS name", {"Fn::GetAtt": ["LoadBalancer", "DNSName"]}
    )
    resources["LaunchTemplate"] = _launch_template(name, launch, refs, tags)
    outputs["LaunchTemplateId"] = _output("the launch template", {"Ref": "LaunchTemplate"})
    outputs["SecurityGroupId"] = _output("the load balancer's group", {"Ref": "SecurityGroup"})
    if settings.dns and refs.hosted_zone_id:
        resources["DnsRecord"] = _record(settings.dns, refs.hosted_zone_id)
        outputs["DnsName"] = _output("the pair's DNS name", settings.dns)
    if stack.group:
        resources["Group"] = _group(name, settings, stack, refs, tags)
        outputs["GroupName"] = _output("the Auto Scaling group", {"Ref": "Group"})
    for logical_id in RETAINED:
        if logical_id in resources:
            resources[logical_id]["DeletionPolicy"] = "Retain"
            resources[logical_id]["UpdateReplacePolicy"] = "Retain"
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": (
            f"{project_name} in {cluster_name}: load balancer, security group, launch template "
            f"and DNS record, built by deploy-console from its config (do not edit by hand)"
        ),
        "Resources": resources,
        "Outputs": outputs,
    }


def _output(description: str, value: Any) -> dict[str, Any]:
    return {"Description": description, "Value": value}


def _seconds(value: float) -> int:
    return round(value)


def _scheme(cluster: ClusterConfig) -> str:
    """Production's load balancers face the internet; the others stay inside the VPC."""
    return "internet-facing" if cluster.protected else "internal"


def _security_group(
    name: str,
    project: str,
    cluster: ClusterConfig,
    stack: StackSettings,
    refs: StackRefs,
    tags: list[dict[str, str]],
) -> dict[str, Any]:
    return {
        "Type": "AWS::EC2::SecurityGroup",
        "Properties": {
            "GroupName": f"{name}-lb",
            "GroupDescription": f"The load balancer of {project} in {cluster.name}",
            "VpcId": refs.vpc_id,
            "SecurityGroupIngress": [
                {
                    "IpProtocol": "tcp",
                    "FromPort": stack.port,
                    "ToPort": stack.port,
                    "CidrIp": "0.0.0.0/0",
                }
            ],
            "Tags": tags,
        },
    }


def _application(
    name: str,
    cluster: ClusterConfig,
    stack: StackSettings,
    refs: StackRefs,
    tags: list[dict[str, str]],
) -> dict[str, Any]:
    """An ALB, its listener and its target group: the group and the ALB share the name."""
    return {
        "LoadBalancer": {
            "Type": "AWS::ElasticLoadBalancingV2::LoadBalancer",
            "Properties": {
                "Name": name,
                "Type": "application",
                "Scheme": _scheme(cluster),
                "Subnets": list(refs.subnet_ids),
                "SecurityGroups": [{"Ref": "SecurityGroup"}],
                "Tags": tags,
            },
        },
        "TargetGroup": {
            "Type": "AWS::ElasticLoadBalancingV2::TargetGroup",
            "Properties": {
                "Name": name,
                "Protocol": "HTTP",
                "Port": stack.port,
                "VpcId": refs.vpc_id,
                "TargetType": "instance",
                "HealthCheckProtocol": "HTTP",
                "HealthCheckPath": stack.health_path,
                "HealthCheckIntervalSeconds": _seconds(stack.health_interval_seconds),
                "HealthCheckTimeoutSeconds": _seconds(stack.health_timeout_seconds),
                "HealthyThresholdCount": stack.healthy_threshold,
                "UnhealthyThresholdCount": stack.unhealthy_threshold,
                "Matcher": {"HttpCode": HEALTHY_CODES},
                "TargetGroupAttributes": [
                    {
                        "Key": "deregistration_delay.timeout_seconds",
                        "Value": str(_seconds(stack.deregistration_delay_seconds)),
                    }
                ],
                "Tags": tags,
            },
        },
        "Listener": {
            "Type": "AWS::ElasticLoadBalancingV2::Listener",
            "Properties": {
                "LoadBalancerArn": {"Ref": "LoadBalancer"},
                "Protocol": "HTTP",
                "Port": stack.port,
                "DefaultActions": [{"Type": "forward", "TargetGroupArn": {"Ref": "TargetGroup"}}],
            },
        },
    }


def _classic(
    name: str,
    cluster: ClusterConfig,
    stack: StackSettings,
    refs: StackRefs,
    tags: list[dict[str, str]],
) -> dict[str, Any]:
    """A classic ELB with its health check and connection draining (a delay of 0 is off:
    AWS takes a draining timeout of 1-3,600 s)."""
    delay = _seconds(stack.deregistration_delay_seconds)
    return {
        "Type": "AWS::ElasticLoadBalancing::LoadBalancer",
        "Properties": {
            "LoadBalancerName": name,
            "Scheme": _scheme(cluster),
            "Subnets": list(refs.subnet_ids),
            "SecurityGroups": [{"Ref": "SecurityGroup"}],
            "Listeners": [
                {
                    "Protocol": "HTTP",
                    "LoadBalancerPort": str(stack.port),
                    "InstanceProtocol": "HTTP",
                    "InstancePort": str(stack.port),
                }
            ],
            "HealthCheck": {
                "Target": f"HTTP:{stack.port}{stack.health_path}",
                "Interval": str(_seconds(stack.health_interval_seconds)),
                "Timeout": str(_seconds(stack.health_timeout_seconds)),
                "HealthyThreshold": str(stack.healthy_threshold),
                "UnhealthyThreshold": str(stack.unhealthy_threshold),
            },
            "ConnectionDrainingPolicy": {"Enabled": delay > 0, "Timeout": max(1, delay)},
            "Tags": tags,
        },
    }


def _launch_template(
    name: str, launch: LaunchSettings, refs: StackRefs, tags: list[dict[str, str]]
) -> dict[str, Any]:
    data: dict[str, Any] = {"InstanceType": launch.instance_type}
    if refs.image_id:
        data["ImageId"] = refs.image_id
    if launch.key_name:
        data["KeyName"] = launch.key_name
    if launch.instance_profile:
        data["IamInstanceProfile"] = {"Name": launch.instance_profile}
    if refs.security_group_ids:
        data["SecurityGroupIds"] = list(refs.security_group_ids)
    data["TagSpecifications"] = [{"ResourceType": "instance", "Tags": tags}]
    return {
        "Type": "AWS::EC2::LaunchTemplate",
        "Properties": {"LaunchTemplateName": name, "LaunchTemplateData": data},
    }


def _record(dns_name: str, zone_id: str) -> dict[str, Any]:
    return {
        "Type": "AWS::Route53::RecordSet",
        "Properties": {
            "HostedZoneId": zone_id,
            "Name": f"{dns_name}.",
            "Type": "CNAME",
            "TTL": str(RECORD_TTL),
            "ResourceRecords": [{"Fn::GetAtt": ["LoadBalancer", "DNSName"]}],
        },
    }


def _group(
    name: str,
    settings: ProjectClusterConfig,
    stack: StackSettings,
    refs: StackRefs,
    tags: list[dict[str, str]],
) -> dict[str, Any]:
    """The Auto Scaling group on the launch template, in the load balancer, at the pair's
    desired count (1 when the config gives none)."""
    desired = settings.desired if settings.desired is not None else 1
    properties: dict[str, Any] = {
        "AutoScalingGroupName": name,
        "LaunchTemplate": {
            "LaunchTemplateId": {"Ref": "LaunchTemplate"},
            "Version": {"Fn::GetAtt": ["LaunchTemplate", "LatestVersionNumber"]},
        },
        "MinSize": str(min(1, desired)),
        "MaxSize": str(max(1, desired * GROUP_HEADROOM)),
        "DesiredCapacity": str(desired),
        "VPCZoneIdentifier": [refs.instance_subnet_id],
        "HealthCheckType": "ELB",
        "HealthCheckGracePeriod": _seconds(
            stack.health_interval_seconds * stack.healthy_threshold + 60
        ),
        "Tags": [{**tag, "PropagateAtLaunch": True} for tag in tags],
    }
    if settings.target_groups:
        properties["TargetGroupARNs"] = [{"Ref": "TargetGroup"}]
    else:
        properties["LoadBalancerNames"] = [{"Ref": "LoadBalancer"}]
    return {"Type": "AWS::AutoScaling::AutoScalingGroup", "Properties": properties}
