"""The metrics' own parts: the loopback-only address, a registry per process, the deploy
events they count, and the AWS calls and errors the gateway reports (on the session world)."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from console.aws.gateway import AwsGateway
from console.config import Config
from console.errors import AwsError
from console.events import DeployFinished, DeployStarted, StepFinished
from console.metrics.address import MetricsAddress, MetricsAddressError, parse_address
from console.metrics.current import install, installed
from console.metrics.deploys import DeployMetrics
from console.metrics.registry import Metrics
from console.model import DeployState, Step, StepState


def value(metrics: Metrics, name: str, **labels: str) -> float:
    found = metrics.registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("9464", MetricsAddress("127.0.0.1", 9464)),
        ("127.0.0.1:0", MetricsAddress("127.0.0.1", 0)),
        ("localhost:9464", MetricsAddress("127.0.0.1", 9464)),
        ("127.0.0.2:9464", MetricsAddress("127.0.0.2", 9464)),
        ("[::1]:9464", MetricsAddress("::1", 9464)),
    ],
)
def test_loopback_addresses_are_taken(text: str, expected: MetricsAddress) -> None:
    assert parse_address(text) == expected


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("0.0.0.0:9464", "loopback only"),
        ("10.1.2.3:9464", "loopback only"),
        ("metrics.example.com:9464", "loopback only"),
        ("[::]:9464", "loopback only"),
        ("127.0.0.1:99999", "PORT or HOST:PORT"),
        ("127.0.0.1:", "PORT or HOST:PORT"),
        ("nine", "PORT or HOST:PORT"),
    ],
)
def test_other_addresses_are_refused_in_one_line(text: str, said: str) -> None:
    with pytest.raises(MetricsAddressError) as refused:
        parse_address(text)
    assert said in str(refused.value) and "\n" not in str(refused.value)


def test_each_metrics_has_its_own_registry() -> None:
    first, second = Metrics(), Metrics()
    first.aws_call("ec2", "DescribeInstances")
    assert (
        value(first, "deploy_console_aws_calls_total", service="ec2", operation="DescribeInstances")
        == 1
    )
    assert (
        value(
            second, "deploy_console_aws_calls_total", service="ec2", operation="DescribeInstances"
        )
        == 0
    )


async def test_deploy_events_become_counts_and_durations() -> None:
    metrics = Metrics()
    queued = datetime(2026, 12, 5, 3, 0, tzinfo=UTC)

    class Record:
        cluster = "staging"
        created_at = queued

    async def record_of(deploy_id: str) -> Record:
        return Record()

    told = DeployMetrics(metrics, record_of)
    started = queued + timedelta(seconds=42)
    told("d1", DeployStarted("d1", "shop", "staging", "1.0", "ami-1", "alice", started))
    told("d1", StepFinished("d1", Step.LAUNCH, StepState.SUCCEEDED, 3.5))
    told("d1", DeployFinished("d1", DeployState.SUCCEEDED, "", 61.0, 1.0))
    # A deploy a pre-deploy hook stopped never started: its record names the cluster.
    told("d2", DeployFinished("d2", DeployState.FAILED, "hook failed", 0.0, 0.0))
    await told.aclose()
    await asyncio.sleep(0)
    ok = {"cluster": "staging", "outcome": "succeeded"}
    assert value(metrics, "deploy_console_deploys_total", **ok) == 1
    assert value(metrics, "deploy_console_deploys_total", cluster="staging", outcome="failed") == 1
    assert value(metrics, "deploy_console_deploy_duration_seconds_sum", **ok) == 61.0
    step = {"step": "launch", "state": "succeeded"}
    assert value(metrics, "deploy_console_step_duration_seconds_sum", **step) == 3.5
    assert value(metrics, "deploy_console_queue_wait_seconds_sum", cluster="staging") == 42.0


async def test_the_gateway_counts_calls_and_errors_by_operation(world_config: Config) -> None:
    metrics = Metrics()
    install(metrics)
    try:
        with ThreadPoolExecutor(2) as executor:
            gateway = AwsGateway(world_config.clusters[0], executor)
            await gateway.target_groups()
            with pytest.raises(AwsError):
                await gateway.call("elb", "describe_instance_health", LoadBalancerName="no-such")
    finally:
        install(None)
    assert installed() is None
    elb = {"service": "elb", "operation": "DescribeInstanceHealth"}
    assert value(metrics, "deploy_console_aws_calls_total", **elb) == 1
    assert (
        value(
            metrics,
            "deploy_console_aws_calls_total",
            service="elbv2",
            operation="DescribeTargetGroups",
        )
        >= 1
    )
    errors = metrics.registry.get_sample_value
    codes = [
        sample.labels["code"]
        for family in metrics.registry.collect()
        if family.name == "deploy_console_aws_errors"
        for sample in family.samples
        if sample.name.endswith("_total") and sample.labels.get("operation") == elb["operation"]
    ]
    assert codes and codes[0] != "", codes
    assert errors("deploy_console_aws_errors_total", {**elb, "code": codes[0]}) == 1
