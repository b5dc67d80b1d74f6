"""The demo fleet made through CloudFormation stacks, and a change set that updates one in place."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from console.aws.gateway import AwsGateway
from console.config import Config
from console.stacks.refs import StackRefs, resolve_refs
from console.stacks.template import build_template, render
from console.world.server import World

# Every demo pair with one load balancer has a stack, but the hand-made one (for `stack adopt`).
HAND_MADE = ("search-api", "staging")


def stacked_pairs(config: Config) -> list[tuple[str, str]]:
    return [
        (project.name, cluster)
        for project in config.projects
        for cluster, settings in project.clusters.items()
        if settings.stack is not None
    ]


def resources(world: World, region: str, stack: str) -> dict[str, str]:
    described = world.client("cloudformation", region).describe_stack_resources(StackName=stack)
    return {r["LogicalResourceId"]: r["PhysicalResourceId"] for r in described["StackResources"]}


def test_the_demo_fleet_is_made_through_stacks(world: World, world_config: Config) -> None:
    pairs = stacked_pairs(world_config)
    assert len(pairs) == world.report.stacks == 18
    assert HAND_MADE not in pairs
    assert world.report.load_balancers == 21 and world.report.records == 27
    names = set()
    for region in ("us-east-1", "us-west-2"):
        stacks = world.client("cloudformation", region).describe_stacks()["Stacks"]
        assert {s["StackStatus"] for s in stacks} == {"CREATE_COMPLETE"}
        names |= {s["StackName"] for s in stacks}
    assert names == {f"dc-{project}-{cluster}" for project, cluster in pairs}


def test_a_stacks_load_balancer_carries_the_configured_health_check_and_draining(
    world: World, world_config: Config
) -> None:
    """The demo's stacks take [world]'s tuning: checks every 5 s, 2 to trust, 5 s drains."""
    made = resources(world, "us-east-1", "dc-checkout-api-staging")
    elbv2 = world.client("elbv2", "us-east-1")
    group = elbv2.describe_target_groups(TargetGroupArns=[made["TargetGroup"]])["TargetGroups"][0]
    assert group["TargetGroupName"] == "checkout-api-staging"
    assert (
        group["HealthCheckPath"], group["HealthCheckIntervalSeconds"],
        group["HealthCheckTimeoutSeconds"], group["HealthyThresholdCount"],
    ) == ("/health", 5, 4, 2)  # fmt: skip
    attributes = elbv2.describe_target_group_attributes(TargetGroupArn=made["TargetGroup"])
    delay = {a["Key"]: a["Value"] for a in attributes["Attributes"]}
    assert delay["deregistration_delay.timeout_seconds"] == "5"
    health = elbv2.describe_target_health(TargetGroupArn=made["TargetGroup"])
    assert len(health["TargetHealthDescriptions"]) == 1  # the seeded instance, registered
    balancer = elbv2.describe_load_balancers(LoadBalancerArns=[made["LoadBalancer"]])
    alb = balancer["LoadBalancers"][0]
    assert alb["LoadBalancerName"] == "checkout-api-staging"
    assert alb["SecurityGroups"] == [made["SecurityGroup"]]

    classic = resources(world, "us-east-1", "dc-media-service-prod1")["LoadBalancer"]
    elb = world.client("elb", "us-east-1")
    described = elb.describe_load_balancers(LoadBalancerNames=[classic])
    description = described["LoadBalancerDescriptions"][0]
    assert description["HealthCheck"]["Target"] == "HTTP:80/health"
    assert description["HealthCheck"]["Interval"] == 5
    assert len(description["Instances"]) == 2 and len(description["Subnets"]) == 2
    attributes = elb.describe_load_balancer_attributes(LoadBalancerName=classic)
    assert attributes["LoadBalancerAttributes"]["ConnectionDraining"] == {
        "Enabled": True,
        "Timeout": 5,
    }


def test_a_stacks_record_points_the_pairs_name_at_its_load_balancer(world: World) -> None:
    route53 = world.client("route53", "us-east-1")
    zone = route53.list_hosted_zones_by_name(DNSName="example.internal")["HostedZones"][0]
    records = route53.list_resource_record_sets(HostedZoneId=zone["Id"])["ResourceRecordSets"]
    by_name = {r["Name"]: r for r in records}
    record = by_name["www.prod2.example.internal."]
    outputs = world.client("cloudformation", "us-west-2").describe_stacks(
        StackName="dc-storefront-prod2"
    )["Stacks"][0]["Outputs"]
    dns = {o["OutputKey"]: o["OutputValue"] for o in outputs}["LoadBalancerDns"]
    assert (record["Type"], record["TTL"], record["ResourceRecords"]) == (
        "CNAME", 60, [{"Value": dns}],
    )  # fmt: skip
    # The hand-made pair's record was seeded the old way, pointing at its own load balancer.
    assert by_name["search.staging.example.internal."]["Type"] == "CNAME"


@pytest.fixture
async def scratch(world: World, world_config: Config) -> AsyncIterator[tuple[Config, StackRefs]]:
    """A pair of its own in the session world's staging (checkout-api's settings under other
    names) and its refs, read as the console reads them; at the end its stack and everything
    the stack made, retained or not, are removed."""
    project = world_config.project("checkout-api")
    pair = dataclasses.replace(
        project.clusters["staging"],
        target_groups=("scratch-staging",),
        dns="scratch.staging.example.internal",
    )
    scratch = dataclasses.replace(project, name="scratch", clusters={"staging": pair})
    config = dataclasses.replace(world_config, projects=(*world_config.projects, scratch))
    with ThreadPoolExecutor(2) as executor:
        gateway = AwsGateway(config.cluster("staging"), executor)
        refs = await resolve_refs(gateway, config, "scratch", "staging")
    yield config, refs
    world.client("cloudformation", "us-east-1").delete_stack(StackName=STACK)
    elbv2 = world.client("elbv2", "us-east-1")
    for balancer in elbv2.describe_load_balancers()["LoadBalancers"]:
        if balancer["LoadBalancerName"].startswith("scratch-"):
            elbv2.delete_load_balancer(LoadBalancerArn=balancer["LoadBalancerArn"])
    route53 = world.client("route53", "us-east-1")
    zone = f"/hostedzone/{refs.hosted_zone_id}"
    for record in route53.list_resource_record_sets(HostedZoneId=zone)["ResourceRecordSets"]:
        if record["Name"].startswith("scratch."):
            route53.change_resource_record_sets(
                HostedZoneId=zone,
                ChangeBatch={"Changes": [{"Action": "DELETE", "ResourceRecordSet": record}]},
            )


STACK = "dc-scratch-staging"


def execute(world: World, template: dict[str, Any], name: str) -> list[tuple[str, str]]:
    """Plan `template` as a change set on the scratch stack and execute it: its changes."""
    cloudformation = world.client("cloudformation", "us-east-1")
    change_set = cloudformation.create_change_set(
        StackName=STACK, ChangeSetName=name, TemplateBody=render(template), ChangeSetType="UPDATE"
    )
    described = cloudformation.describe_change_set(ChangeSetName=change_set["Id"])
    cloudformation.execute_change_set(ChangeSetName=change_set["Id"])
    stack = cloudformation.describe_stacks(StackName=STACK)["Stacks"][0]
    assert stack["StackStatus"] == "UPDATE_COMPLETE"
    return sorted(
        (c["ResourceChange"]["Action"], c["ResourceChange"]["LogicalResourceId"])
        for c in described["Changes"]
    )


def test_a_change_set_on_a_world_stack_updates_in_place_and_replaces_only_what_it_must(
    world: World, scratch: tuple[Config, StackRefs]
) -> None:
    config, refs = scratch
    world.client("cloudformation", "us-east-1").create_stack(
        StackName=STACK, TemplateBody=render(build_template(config, "scratch", "staging", refs))
    )
    before = resources(world, "us-east-1", STACK)
    elbv2 = world.client("elbv2", "us-east-1")
    # A new health check path and drain: the target group is modified where it is.
    pair = config.project("scratch").clusters["staging"]
    assert pair.stack is not None
    stack = dataclasses.replace(pair.stack, health_path="/status", deregistration_delay_seconds=9)
    changed = with_pair(config, dataclasses.replace(pair, stack=stack))
    template = build_template(changed, "scratch", "staging", refs)
    assert execute(world, template, "health") == [("Modify", "TargetGroup")]
    assert resources(world, "us-east-1", STACK) == before
    group = elbv2.describe_target_groups(TargetGroupArns=[before["TargetGroup"]])["TargetGroups"]
    assert group[0]["HealthCheckPath"] == "/status"
    attributes = elbv2.describe_target_group_attributes(TargetGroupArn=before["TargetGroup"])
    assert {"Key": "deregistration_delay.timeout_seconds", "Value": "9"} in attributes["Attributes"]

    # A new load balancer name replaces it: the old one is retained, the listener and the
    # record follow the new one, nothing else moves.
    template["Resources"]["LoadBalancer"]["Properties"]["Name"] = "scratch-staging-2"
    assert execute(world, template, "rename") == [("Modify", "LoadBalancer")]
    after = resources(world, "us-east-1", STACK)
    assert after["LoadBalancer"] != before["LoadBalancer"]
    assert after["TargetGroup"] == before["TargetGroup"]
    assert after["SecurityGroup"] == before["SecurityGroup"]
    names = {b["LoadBalancerName"] for b in elbv2.describe_load_balancers()["LoadBalancers"]}
    assert {"scratch-staging", "scratch-staging-2"} <= names
    listeners = elbv2.describe_listeners(LoadBalancerArn=after["LoadBalancer"])["Listeners"]
    forwards = [listener["DefaultActions"][0]["TargetGroupArn"] for listener in listeners]
    assert forwards == [after["TargetGroup"]]
    new_dns = elbv2.describe_load_balancers(LoadBalancerArns=[after["LoadBalancer"]])[
        "LoadBalancers"
    ][0]["DNSName"]
    route53 = world.client("route53", "us-east-1")
    records = route53.list_resource_record_sets(HostedZoneId=f"/hostedzone/{refs.hosted_zone_id}")
    record = [r for r in records["ResourceRecordSets"] if r["Name"].startswith("scratch.")]
    assert [r["ResourceRecords"] for r in record] == [[{"Value": new_dns}]]


def with_pair(config: Config, pair: Any) -> Config:
    project = config.project("scratch")
    renamed = dataclasses.replace(project, clusters={"staging": pair})
    others = tuple(p for p in config.projects if p.name != "scratch")
    return dataclasses.replace(config, projects=(*others, renamed))
