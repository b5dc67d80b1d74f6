"""The runner door's stack requests: `stack_plan` (what applying would change, read with the
service's AWS access) and `stack_apply` (the plan queued as kind "stack", then followed)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from console.access import AccessDenied
from console.events import DeployFinished, event_json
from console.identity import person
from console.queue.runner import Runner
from console.queue.stack_apply import check_stack_allowed, queue_stack_change
from console.stacks.apply import PlannedChange, plan_change

OPERATIONS = ("stack_plan", "stack_apply")


async def stack_answers(
    runner: Runner, actor: str, op: str, args: dict[str, Any]
) -> AsyncIterator[dict[str, Any]]:
    """The answers to one stack request: the plan, or the queued change and its events."""
    project, cluster = str(args["project"]), str(args["cluster"])
    queue = runner.queue
    try:  # who asks first, then AWS
        check_stack_allowed(queue.config, actor, project, cluster)
    except AccessDenied as denied:
        await queue.record_denial(actor, denied, cluster, project)
        raise
    gateway = await asyncio.to_thread(runner.engine._gateway, cluster, person(actor))
    planned = await plan_change(gateway, queue.config, project, cluster, store=queue.store)
    if op == "stack_plan":
        yield {"result": _plan_wire(planned)}
        return
    reason = str(args.get("reason") or "").strip()
    if reason:
        planned = PlannedChange(
            planned.stack_name, planned.template, f"{planned.summary}\nreason: {reason}",
            planned.change_set, planned.changes,
        )  # fmt: skip
    change, record = await queue_stack_change(
        runner, runner.engine.store, (project, cluster, actor), planned
    )
    yield {"result": {"deploy_id": record.id, "change_id": change.id}}
    if args.get("follow"):
        async for event in runner.follow(record.id, output=True):
            yield {"event": event_json(event)}
            if isinstance(event, DeployFinished):
                break


def _plan_wire(planned: PlannedChange) -> dict[str, Any]:
    return {
        "stack_name": planned.stack_name,
        "summary": planned.summary,
        "changes": planned.changes,
    }
