"""The metrics' own parts: the loopback-only address, a registry per process, the deploy
events they count, and the AWS calls and errors the gateway reports (on the session world)."""

from __future__ import annotations

import argparse
import asyncio
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from console.aws.gateway import AwsGateway
from console.config import Config, load_config
from console.errors import AwsError
from console.events import DeployFinished, DeployStarted, StepFinished
from console.metrics.address import MetricsAddress, MetricsAddressError, parse_address
from console.metrics.current import install, installed
from console.metrics.deploys import DeployMetrics
from console.metrics.registry import Metrics
from console.model import DeployState, Step, StepState
from screens.cli.metrics_option import metrics_served
from tests.conftest import EXAMPLE_CONFIG, run_python
from tests.waiting import await_until


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


def test_the_example_configs_metrics_block_reads_once_uncommented(tmp_path: Path) -> None:
    text = EXAMPLE_CONFIG.read_text()
    start = text.index("# [metrics]")
    block = text[start : text.index("\n\n", start)]
    uncommented = "\n".join(line.removeprefix("# ") for line in block.splitlines())
    path = tmp_path / "example.toml"
    path.write_text(text + "\n" + uncommented + "\n")
    metrics = load_config(path).metrics
    assert (metrics.runner, metrics.sshd, metrics.web) == (
        "127.0.0.1:9464",
        "127.0.0.1:9465",
        "127.0.0.1:9466",
    )
    assert load_config(EXAMPLE_CONFIG).metrics.runner is None  # nothing listens unless asked


def test_nothing_is_served_or_installed_unless_asked() -> None:
    args = argparse.Namespace(metrics=None)
    with metrics_served(None, args):
        assert installed() is None


async def test_a_runner_samples_queue_depth_and_the_anchors_age(
    world_config: Config, tmp_path: Path
) -> None:
    """The gauges a serving runner reads from its store: no anchor age before the store first
    anchored, then the seconds since."""
    from console.deploy.services import deploy_services
    from console.queue.release_queue import DeployQueue
    from console.servers.runner_metrics import runner_metrics

    metrics = Metrics()
    location = "s3://deploy-console-audit/deploy-console/audit-anchor.json"
    age = "deploy_console_audit_anchor_age_seconds"
    install(metrics)
    try:
        async with deploy_services(world_config, tmp_path / "store.db") as services:
            queue = DeployQueue(services.store, world_config)
            async with runner_metrics(world_config, services, queue, None) as told:
                assert told is not None
                await await_until(
                    lambda: (
                        metrics.registry.get_sample_value(
                            "deploy_console_queue_depth", {"state": "queued"}
                        )
                        == 0
                    ),
                    "the queue's depth sampled",
                )
                assert metrics.registry.get_sample_value(age, {"location": location}) is None
            anchored = datetime.now(UTC) - timedelta(minutes=10)
            await services.store.record_anchor(location, 1, "0" * 64, anchored)
            async with runner_metrics(world_config, services, queue, None):
                seconds = await await_until(
                    lambda: metrics.registry.get_sample_value(age, {"location": location}),
                    "the anchor's age sampled",
                )
    finally:
        install(None)
    assert 600 <= seconds < 900


def test_sessions_are_read_at_each_scrape() -> None:
    metrics = Metrics()
    open_now = {"alice", "bob"}
    metrics.count_sessions("ssh", lambda: len(open_now))
    assert value(metrics, "deploy_console_sessions", door="ssh") == 2
    open_now.discard("bob")
    assert value(metrics, "deploy_console_sessions", door="ssh") == 1


def test_only_a_process_that_serves_metrics_loads_prometheus_client() -> None:
    done = run_python(
        "import sys\n"
        "import console.aws.gateway, console.fleet.share, console.servers.runner_service\n"
        "import screens.main, screens.cli.runner, screens.cli.sshd, screens.cli.web\n"
        "assert 'prometheus_client' not in sys.modules\n"
        "import console.metrics.serve\n"
        "assert 'prometheus_client' in sys.modules\n"
    )
    assert done.returncode == 0, done.stderr
