"""`stack adopt` on a pair made by hand in a world of its own (a target group, an ALB with its
listener and security group, an instance, a Route 53 record, all made with boto3), named in
the config by `project add --write`; then `stack status`, the store and the audit."""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from console.config import Config, load_config
from console.store import Store
from console.store.adoptions import adoptions_of
from screens.cli.stack_adopt import print_adoptions
from screens.main import run
from tests.deploy_world import client, world_process

SEED = """\
[access]
admins = ["*"]

[[clusters]]
name = "staging"
region = "us-east-1"

# The web projects (seeded by the world, the old way)
[[projects]]
name = "storefront"
repository = "https://github.com/example-shop/storefront"
dns = "www.{cluster}.example.internal"

[projects.clusters.staging]
target_groups = ["storefront-staging"]
launch = { instance_type = "t3.small", subnet = "staging-app-a", security_groups = \
["staging-web"], key_name = "deploy-staging", instance_profile = "storefront-staging" }

[world]
domain = "example.internal"
seed = 42

[world.projects.storefront]
versions = ["2.15.0"]
dns = "www"
[world.projects.storefront.clusters]
staging = { instances = 1, version = "2.15.0" }
"""
RECORD = "handmade.staging.example.internal"


@pytest.fixture(scope="module")
def hand_made(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str]]]:
    """A world with a pair made by hand (handmade in staging), and the config naming it
    (written by `project add handmade --cluster staging --write`); the made resources' ids."""
    workdir = tmp_path_factory.mktemp("stack-adopt-world")
    seed = workdir / "seed.toml"
    seed.write_text(SEED)
    with world_process(seed, workdir) as world:
        made = _make_pair(world)
        config = workdir / "config.toml"
        config.write_text(world.source.read_text())
        store = str(workdir / "store.db")
        added = run(["project", "add", "handmade", "--cluster", "staging", "--write",
                     "--config", str(config), "--store", store])  # fmt: skip
        assert added == 0
        yield config, made


def _make_pair(world: Config) -> dict[str, str]:
    """What a person made in the console by hand for `handmade` in staging."""
    ec2, elbv2 = client(world, "staging", "ec2"), client(world, "staging", "elbv2")
    vpc = ec2.describe_vpcs(Filters=[{"Name": "tag:Name", "Values": ["staging"]}])["Vpcs"][0]
    subnets = [s["SubnetId"] for s in ec2.describe_subnets(
        Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])["Subnets"]]  # fmt: skip
    group = ec2.create_security_group(
        GroupName="handmade-lb", Description="by hand", VpcId=vpc["VpcId"]
    )["GroupId"]
    ec2.authorize_security_group_ingress(
        GroupId=group, IpProtocol="tcp", FromPort=80, ToPort=80, CidrIp="0.0.0.0/0"
    )
    target_group = elbv2.create_target_group(
        Name="handmade-staging", Protocol="HTTP", Port=80, VpcId=vpc["VpcId"],
        HealthCheckPath="/ready",
    )["TargetGroups"][0]["TargetGroupArn"]  # fmt: skip
    balancer = elbv2.create_load_balancer(
        Name="handmade-staging", Subnets=subnets, SecurityGroups=[group]
    )["LoadBalancers"][0]
    listener = elbv2.create_listener(
        LoadBalancerArn=balancer["LoadBalancerArn"], Protocol="HTTP", Port=80,
        DefaultActions=[{"Type": "forward", "TargetGroupArn": target_group}],
    )["Listeners"][0]["ListenerArn"]  # fmt: skip
    image = ec2.describe_images(Owners=["self"])["Images"][0]["ImageId"]
    instance = ec2.run_instances(
        ImageId=image, MinCount=1, MaxCount=1, InstanceType="t3.small", SubnetId=subnets[0]
    )["Instances"][0]["InstanceId"]
    elbv2.register_targets(TargetGroupArn=target_group, Targets=[{"Id": instance}])
    route53 = client(world, "staging", "route53")
    zone = route53.list_hosted_zones()["HostedZones"][0]["Id"]
    change: dict[str, Any] = {
        "Action": "CREATE",
        "ResourceRecordSet": {
            "Name": RECORD, "Type": "CNAME", "TTL": 300,
            "ResourceRecords": [{"Value": balancer["DNSName"]}],
        },
    }  # fmt: skip
    route53.change_resource_record_sets(HostedZoneId=zone, ChangeBatch={"Changes": [change]})
    return {
        "group": group,
        "target_group": target_group,
        "balancer": balancer["LoadBalancerArn"],
        "dns_name": balancer["DNSName"],
        "listener": listener,
        "instance": instance,
    }


def _args(store: Path) -> argparse.Namespace:
    return argparse.Namespace(store=str(store))


def _adoptions(store: Path) -> list[Any]:
    async def read() -> list[Any]:
        async with await Store.open(store) as opened:
            return await adoptions_of(opened).every()

    return asyncio.run(read())


def _audit(store: Path, action: str) -> list[Any]:
    async def read() -> list[Any]:
        async with await Store.open(store) as opened:
            return [row for row in await opened.audit_rows() if row.action == action]

    return asyncio.run(read())


def test_adopt_records_the_hand_made_pair_and_stack_status_shows_it(
    hand_made: tuple[Path, dict[str, str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, made = hand_made
    store = tmp_path / "store.db"
    options = ["--config", str(config), "--store", str(store)]
    assert run(["stack", "adopt", "handmade", "staging", *options]) == 0
    out = capsys.readouterr().out
    assert out.startswith("handmade in staging: adopted as a baseline (not a CloudFormation import")
    lines = out.splitlines()
    assert any(x.split()[:3] == ["load", "balancer", "handmade-staging"] for x in lines), out
    assert made["balancer"] in out and made["listener"] in out
    assert f"{made['group']}: tcp 80-80 from 0.0.0.0/0" in out
    assert "health /ready, 1 target(s)" in out
    assert f"CNAME → {made['dns_name'].lower()} (TTL 300; this load balancer)" in out
    assert "never creates, changes or deletes them" in out and "not found" not in out

    [adoption] = _adoptions(store)
    kinds = {r.kind: r for r in adoption.resources}
    assert set(kinds) == {"load_balancer", "listener", "target_group", "security_group",
                          "dns_record"}  # fmt: skip
    assert kinds["target_group"].physical_id == made["target_group"]
    assert kinds["target_group"].properties["Targets"] == [made["instance"]]
    assert kinds["dns_record"].properties["Values"] == [made["dns_name"].lower()]
    assert kinds["load_balancer"].logical_id == "LoadBalancer"
    [row] = _audit(store, "stack.adopted")
    assert (row.project, row.cluster, row.outcome) == ("handmade", "staging", "baseline")
    assert row.id == adoption.audit_id and "5 resources kept as they are" in row.reason

    # What `stack status` prints below its table for the pairs it lists.
    print_adoptions(load_config(config), _args(store), [("storefront", "staging"),
                                                        ("handmade", "staging")])  # fmt: skip
    status = capsys.readouterr().out.splitlines()
    assert status[0].startswith("handmade in staging: adopted as a baseline on ")
    assert status[0].endswith(f"(audit #{adoption.audit_id})")
    assert len(status) == 7 and made["target_group"] not in status[0]

    # Adopted already: refused in one line; --baseline records it again.
    assert run(["stack", "adopt", "handmade", "staging", *options]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.endswith("--baseline records it again")
    assert run(["stack", "adopt", "handmade", "staging", "--baseline", *options]) == 0
    capsys.readouterr()
    assert [r.outcome for r in _audit(store, "stack.adopted")] == ["baseline", "re-baselined"]
    assert len(_adoptions(store)) == 1


def test_adopt_bad_input_exits_2_in_one_line_and_records_nothing(
    hand_made: tuple[Path, dict[str, str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, _ = hand_made
    ghost = tmp_path / "ghost.toml"  # a project the config names, nothing made in AWS
    ghost.write_text(config.read_text())
    store = tmp_path / "store.db"
    options = ["--config", str(ghost), "--store", str(store)]
    assert run(["project", "add", "ghost", "--cluster", "staging", "--write", *options]) == 0
    # Written, then its stack planned: a CREATE change set, everything to add.
    out = capsys.readouterr().out.split("wrote ")[1].splitlines()
    assert out[1].startswith("plan: dc-ghost-staging (CREATE): ") and "to add" in out[1]
    planned = {line.split()[1]: line.split()[0] for line in out[2:-1]}
    assert planned["LoadBalancer"] == planned["DnsRecord"] == "add", out
    assert out[-1] == "  `deploy-console stack plan ghost staging` shows it in full"
    cases = {
        ("nope", "staging"): "unknown project 'nope'",
        ("handmade", "prod9"): "unknown cluster 'prod9'",
        ("ghost", "staging"): "no target group ghost-staging in AWS: nothing to adopt",
    }
    for (project, cluster), message in cases.items():
        assert run(["stack", "adopt", project, cluster, *options]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err
    assert _adoptions(store) == []
    print_adoptions(load_config(ghost), _args(store), [("ghost", "staging")])
    assert capsys.readouterr().out == ""


def test_a_world_seeded_pair_without_a_stack_is_adopted_with_the_next_step(
    hand_made: tuple[Path, dict[str, str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """storefront's pair was seeded the old way and opts no stack in: its record is found by
    its configured name, and the output says how to opt its stack in."""
    config, _ = hand_made
    store = tmp_path / "store.db"
    assert run(["stack", "adopt", "storefront", "staging", "--config", str(config),
                "--store", str(store)]) == 0  # fmt: skip
    out = capsys.readouterr().out.splitlines()
    assert any(x.split()[:3] == ["dns", "record", "www.staging.example.internal"] for x in out)
    assert out[-1] == (
        "next: `stack = true` in [projects.clusters.staging] of storefront opts its stack in; "
        "then `deploy-console stack plan storefront staging`"
    )


def test_a_viewer_may_not_adopt(
    hand_made: tuple[Path, dict[str, str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, _ = hand_made
    viewer = tmp_path / "viewer.toml"
    text = config.read_text()
    viewer.write_text(text.replace('admins = [\n    "*",\n]', 'admins = ["someone-else"]'))
    assert load_config(viewer).access.users.get("*") is None
    store = tmp_path / "store.db"
    options = ["--config", str(viewer), "--store", str(store)]
    assert run(["stack", "adopt", "handmade", "staging", *options]) == 3
    assert "may not adopt a stack (needs admin)" in capsys.readouterr().err
    assert _adoptions(store) == []
    assert [row.outcome for row in _audit(store, "denied")] == ["refused"]


def test_stack_plan_of_an_adopted_pair_creates_only_what_it_did_not_adopt(
    hand_made: tuple[Path, dict[str, str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`stack plan` (and so `stack apply`, which runs the plan) reads the baseline from the
    store: the pair's stack references the adopted resources instead of creating them again."""
    config_path, _made = hand_made
    store = tmp_path / "store.db"
    options = ["--config", str(config_path), "--store", str(store)]
    assert run(["stack", "plan", "handmade", "staging", "--json", *options]) == 0
    before = json.loads(capsys.readouterr().out)
    assert {"LoadBalancer", "TargetGroup"} <= {r["logical_id"] for r in before["resources"]}
    assert run(["stack", "adopt", "handmade", "staging", *options]) == 0
    capsys.readouterr()
    assert run(["stack", "plan", "handmade", "staging", "--json", *options]) == 0
    after = json.loads(capsys.readouterr().out)
    assert {r["logical_id"] for r in after["resources"]} == {"LaunchTemplate"}
    assert {r["action"] for r in after["resources"]} == {"add"}


def test_the_adopted_pairs_stack_creates_none_of_what_it_adopted(
    hand_made: tuple[Path, dict[str, str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The template built from the config, with the baseline applied: only the launch
    template is left to create; CloudFormation (moto's) creates the stack beside the hand-made
    resources, which stay one of each. Then the pair has its stack: adopt refuses."""
    from console.fleet.inventory import Fleet
    from console.stacks.adopted import adopted_template
    from console.stacks.refs import resolve_refs
    from console.stacks.template import build_template, render, stack_name

    config_path, made = hand_made
    store = tmp_path / "store.db"
    options = ["--config", str(config_path), "--store", str(store)]
    assert run(["stack", "adopt", "handmade", "staging", *options]) == 0
    capsys.readouterr()
    [adoption] = _adoptions(store)
    config = load_config(config_path)

    async def build() -> dict[str, Any]:
        fleet = Fleet(config)
        try:
            gateway = await asyncio.to_thread(fleet.gateway, "staging")
            refs = await resolve_refs(gateway, config, "handmade", "staging")
        finally:
            fleet.close()
        return build_template(config, "handmade", "staging", refs)

    full = asyncio.run(build())
    assert {"LoadBalancer", "Listener", "TargetGroup", "SecurityGroup", "DnsRecord"} <= set(
        full["Resources"]
    )
    template = adopted_template(full, adoption)
    assert set(template["Resources"]) == set(full["Resources"]) - {
        "LoadBalancer", "Listener", "TargetGroup", "SecurityGroup", "DnsRecord"
    }  # fmt: skip
    outputs = {key: value["Value"] for key, value in template["Outputs"].items()}
    assert outputs["LoadBalancerArn"] == made["balancer"]
    assert outputs["TargetGroupArn"] == made["target_group"]
    assert outputs["SecurityGroupId"] == made["group"]
    assert outputs["LoadBalancerDns"] == made["dns_name"]
    assert _refs(template) <= set(template["Resources"])  # nothing names what is left out

    world = load_config(config_path)
    cloudformation = client(world, "staging", "cloudformation")
    name = stack_name("handmade", "staging")
    # `project add --write` planned it (a stack in REVIEW_IN_PROGRESS): made here instead.
    assert cloudformation.describe_stacks(StackName=name)["Stacks"][0]["StackStatus"] == (
        "REVIEW_IN_PROGRESS"
    )
    cloudformation.delete_stack(StackName=name)
    cloudformation.create_stack(StackName=name, TemplateBody=render(template))
    elbv2 = client(world, "staging", "elbv2")
    balancers = [lb["LoadBalancerName"] for lb in elbv2.describe_load_balancers()["LoadBalancers"]]
    assert balancers.count("handmade-staging") == 1 and len(balancers) == 2
    assert run(["stack", "adopt", "handmade", "staging", "--baseline", *options]) == 2
    assert f"has its stack {name} already" in capsys.readouterr().err


def _refs(value: Any) -> set[str]:
    """The logical ids a template's Ref and Fn::GetAtt name."""
    if isinstance(value, list):
        return set().union(*(_refs(item) for item in value)) if value else set()
    if not isinstance(value, dict):
        return set()
    if "Ref" in value:
        return {value["Ref"]}
    if "Fn::GetAtt" in value:
        return {value["Fn::GetAtt"][0]}
    return set().union(*(_refs(item) for item in value.values())) if value else set()
