"""Each pair's Route 53 record read by the fleet from the demo world (read-only), the calls it
costs per refresh with the zones cached, and how a record is judged (pure logic)."""

from __future__ import annotations

import dataclasses

from console.config import Config
from console.fleet.dns import Balancers, DnsReading, Zone, judge, normal, zone_for
from console.fleet.inventory import Fleet
from console.fleet.report import snapshot_json
from tests.screens.ui import frozen_clock

ROUTE53 = ("ListHostedZones", "ListResourceRecordSets")


def route53_calls(fleet: Fleet) -> dict[str, int]:
    counts = fleet.call_count()
    return {name: counts.get(name, 0) for name in ROUTE53}


async def test_every_demo_record_points_at_its_own_pair(world_config: Config) -> None:
    fleet = Fleet(world_config, clock=frozen_clock)
    try:
        snapshot = await fleet.refresh()
    finally:
        fleet.close()
    data = snapshot_json(snapshot)
    records = {
        (project["name"], cluster): env["dns"]
        for project in data["projects"]
        for cluster, env in project["clusters"].items()
    }
    assert len(records) == sum(len(p.clusters) for p in world_config.projects)
    for (project, cluster), record in records.items():
        assert record is not None, (project, cluster)
        assert record["finding"] is None and record["error"] is None, record
        assert record["points_to_pair"] is True, record
    storefront = records[("storefront", "prod2")]
    assert storefront["name"] == "www.prod2.example.internal"
    assert storefront["type"] == "CNAME" and storefront["ttl"] == 60
    # The ALB in front of storefront-prod2 (however the world names it), in prod2's region.
    [value] = storefront["values"]
    assert value.startswith("storefront-prod2") and value.endswith(".us-west-2.elb.amazonaws.com")
    # A classic ELB's record, and a worker's (no load balancer: its instances' addresses).
    assert records[("admin-portal", "prod1")]["values"][0].startswith("admin-portal-prod1.")
    worker = records[("notifications-worker", "prod1")]
    assert worker["type"] == "A"
    addresses = snapshot.env("notifications-worker", "prod1")
    assert addresses is not None
    assert set(worker["values"]) == {i.private_address for i in addresses.instances}


async def test_zones_are_listed_once_per_cache_period_records_once_per_refresh(
    world_config: Config,
) -> None:
    fleet = Fleet(world_config, clock=frozen_clock)
    now = [1000.0]
    fleet._dns._clock = lambda: now[0]  # the zone cache's own monotonic clock
    try:
        await fleet.refresh()
        assert route53_calls(fleet) == {"ListHostedZones": 1, "ListResourceRecordSets": 1}
        await fleet.refresh()
        await fleet.refresh()
        # The demo's one zone holds every record: one page of records a refresh.
        assert route53_calls(fleet) == {"ListHostedZones": 1, "ListResourceRecordSets": 3}
        now[0] += world_config.dns.zone_cache_seconds
        await fleet.refresh()
        assert route53_calls(fleet) == {"ListHostedZones": 2, "ListResourceRecordSets": 4}
    finally:
        fleet.close()


async def test_a_config_without_dns_names_reads_no_route53(world_config: Config) -> None:
    projects = tuple(
        dataclasses.replace(
            project,
            dns=None,
            clusters={
                name: dataclasses.replace(settings, dns=None)
                for name, settings in project.clusters.items()
            },
        )
        for project in world_config.projects
    )
    fleet = Fleet(dataclasses.replace(world_config, projects=projects), clock=frozen_clock)
    try:
        snapshot = await fleet.refresh()
        assert route53_calls(fleet) == {"ListHostedZones": 0, "ListResourceRecordSets": 0}
        assert all(env.dns is None for env in snapshot.envs.values())
        assert snapshot_json(snapshot)["projects"][0]["clusters"]["staging"]["dns"] is None
    finally:
        fleet.close()


# -- judging a record (pure logic) -------------------------------------------------------

WEB, API = ("web", "prod1"), ("api", "prod1")
WEB_LB = "web-prod1-alb-1.us-east-1.elb.amazonaws.com"
API_LB = "api-prod1-alb-1.us-east-1.elb.amazonaws.com"


def balancers() -> Balancers:
    found = Balancers()
    found.add_listing({WEB_LB: "web-prod1-alb", API_LB: "api-prod1-alb"})
    found.add_owner(WEB, [WEB_LB])
    found.add_owner(API, [API_LB])
    return found


def reading(*sets: dict[str, object]) -> DnsReading:
    found = DnsReading()
    for record in sets:
        found.records.setdefault(normal(str(record["Name"])), []).append(dict(record))
    return found


def cname(value: str) -> dict[str, object]:
    return {"Name": "www.example.com.", "Type": "CNAME", "TTL": 300,
            "ResourceRecords": [{"Value": value}]}  # fmt: skip


def test_an_alias_at_its_own_load_balancer_points_to_the_pair() -> None:
    target = {"DNSName": f"dualstack.{WEB_LB.upper()}.", "HostedZoneId": "Z1"}
    alias = {"Name": "www.example.com.", "Type": "A", "AliasTarget": target}
    record = judge(WEB, "www.example.com", reading(alias), balancers())
    assert (record.type, record.alias, record.ttl, record.values) == ("A", True, None, (WEB_LB,))
    assert record.points_to_pair and record.finding is None


def test_a_record_at_another_pairs_or_a_missing_load_balancer_is_a_finding() -> None:
    other = judge(WEB, "www.example.com", reading(cname(API_LB)), balancers())
    assert not other.points_to_pair
    assert other.finding == "points at api in prod1 (api-prod1-alb)"
    gone = judge(
        WEB, "www.example.com", reading(cname("old-1.us-east-1.elb.amazonaws.com.")), balancers()
    )
    assert (
        gone.finding
        == "points at a load balancer that does not exist (old-1.us-east-1.elb.amazonaws.com)"
    )
    # Somewhere that is no load balancer (a CDN): not this pair's, and nothing to say.
    cdn = judge(WEB, "www.example.com", reading(cname("d1.cloudfront.net")), balancers())
    assert (cdn.points_to_pair, cdn.finding) == (False, None)
    missing = judge(WEB, "www.example.com", DnsReading(), balancers())
    assert (missing.type, missing.finding) == (None, "no record in Route 53")


def test_the_longest_zone_holds_a_name() -> None:
    zones = [Zone("Z1", "example.com"), Zone("Z2", "prod.example.com"), Zone("Z3", "ample.com")]
    assert zone_for("www.prod.example.com", zones) == zones[1]
    assert zone_for("example.com", zones) == zones[0]
    assert zone_for("www.example.org", zones) is None
    assert normal("\\052.Example.COM.") == "*.example.com"
