"""A pair's stack template, built from the config alone: what each kind of pair gets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from console.config import Config, load_config
from console.errors import ConfigError
from console.stacks.refs import StackRefs, zone_for
from console.stacks.template import build_template, render, stack_name

CONFIG = """\
[[clusters]]
name = "staging"
region = "us-east-1"
stack = {{ health_interval = "10s", healthy = 3, deregistration_delay = "45s" }}

[[clusters]]
name = "prod1"
region = "us-east-1"
protected = true

[[projects]]
name = "storefront"
repository = "https://example.invalid/storefront"
dns = "www.{{cluster}}.example.internal"

[projects.clusters.staging]
target_groups = ["storefront-staging"]
launch = {{ instance_type = "t3.small", subnet = "staging-app-a", key_name = "deploy-staging", \
security_groups = ["staging-web"], instance_profile = "storefront" }}
{stack}

[projects.clusters.prod1]
classic_elbs = ["storefront-prod1"]
launch = {{ instance_type = "m5.large", subnet = "prod1-app-a" }}
stack = {{ health_path = "/ready", deregistration_delay = "0s", port = 8080 }}
desired = 4
{world}
"""
REFS = StackRefs(
    vpc_id="vpc-1",
    subnet_ids=("subnet-a", "subnet-b"),
    instance_subnet_id="subnet-a",
    security_group_ids=("sg-web",),
    hosted_zone_id="Z123",
    image_id="ami-1",
)


def config(tmp_path: Path, stack: str = "stack = true", world: str = "") -> Config:
    path = tmp_path / "stacks.toml"
    path.write_text(CONFIG.format(stack=stack, world=world))
    return load_config(path)


def test_an_alb_pair_gets_its_load_balancer_listener_target_group_and_record(
    tmp_path: Path,
) -> None:
    template = build_template(config(tmp_path), "storefront", "staging", REFS)
    resources = template["Resources"]
    assert stack_name("storefront", "staging") == "dc-storefront-staging"
    assert "storefront in staging" in template["Description"]
    assert set(resources) == {
        "SecurityGroup", "LoadBalancer", "Listener", "TargetGroup", "LaunchTemplate", "DnsRecord",
    }  # fmt: skip
    balancer, group = resources["LoadBalancer"], resources["TargetGroup"]["Properties"]
    assert balancer["Type"] == "AWS::ElasticLoadBalancingV2::LoadBalancer"
    assert balancer["Properties"]["Name"] == group["Name"] == "storefront-staging"
    assert balancer["Properties"]["Scheme"] == "internal"  # staging is not protected
    assert balancer["Properties"]["Subnets"] == ["subnet-a", "subnet-b"]
    # The cluster's defaults (`stack = true` takes them), the others StackSettings' own.
    assert (
        group["HealthCheckPath"], group["HealthCheckIntervalSeconds"],
        group["HealthCheckTimeoutSeconds"], group["HealthyThresholdCount"],
        group["UnhealthyThresholdCount"], group["Port"],
    ) == ("/health", 10, 5, 3, 2, 80)  # fmt: skip
    assert group["TargetGroupAttributes"] == [
        {"Key": "deregistration_delay.timeout_seconds", "Value": "45"}
    ]
    listener = resources["Listener"]["Properties"]
    assert listener["LoadBalancerArn"] == {"Ref": "LoadBalancer"}
    assert listener["DefaultActions"][0]["TargetGroupArn"] == {"Ref": "TargetGroup"}
    record = resources["DnsRecord"]["Properties"]
    assert (record["Name"], record["Type"], record["TTL"], record["HostedZoneId"]) == (
        "www.staging.example.internal.", "CNAME", "60", "Z123",
    )  # fmt: skip
    assert record["ResourceRecords"] == [{"Fn::GetAtt": ["LoadBalancer", "DNSName"]}]
    data = resources["LaunchTemplate"]["Properties"]["LaunchTemplateData"]
    assert data["ImageId"] == "ami-1" and data["InstanceType"] == "t3.small"
    assert data["SecurityGroupIds"] == ["sg-web"]
    assert data["IamInstanceProfile"] == {"Name": "storefront"}
    tags = {t["Key"]: t["Value"] for t in group["Tags"]}
    assert tags == {
        "Project": "storefront",
        "Environment": "staging",
        "ManagedBy": "deploy-console",
    }
    assert set(template["Outputs"]) >= {"LoadBalancerDns", "TargetGroupArn", "DnsName"}
    # Readable, and the same text every time (a stored template diffs cleanly).
    assert json.loads(render(template)) == template
    assert render(template) == render(
        build_template(config(tmp_path), "storefront", "staging", REFS)
    )


def test_a_classic_pair_gets_a_classic_elb_with_its_health_check_and_draining(
    tmp_path: Path,
) -> None:
    template = build_template(config(tmp_path), "storefront", "prod1", REFS)
    resources = template["Resources"]
    assert "TargetGroup" not in resources and "Listener" not in resources
    balancer = resources["LoadBalancer"]
    assert balancer["Type"] == "AWS::ElasticLoadBalancing::LoadBalancer"
    properties = balancer["Properties"]
    assert properties["LoadBalancerName"] == "storefront-prod1"
    assert properties["Scheme"] == "internet-facing"  # production
    assert properties["HealthCheck"] == {
        "Target": "HTTP:8080/ready", "Interval": "10", "Timeout": "5",
        "HealthyThreshold": "2", "UnhealthyThreshold": "2",
    }  # fmt: skip
    # A delay of 0 is draining off (AWS takes a timeout of 1 s at least).
    assert properties["ConnectionDrainingPolicy"] == {"Enabled": False, "Timeout": 1}
    assert properties["Listeners"][0]["InstancePort"] == "8080"
    assert "Group" not in resources


def test_a_group_pair_gets_an_auto_scaling_group_at_its_desired_count(tmp_path: Path) -> None:
    stack = "stack = { group = true }\ndesired = 3"
    resources = build_template(config(tmp_path, stack), "storefront", "staging", REFS)["Resources"]
    group = resources["Group"]["Properties"]
    assert resources["Group"]["Type"] == "AWS::AutoScaling::AutoScalingGroup"
    assert (group["DesiredCapacity"], group["MinSize"], group["MaxSize"]) == ("3", "1", "6")
    assert group["TargetGroupARNs"] == [{"Ref": "TargetGroup"}]
    assert group["LaunchTemplate"]["LaunchTemplateId"] == {"Ref": "LaunchTemplate"}
    assert group["VPCZoneIdentifier"] == ["subnet-a"]
    assert all(tag["PropagateAtLaunch"] for tag in group["Tags"])


def test_load_balancers_and_records_are_retained_the_rest_is_not(tmp_path: Path) -> None:
    for cluster in ("staging", "prod1"):
        resources = build_template(config(tmp_path), "storefront", cluster, REFS)["Resources"]
        kept = {
            logical_id
            for logical_id, resource in resources.items()
            if resource.get("DeletionPolicy") == resource.get("UpdateReplacePolicy") == "Retain"
        }
        assert kept == {"LoadBalancer", "DnsRecord"}


def test_the_worlds_tuning_applies_to_every_stack(tmp_path: Path) -> None:
    """[world]'s load balancer tuning overrides the stacks' (the world builds them from the
    same file): a timeout not shorter than the new interval becomes interval - 1."""
    world = (
        "[world]\nhealth_check_interval_seconds = 5\nhealthy_threshold = 2\n"
        "deregistration_delay_seconds = 1\n"
        '[world.projects.storefront]\nversions = ["1.0"]\n'
    )
    tuned = config(tmp_path, world=world)
    group = build_template(tuned, "storefront", "staging", REFS)["Resources"]["TargetGroup"]
    properties: dict[str, Any] = group["Properties"]
    assert (properties["HealthCheckIntervalSeconds"], properties["HealthCheckTimeoutSeconds"]) == (
        5, 4,
    )  # fmt: skip
    assert properties["HealthyThresholdCount"] == 2
    assert properties["TargetGroupAttributes"][0]["Value"] == "1"


def test_a_pair_without_a_stack_or_a_zone(tmp_path: Path) -> None:
    plain = config(tmp_path, stack="")
    with pytest.raises(ConfigError, match="storefront in staging has no stack"):
        build_template(plain, "storefront", "staging", REFS)
    # No hosted zone found for its name: no record (resolve_refs says why first).
    no_zone = StackRefs("vpc-1", ("subnet-a",), "subnet-a")
    resources = build_template(config(tmp_path), "storefront", "staging", no_zone)["Resources"]
    assert "DnsRecord" not in resources and "ImageId" not in str(resources["LaunchTemplate"])
    assert zone_for("www.staging.example.internal", {"example.internal": "Z1"}) == "Z1"
    zones = {"example.internal": "Z1", "staging.example.internal": "Z2", "other.internal": "Z3"}
    assert zone_for("WWW.staging.example.internal.", zones) == "Z2"
    assert zone_for("www.example.com", zones) is None


@pytest.mark.parametrize(
    ("stack", "expected"),
    [
        ('stack = { health_timeout = "10s" }', "stack.health_timeout: the health check timeout"),
        ('stack = { health_interval = "2s" }', "stack.health_interval: must be from 5s to 300s"),
        ("stack = { helthy = 3 }", "stack.helthy: unknown key (did you mean healthy?)"),
        ('stack = { health_path = "health" }', "stack.health_path: must be a path starting"),
        ('stack = "yes"', "stack: must be a table, not a string"),
        (
            'stack = true\nclassic_elbs = ["legacy"]',
            "stack: a stack builds one load balancer",
        ),
    ],
)
def test_a_bad_stack_setting_is_one_line_naming_its_file_and_line(
    tmp_path: Path, stack: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        config(tmp_path, stack)
    message = str(raised.value)
    assert "\n" not in message
    line = CONFIG[: CONFIG.index("{stack}")].count("\n") + 1  # the pair's `stack` line
    assert message.startswith(f"{tmp_path / 'stacks.toml'}:{line}: "), message
    assert f"projects[0].clusters.staging.{expected}" in message, message
