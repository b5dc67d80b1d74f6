"""`stack apply PROJECT CLUSTER`: the pair's stack plan shown, confirmed as a deploy is, then
queued (kind "stack") and, with --wait, followed to its end like a deploy."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from typing import TYPE_CHECKING, Any

from console.config import Config
from console.errors import DeployError
from console.events import DeployEvent, DeployFinished, DeployStarted, event_from_json
from console.model import DeployState
from screens.cli.command_line import Commands, say, with_config
from screens.cli.deploy import EXIT_BUSY, EXIT_FAILED, EXIT_SUCCEEDED, _print_event
from screens.cli.iam import terminal_mfa_prompt
from screens.cli.protected import confirm_protected

if TYPE_CHECKING:
    from console.stacks.apply import PlannedChange


def register_stack(stack: Commands) -> None:
    """`stack apply`, one subcommand of the `stack` group (screens/cli/stack.py)."""
    apply = stack.add(
        "apply",
        "apply the pair's stack plan (queued like a deploy; confirmed as a deploy is)",
        with_config(apply_command),
    )
    apply.add_argument("project")
    apply.add_argument("cluster")
    apply.add_argument("--yes", action="store_true", help="confirm a protected cluster (CI)")
    apply.add_argument("--wait", action="store_true", help="follow the change to its end")
    apply.add_argument("--reason", metavar="TEXT", help="why (recorded with the change)")


def apply_command(config: Config, args: argparse.Namespace) -> int:
    """Exit 0 applied (or queued), 1 failed, 2 bad input, 3 refused (the role, a gate)."""
    from console.access import AccessDenied
    from console.gates.checks import GateRefused
    from console.stacks.refs import pair_settings

    pair_settings(config, args.project, args.cluster)  # bad input: exit 2, nothing read
    if args.reason is not None and not args.reason.strip():
        raise DeployError("--reason needs the text: nothing applied")
    try:
        if config.runner_socket is not None:  # a shared host: the runner service plans and runs
            return asyncio.run(_through_service(config, args))
        return _apply_here(config, args)
    except (AccessDenied, GateRefused) as refused:
        say(f"refused: {refused.message}")
        return EXIT_BUSY


def _apply_here(config: Config, args: argparse.Namespace) -> int:
    from console.access import Action
    from console.deploy.services import check_allowed, store_path
    from console.fleet.inventory import Fleet

    # Before AWS or the queue: a refusal is only written to the audit.
    check_allowed(
        config, store_path(config, args.store), Action.DEPLOY, args.cluster, project=args.project
    )
    fleet = Fleet(config, mfa_prompt=terminal_mfa_prompt())
    try:
        return asyncio.run(_apply(config, args, fleet))
    finally:
        fleet.close()


def show_plan(planned: PlannedChange, project: str, cluster: str) -> None:
    print(f"stack {planned.stack_name} ({project} in {cluster}):", flush=True)
    for line in planned.summary.splitlines():
        print(f"  {line}", flush=True)


def confirm(config: Config, cluster: str, yes: bool) -> None:
    """A protected cluster's typed name, as `deploy` asks it; --yes for CI."""
    confirm_protected(
        config, cluster, yes, flag="apply to it", prompt="apply", nothing="nothing applied"
    )


async def _apply(config: Config, args: argparse.Namespace, fleet: Any) -> int:
    from console.deploy.services import actor, deploy_services, store_path
    from console.queue.release_queue import DeployQueue
    from console.queue.runner import Runner
    from console.queue.stack_apply import queue_stack_change
    from console.stacks.adopt import adoption_of
    from console.stacks.apply import plan_change

    gateway = await asyncio.to_thread(fleet.gateway, args.cluster)
    baseline = await adoption_of(store_path(config, args.store), args.project, args.cluster)
    planned = await plan_change(gateway, config, args.project, args.cluster, adoption=baseline)
    show_plan(planned, args.project, args.cluster)
    if not planned.changes:
        return EXIT_SUCCEEDED
    confirm(config, args.cluster, args.yes)
    if args.reason:
        planned = _with_reason(planned, args.reason)
    async with deploy_services(config, store_path(config, args.store), fleet=fleet) as services:
        runner = Runner(services.engine, DeployQueue(services.store, config), only=())
        change, record = await queue_stack_change(
            runner, services.store, (args.project, args.cluster, actor()), planned
        )
        print(f"queued {record.id}: stack change {change.id} of {planned.stack_name}", flush=True)
        if not args.wait:
            from screens.cli.schedule import ensure_runner

            await ensure_runner(config, services.store.path)  # a runner applies it
            return EXIT_SUCCEEDED
        loop = asyncio.create_task(runner.run_forever())
        outcome = DeployState.FAILED
        try:
            async for event in runner.follow(record.id, output=True):
                outcome = _shown(event) or outcome
        finally:
            loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loop
    return EXIT_SUCCEEDED if outcome is DeployState.SUCCEEDED else EXIT_FAILED


def _with_reason(planned: PlannedChange, reason: str) -> PlannedChange:
    import dataclasses

    return dataclasses.replace(planned, summary=f"{planned.summary}\nreason: {reason.strip()}")


def _shown(event: DeployEvent) -> DeployState | None:
    if isinstance(event, DeployStarted):  # the engine names the change as its "release"
        print(
            f"{event.deploy_id}: {event.release} of {event.image_id} "
            f"({event.project} in {event.cluster}), by {event.actor}",
            flush=True,
        )
        return None
    _print_event(event, sys.stdout)
    return event.state if isinstance(event, DeployFinished) else None


async def _through_service(config: Config, args: argparse.Namespace) -> int:
    """On a shared console host the runner service plans (with its own AWS access), this
    shows the plan and confirms, then the service queues and runs the change."""
    from console.servers.runner_door import DoorClient

    assert config.runner_socket is not None
    client = DoorClient(config.runner_socket)
    pair = {"project": args.project, "cluster": args.cluster, "reason": args.reason or ""}
    plan = await client.call("stack_plan", **pair)
    print(f"stack {plan['stack_name']} ({args.project} in {args.cluster}):", flush=True)
    for line in str(plan["summary"]).splitlines():
        print(f"  {line}", flush=True)
    if not plan["changes"]:
        return EXIT_SUCCEEDED
    confirm(config, args.cluster, args.yes)
    outcome = DeployState.FAILED
    try:
        async for answer in client.stream("stack_apply", **pair, follow=args.wait):
            if "result" in answer:
                result = answer["result"]
                print(f"queued {result['deploy_id']}: stack change {result['change_id']}")
                if not args.wait:
                    return EXIT_SUCCEEDED
                continue
            outcome = _shown(event_from_json(answer["event"])) or outcome
    except asyncio.CancelledError:
        say("stopped following: the runner service goes on with the stack change")
        raise
    return EXIT_SUCCEEDED if outcome is DeployState.SUCCEEDED else EXIT_FAILED
