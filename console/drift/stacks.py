"""Stack drift: a console-owned stack's resources changed outside the console, found by
comparing the stack's own template with what AWS describes (console/stacks/live.py)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from console.config import Config
from console.drift.findings import STACK, Finding
from console.errors import ConsoleError
from console.stacks.diff import readable
from console.stacks.live import Difference, differences, read_live
from console.stacks.plan import REVIEW, current_stack, current_template
from console.stacks.template import stack_name

if TYPE_CHECKING:
    from console.aws.gateway import AwsGateway

__all__ = ["difference_finding", "stack_findings"]

log = logging.getLogger(__name__)

# A stack in these states runs no template of its own to compare with.
NOT_RUNNING = (REVIEW, "ROLLBACK_COMPLETE", "DELETE_COMPLETE", "CREATE_IN_PROGRESS")


def difference_finding(project: str, cluster: str, difference: Difference) -> Finding:
    """One property (or resource) of the pair's stack that is not what its template says."""
    where = f"{difference.logical_id} ({difference.resource_type})"
    apply = f"stack apply {project} {cluster}"
    if difference.path == "(resource)":
        return Finding(
            STACK, project, cluster, difference.logical_id,
            f"stack {stack_name(project, cluster)}: {where} is gone ({difference.actual})",
            f"{apply} after a plan shows it made again (or delete and apply the stack)",
        )  # fmt: skip
    return Finding(
        STACK, project, cluster, f"{difference.logical_id} {difference.path}",
        f"stack {stack_name(project, cluster)}: {where} changed outside the console: "
        f"{difference.describe()}",
        f"set it back to {readable(difference.expected)} (an apply of an unchanged template "
        f"changes nothing), or put the new value in the config and {apply}",
    )  # fmt: skip


async def stack_findings(
    config: Config, gateway: Callable[[str], AwsGateway], pairs: set[tuple[str, str]] | None = None
) -> list[Finding]:
    """The stack findings of every pair with a stack (or of `pairs`), one pair at a time: each
    costs a describe_stacks, a get_template, a describe_stack_resources and a describe or two
    per resource. A stack that does not run yet, or cannot be read, has none (logged)."""
    found: list[Finding] = []
    for project in config.projects:
        for cluster, settings in project.clusters.items():
            if settings.stack is None or (
                pairs is not None and (project.name, cluster) not in pairs
            ):
                continue
            try:
                found += await _pair(
                    await asyncio.to_thread(gateway, cluster), project.name, cluster
                )
            except ConsoleError as error:
                log.warning("stack drift of %s in %s not read: %s", project.name, cluster, error)
    return found


async def _pair(gateway: AwsGateway, project: str, cluster: str) -> list[Finding]:
    name = stack_name(project, cluster)
    stack = await current_stack(gateway, name)
    if stack is None or stack.get("StackStatus") in NOT_RUNNING:
        return []
    template = await current_template(gateway, name)
    live = await read_live(gateway, name, template)
    return [difference_finding(project, cluster, d) for d in differences(template, live)]
