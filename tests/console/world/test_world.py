"""The embedded world: the demo fleet on a real AWS API endpoint on loopback."""

from __future__ import annotations

from typing import Any

from console.config import Config
from console.fleet.inventory import Fleet
from console.world.server import World


def test_world_listens_on_loopback_only(world: World) -> None:
    assert world.endpoint_url.startswith("http://127.0.0.1:")
    assert world.report.instances == 38
    assert world.report.load_balancers == 21
    assert len(world.report.stopped) == 1 and len(world.report.failing) == 1


def test_every_project_has_at_least_three_tagged_images(world: World, world_config: Config) -> None:
    ec2 = world.client("ec2", "us-east-1")
    images = ec2.describe_images(Filters=[{"Name": "tag-key", "Values": ["Project"]}])["Images"]
    by_project: dict[str, set[str]] = {}
    for image in images:
        tags = {t["Key"]: t["Value"] for t in image["Tags"]}
        by_project.setdefault(tags["Project"], set()).add(tags["Version"])
    assert set(by_project) == set(world_config.project_names)
    assert all(len(versions) >= 3 for versions in by_project.values())
    found = ec2.describe_images(
        Filters=[
            {"Name": "tag:Project", "Values": ["checkout-api"]},
            {"Name": "tag:Version", "Values": ["5.2.3"]},
        ]
    )["Images"]
    assert len(found) == 1 and found[0]["State"] == "available"


def test_route53_has_a_record_per_project_per_cluster(world: World) -> None:
    route53 = world.client("route53", "us-east-1")
    zone = route53.list_hosted_zones()["HostedZones"][0]
    assert zone["Name"] == "example.internal."
    records = route53.list_resource_record_sets(HostedZoneId=zone["Id"])["ResourceRecordSets"]
    names = {r["Name"].rstrip(".") for r in records}
    assert "api.prod1.example.internal" in names
    assert "www.prod2.example.internal" in names
    assert "notify.prod1.example.internal" in names  # a worker: an A record to its instances


def test_instances_carry_project_environment_and_version_tags(world: World) -> None:
    ec2 = world.client("ec2", "us-west-2")
    reservations = ec2.describe_instances()["Reservations"]
    tags = [{t["Key"]: t["Value"] for t in i["Tags"]} for r in reservations for i in r["Instances"]]
    assert tags and all({"Project", "Environment", "Version"} <= set(t) for t in tags)
    assert {t["Environment"] for t in tags} == {"prod2"}


async def test_a_refresh_connects_to_loopback_only(
    world_config: Config, dialled: list[Any]
) -> None:
    """Never a packet to an address moto invents (10.x, public): only the endpoint."""
    fleet = Fleet(world_config)
    try:
        snapshot = await fleet.refresh()
    finally:
        fleet.close()
    assert snapshot.envs
    assert dialled, "the refresh made no connection at all?"
    assert {address[0] for address in dialled} == {"127.0.0.1"}
