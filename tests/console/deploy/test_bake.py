"""Watching after cutover: the bake, its automatic rollback, kept old instances and the reaper.

A world of its own (moto's CloudWatch, EC2 and target groups, the SSH jump host): one project
in four clusters, each with its own bake settings. During a bake the test does what an
incident does, through the AWS API only: an alarm goes to ALARM (set_alarm_state), the target
group's 5xx metric climbs (put_metric_data), the health check starts failing the new release
(a path it does not serve). A timeline of the target group's healthy targets shows the old
instances serving again before any new one leaves (enable before disable).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from console.config import Config
from console.deploy import retention
from console.deploy.services import deploy_services
from console.errors import DeployError
from console.events import DeployEvent, OutputLine, StepFinished, StepStarted
from console.model import DeployRequest, DeployState, Step, StepState
from tests.console.deploy.test_engine import config_head, finished, steps, world_fixture
from tests.deploy_world import ServingWatcher, client, instances, live, serving_in
from tests.waiting import await_until

CLUSTERS = {
    "alarm": 'bake = "60s"\nalarms = ["checkout-*"]\nkeep_old = "1h"',
    "limits": 'bake = "60s"\nbake_max_5xx = 5\nbake_max_unhealthy = 0',
    "keep": 'bake = "1s"\nkeep_old = "1h"',
    "decide": 'bake = "60s"\nkeep_old = "1h"',
}

CONFIG = (
    config_head(3).replace('[[clusters]]\nname = "staging"\nregion = "us-east-1"\n', "")
    + "".join(
        f'\n[[clusters]]\nname = "{name}"\nregion = "us-east-1"\n{settings}\n'
        for name, settings in CLUSTERS.items()
    )
    + """
[[projects]]
name = "checkout"
repository = "https://github.com/example-shop/checkout"
"""
    + "".join(
        f"""
[projects.clusters.{cluster}]
target_groups = ["checkout-web-{cluster}"]
[projects.clusters.{cluster}.launch]
instance_type = "t3.small"
subnet = "{cluster}-app-a"
security_groups = ["{cluster}-web"]
"""
        for cluster in CLUSTERS
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
APP_NAME = "checkout"

[world]
seed = 14
registration_seconds = 1
health_check_interval_seconds = 5
healthy_threshold = 2
deregistration_delay_seconds = 1

[world.projects.checkout]
versions = ["1.0.0", "1.1.0"]
[world.projects.checkout.routes]
# 1.0.0 answers /ready too; 1.1.0 serves the default routes (/health, /status) only.
"1.0.0" = ["/health", "/status", "/ready"]
"""
    + "".join(
        f"""[world.projects.checkout.clusters.{cluster}]
instances = 2
version = "1.0.0"
"""
        for cluster in CLUSTERS
    )
)

checkout_world = world_fixture("checkout", CONFIG)


def group(config: Config, cluster: str) -> dict[str, Any]:
    elbv2 = client(config, cluster, "elbv2")
    found = elbv2.describe_target_groups(Names=[f"checkout-web-{cluster}"])
    return dict(found["TargetGroups"][0])


def tags(raw: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in raw.get("Tags", [])}


class Timeline:
    """The target group's healthy targets, polled from a thread every 50 ms."""

    def __init__(self, config: Config, cluster: str) -> None:
        self.config, self.cluster = config, cluster
        self.polls: list[tuple[float, set[str]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            healthy = set().union(*serving_in(self.config, "checkout", self.cluster).values())
            self.polls.append((time.monotonic(), healthy))
            self._stop.wait(0.05)

    def __enter__(self) -> Timeline:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def after(self, since: float) -> list[tuple[float, set[str]]]:
        return [(at, healthy) for at, healthy in self.polls if at >= since]


async def deploy(
    config: Config,
    store: Path,
    cluster: str,
    release: str,
    *,
    during_bake: Callable[[Any, str], Any] | None = None,
    rollback_of: str | None = None,
    watch: bool = True,
) -> list[DeployEvent]:
    """The deploy to its end; `during_bake(services, deploy_id)` runs (in a thread if it is
    not a coroutine function) once the bake step started. `watch`: no load balancer that
    served may ever have no healthy target."""
    events: list[DeployEvent] = []
    async with deploy_services(config, store) as services:
        request = DeployRequest("checkout", cluster, release, "tester", rollback_of=rollback_of)
        watcher = ServingWatcher(config, "checkout", cluster) if watch else None
        async with watcher or contextlib.nullcontext():
            async for event in services.engine.run(request):
                events.append(event)
                if isinstance(event, StepStarted) and event.step is Step.BAKE and during_bake:
                    if asyncio.iscoroutinefunction(during_bake):
                        await during_bake(services, event.deploy_id)
                    else:
                        await asyncio.to_thread(during_bake, services, event.deploy_id)
    return events


def set_alarm(config: Config, cluster: str, state: str) -> None:
    cloudwatch = client(config, cluster, "cloudwatch")
    cloudwatch.set_alarm_state(AlarmName="checkout-5xx", StateValue=state, StateReason="test")


def output(events: list[DeployEvent]) -> list[str]:
    return [e.text for e in events if isinstance(e, OutputLine)]


async def test_an_alarm_during_the_bake_brings_the_old_back_before_the_new_leave(
    checkout_world: Config, tmp_path: Path
) -> None:
    config = checkout_world
    cloudwatch = client(config, "alarm", "cloudwatch")
    cloudwatch.put_metric_alarm(
        AlarmName="checkout-5xx",
        MetricName="HTTPCode_Target_5XX_Count",
        Namespace="AWS/ApplicationELB",
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=10,
        ComparisonOperator="GreaterThanThreshold",
    )
    set_alarm(config, "alarm", "OK")
    old = live(config, "checkout", "alarm")
    fired: list[float] = []

    def fire(services: Any, deploy_id: str) -> None:
        # The new instances serve and the old are stopped, kept: then the alarm goes off.
        kept = {i: instances(config, "checkout", "alarm")[i] for i in old}
        assert all(raw["State"]["Name"] in ("stopping", "stopped") for raw in kept.values())
        assert all(tags(raw)[retention.REPLACED_BY] == deploy_id for raw in kept.values())
        fired.append(time.monotonic())
        set_alarm(config, "alarm", "ALARM")

    with Timeline(config, "alarm") as timeline:
        events = await deploy(config, tmp_path / "s.db", "alarm", "1.1.0", during_bake=fire)
    outcome = finished(events)
    assert outcome.state is DeployState.ROLLED_BACK, outcome.reason
    assert "alarm checkout-5xx in ALARM during the bake" in outcome.reason
    assert steps(events)[Step.BAKE] is StepState.SUCCEEDED
    assert steps(events)[Step.ROLLBACK] is StepState.SUCCEEDED
    # The old instances serve again (started, not replaced); the new ones are gone.
    assert live(config, "checkout", "alarm") == old
    assert set().union(*serving_in(config, "checkout", "alarm").values()) == old
    for raw in instances(config, "checkout", "alarm").values():
        assert retention.KEPT_UNTIL not in tags(raw)
    # Enable before disable: whenever a new instance had left, every old one was serving.
    new_ids = {i for i in instances(config, "checkout", "alarm") if i not in old}
    served = timeline.after(fired[0])
    assert any(new_ids <= healthy for _, healthy in served[:3]), served[:3]
    for at, healthy in served:
        if not new_ids <= healthy:
            assert old <= healthy, (at - fired[0], healthy)
    back = next(at for at, healthy in served if old <= healthy)
    print(f"alarm to every old instance serving: {back - fired[0]:.2f} s")
    set_alarm(config, "alarm", "OK")

    # The audit tells the bake's story with its own actions.
    async with deploy_services(config, tmp_path / "s.db") as services:
        rows = await services.engine.store.audit_rows(deploy_id=outcome.deploy_id)
    actions = [row.action for row in rows]
    assert actions.index("bake-start") < actions.index("bake-rollback")
    assert "bake-end" not in actions
    rollback_row = next(row for row in rows if row.action == "bake-rollback")
    assert "alarm checkout-5xx in ALARM" in rollback_row.reason


async def test_the_target_groups_5xx_over_the_limit_rolls_back(
    checkout_world: Config, tmp_path: Path
) -> None:
    config = checkout_world
    suffix = group(config, "limits")["TargetGroupArn"].split(":")[-1]

    def errors(services: Any, deploy_id: str) -> None:
        client(config, "limits", "cloudwatch").put_metric_data(
            Namespace="AWS/ApplicationELB",
            MetricData=[
                {
                    "MetricName": "HTTPCode_Target_5XX_Count",
                    "Dimensions": [
                        {"Name": "TargetGroup", "Value": suffix},
                        {"Name": "LoadBalancer", "Value": "app/checkout/0123456789abcdef"},
                    ],
                    "Timestamp": datetime.now(UTC),
                    "Value": 12,
                    "Unit": "Count",
                }
            ],
        )

    old = live(config, "checkout", "limits")
    events = await deploy(config, tmp_path / "s.db", "limits", "1.1.0", during_bake=errors)
    outcome = finished(events)
    assert outcome.state is DeployState.ROLLED_BACK, outcome.reason
    assert "12 5xx answers during the bake (limit 5)" in outcome.reason
    assert live(config, "checkout", "limits") == old


async def test_new_instances_failing_the_health_check_during_the_bake_roll_back(
    checkout_world: Config, tmp_path: Path
) -> None:
    config = checkout_world
    arn = group(config, "limits")["TargetGroupArn"]
    elbv2 = client(config, "limits", "elbv2")

    def stricter_check(services: Any, deploy_id: str) -> None:
        # 1.1.0 does not answer /ready: its instances turn unhealthy; 1.0.0 does.
        elbv2.modify_target_group(TargetGroupArn=arn, HealthCheckPath="/ready")

    old = live(config, "checkout", "limits")
    # The 5xx put by the test before are older than this bake: they do not count. The new
    # release failing its checks leaves the group without a healthy target until the old
    # serve again: no watcher here.
    try:
        events = await deploy(
            config, tmp_path / "s.db", "limits", "1.1.0", during_bake=stricter_check, watch=False
        )
    finally:
        elbv2.modify_target_group(TargetGroupArn=arn, HealthCheckPath="/health")
    outcome = finished(events)
    assert outcome.state is DeployState.ROLLED_BACK, outcome.reason
    assert "not healthy in target group checkout-web-limits during the bake (limit 0)" in (
        outcome.reason
    )
    assert live(config, "checkout", "limits") == old


async def test_a_rollback_within_keep_old_starts_the_kept_instances_and_the_reaper_ends_them(
    checkout_world: Config, tmp_path: Path
) -> None:
    config = checkout_world
    store = tmp_path / "s.db"
    old = live(config, "checkout", "keep")
    events = await deploy(config, store, "keep", "1.1.0")
    outcome = finished(events)
    assert outcome.state is DeployState.SUCCEEDED, outcome.reason
    assert "bake passed" in outcome.reason and "old kept stopped until" in outcome.reason
    found = instances(config, "checkout", "keep")
    first_new = live(config, "checkout", "keep")
    for instance_id in old:
        assert found[instance_id]["State"]["Name"] in ("stopping", "stopped")
        kept_until = tags(found[instance_id])[retention.KEPT_UNTIL]
        until = datetime.strptime(kept_until, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        assert timedelta(minutes=55) < until - datetime.now(UTC) < timedelta(minutes=65)

    # The rollback's plan says it reuses them; its launch step starts them, in seconds.
    async with deploy_services(config, store) as services:
        request = await services.engine.rollback_request(outcome.deploy_id, "tester")
        plan = await services.engine.plan(request)
    assert set(plan.reuses) == old
    before = set(instances(config, "checkout", "keep"))
    events = await deploy(config, store, "keep", request.release, rollback_of=outcome.deploy_id)
    rolled = finished(events)
    assert rolled.state is DeployState.SUCCEEDED, rolled.reason
    launch = next(e for e in events if isinstance(e, StepFinished) and e.step is Step.LAUNCH)
    assert launch.detail.startswith("reused kept ") and "not launched" in launch.detail
    assert launch.seconds < 10
    assert set(instances(config, "checkout", "keep")) == before  # nothing launched
    assert live(config, "checkout", "keep") == old
    assert set().union(*serving_in(config, "checkout", "keep").values()) == old
    found = instances(config, "checkout", "keep")
    assert all(retention.KEPT_UNTIL not in tags(found[i]) for i in old)
    # The 1.1.0 instances it replaced are kept in turn; the reaper ends them once due.
    assert all(found[i]["State"]["Name"] in ("stopping", "stopped") for i in first_new)
    async with deploy_services(config, store) as services:
        assert await services.engine.reap_kept() == []  # not due yet
        services.engine._clock = lambda: datetime.now(UTC) + timedelta(hours=2)
        reaped = await services.engine.reap_kept()
    assert first_new <= set(reaped)
    found = instances(config, "checkout", "keep")
    assert all(found[i]["State"]["Name"] in ("shutting-down", "terminated") for i in first_new)


@contextlib.asynccontextmanager
async def other_console(config: Config, store: Path) -> AsyncIterator[Any]:
    """Another console on the same store: it does not run the deploy, it only asks."""
    async with deploy_services(config, store) as services:
        yield services


async def test_an_admin_ends_the_bake_early_or_rolls_back_from_another_console(
    checkout_world: Config, tmp_path: Path
) -> None:
    config = checkout_world
    store = tmp_path / "s.db"

    async def end_early(services: Any, deploy_id: str) -> None:
        async with other_console(config, store) as other:
            await other.engine.decide_bake(deploy_id, "alice", "end")

    old = live(config, "checkout", "decide")
    started = time.monotonic()
    events = await deploy(config, store, "decide", "1.1.0", during_bake=end_early)
    outcome = finished(events)
    assert outcome.state is DeployState.SUCCEEDED, outcome.reason
    assert "bake ended early by alice" in outcome.reason
    assert time.monotonic() - started < 50  # not the 60 s bake
    assert not (live(config, "checkout", "decide") & old)

    async def roll_back_now(services: Any, deploy_id: str) -> None:
        async with other_console(config, store) as other:
            try:
                await other.engine.decide_bake("d-unknown", "alice", "rollback")
            except DeployError as error:
                assert "unknown deploy" in error.message
            await other.engine.decide_bake(deploy_id, "alice", "rollback")

    serving = live(config, "checkout", "decide")
    events = await deploy(config, store, "decide", "1.0.0", during_bake=roll_back_now)
    outcome = finished(events)
    assert outcome.state is DeployState.ROLLED_BACK, outcome.reason
    assert "roll back asked by alice during the bake" in outcome.reason
    assert live(config, "checkout", "decide") == serving
    async with deploy_services(config, store) as services:
        rows = await services.engine.store.audit_rows(deploy_id=outcome.deploy_id)
        with contextlib.suppress(DeployError):
            await services.engine.decide_bake(outcome.deploy_id, "alice", "end")
            raise AssertionError("a finished deploy has no bake to end")
    asked = [row for row in rows if row.action == "bake-requested"]
    assert [(row.actor, row.outcome) for row in asked] == [("alice", "rollback")]


async def test_the_runner_reaps_stopped_instances_past_keep_old_and_nothing_else(
    checkout_world: Config, tmp_path: Path
) -> None:
    """The runner serving the store, on its own loop: an expired kept instance is
    terminated; a kept one not yet due, and a running one marked expired, are left alone."""
    from console.queue.release_queue import DeployQueue
    from console.queue.runner import Runner

    config = checkout_world
    ec2 = client(config, "decide", "ec2")
    subnet = ec2.describe_subnets()["Subnets"][0]["SubnetId"]
    image = ec2.describe_images(Owners=["self"])["Images"][0]["ImageId"]
    made = ec2.run_instances(ImageId=image, MinCount=3, MaxCount=3, SubnetId=subnet)
    expired, due_later, running = (i["InstanceId"] for i in made["Instances"])
    now = datetime.now(UTC)
    for instance_id, until in (
        (expired, now - timedelta(minutes=1)),
        (due_later, now + timedelta(hours=1)),
        (running, now - timedelta(minutes=1)),
    ):
        ec2.create_tags(
            Resources=[instance_id],
            Tags=[
                {"Key": retention.KEPT_UNTIL, "Value": retention.stamp(until)},
                {"Key": retention.REPLACED_BY, "Value": "d-test"},
            ],
        )
    ec2.stop_instances(InstanceIds=[expired, due_later])

    def state(instance_id: str) -> str:
        found = ec2.describe_instances(InstanceIds=[instance_id])
        return str(found["Reservations"][0]["Instances"][0]["State"]["Name"])

    async with deploy_services(config, tmp_path / "s.db") as services:
        runner = Runner(
            services.engine,
            DeployQueue(services.store, config),
            poll_seconds=0.1,
            reap_seconds=0.5,
        )
        task = asyncio.create_task(runner.run_forever())
        try:
            await await_until(
                lambda: state(expired) in ("shutting-down", "terminated"), "the reaper"
            )
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    assert state(due_later) == "stopped"
    assert state(running) == "running"
    assert runner.errors == []


async def test_a_console_following_a_runners_deploy_sees_the_bake_and_rolls_it_back(
    checkout_world: Config, tmp_path: Path
) -> None:
    """The deploy runs in a runner; another console (not executing) queues and follows it
    through the store: the bake step comes with its length and what it watches (the deploy
    screen's countdown), and its roll back reaches the runner through the store."""
    from console.queue.release_queue import DeployQueue
    from console.queue.runner import Runner

    config = checkout_world
    store = tmp_path / "s.db"
    serving = live(config, "checkout", "decide")
    versions = {
        t["Value"]
        for i in serving
        for t in instances(config, "checkout", "decide")[i]["Tags"]
        if t["Key"] == "Version"
    }
    release = "1.0.0" if versions == {"1.1.0"} else "1.1.0"
    seen: list[DeployEvent] = []
    async with deploy_services(config, store) as runs, deploy_services(config, store) as follows:
        runner = Runner(runs.engine, DeployQueue(runs.store, config), poll_seconds=0.1)
        follower = Runner(
            follows.engine, DeployQueue(follows.store, config), executes=False, poll_seconds=0.1
        )
        task = asyncio.create_task(runner.run_forever())
        try:
            record = await follower.enqueue(DeployRequest("checkout", "decide", release, "bob"))
            async for event in follower.follow(record.id, output=True):
                seen.append(event)
                if isinstance(event, StepStarted) and event.step is Step.BAKE:
                    assert event.detail.startswith("60 s; no alarms; unhealthy > 0"), event
                    await follows.engine.decide_bake(record.id, "bob", "rollback")
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    outcome = finished(seen)
    assert outcome.state is DeployState.ROLLED_BACK, outcome.reason
    assert "roll back asked by bob during the bake" in outcome.reason
    assert live(config, "checkout", "decide") == serving
