"""The world's load balancers take time like AWS's: initial, healthy/unhealthy, draining, gone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from console.world.server import World
from tests.conftest import ROOT
from tests.console.config.test_config import one_line_error
from tests.waiting import wait_until

# A region the demo does not use: these tests add their own resources to the session world
# there and leave the demo fleet as it was.
REGION = "eu-west-1"
DRAIN_SECONDS = 2


@dataclass
class Sandbox:
    ec2: Any
    elbv2: Any
    elb: Any
    instances: list[str]
    group_arn: str
    classic: str


@pytest.fixture
def sandbox(world: World, request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    """Two running instances, a target group and a classic ELB that drain for 2 s."""
    suffix = request.node.name.replace("_", "-")[-20:].strip("-")
    ec2 = world.client("ec2", REGION)
    vpc = ec2.create_vpc(CidrBlock="10.99.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.99.0.0/24", AvailabilityZone=f"{REGION}a")[
        "Subnet"
    ]["SubnetId"]
    instances = [
        i["InstanceId"]
        for i in ec2.run_instances(ImageId="ami-12c6146b", MinCount=2, MaxCount=2, SubnetId=subnet)[
            "Instances"
        ]
    ]
    elbv2 = world.client("elbv2", REGION)
    group_arn = elbv2.create_target_group(
        Name=f"tg-{suffix}"[:32],
        Protocol="HTTP",
        Port=80,
        VpcId=vpc,
        HealthCheckIntervalSeconds=5,
        HealthyThresholdCount=2,
    )["TargetGroups"][0]["TargetGroupArn"]
    elbv2.modify_target_group_attributes(
        TargetGroupArn=group_arn,
        Attributes=[{"Key": "deregistration_delay.timeout_seconds", "Value": str(DRAIN_SECONDS)}],
    )
    elb = world.client("elb", REGION)
    classic = f"clb-{suffix}"[:32]
    elb.create_load_balancer(
        LoadBalancerName=classic,
        Listeners=[
            {
                "Protocol": "HTTP",
                "LoadBalancerPort": 80,
                "InstanceProtocol": "HTTP",
                "InstancePort": 80,
            }
        ],
        Subnets=[subnet],
    )
    elb.modify_load_balancer_attributes(
        LoadBalancerName=classic,
        LoadBalancerAttributes={"ConnectionDraining": {"Enabled": True, "Timeout": DRAIN_SECONDS}},
    )
    yield Sandbox(ec2, elbv2, elb, instances, group_arn, classic)
    world.set_serving(None)
    ec2.terminate_instances(InstanceIds=instances)


def target_states(box: Sandbox, ids: list[str] | None = None) -> dict[str, tuple[str, str, str]]:
    """id -> (state, reason, description); without ids, what AWS lists for the group."""
    kwargs: dict[str, Any] = {"TargetGroupArn": box.group_arn}
    if ids is not None:
        kwargs["Targets"] = [{"Id": i} for i in ids]
    return {
        d["Target"]["Id"]: (
            d["TargetHealth"]["State"],
            d["TargetHealth"].get("Reason", ""),
            d["TargetHealth"].get("Description", ""),
        )
        for d in box.elbv2.describe_target_health(**kwargs)["TargetHealthDescriptions"]
    }


def classic_states(box: Sandbox, ids: list[str] | None = None) -> dict[str, tuple[str, str]]:
    kwargs: dict[str, Any] = {"LoadBalancerName": box.classic}
    if ids is not None:
        kwargs["Instances"] = [{"InstanceId": i} for i in ids]
    return {
        s["InstanceId"]: (s["State"], s["Description"])
        for s in box.elb.describe_instance_health(**kwargs)["InstanceStates"]
    }


def _classic_check(sandbox: Sandbox, target: str) -> None:
    """The sandbox's classic ELB checks `target` (HTTP:80/health, TCP:80) every 5 s."""
    sandbox.elb.configure_health_check(
        LoadBalancerName=sandbox.classic,
        HealthCheck={
            "Target": target,
            "Interval": 5,
            "Timeout": 2,
            "UnhealthyThreshold": 2,
            "HealthyThreshold": 2,
        },
    )


def test_demo_load_balancers_are_fast_and_the_seeded_fleet_serves_at_once(world: World) -> None:
    elbv2 = world.client("elbv2", "us-east-1")
    group = elbv2.describe_target_groups(Names=["storefront-prod1"])["TargetGroups"][0]
    assert group["HealthCheckIntervalSeconds"] == 5 and group["HealthyThresholdCount"] == 2
    assert group["HealthCheckTimeoutSeconds"] < group["HealthCheckIntervalSeconds"]
    attributes = elbv2.describe_target_group_attributes(TargetGroupArn=group["TargetGroupArn"])
    delay = {a["Key"]: a["Value"] for a in attributes["Attributes"]}
    assert delay["deregistration_delay.timeout_seconds"] == "5"
    health = elbv2.describe_target_health(TargetGroupArn=group["TargetGroupArn"])
    assert [d["TargetHealth"]["State"] for d in health["TargetHealthDescriptions"]] == [
        "healthy"
    ] * 3
    elb = world.client("elb", "us-east-1")
    classic = elb.describe_load_balancers(LoadBalancerNames=["media-service-prod1"])
    check = classic["LoadBalancerDescriptions"][0]["HealthCheck"]
    assert check["Interval"] == 5 and check["HealthyThreshold"] == 2
    drain = elb.describe_load_balancer_attributes(LoadBalancerName="media-service-prod1")
    assert drain["LoadBalancerAttributes"]["ConnectionDraining"] == {"Enabled": True, "Timeout": 5}
    states = elb.describe_instance_health(LoadBalancerName="media-service-prod1")
    assert sorted(s["State"] for s in states["InstanceStates"]) == ["InService", "OutOfService"]


def test_the_broken_release_is_an_image_like_the_others(world: World) -> None:
    assert world.is_broken("storefront", "2.16.0")
    assert not world.is_broken("storefront", "2.15.0")
    assert not world.is_broken("no-such-project", "2.16.0")
    for region in ("us-east-1", "us-west-2"):
        images = world.client("ec2", region).describe_images(
            Filters=[
                {"Name": "tag:Project", "Values": ["storefront"]},
                {"Name": "tag:Version", "Values": ["2.16.0"]},
            ]
        )["Images"]
        assert len(images) == 1


def test_a_registered_target_is_initial_then_healthy_or_unhealthy(
    world: World, sandbox: Sandbox
) -> None:
    serving, failing = sandbox.instances
    world.set_serving(lambda instance_id, path: False if instance_id == failing else None)
    registered = time.monotonic()
    sandbox.elbv2.register_targets(
        TargetGroupArn=sandbox.group_arn, Targets=[{"Id": i} for i in sandbox.instances]
    )
    initial = ("initial", "Elb.RegistrationInProgress", "Target registration is in progress")
    assert target_states(sandbox) == {serving: initial, failing: initial}
    wait_until(lambda: target_states(sandbox)[serving][0] == "healthy", "healthy")
    assert world.world is not None
    assert time.monotonic() - registered >= world.world.registration_seconds - 0.5
    assert target_states(sandbox)[failing] == (
        "unhealthy",
        "Target.ResponseCodeMismatch",
        "Health checks failed with these codes: [503]",
    )
    # The hook decides at every read: the instance recovers as soon as it serves.
    world.set_serving(lambda instance_id, path: True)
    assert target_states(sandbox)[failing][0] == "healthy"


def test_each_load_balancer_checks_its_own_path(world: World, sandbox: Sandbox) -> None:
    """The hook is asked with the check's path: a target group whose HealthCheckPath the
    instance does not serve sees it unhealthy while a classic ELB checking /health sees it
    InService; a TCP check has no path."""
    instance = sandbox.instances[0]
    asked: set[str | None] = set()

    def serving(instance_id: str, path: str | None) -> bool | None:
        asked.add(path)
        return path in (None, "/health")

    world.set_serving(serving)
    sandbox.elbv2.modify_target_group(TargetGroupArn=sandbox.group_arn, HealthCheckPath="/ready")
    _classic_check(sandbox, "HTTP:80/health")
    sandbox.elbv2.register_targets(TargetGroupArn=sandbox.group_arn, Targets=[{"Id": instance}])
    sandbox.elb.register_instances_with_load_balancer(
        LoadBalancerName=sandbox.classic, Instances=[{"InstanceId": instance}]
    )
    wait_until(lambda: target_states(sandbox)[instance][0] != "initial", "the end of initial")
    wait_until(lambda: classic_states(sandbox)[instance][0] == "InService", "InService")
    assert target_states(sandbox)[instance][0] == "unhealthy"
    assert asked == {"/ready", "/health"}
    sandbox.elbv2.modify_target_group(TargetGroupArn=sandbox.group_arn, HealthCheckPath="/health")
    assert target_states(sandbox)[instance][0] == "healthy"
    _classic_check(sandbox, "TCP:80")
    assert classic_states(sandbox)[instance][0] == "InService"
    assert None in asked


def test_a_deregistered_target_drains_for_the_delay_then_is_gone(
    world: World, sandbox: Sandbox
) -> None:
    leaving, terminated = sandbox.instances
    sandbox.elbv2.register_targets(
        TargetGroupArn=sandbox.group_arn, Targets=[{"Id": i} for i in sandbox.instances]
    )
    started = time.monotonic()
    sandbox.elbv2.deregister_targets(TargetGroupArn=sandbox.group_arn, Targets=[{"Id": leaving}])
    sandbox.ec2.terminate_instances(InstanceIds=[terminated])
    draining = (
        "draining",
        "Target.DeregistrationInProgress",
        "Target deregistration is in progress",
    )
    assert target_states(sandbox) == {leaving: draining, terminated: draining}
    # DeregisterTargets is idempotent, as on AWS.
    sandbox.elbv2.deregister_targets(TargetGroupArn=sandbox.group_arn, Targets=[{"Id": leaving}])
    wait_until(lambda: not target_states(sandbox), "the drain to end")
    elapsed = time.monotonic() - started
    assert DRAIN_SECONDS - 0.5 <= elapsed <= DRAIN_SECONDS + 3
    assert {state for state, _, _ in target_states(sandbox, sandbox.instances).values()} == {
        "unused"
    }


def test_a_stopped_target_is_unused(world: World, sandbox: Sandbox) -> None:
    stopped = sandbox.instances[0]
    sandbox.elbv2.register_targets(TargetGroupArn=sandbox.group_arn, Targets=[{"Id": stopped}])
    sandbox.ec2.stop_instances(InstanceIds=[stopped])
    assert target_states(sandbox)[stopped][:2] == ("unused", "Target.InvalidState")


def test_classic_elb_registers_serves_and_drains(world: World, sandbox: Sandbox) -> None:
    serving, failing = sandbox.instances
    world.set_serving(lambda instance_id, path: False if instance_id == failing else None)
    sandbox.elb.register_instances_with_load_balancer(
        LoadBalancerName=sandbox.classic,
        Instances=[{"InstanceId": i} for i in [*sandbox.instances, serving]],
    )
    registering = ("OutOfService", "Instance registration is still in progress.")
    assert classic_states(sandbox) == {serving: registering, failing: registering}
    wait_until(lambda: classic_states(sandbox)[serving][0] == "InService", "InService")
    assert classic_states(sandbox)[failing] == (
        "OutOfService",
        "Instance has failed at least the UnhealthyThreshold number of health checks "
        "consecutively.",
    )
    started = time.monotonic()
    sandbox.elb.deregister_instances_from_load_balancer(
        LoadBalancerName=sandbox.classic, Instances=[{"InstanceId": serving}]
    )
    described = sandbox.elb.describe_load_balancers(LoadBalancerNames=[sandbox.classic])
    assert [i["InstanceId"] for i in described["LoadBalancerDescriptions"][0]["Instances"]] == [
        failing
    ]
    assert classic_states(sandbox, [serving]) == {
        serving: ("InService", "Instance deregistration currently in progress.")
    }
    wait_until(lambda: classic_states(sandbox, [serving])[serving][0] == "OutOfService", "drain")
    assert time.monotonic() - started >= DRAIN_SECONDS - 0.5
    assert classic_states(sandbox, [serving]) == {
        serving: ("OutOfService", "Instance is not currently registered with the LoadBalancer.")
    }
    assert list(classic_states(sandbox)) == [failing]


SMALL_WORLD = """
[[clusters]]
name = "staging"
region = "eu-central-1"

[[projects]]
name = "shop"
repository = "https://github.com/example/shop"
[projects.deploy]
start = "app/bin/start"
health = "app/bin/healthcheck"
env = { APP_ENV = "staging" }
secrets = { DB_PASSWORD = "/shop/staging/DB_PASSWORD", API_KEY = "/shop/API_KEY" }
[projects.clusters.staging]
target_groups = ["shop-staging"]
secrets = { API_KEY = "/shop/staging/API_KEY" }

[world]
seed = 7
[world.projects.shop]
versions = ["1.0.0", "1.1.0"]
broken = ["1.1.0"]
[world.projects.shop.clusters]
staging = { instances = 1, version = "1.0.0" }
"""


def test_secrets_are_seeded_as_secure_strings_in_ssm_only(tmp_path: Path) -> None:
    """A world of its own, in its own process: moto's state is per process."""
    source = tmp_path / "small.toml"
    source.write_text(SMALL_WORLD)
    written = tmp_path / "world.toml"
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "screens.main", "world"),
            *("--config", str(source), "--write-config", str(written)),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        assert line.startswith("world ready: "), process.stderr.read() if process.stderr else ""
        ssm = boto3.client(
            "ssm", region_name="eu-central-1", endpoint_url=line.removeprefix("world ready: ")
        )
        names = ["/shop/staging/DB_PASSWORD", "/shop/staging/API_KEY"]
        found = ssm.get_parameters(Names=names, WithDecryption=True)
        assert found["InvalidParameters"] == []
        values = {p["Name"]: p["Value"] for p in found["Parameters"]}
        assert {p["Type"] for p in found["Parameters"]} == {"SecureString"}
        assert values["/shop/staging/DB_PASSWORD"].startswith("demo-shop-staging-db_password-")
        assert values["/shop/staging/API_KEY"].startswith("demo-shop-staging-api_key-")
        # The cluster's own parameter replaced the project-wide one: that one was never made.
        assert ssm.get_parameters(Names=["/shop/API_KEY"])["InvalidParameters"] == ["/shop/API_KEY"]
        # A value is only in SSM: not in the config the world wrote.
        assert not any(value in written.read_text() for value in values.values())
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        output = process.stdout.read() + (process.stderr.read() if process.stderr else "")
        assert not any(value in output for value in values.values())
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


WORLD_VALID = SMALL_WORLD.replace('broken = ["1.1.0"]\n', "")


@pytest.mark.parametrize(
    ("world_lines", "expected"),
    [
        (
            'broken = ["2.0.0"]',
            "world.projects.shop.broken: '2.0.0' is not in versions",
        ),
        ('broken = "1.1.0"', "world.projects.shop.broken: must be a list, not a string"),
        ('broken = ["1.1.0", "1.1.0"]', "world.projects.shop.broken: lists the same value twice"),
        (
            'routes = { "2.0.0" = ["/health"] }',
            "world.projects.shop.routes.2.0.0: is not in versions",
        ),
        (
            'routes = { "1.1.0" = ["health"] }',
            "world.projects.shop.routes.1.1.0: 'health' is not a path (no leading /)",
        ),
    ],
)
def test_broken_mistakes_are_one_line_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], world_lines: str, expected: str
) -> None:
    text = WORLD_VALID.replace(
        'versions = ["1.0.0", "1.1.0"]\n', f'versions = ["1.0.0", "1.1.0"]\n{world_lines}\n'
    )
    assert expected in one_line_error(tmp_path, text, capsys)


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ("registration_seconds = -1", "world.registration_seconds: must be at least 0, not -1"),
        ("health_check_interval_seconds = 1", "must be at least 5, not 1"),
        ("healthy_threshold = 11", "world.healthy_threshold: must be at most 10, not 11"),
        ("deregistration_delay_seconds = 4000", "must be at most 3600, not 4000"),
    ],
)
def test_world_timing_mistakes_are_one_line_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], setting: str, expected: str
) -> None:
    text = WORLD_VALID.replace("[world]\n", f"[world]\n{setting}\n")
    assert expected in one_line_error(tmp_path, text, capsys)
