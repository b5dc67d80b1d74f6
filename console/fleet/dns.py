"""Route 53 records of each project and cluster: read in a bounded number of calls per refresh,
and judged against the pairs' load balancers (a record at a missing or another pair's one)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

from console.config import ClusterConfig, Config
from console.errors import AwsError
from console.model import DnsRecord

if TYPE_CHECKING:
    from console.aws.gateway import AwsGateway

__all__ = [
    "Balancers",
    "DnsReader",
    "DnsReading",
    "Zone",
    "fleet_balancers",
    "judge",
    "listed_balancers",
    "normal",
    "zone_for",
]

# The largest pages AWS gives: a zone's records in ceil(records / 300) calls, the account's
# zones in ceil(zones / 100).
RECORD_PAGE = 300
ZONE_PAGE = 100
ALB_PAGE = 400
# The record types a name can point at a load balancer (or addresses) with, in the order one
# is shown when a name has several.
POINTING_TYPES = ("CNAME", "A", "AAAA")
LB_SUFFIXES = (".elb.amazonaws.com", ".elb.amazonaws.com.cn")

Account = tuple[str | None, ...]
Pair = tuple[str, str]


def normal(name: str) -> str:
    """A DNS name as compared: lower case, no trailing dot, Route 53's `\\052` a `*` again,
    an ELB alias's `dualstack.` prefix dropped."""
    name = name.lower().rstrip(".").replace("\\052", "*")
    return name.removeprefix("dualstack.")


def account_of(cluster: ClusterConfig) -> Account:
    """Clusters whose Route 53 is the same: same credentials, whatever their region."""
    return cluster.account_key[:-1]


@dataclass(frozen=True)
class Zone:
    id: str
    name: str
    private: bool = False


def zone_for(name: str, zones: Iterable[Zone]) -> Zone | None:
    """The zone that holds `name`: the longest zone name it ends with (the first listed of
    zones with the same name)."""
    best: Zone | None = None
    for zone in zones:
        if (name == zone.name or name.endswith("." + zone.name)) and (
            best is None or len(zone.name) > len(best.name)
        ):
            best = zone
    return best


@dataclass
class DnsReading:
    """One refresh's records: by name, each name's record sets of POINTING_TYPES; the names no
    zone holds, and those whose read failed (why)."""

    records: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    no_zone: set[str] = field(default_factory=set)
    errors: dict[str, str] = field(default_factory=dict)


class DnsReader:
    """Reads the pairs' records: per refresh one ListResourceRecordSets per zone that holds a
    configured name (paginated, 300 records a page); per account the zone list, once every
    zone_cache_seconds (ListHostedZones, 100 a page), and again after a zone read failed."""

    def __init__(
        self,
        config: Config,
        gateway_for: Callable[[ClusterConfig], AwsGateway | AwsError],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self._gateway_for = gateway_for
        self._clock = clock
        # Per account: the first cluster (whose gateway asks) and the names wanted there.
        self._wanted: dict[Account, tuple[ClusterConfig, set[str]]] = {}
        for project in config.projects:
            for cluster_name, settings in project.clusters.items():
                if settings.dns:
                    cluster = config.cluster(cluster_name)
                    _first, names = self._wanted.setdefault(account_of(cluster), (cluster, set()))
                    names.add(normal(settings.dns))
        self._zones: dict[Account, tuple[float, list[Zone]]] = {}

    @property
    def active(self) -> bool:
        """Whether any pair has a DNS name: then every account+region lists all its load
        balancers, so that a record anywhere is judged against all of them."""
        return bool(self._wanted)

    async def read(self) -> DnsReading:
        reading = DnsReading()
        await asyncio.gather(
            *(
                self._read_account(account, cluster, names, reading)
                for account, (cluster, names) in self._wanted.items()
            )
        )
        return reading

    async def _read_account(
        self, account: Account, cluster: ClusterConfig, names: set[str], reading: DnsReading
    ) -> None:
        gateway = await asyncio.to_thread(self._gateway_for, cluster)
        if isinstance(gateway, AwsError):
            reading.errors.update(dict.fromkeys(names, gateway.message))
            return
        try:
            zones = await self._account_zones(account, gateway)
        except AwsError as error:
            reading.errors.update(dict.fromkeys(names, f"Route 53: {error.message}"))
            return
        by_zone: dict[Zone, set[str]] = {}
        for name in names:
            zone = zone_for(name, zones)
            if zone is None:
                reading.no_zone.add(name)
            else:
                by_zone.setdefault(zone, set()).add(name)

        async def read_zone(zone: Zone, wanted: set[str]) -> None:
            try:
                sets = await gateway.paginate(
                    "route53", "list_resource_record_sets", "ResourceRecordSets",
                    RECORD_PAGE, HostedZoneId=zone.id,
                )  # fmt: skip
            except AwsError as error:
                self._zones.pop(account, None)  # a zone gone: list them again next time
                reading.errors.update(dict.fromkeys(wanted, f"Route 53: {error.message}"))
                return
            for record in sets:
                name = normal(record.get("Name", ""))
                if name in wanted and record.get("Type") in POINTING_TYPES:
                    reading.records.setdefault(name, []).append(record)

        await asyncio.gather(*(read_zone(zone, wanted) for zone, wanted in by_zone.items()))

    async def _account_zones(self, account: Account, gateway: AwsGateway) -> list[Zone]:
        cached = self._zones.get(account)
        now = self._clock()
        if cached is not None and now - cached[0] < self.config.dns.zone_cache_seconds:
            return cached[1]
        listed = await gateway.paginate("route53", "list_hosted_zones", "HostedZones", ZONE_PAGE)
        zones = [
            Zone(
                str(zone["Id"]).rsplit("/", 1)[-1],
                normal(zone["Name"]),
                bool(zone.get("Config", {}).get("PrivateZone")),
            )
            for zone in listed
        ]
        configured = set(self.config.dns.zones)
        if configured:
            zones = [zone for zone in zones if zone.name in {normal(z) for z in configured}]
        self._zones[account] = (now, zones)
        return zones


@dataclass
class Balancers:
    """The load balancers a refresh listed, by DNS name: every one in the accounts and regions
    read (name), and which pairs each belongs to."""

    names: dict[str, str] = field(default_factory=dict)
    owners: dict[str, list[Pair]] = field(default_factory=dict)
    own: dict[Pair, set[str]] = field(default_factory=dict)

    def add_listing(self, listed: Mapping[str, str]) -> None:
        self.names.update(listed)

    def add_owner(self, pair: Pair, dns_names: Iterable[str]) -> None:
        for dns_name in dns_names:
            self.owners.setdefault(dns_name, []).append(pair)
            self.own.setdefault(pair, set()).add(dns_name)

    def of(self, pair: Pair) -> set[str]:
        return self.own.get(pair, set())


def listed_balancers(
    classic: Iterable[dict[str, Any]], albs: Iterable[dict[str, Any]]
) -> dict[str, str]:
    """DNS name -> load balancer name, of classic ELBs and ALBs/NLBs as AWS lists them."""
    found = {normal(lb["DNSName"]): lb["LoadBalancerName"] for lb in classic if lb.get("DNSName")}
    found.update(
        {normal(lb["DNSName"]): lb["LoadBalancerName"] for lb in albs if lb.get("DNSName")}
    )
    return found


def pair_balancers(
    classic_names: Iterable[str],
    group_names: Iterable[str],
    classic: Mapping[str, dict[str, Any]],
    target_groups: Mapping[str, dict[str, Any]],
    by_arn: Mapping[str, str],
) -> set[str]:
    """The DNS names of a pair's load balancers: its classic ELBs', and those of the load
    balancers its target groups are behind (`by_arn`: an ALB's ARN -> its DNS name)."""
    names = {
        normal(classic[n]["DNSName"]) for n in classic_names if classic.get(n, {}).get("DNSName")
    }
    for group in group_names:
        for arn in target_groups.get(group, {}).get("LoadBalancerArns", ()):
            if arn in by_arn:
                names.add(by_arn[arn])
    return names


class ListedGroup(Protocol):
    """What one account+region's refresh listed (console/fleet/inventory.py's reading)."""

    classic: dict[str, dict[str, Any]]
    target_groups: dict[str, dict[str, Any]]
    listed: dict[str, str]
    albs: list[dict[str, Any]]


def fleet_balancers(
    config: Config, groups: Iterable[tuple[Iterable[ClusterConfig], ListedGroup]]
) -> Balancers:
    """The load balancers of every account+region read, and the pairs' own among them."""
    balancers = Balancers()
    for clusters, group in groups:
        balancers.add_listing(group.listed)
        by_arn = {
            lb["LoadBalancerArn"]: normal(lb["DNSName"]) for lb in group.albs if lb.get("DNSName")
        }
        for cluster in clusters:
            for project in config.projects:
                settings = project.clusters.get(cluster.name)
                if settings is None:
                    continue
                own = pair_balancers(
                    settings.classic_elbs, settings.target_groups,
                    group.classic, group.target_groups, by_arn,
                )  # fmt: skip
                balancers.add_owner((project.name, cluster.name), own)
    return balancers


def _shown(sets: list[dict[str, Any]]) -> tuple[str, tuple[str, ...], int | None, bool]:
    """(type, values, ttl, alias) of a name's record sets: the first type of POINTING_TYPES,
    its values over every set of that type (weighted or failover sets have one each)."""
    kind = next(t for t in POINTING_TYPES if any(s.get("Type") == t for s in sets))
    chosen = [s for s in sets if s.get("Type") == kind]
    values: list[str] = []
    for record in chosen:
        if "AliasTarget" in record:
            values.append(normal(record["AliasTarget"].get("DNSName", "")))
        else:
            values.extend(normal(v.get("Value", "")) for v in record.get("ResourceRecords", ()))
    ttl = chosen[0].get("TTL")
    return kind, tuple(dict.fromkeys(values)), ttl, "AliasTarget" in chosen[0]


def judge(
    pair: Pair,
    name: str,
    reading: DnsReading,
    balancers: Balancers,
    addresses: Iterable[str] = (),
) -> DnsRecord:
    """The pair's record and what is wrong with it: none, one at a load balancer that does
    not exist (judged over the accounts and regions the config reads) or at another pair's.
    A pair without load balancers points at its own when its values are its instances'."""
    key = normal(name)
    if key in reading.errors:
        return DnsRecord(name, error=reading.errors[key])
    if key in reading.no_zone:
        return DnsRecord(name, finding="no hosted zone holds the name")
    sets = reading.records.get(key)
    if not sets:
        return DnsRecord(name, finding="no record in Route 53")
    kind, values, ttl, alias = _shown(sets)
    record = DnsRecord(name, kind, values, ttl, alias)
    own = balancers.of(pair)
    if own:
        if any(value in own for value in values):
            return replace(record, points_to_pair=True)
    elif values and set(values) <= set(addresses):
        return replace(record, points_to_pair=True)
    for value in values:
        owners = [owner for owner in balancers.owners.get(value, ()) if owner != pair]
        if owners:
            project, cluster = owners[0]
            lb = balancers.names.get(value, value)
            finding = f"points at {project} in {cluster} ({lb})"
            return replace(record, finding=finding)
        if value.endswith(LB_SUFFIXES) and value not in balancers.names:
            return replace(
                record, finding=f"points at a load balancer that does not exist ({value})"
            )
    return record
