"""The runner door's `scale` request: a scale queued and run by the runner service, for whom
the door says asks (same checks as `deploy` through the door: the role, then AWS)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from console.access import AccessDenied, Action
from console.deploy.scale import KIND, ScalePlan, ScaleRefused, parse_count, plan_scale
from console.events import DeployFinished, event_json
from console.model import DeployRequest
from console.queue.release_queue import DeployQueue
from console.queue.runner import Runner

if TYPE_CHECKING:
    from console.store import DeployRecord


async def queue_scale(
    runner: Runner,
    queue: DeployQueue,
    actor: str,
    project: str,
    cluster: str,
    count: str,
    reason: str = "",
) -> tuple[DeployRecord, ScalePlan]:
    """Checks who asks and what AWS shows, then queues the scale (with a `scale.requested`
    audit row naming its reason); the record and what the scale will do. ScaleRefused when it
    may not run now: nothing queued."""
    target = parse_count(count)
    request = DeployRequest(project, cluster, str(target), actor, kind=KIND)
    try:
        queue.access.check(actor, Action.DEPLOY, cluster, project=project)
        plan = await plan_scale(runner.engine, request)
        if plan.refusal:
            raise ScaleRefused(
                f"scale {project} in {cluster} to {target}: {plan.refusal}; nothing queued"
            )
        record = await runner.enqueue(request)
    except AccessDenied as denied:
        await queue.record_denial(actor, denied, cluster, project)
        raise
    await queue.store.audit(
        "scale.requested",
        actor=actor,
        project=project,
        cluster=cluster,
        deploy_id=record.id,
        outcome=str(target),
        reason=reason or plan.text(),
    )
    return record, plan


async def answer(
    runner: Runner,
    queue: DeployQueue,
    actor: str,
    args: dict[str, Any],
    to_wire: Callable[[Any], Any],
) -> AsyncIterator[dict[str, Any]]:
    """The door's answers to `scale`: the queued record (as the door's `to_wire` writes
    records), then (with `follow`) its events."""
    record, _ = await queue_scale(
        runner,
        queue,
        actor,
        str(args["project"]),
        str(args["cluster"]),
        str(args["count"]),
        str(args.get("reason") or ""),
    )
    yield {"result": to_wire(record)}
    if args.get("follow"):
        async for event in runner.follow(record.id):
            yield {"event": event_json(event)}
            if isinstance(event, DeployFinished):
                break
