"""`deploy-console stack plan|status|diff`: a pair's CloudFormation stack against its config.

The `stack` group is shared: another part adds a subcommand (`stack apply`, `stack adopt`)
with a module of its own, `screens/cli/stack_NAME.py`, holding
`def register_stack(stack: Commands) -> None` (which calls `stack.add("NAME", help,
handler)`), and ONE line in SUBCOMMANDS below naming that function. Their handlers may use
`pair_checked` (the one-line refusals, exit 2), `gateways` (one AwsGateway per cluster) and
`plan_lines` (a plan as this module prints it) from here. Reads (plan, status, diff) need only
the viewer role: a plan's change set changes nothing until it is executed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from console.config import Config
from screens.cli import stack_adopt, stack_apply
from screens.cli.command_line import Commands, with_config

if TYPE_CHECKING:
    from console.aws.gateway import AwsGateway
    from console.stacks.plan import StackPlan, StackState

EXIT_OK = 0
EXIT_DIFFERENT = 1

# Subcommands other modules add to `stack` (see the module's docstring): one line each.
SUBCOMMANDS: tuple[Callable[[Commands], None], ...] = (
    stack_apply.register_stack,
    stack_adopt.register_stack,
)


def register(commands: Commands) -> None:
    group = commands.add("stack", "the CloudFormation stack the console owns for a pair")
    stack = commands.nested(group, "stack_command", required=True)
    plan = stack.add(
        "plan", "what applying the config to a pair's stack would change (a change set)",
        with_config(plan_command),
    )  # fmt: skip
    _pair_arguments(plan)
    status = stack.add(
        "status", "each pair's stack: its status, last update, in sync with the config or not",
        with_config(status_command),
    )  # fmt: skip
    status.add_argument("project", metavar="PROJECT", nargs="?", help="only this project")
    status.add_argument("cluster", metavar="CLUSTER", nargs="?", help="only this cluster")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    diff = stack.add(
        "diff", "per property: what the config asks, what the stack says, what runs",
        with_config(diff_command),
    )  # fmt: skip
    _pair_arguments(diff)
    for extra in SUBCOMMANDS:
        extra(stack)


def _pair_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("project", metavar="PROJECT")
    parser.add_argument("cluster", metavar="CLUSTER")
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def pair_checked(config: Config, project: str, cluster: str) -> None:
    """Refuse, in one line (exit 2), a project or cluster the config does not know, a project
    not in that cluster, and a pair whose stack is not the console's."""
    from console.stacks.refs import pair_settings

    config.project(project)
    config.cluster(cluster)
    pair_settings(config, project, cluster)


@contextlib.asynccontextmanager
async def gateways(config: Config) -> AsyncIterator[Callable[[str], AwsGateway]]:
    """The gateway of a cluster (made once per cluster), their calls in one small pool."""
    from concurrent.futures import ThreadPoolExecutor

    from console.aws.gateway import AwsGateway

    made: dict[str, AwsGateway] = {}
    executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="aws")

    def gateway(cluster: str) -> AwsGateway:
        if cluster not in made:
            made[cluster] = AwsGateway(config.cluster(cluster), executor)
        return made[cluster]

    try:
        yield gateway
    finally:
        executor.shutdown(wait=False, cancel_futures=True)


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else f"{moment:%Y-%m-%d %H:%M} UTC"


def _short_type(kind: str) -> str:
    return kind.removeprefix("AWS::")


def plan_lines(plan: StackPlan) -> list[str]:
    """A plan for a person: the stack, then per resource its action, type and replacement,
    the properties that change (old -> new) and what to know (! notes), then DNS moves."""
    if plan.stack_status is None:
        head = f"{plan.stack_name}: no stack yet (the plan creates it)"
    else:
        head = f"{plan.stack_name}: {plan.stack_status}, updated {_when(plan.last_updated)}"
    lines = [head]
    if plan.unchanged:
        lines.append("no changes: the stack is what the config asks for")
        return lines
    counts = ", ".join(f"{n} to {action}" for action, n in plan.counts().items() if n)
    lines.append(f"plan {plan.change_set_name} ({plan.change_set_type}): {counts}")
    lines.append("")
    width = max(len(r.change.logical_id) for r in plan.resources)
    types = max(len(_short_type(r.change.resource_type)) for r in plan.resources)
    for resource in plan.resources:
        change = resource.change
        replacement = "" if resource.action.value == "add" else (
            f"  replacement {change.replacement.value}"
        )  # fmt: skip
        kind = _short_type(change.resource_type)
        lines.append(
            f"  {resource.action.value:<8} {change.logical_id:<{width}}  "
            f"{kind:<{types}}{replacement}".rstrip()
        )
        indent = " " * 11
        if resource.physical_id:
            lines.append(f"{indent}id {resource.physical_id}")
        lines.extend(f"{indent}{property.describe()}" for property in change.properties)
        lines.extend(f"{indent}! {note}" for note in change.notes)
    moves = plan.dns_moves()
    if moves:
        lines.append("")
        lines.extend(moves)
    lines.append("")
    lines.append(f"apply it: deploy-console stack apply {plan.project} {plan.cluster}")
    return lines


def plan_command(config: Config, args: argparse.Namespace) -> int:
    pair_checked(config, args.project, args.cluster)
    plan = asyncio.run(_plan(config, args.project, args.cluster, args.store))
    if args.json:
        from screens.cli.json_out import emit

        emit("stack-plan", **plan.as_json())
    else:
        print("\n".join(plan_lines(plan)))
    return EXIT_OK


async def _plan(config: Config, project: str, cluster: str, store: str | None) -> StackPlan:
    from console.stacks.plan import plan_stack

    adoption = (await _baselines(config, store)).get((project, cluster))
    async with gateways(config) as gateway:
        return await plan_stack(gateway(cluster), config, project, cluster, adoption)


async def _baselines(config: Config, store: str | None) -> dict[tuple[str, str], Any]:
    """The pairs `stack adopt` recorded (their stacks reference what they adopted)."""
    from console.deploy.services import store_path
    from console.stacks.adopt import adoptions

    return await adoptions(store_path(config, store))


# -- status ------------------------------------------------------------------------------------


def _pairs(config: Config, project: str | None, cluster: str | None) -> list[tuple[str, str]]:
    if project is not None:
        config.project(project)
    if cluster is not None:
        config.cluster(cluster)
    pairs = [
        (p.name, c)
        for p in config.projects
        if project is None or p.name == project
        for c in config.cluster_names
        if c in p.clusters and (cluster is None or c == cluster)
    ]
    if project is not None and cluster is not None and not pairs:
        pair_checked(config, project, cluster)  # says the project is not in the cluster
    return pairs


def status_command(config: Config, args: argparse.Namespace) -> int:
    pairs = _pairs(config, args.project, args.cluster)
    states = asyncio.run(_states(config, pairs, args.store))
    if args.json:
        from screens.cli.json_out import emit

        emit("stack-status", pairs=[state.as_json() for state in states])
    else:
        _print_states(states)
        from screens.cli.stack_adopt import print_adoptions

        print_adoptions(config, args, [(s.project, s.cluster) for s in states])
    return EXIT_OK if all(state.in_sync for state in states) else EXIT_DIFFERENT


async def _states(
    config: Config, pairs: list[tuple[str, str]], store: str | None
) -> list[StackState]:
    from console.stacks.plan import stack_state

    baselines = await _baselines(config, store)
    async with gateways(config) as gateway:
        return list(
            await asyncio.gather(
                *(stack_state(gateway(c), config, p, c, baselines.get((p, c))) for p, c in pairs)
            )
        )


def _sync_words(state: StackState) -> str:
    if not state.managed:
        return "not managed"
    if state.status is None:
        return "no stack yet"
    if state.changes == 0:
        return "in sync"
    return f"differs: {state.changes} resource(s) to change"


def _print_states(states: list[StackState]) -> None:
    from screens.cli.tables import print_table

    if not states:
        print("no pairs match")
        return
    rows = [
        (
            state.project,
            state.cluster,
            state.stack_name if state.managed else "-",
            state.status or "-",
            _when(state.last_updated),
            _sync_words(state),
        )
        for state in states
    ]
    print_table(("project", "cluster", "stack", "status", "updated", "config"), rows)


# -- diff --------------------------------------------------------------------------------------


def diff_command(config: Config, args: argparse.Namespace) -> int:
    from console.stacks.live import NOT_READ

    pair_checked(config, args.project, args.cluster)
    name, status, rows = asyncio.run(_diff(config, args.project, args.cluster, args.store))
    differing = [row for row in rows if row.planned or row.drifted]
    if args.json:
        from screens.cli.json_out import emit

        emit(
            "stack-diff", project=args.project, cluster=args.cluster, stack=name,
            status=status, rows=[row.as_json() for row in rows],
        )  # fmt: skip
    else:
        from console.stacks.diff import readable
        from screens.cli.tables import print_table

        where = status or "no stack yet"
        print(f"{name} ({where}): {len(differing)} of {len(rows)} properties differ")
        if differing:

            def shown(value: Any) -> str:
                return "(not read)" if value is NOT_READ else readable(value)

            print_table(
                ("resource", "property", "config", "stack", "running"),
                [
                    (r.logical_id, r.path, shown(r.config), shown(r.stack), shown(r.running))
                    for r in differing
                ],
            )
    return EXIT_DIFFERENT if differing else EXIT_OK


async def _diff(
    config: Config, project: str, cluster: str, store: str | None
) -> tuple[str, str | None, list[Any]]:
    from console.stacks.live import property_rows, read_live
    from console.stacks.plan import (
        REVIEW,
        current_stack,
        current_template,
        desired_template,
        keep_image,
    )
    from console.stacks.template import stack_name

    name = stack_name(project, cluster)
    async with gateways(config) as gateway:
        aws = gateway(cluster)
        adoption = (await _baselines(config, store)).get((project, cluster))
        desired = await desired_template(aws, config, project, cluster, adoption)
        stack = await current_stack(aws, name)
        if stack is None or stack.get("StackStatus") == REVIEW:
            return name, None, property_rows(desired, None, [])
        template = await current_template(aws, name)
        desired = keep_image(desired, template)
        live = await read_live(aws, name, template)
        return name, str(stack.get("StackStatus")), property_rows(desired, template, live)
