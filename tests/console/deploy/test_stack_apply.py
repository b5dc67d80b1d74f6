"""`stack apply` through the queue and the engine, against a world of its own (moto's
CloudFormation, EC2, ELBv2): the change applied and seen in AWS, its template and audit rows
on record; a failing change ended failed with the cause; a deploy and a stack change on one
pair never run at once; a role that may not deploy may not change a stack.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from console.access import AccessDenied
from console.config import AccessSettings, Config
from console.deploy.services import DeployServices, deploy_services
from console.events import DeployEvent, DeployFinished, OutputLine, StepFinished
from console.model import DeployRequest, DeployState, Step, StepState
from console.queue.release_queue import DeployQueue
from console.queue.runner import Runner
from console.queue.stack_apply import queue_stack_change
from console.stacks.apply import PlannedChange
from tests.deploy_world import client, quick_seed, world_process

ACTOR = "tester"


@pytest.fixture(scope="module")
def stack_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Config]:
    workdir = tmp_path_factory.mktemp("stack-apply-world")
    with world_process(quick_seed(workdir, 1), workdir) as config:
        yield config


def vpc_id(config: Config) -> str:
    return str(client(config, "staging", "ec2").describe_vpcs()["Vpcs"][0]["VpcId"])


def template(config: Config, name: str, *, extra: dict[str, Any] | None = None) -> str:
    """A small stack: a security group and a target group named after `name`."""
    vpc = vpc_id(config)
    resources: dict[str, Any] = {
        "WebSecurityGroup": {
            "Type": "AWS::EC2::SecurityGroup",
            "Properties": {"GroupDescription": f"{name} web", "GroupName": name, "VpcId": vpc},
        },
        "TargetGroup": {
            "Type": "AWS::ElasticLoadBalancingV2::TargetGroup",
            "Properties": {
                "Name": name,
                "Port": 80,
                "Protocol": "HTTP",
                "VpcId": vpc,
                "HealthCheckPath": "/health",
            },
        },
    }
    resources.update(extra or {})
    return json.dumps({"Resources": resources}, indent=2)


@contextlib.asynccontextmanager
async def running(config: Config, store: Path) -> AsyncIterator[tuple[DeployServices, Runner]]:
    """The engine, the queue and a runner claiming everything, until the block ends."""
    async with deploy_services(config, store) as services:
        runner = Runner(services.engine, DeployQueue(services.store, config), poll_seconds=0.2)
        loop = asyncio.create_task(runner.run_forever())
        try:
            yield services, runner
        finally:
            loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loop


async def follow(runner: Runner, deploy_id: str) -> list[DeployEvent]:
    async with asyncio.timeout(120):
        return [event async for event in runner.follow(deploy_id, output=True)]


def ended(events: list[DeployEvent]) -> DeployFinished:
    last = events[-1]
    assert isinstance(last, DeployFinished), last
    return last


async def test_a_stack_change_is_applied_and_on_record(stack_world: Config, tmp_path: Path) -> None:
    config, name = stack_world, "stk-apply-web"
    first = PlannedChange("dc-apply-web", template(config, name), "+ WebSecurityGroup\n+ TG")
    async with running(config, tmp_path / "store.db") as (services, runner):
        change, record = await queue_stack_change(
            runner, services.store, ("storefront", "staging", ACTOR), first
        )
        assert record.kind == "stack" and record.release == change.id
        outcome = ended(await follow(runner, record.id))
        assert outcome.state is DeployState.SUCCEEDED, outcome.reason
        # A second change adds a resource: the update is seen in AWS.
        extra = {
            "AdminSecurityGroup": {
                "Type": "AWS::EC2::SecurityGroup",
                "Properties": {"GroupDescription": "admin", "GroupName": f"{name}-admin",
                               "VpcId": vpc_id(config)},
            }
        }  # fmt: skip
        second = dataclasses.replace(first, template=template(config, name, extra=extra))
        change2, record2 = await queue_stack_change(
            runner, services.store, ("storefront", "staging", ACTOR), second
        )
        events = await follow(runner, record2.id)
        assert ended(events).state is DeployState.SUCCEEDED, ended(events).reason
        stored = await services.store.stack_changes.get(change2.id)
        rows = await services.store.audit_rows(project="storefront")
    groups = client(config, "staging", "ec2").describe_security_groups()["SecurityGroups"]
    assert {name, f"{name}-admin"} <= {group["GroupName"] for group in groups}
    assert stored is not None and stored.state == "applied" and stored.template == second.template
    assert stored.deploy_id == record2.id and stored.finished_at is not None
    lines = [e.text for e in events if isinstance(e, OutputLine) and e.source == "stack"]
    assert any("executing change set" in line for line in lines), lines
    assert any("UPDATE_COMPLETE" in line for line in lines), lines
    steps = {e.step: e.state for e in events if isinstance(e, StepFinished)}
    assert steps == {Step.LOCK: StepState.SUCCEEDED, Step.RESOLVE: StepState.SUCCEEDED}
    actions = [r.action for r in rows if change2.id in r.reason and r.action.startswith("stack.")]
    assert actions[0] == "stack.planned" and actions[-1] == "stack.applied", actions
    assert {"stack.queued", "stack.started"} <= set(actions), actions


async def test_a_failing_change_ends_failed_with_its_cause(
    stack_world: Config, tmp_path: Path
) -> None:
    config, name = stack_world, "stk-apply-bad"
    # Two target groups of one name: CloudFormation refuses the second.
    twin = {
        "TwinGroup": {
            "Type": "AWS::ElasticLoadBalancingV2::TargetGroup",
            "Properties": {"Name": name, "Port": 80, "Protocol": "HTTP", "VpcId": vpc_id(config)},
        }
    }
    planned = PlannedChange("dc-apply-bad", template(config, name, extra=twin), "+ 3 resources")
    async with running(config, tmp_path / "store.db") as (services, runner):
        change, record = await queue_stack_change(
            runner, services.store, ("storefront", "staging", ACTOR), planned
        )
        outcome = ended(await follow(runner, record.id))
        stored = await services.store.stack_changes.get(change.id)
        rows = await services.store.audit_rows(project="storefront")
    assert outcome.state is DeployState.FAILED
    assert "already exists" in outcome.reason, outcome.reason
    assert stored is not None and stored.state == "failed"
    # The event that caused it, with its ResourceStatusReason, on record and in the reason.
    cause = "TwinGroup CREATE_FAILED: A target group with the specified name already exists."
    assert stored.failure_events == [cause], stored.events
    assert cause in outcome.reason and "ROLLBACK_COMPLETE" in outcome.reason
    assert "stack.failed" in [r.action for r in rows if change.id in r.reason]


async def test_a_deploy_and_a_stack_change_of_one_pair_never_run_at_once(
    stack_world: Config, tmp_path: Path
) -> None:
    config = stack_world
    planned = PlannedChange("dc-apply-serial", template(config, "stk-apply-serial"), "+ 2")
    async with running(config, tmp_path / "store.db") as (services, runner):
        deploy = await runner.enqueue(DeployRequest("storefront", "qaprod1", "2.14.1", ACTOR))
        _, stack = await queue_stack_change(
            runner, services.store, ("storefront", "qaprod1", ACTOR), planned
        )
        stack_events, deploy_events = await asyncio.gather(
            follow(runner, stack.id), follow(runner, deploy.id)
        )
        first = await services.store.deploy(deploy.id)
        second = await services.store.deploy(stack.id)
    assert ended(deploy_events).state is DeployState.SUCCEEDED, ended(deploy_events).reason
    assert ended(stack_events).state is DeployState.SUCCEEDED, ended(stack_events).reason
    assert first is not None and second is not None
    assert first.finished_at is not None and second.started_at is not None
    assert second.started_at >= first.finished_at


async def test_a_role_that_may_not_deploy_may_not_change_a_stack(
    stack_world: Config, tmp_path: Path
) -> None:
    viewers = dataclasses.replace(stack_world, access=AccessSettings(users={"*": "viewer"}))
    planned = PlannedChange("dc-apply-refused", "{}", "")
    async with running(viewers, tmp_path / "store.db") as (services, runner):
        with pytest.raises(AccessDenied, match="may not deploy"):
            await queue_stack_change(
                runner, services.store, ("storefront", "staging", ACTOR), planned
            )
        assert await services.store.stack_changes.of_pair("storefront", "staging") == []
