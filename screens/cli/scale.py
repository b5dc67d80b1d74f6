"""The `scale` command: a pair's desired count changed, queued and locked like a deploy.

Bad input (an unknown pair, a count that is not a whole number from 1 to the maximum) is
refused from the config alone, before AWS or the store. Without --wait the scale is queued
and a runner runs it; with --wait the command follows it to its end (exit 0 succeeded, 1 not).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from typing import TYPE_CHECKING, Any

from console.config import Config
from console.errors import DeployError, LockBusy
from console.events import DeployEvent, DeployFinished, DeployStarted
from console.model import DeployState
from screens.cli.command_line import Commands, say, with_config
from screens.cli.deploy import EXIT_BUSY, EXIT_FAILED, EXIT_SUCCEEDED
from screens.cli.protected import confirm_protected

if TYPE_CHECKING:
    from console.deploy.services import DeployServices
    from console.store import DeployRecord


def register(commands: Commands) -> None:
    scale = commands.add(
        "scale",
        "change how many instances a project runs in a cluster (queued like a deploy)",
        with_config(scale_command),
    )
    scale.add_argument("project")
    scale.add_argument("cluster")
    scale.add_argument("count", metavar="N", help="the instances the pair should run (1 or more)")
    scale.add_argument("--yes", action="store_true", help="confirm a protected cluster")
    scale.add_argument(
        "--wait", action="store_true", help="follow the scale to its end (exit 1 if it fails)"
    )
    scale.add_argument("--reason", metavar="TEXT", default="", help="why (in the audit)")


def scale_command(config: Config, args: argparse.Namespace) -> int:
    """Exit 0 queued (or, with --wait, succeeded), 1 failed, 2 bad input, 3 refused."""
    from console.access import AccessDenied
    from console.deploy.scale import ScaleRefused
    from console.gates.checks import GateRefused

    try:
        return _scale_command(config, args)
    except (AccessDenied, GateRefused, ScaleRefused) as refused:
        say(f"refused: {refused.message}")
        return EXIT_BUSY
    except LockBusy as busy:
        say(f"refused: {busy.message}")
        return EXIT_BUSY


def _check_input(config: Config, args: argparse.Namespace) -> int:
    """The pair and the count, from the config alone (ConsoleError: exit 2)."""
    from console.deploy.scale import parse_count

    project = config.project(args.project)
    config.cluster(args.cluster)
    if args.cluster not in project.clusters:
        raise DeployError(f"project {args.project} is not configured in cluster {args.cluster}")
    count = parse_count(args.count)
    if args.reason:
        from console.queue.rules import plain_reason

        plain_reason(args.reason)
    return count


def _confirm_protected(config: Config, cluster: str, yes: bool) -> None:
    confirm_protected(
        config, cluster, yes, flag="scale it", prompt="scale it", nothing="nothing scaled"
    )


def _scale_command(config: Config, args: argparse.Namespace) -> int:
    args.count = str(_check_input(config, args))
    from console.access import Action
    from console.deploy.services import check_allowed, store_path

    if config.runner_socket is not None:  # a shared host: the runner service checks and runs
        _confirm_protected(config, args.cluster, args.yes)
        return asyncio.run(_through_service(config, args))
    # Before AWS or the queue: a refusal is only written to the audit.
    check_allowed(
        config, store_path(config, args.store), Action.DEPLOY, args.cluster, project=args.project
    )
    _confirm_protected(config, args.cluster, args.yes)
    return asyncio.run(_scale(config, args))


async def _scale(config: Config, args: argparse.Namespace) -> int:
    from console.deploy.services import actor, deploy_services, store_path
    from console.queue.release_queue import DeployQueue
    from console.queue.runner import Runner
    from console.servers.scale_door import queue_scale
    from screens.cli.deploy import _Interrupts
    from screens.cli.iam import terminal_mfa_prompt

    store = store_path(config, args.store)
    with _Interrupts() as interrupts:
        async with deploy_services(config, store, mfa_prompt=terminal_mfa_prompt()) as services:
            runner = Runner(services.engine, DeployQueue(services.store, config), only=())
            record, plan = await queue_scale(
                runner, runner.queue, actor(), args.project, args.cluster, args.count,
                args.reason,
            )  # fmt: skip
            _print_queued(record)
            print(f"  {plan.text()}", flush=True)
            if not args.wait:
                from screens.cli.schedule import ensure_runner

                await ensure_runner(config, services.store.path)
                return EXIT_SUCCEEDED
            interrupts.follow(runner, record.id, record.actor)
            return await _follow(services, runner, record.id)
    return EXIT_FAILED  # a signal stopped it before the scale was queued


async def _follow(services: DeployServices, runner: Any, deploy_id: str) -> int:
    """Runs the queue here until the scale ends (unless another console's runner takes it:
    then it is followed through the store); its outcome as the exit code."""
    from screens.cli.outbox_after import deliver_after_deploy

    loop = asyncio.create_task(runner.run_forever())
    outcome = DeployState.FAILED
    try:
        async for event in runner.follow(deploy_id):
            _show(event)
            if isinstance(event, DeployFinished):
                outcome = event.state
    finally:
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop
    await deliver_after_deploy(services)
    return EXIT_SUCCEEDED if outcome is DeployState.SUCCEEDED else EXIT_FAILED


def _print_queued(record: DeployRecord) -> None:
    print(
        f"queued {record.id}: {record.project} in {record.cluster}, scale to {record.release}, "
        f"by {record.actor}",
        flush=True,
    )


def _show(event: DeployEvent) -> None:
    from screens.cli.deploy import _print_event

    if isinstance(event, DeployStarted):
        image = f" ({event.image_id})" if event.image_id else ""
        print(
            f"scale {event.deploy_id}: {event.project} in {event.cluster}, {event.release}"
            f"{image}, by {event.actor}",
            flush=True,
        )
        return
    from console.events import DeployWaiting

    if isinstance(event, DeployWaiting):
        if event.reason:
            print(f"  waiting: {event.reason}", flush=True)
        return
    _print_event(event, sys.stdout)


async def _through_service(config: Config, args: argparse.Namespace) -> int:
    """On a shared console host: the runner service queues and runs the scale for whom it
    knows asks; this follows it with --wait (leaving leaves the scale to the runner)."""
    from console.events import event_from_json
    from console.servers.runner_door import DoorClient, from_wire

    assert config.runner_socket is not None
    client = DoorClient(config.runner_socket)
    outcome = DeployState.FAILED
    answers = client.stream(
        "scale",
        project=args.project,
        cluster=args.cluster,
        count=args.count,
        reason=args.reason,
        follow=args.wait,
    )
    try:
        async for answer in answers:
            if "result" in answer:
                _print_queued(from_wire(answer["result"]))
                if not args.wait:
                    return EXIT_SUCCEEDED
                continue
            event = event_from_json(answer["event"])
            _show(event)
            if isinstance(event, DeployFinished):
                outcome = event.state
    except asyncio.CancelledError:
        say("stopped following: the runner service goes on with the scale")
        raise
    return EXIT_SUCCEEDED if outcome is DeployState.SUCCEEDED else EXIT_FAILED
