"""The world's CloudWatch alarms: `PROJECT-5xx` where a bake watches; a state set by hand."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import boto3

from console.config import Config
from console.errors import ConsoleError

ALARM_STATES = ("OK", "ALARM", "INSUFFICIENT_DATA")
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
GLOB = frozenset("*?[")


class WorldAlarmError(ConsoleError):
    """An alarm the world does not have, or a config that does not point at the world."""


def wanted_alarms(config: Config) -> list[tuple[str, str]]:
    """(region, alarm name) of each alarm a bake in `config` watches: a pattern's
    `PROJECT-5xx` for each project in the cluster (e.g. `*-5xx`: checkout-api-5xx), and each
    name given whole; once per region, sorted."""
    wanted: set[tuple[str, str]] = set()
    for cluster in config.clusters:
        patterns = cluster.bake.alarms
        wanted |= {(cluster.region, p) for p in patterns if not GLOB & set(p)}
        for project in config.projects:
            name = f"{project.name}-5xx"
            if cluster.name in project.clusters and any(
                fnmatch.fnmatchcase(name, p) for p in patterns
            ):
                wanted.add((cluster.region, name))
    return sorted(wanted)


def seed_alarms(config: Config, client: Callable[[str, str], Any]) -> int:
    """Creates the alarms the bakes watch, each in state OK (moto never evaluates one: it
    changes only when set, e.g. by `deploy-console world alarm NAME ALARM`); how many."""
    made = 0
    for region, name in wanted_alarms(config):
        cloudwatch = client("cloudwatch", region)
        cloudwatch.put_metric_alarm(
            AlarmName=name,
            AlarmDescription="demo: deploy-console world alarm NAME ALARM|OK sets its state",
            Namespace="AWS/ApplicationELB",
            MetricName="HTTPCode_Target_5XX_Count",
            Statistic="Sum",
            Period=60,
            EvaluationPeriods=1,
            Threshold=10.0,
            ComparisonOperator="GreaterThanThreshold",
            TreatMissingData="notBreaching",
        )
        cloudwatch.set_alarm_state(AlarmName=name, StateValue="OK", StateReason="seeded")
        made += 1
    return made


def _world_regions(config: Config) -> list[tuple[str, str]]:
    """(endpoint, region) of each cluster; refuses a config whose clusters are not all on a
    loopback world (this command never changes a real account's alarms)."""
    places: list[tuple[str, str]] = []
    for cluster in config.clusters:
        endpoint = cluster.endpoint_url
        if endpoint is None or urlsplit(endpoint).hostname not in LOOPBACK:
            raise WorldAlarmError(
                f"cluster {cluster.name} is not on the embedded world (its endpoint_url is "
                f"{endpoint or 'AWS itself'}): use the config `world`/`demo` wrote"
            )
        if (endpoint, cluster.region) not in places:
            places.append((endpoint, cluster.region))
    return places


def set_alarm_state(config: Config, name: str, state: str, reason: str) -> list[str]:
    """Sets the world's alarm `name` to `state` in every region that has one; the regions.
    WorldAlarmError when no region has it (naming the alarms there are)."""
    if state not in ALARM_STATES:
        raise WorldAlarmError(f"state must be one of {', '.join(ALARM_STATES)}, not {state!r}")
    session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing")
    regions: list[str] = []
    known: set[str] = set()
    for endpoint, region in _world_regions(config):
        cloudwatch = session.client("cloudwatch", region_name=region, endpoint_url=endpoint)
        alarms = cloudwatch.describe_alarms(MaxRecords=100)["MetricAlarms"]
        known |= {str(a["AlarmName"]) for a in alarms}
        if any(a["AlarmName"] == name for a in alarms):
            cloudwatch.set_alarm_state(AlarmName=name, StateValue=state, StateReason=reason)
            regions.append(region)
    if not regions:
        listed = ", ".join(sorted(known)) or "none"
        raise WorldAlarmError(f"the world has no alarm {name!r} (its alarms: {listed})")
    return regions
