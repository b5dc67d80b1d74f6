"""`stack apply` queued: a planned stack change on record, then a queue entry of kind "stack"
(the pair's lock covers deploys and stack changes alike: they never run at once)."""

from __future__ import annotations

from console.access import Access, Action
from console.config import Config
from console.errors import ConsoleError
from console.model import DeployRequest
from console.queue.runner import Runner
from console.stacks.apply import PlannedChange
from console.store import DeployRecord, Store
from console.store.stack_changes import CANCELLED, StackChange

# The role a stack change needs: a deploy's on that cluster (deployer, admin when protected).
# It changes what the pair's deploys run on, so never less than a deploy; an admin-only rule
# would stop the teams that own unprotected pairs from keeping their own stacks.
STACK_ACTION = Action.DEPLOY


def check_stack_allowed(config: Config, actor: str, project: str, cluster: str) -> None:
    """AccessDenied unless the actor may change the pair's stack; ConsoleError if the project
    is not in that cluster (a pair without a stack is refused by its plan: refs.pair_settings)."""
    pair = config.project(project).clusters.get(cluster)
    if pair is None:
        raise ConsoleError(f"project {project} is not configured in cluster {cluster}")
    Access(config).check(actor, STACK_ACTION, cluster, project=project)


async def queue_stack_change(
    runner: Runner, store: Store, request: tuple[str, str, str], planned: PlannedChange
) -> tuple[StackChange, DeployRecord]:
    """Record the plan (stack.planned, its template with it) and queue its apply (kind
    "stack", its release the change's id); a change the queue refused ends cancelled, on
    record, and the refusal is raised. `request`: (project, cluster, actor)."""
    project, cluster, actor = request
    check_stack_allowed(runner.queue.config, actor, project, cluster)
    change = await store.stack_changes.plan(
        project,
        cluster,
        planned.stack_name,
        template=planned.template,
        summary=planned.summary,
        actor=actor,
        change_set=planned.change_set,
    )
    try:
        record = await runner.enqueue(
            DeployRequest(project, cluster, change.id, actor, kind="stack")
        )
    except ConsoleError as error:
        await store.stack_changes.finished(
            change.id, CANCELLED, actor, f"not queued: {error.message}"
        )
        raise
    change = await store.stack_changes.queued(change.id, record.id, actor)
    return change, record
