"""A queue entry of kind "stack" run by the engine: the stored stack change applied, told as a
deploy's steps and output lines, its end on record with the events that failed it."""

from __future__ import annotations

from console.config import Config
from console.deploy.deployment import Deployment
from console.deploy.steps import recorded
from console.errors import ConsoleError
from console.events import DeployStarted, OutputLine
from console.model import DeployState, Step
from console.stacks.apply import StackCalls, apply_change
from console.store import Store
from console.store.stack_changes import APPLIED, FAILED

# The source of a stack event's line in the deploy's output ("    stack | TG UPDATE_COMPLETE").
SOURCE = "stack"


class _Failed(ConsoleError):
    """The stack change failed (its outcome says why)."""


async def run_stack_change(
    store: Store, deployment: Deployment, gateway: StackCalls, config: Config
) -> tuple[DeployState, str]:
    """Applies the stack change the entry names (DeployRequest.release is its id): the lock
    step, the change set (the plan's, else one made from the stored template), each stack
    event as a line, and the end: the change's row and its audit row (stack.applied or
    stack.failed) in one transaction, the failure's events with it."""
    request = deployment.request
    changes = store.stack_changes
    change = await changes.get(request.release)
    if change is None:
        return DeployState.FAILED, f"unknown stack change {request.release!r}"
    if change.project != request.project or change.cluster != request.cluster:
        return DeployState.FAILED, f"stack change {change.id} is not {request.project}'s"
    async with recorded(store, deployment, Step.LOCK, f"held by {request.actor}"):
        pass
    deployment.emit(
        DeployStarted(
            deployment.deploy_id,
            change.project,
            change.cluster,
            f"stack change {change.id}",
            change.stack_name,
            request.actor,
            deployment.clock(),
        )
    )

    def note(line: str) -> None:
        deployment.emit(OutputLine(deployment.deploy_id, SOURCE, line))

    async def executing(change_set: str) -> None:
        await changes.started(change.id, request.actor, change_set)

    engine = config.engine
    try:
        async with (
            recorded(store, deployment, Step.RESOLVE, f"stack {change.stack_name}") as closing,
            deployment.io(),
        ):
            outcome = await apply_change(
                gateway,
                change.stack_name,
                change.template,
                change_set=change.change_set,
                note=note,
                executing=executing,
                timeout=max(600.0, engine.rollback_timeout_seconds),
                poll_seconds=engine.poll_seconds,
            )
            if not outcome.succeeded:
                raise _Failed(outcome.summary)  # the step ends failed, saying why
            closing.append(outcome.summary)
    except _Failed:
        pass
    except Exception as error:
        reason = f"the stack change broke off: {error}"
        await changes.finished(change.id, FAILED, request.actor, reason)
        raise
    state = APPLIED if outcome.succeeded else FAILED
    await changes.finished(change.id, state, request.actor, outcome.summary, outcome.failures)
    if outcome.succeeded:
        return DeployState.SUCCEEDED, f"stack change {change.id} applied: {outcome.summary}"
    return DeployState.FAILED, f"stack change {change.id} failed: {outcome.summary}"


async def put_right_stack_change(
    store: Store, change_id: str, actor: str, gateway: StackCalls
) -> tuple[str, list[str]]:
    """A stack change whose console stopped mid-way: its end read from CloudFormation (the
    change set runs there whoever watches) and put on record; a summary, no instance ids."""
    change = await store.stack_changes.get(change_id)
    if change is None:
        return f"no stack change {change_id} on record", []
    if change.state in ("applied", "failed", "cancelled"):
        return f"stack change {change.id} had ended {change.state}", []
    answer = await gateway.call("cloudformation", "describe_stacks", StackName=change.stack_name)
    stacks = answer.get("Stacks", [])
    status = str(stacks[0].get("StackStatus", "")) if stacks else "gone"
    ok = status.endswith("_COMPLETE") and "ROLLBACK" not in status and change.state == "running"
    why = f"its console stopped; {change.stack_name} is {status}"
    if status.endswith("_IN_PROGRESS"):
        why += " (still going: `stack status` says how it ends)"
    await store.stack_changes.finished(change.id, APPLIED if ok else FAILED, actor, why)
    return f"stack change {change.id} {'applied' if ok else 'failed'}: {why}", []
