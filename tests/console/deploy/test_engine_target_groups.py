"""The health gate across several load balancers: a classic ELB and two target groups.

A small world of its own (one project, two clusters; each pair's instances serve in a classic
ELB checking /health and two target groups). The new instances must become healthy in every
load balancer of the old ones before the old leave, and the gate fails closed: healthy in two
of three is not healthy. The world decides health per load balancer by its health check path
(console/world/ssh.py: a release serves the paths in app/routes).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from console.config import Config
from console.deploy.services import deploy_services
from console.events import DeployEvent, OutputLine, StepFinished, StepStarted
from console.model import DeployPlan, DeployRequest, DeployState, LoadBalancerKind, Step, StepState
from tests.console.deploy.test_engine import config_head, finished, steps, world_fixture
from tests.deploy_world import ServingWatcher, client, instances, live, serving_in

MARGIN = 3  # [engine] health_gate_margin_seconds
# The world's settings for every load balancer: time to healthy 2 x 5 s + 5 s.
TIME_TO_HEALTHY = 15

CONFIG = (
    config_head(MARGIN)
    + """
[[clusters]]
name = "qaprod1"
region = "us-east-1"

[[projects]]
name = "gateway"
repository = "https://github.com/example-shop/gateway"

"""
    + "".join(
        f"""
[projects.clusters.{cluster}]
classic_elbs = ["gateway-legacy-{cluster}"]
target_groups = ["gateway-web-{cluster}", "gateway-api-{cluster}"]
[projects.clusters.{cluster}.launch]
instance_type = "t3.small"
subnet = "{cluster}-app-a"
security_groups = ["{cluster}-web"]
"""
        for cluster in ("staging", "qaprod1")
    )
    + """
[projects.deploy]
configure = "sh app/bin/configure"
start = "sh app/bin/start"
health = "sh app/bin/healthcheck"
env_file = "app.env"
startup_timeout_seconds = 12
health_interval_seconds = 0.5
[projects.deploy.env]
APP_NAME = "gateway"

[world]
seed = 11
registration_seconds = 1
health_check_interval_seconds = 5
healthy_threshold = 2
deregistration_delay_seconds = 1

[world.projects.gateway]
versions = ["1.0.0", "1.1.0"]
[world.projects.gateway.routes]
# 1.0.0 answers /ready too; 1.1.0 serves the default routes (/health, /status) only.
"1.0.0" = ["/health", "/status", "/ready"]
[world.projects.gateway.clusters.staging]
instances = 2
version = "1.0.0"
[world.projects.gateway.clusters.qaprod1]
instances = 2
version = "1.0.0"
"""
)


gateway_world = world_fixture("gateway", CONFIG)


def target_group_arn(config: Config, cluster: str, name: str) -> str:
    groups = client(config, cluster, "elbv2").describe_target_groups(Names=[name])
    return str(groups["TargetGroups"][0]["TargetGroupArn"])


def change_target_group(config: Config, cluster: str, name: str, **settings: Any) -> None:
    arn = target_group_arn(config, cluster, name)
    client(config, cluster, "elbv2").modify_target_group(TargetGroupArn=arn, **settings)


def registered_in(config: Config, project: str, cluster: str) -> dict[str, set[str]]:
    """Per load balancer of the pair, every instance it lists, in whatever state."""
    settings = config.project(project).clusters[cluster]
    found: dict[str, set[str]] = {}
    elb = client(config, cluster, "elb")
    for name in settings.classic_elbs:
        states = elb.describe_instance_health(LoadBalancerName=name)["InstanceStates"]
        found[name] = {s["InstanceId"] for s in states}
    elbv2 = client(config, cluster, "elbv2")
    for name in settings.target_groups:
        arn = target_group_arn(config, cluster, name)
        health = elbv2.describe_target_health(TargetGroupArn=arn)
        found[name] = {d["Target"]["Id"] for d in health["TargetHealthDescriptions"]}
    return found


async def plan_and_deploy(
    config: Config, store: Path, cluster: str, release: str
) -> tuple[DeployPlan, list[DeployEvent]]:
    """The plan, then the deploy to its end with a watcher on every load balancer."""
    events: list[DeployEvent] = []
    async with deploy_services(config, store) as services:
        request = DeployRequest("gateway", cluster, release, "tester")
        plan = await services.engine.plan(request)
        async with ServingWatcher(config, "gateway", cluster):
            async for event in services.engine.run(request):
                events.append(event)
    return plan, events


def launched_by(config: Config, cluster: str, deploy_id: str) -> dict[str, dict[str, Any]]:
    return {
        i: raw
        for i, raw in instances(config, "gateway", cluster).items()
        if {"Key": "DeployId", "Value": deploy_id} in raw["Tags"]
    }


def gate_started(events: list[DeployEvent]) -> StepStarted:
    return next(e for e in events if isinstance(e, StepStarted) and e.step is Step.HEALTH_GATE)


async def test_new_instances_serve_in_every_load_balancer_before_the_old_leave(
    gateway_world: Config, tmp_path: Path
) -> None:
    config = gateway_world
    balancers = {"gateway-legacy-staging", "gateway-web-staging", "gateway-api-staging"}
    # One target group checks less often and trusts more checks: the gate waits for the slowest.
    change_target_group(
        config,
        "staging",
        "gateway-api-staging",
        HealthCheckIntervalSeconds=6,
        HealthyThresholdCount=3,
    )
    old = live(config, "gateway", "staging")
    assert len(old) == 2
    assert serving_in(config, "gateway", "staging") == dict.fromkeys(balancers, old)

    plan, events = await plan_and_deploy(config, tmp_path / "store.db", "staging", "1.1.0")

    # The plan reads each load balancer's own settings; the gate's timeout is the slowest's
    # time to healthy (threshold x interval + one interval) plus the engine's margin.
    assert {
        (lb.name, lb.kind, lb.time_to_healthy_seconds, lb.removing) for lb in plan.load_balancers
    } == {
        ("gateway-legacy-staging", LoadBalancerKind.CLASSIC, TIME_TO_HEALTHY, tuple(sorted(old))),
        ("gateway-web-staging", LoadBalancerKind.TARGET_GROUP, TIME_TO_HEALTHY, tuple(sorted(old))),
        ("gateway-api-staging", LoadBalancerKind.TARGET_GROUP, 3 * 6 + 6, tuple(sorted(old))),
    }
    assert gate_started(events).detail == f"up to {3 * 6 + 6 + MARGIN} s"

    outcome = finished(events)
    assert outcome.state is DeployState.SUCCEEDED, outcome.reason
    assert set(steps(events).values()) == {StepState.SUCCEEDED}
    new = live(config, "gateway", "staging")
    assert len(new) == 2 and not (new & old)
    assert set(launched_by(config, "staging", outcome.deploy_id)) == new
    # Healthy in every load balancer, and the old are gone from every one (drained).
    assert serving_in(config, "gateway", "staging") == dict.fromkeys(balancers, new)
    assert registered_in(config, "gateway", "staging") == dict.fromkeys(balancers, new)
    for instance_id in old:
        state = instances(config, "gateway", "staging")[instance_id]["State"]["Name"]
        assert state in ("shutting-down", "terminated")
    # Registered in all three, each named.
    registered = [
        e.text for e in events if isinstance(e, OutputLine) and e.text.startswith("registered ")
    ]
    assert len(registered) == 3
    for name in balancers:
        assert sum(text.endswith(f" {name}") for text in registered) == 1, registered


async def test_healthy_in_one_target_group_but_not_the_other_fails_closed(
    gateway_world: Config, tmp_path: Path
) -> None:
    config = gateway_world
    balancers = {"gateway-legacy-qaprod1", "gateway-web-qaprod1", "gateway-api-qaprod1"}
    # The api target group checks /ready: 1.0.0 answers it, 1.1.0 does not (404).
    change_target_group(config, "qaprod1", "gateway-api-qaprod1", HealthCheckPath="/ready")
    old = live(config, "gateway", "qaprod1")
    assert serving_in(config, "gateway", "qaprod1") == dict.fromkeys(balancers, old)

    plan, events = await plan_and_deploy(config, tmp_path / "store.db", "qaprod1", "1.1.0")

    timeout = TIME_TO_HEALTHY + MARGIN
    assert {lb.time_to_healthy_seconds for lb in plan.load_balancers} == {TIME_TO_HEALTHY}
    assert gate_started(events).detail == f"up to {timeout} s"
    outcome = finished(events)
    assert outcome.state is DeployState.ROLLED_BACK, outcome.reason
    assert f"not healthy after {timeout} s" in outcome.reason
    assert "target group gateway-api-qaprod1" in outcome.reason
    done = {e.step: e for e in events if isinstance(e, StepFinished)}
    assert done[Step.HEALTH_GATE].state is StepState.FAILED
    assert done[Step.HEALTH_GATE].seconds >= timeout - 1
    assert done[Step.ROLLBACK].state is StepState.SUCCEEDED
    assert Step.TRAFFIC_GUARD not in done and Step.DEREGISTER not in done

    # The gate's last word: the new instances were healthy in the classic ELB and the web
    # target group, and unhealthy in the api target group only.
    new = set(launched_by(config, "qaprod1", outcome.deploy_id))
    assert len(new) == 2
    waiting = [
        e.text for e in events if isinstance(e, OutputLine) and e.text.startswith("waiting: ")
    ]
    last = waiting[-1].removeprefix("waiting: ").split("; ")
    assert sorted(last) == sorted(
        f"{i} is unhealthy in target group gateway-api-qaprod1" for i in new
    ), waiting

    # Rolled back: the old serve in every load balancer, the new are out of all and gone.
    assert live(config, "gateway", "qaprod1") == old
    assert serving_in(config, "gateway", "qaprod1") == dict.fromkeys(balancers, old)
    assert registered_in(config, "gateway", "qaprod1") == dict.fromkeys(balancers, old)
    for raw in launched_by(config, "qaprod1", outcome.deploy_id).values():
        assert raw["State"]["Name"] in ("shutting-down", "terminated")
