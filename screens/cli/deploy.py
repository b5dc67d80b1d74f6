"""The `deploy` and `rollback` commands: deploys for CI, readable or one JSON event per line.

Bad input is refused from the config alone, before the engine (boto3, SSH, SQLite) is even
imported, and before the store is opened: a mistake answers at once and creates nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from types import TracebackType
from typing import TYPE_CHECKING, Any, TextIO

from console.config import Config, TicketSettings
from console.errors import ConsoleError, DeployError, LockBusy, ReleaseWarned
from console.events import (
    DeployEvent,
    DeployFinished,
    DeployStarted,
    OutputLine,
    StepFinished,
    StepStarted,
    event_json,
)
from console.model import DeployRequest, DeployState, Release, Step, StepState
from screens import PROG
from screens.cli import bake, releases, schedule
from screens.cli.command_line import Commands, say, with_config
from screens.cli.gate import rejected
from screens.cli.iam import terminal_mfa_prompt
from screens.cli.protected import confirm_protected

if TYPE_CHECKING:
    from console.deploy.engine import DeployEngine
    from console.deploy.risks import ReleaseWarning
    from console.deploy.services import DeployServices
    from console.fleet.inventory import Fleet
    from console.queue.runner import Runner

EXIT_SUCCEEDED = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_BUSY = 3  # refused: a permission, a busy pair, --fail-if-blocked, an approver's reject

MARKS = {StepState.SUCCEEDED: "ok", StepState.FAILED: "FAILED", StepState.SKIPPED: "skipped"}


def register(commands: Commands) -> None:
    deploy = commands.add(
        "deploy",
        "deploy a release of a project to a cluster, to its end",
        with_config(deploy_command),
    )
    deploy.add_argument("project")
    deploy.add_argument("cluster")
    deploy.add_argument("release", help="a version (the AMI's Version tag) or an AMI id")
    deploy.add_argument("--yes", action="store_true", help="confirm a protected cluster")
    deploy.add_argument(
        "--anyway",
        action="store_true",
        help="confirm a warned release: one already running, a downgrade, or one that failed "
        "or was rolled back in the last days",
    )
    deploy.add_argument("--json", action="store_true", help="one JSON event per line")
    deploy.add_argument("--ticket", metavar="ID", help=TICKET_HELP)
    deploy.add_argument(
        "--no-wait", action="store_true", help="queue it, print its id and exit (a runner runs it)"
    )
    deploy.add_argument(
        "--fail-if-blocked",
        action="store_true",
        help="exit 3 with why instead of queueing a deploy that would wait (a lock, a freeze, "
        "another deploy of the pair)",
    )
    schedule.add_options(deploy)
    rollback = commands.add(
        "rollback",
        "deploy again the release a finished deploy replaced",
        with_config(rollback_command),
    )
    rollback.add_argument("deploy_id", metavar="DEPLOY_ID")
    rollback.add_argument("--yes", action="store_true", help="confirm a protected cluster")
    rollback.add_argument("--json", action="store_true", help="one JSON event per line")
    rollback.add_argument("--ticket", metavar="ID", help=TICKET_HELP)
    schedule.add_options(rollback, at=False)
    rollback.add_argument(
        "--break-glass",
        metavar="REASON",
        help="an admin's rollback during an incident: it waits for no approval (audited, "
        "notified loudly)",
    )
    releases.register(commands)  # `releases` in --help's order, after rollback
    bake.register(commands)


TICKET_HELP = "the change ticket it goes with (a cluster's `ticket` setting may require one)"


def _check_ticket(config: Config, cluster: str, ticket: str | None) -> None:
    """A ticket the cluster needs and lacks, or one of the wrong form: refused in one line,
    before anything is read from AWS or queued."""
    settings = config.cluster(cluster).ticket or TicketSettings()
    problem = settings.problem(ticket, cluster)
    if problem is not None:
        hint = "" if ticket else " (--ticket ID)"
        raise DeployError(f"{problem}{hint}: nothing deployed")


def _confirm_protected(config: Config, cluster: str, yes: bool) -> None:
    confirm_protected(
        config, cluster, yes, flag="deploy to it", prompt="deploy", nothing="nothing deployed"
    )


async def _release_warnings(
    config: Config, args: argparse.Namespace, fleet: Fleet
) -> tuple[Release, list[ReleaseWarning]] | None:
    """The release asked for, and its warnings: its plan and the releases read from AWS, the
    project's recent deploys from the store (not created if there is none). None: a signal
    stopped the command while it read them (nothing changed)."""
    from console.deploy.planner import DeployPlanner
    from console.deploy.risks import plan_warnings
    from console.deploy.services import actor, store_path
    from console.store import Store, utc_now

    request = DeployRequest(args.project, args.cluster, args.release, actor())
    path = store_path(config, args.store)
    with _Interrupts():
        plan = await DeployPlanner(config, fleet.gateway).plan(request)
        gateway = await asyncio.to_thread(fleet.gateway, args.cluster)
        if not path.exists():
            return plan.release, await plan_warnings(config, gateway, plan, None, utc_now())
        async with await Store.open(path, create=False, read_only=True) as store:
            return plan.release, await plan_warnings(config, gateway, plan, store, utc_now())
    return None


def _confirm_warnings(release: Release, warnings: list[ReleaseWarning], anyway: bool) -> None:
    """A warned release deploys only once confirmed: --anyway, or a person typing yes. The
    warnings go to stderr; without a terminal and --anyway, one line names them and the flag."""
    from console.deploy.risks import warnings_text

    if not warnings:
        return
    if not anyway and not sys.stdin.isatty():
        said = "; ".join(warning.text for warning in warnings)
        raise DeployError(f"release {release.version} {said}: pass --anyway to deploy it")
    for line in warnings_text(release, warnings):
        print(line, file=sys.stderr)
    sys.stderr.flush()
    if anyway:
        return
    typed = input(f"Deploy {release.version} anyway? Type yes to deploy it: ").strip()
    if typed.lower() != "yes":
        raise DeployError(f"release {release.version} not confirmed: nothing deployed")


def _print_event(event: DeployEvent, out: TextIO) -> None:
    if isinstance(event, DeployStarted):
        print(
            f"deploy {event.deploy_id}: {event.project} -> {event.cluster}, "
            f"release {event.release} ({event.image_id}), by {event.actor}",
            file=out,
        )
    elif isinstance(event, StepStarted):
        detail = f" ({event.detail})" if event.detail else ""
        print(f"  {event.step}: started{detail}", file=out)
    elif isinstance(event, StepFinished):
        detail = f": {event.detail}" if event.detail else ""
        mark = MARKS.get(event.state, event.state)
        print(f"  {event.step}: {mark} in {event.seconds:.1f} s{detail}", file=out)
    elif isinstance(event, OutputLine):
        print(f"    {event.source} | {event.text}", file=out)
    elif isinstance(event, DeployFinished):
        print(
            f"{event.state.words}: {event.reason} ({event.seconds:.1f} s, console's own time "
            f"{event.own_seconds:.2f} s)",
            file=out,
        )
    out.flush()


class _Interrupts:
    """SIGINT and SIGTERM, handled on the loop: never a traceback, never a half-done deploy.

    Until the deploy starts (planning, opening the store) a signal stops the command: nothing
    has changed. Once it runs, a signal cancels it and the engine rolls back (the old
    instances checked serving, the new ones removed); the command exits 1 when that is done.
    Once the new instances have passed the health gate a cancel no longer rolls back, so the
    deploy finishes. A second signal only says what is going on.
    """

    def __init__(self) -> None:
        self.received: str | None = None
        self.switching = False
        self._engine: DeployEngine | None = None
        self._runner: Runner | None = None
        self._deploy_id: str | None = None
        self._actor = ""
        self._pending: asyncio.Future[Any] | None = None
        self._task: asyncio.Task[Any] | None = None
        self._cancelled: set[str] = set()
        # A signal the command was started with ignored (`nohup`, a background job) stays so.
        self._signals = [
            signum
            for signum in (signal.SIGINT, signal.SIGTERM)
            if signal.getsignal(signum) is not signal.SIG_IGN
        ]

    def __enter__(self) -> _Interrupts:
        self._task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        for signum in self._signals:
            loop.add_signal_handler(signum, self._on_signal, signum)
        if signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN:
            loop.add_signal_handler(signal.SIGHUP, _detach_from_terminal)
            self._signals.append(signal.SIGHUP)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        loop = asyncio.get_running_loop()
        for signum in self._signals:
            loop.remove_signal_handler(signum)
        if kind is asyncio.CancelledError and self.received and self._engine is None:
            if self._task is not None:
                self._task.uncancel()
            say(f"{self.received}: stopped before the deploy started; nothing changed")
            return True  # the caller goes on after its `with` and exits 1
        return False

    def follow(self, runner: Runner, deploy_id: str, actor: str) -> None:
        """From now on a signal cancels the deploy instead of stopping the command: here it
        rolls back at once; queued, it never starts; in another console, that one rolls it
        back."""
        self._runner = runner
        self._deploy_id = deploy_id
        self._actor = actor
        self._engine = runner.engine
        self.cancel_deploys()

    def _on_signal(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if self._engine is None:
            self.received = name
            if self._task is not None:
                self._task.cancel()
        elif self.switching:
            say(f"{name}: the new instances already serve; the deploy finishes (not cancelled)")
        elif self._cancelled:
            say(f"{name}: the deploy is being cancelled; the command ends when that is done")
        else:
            self.received = name
            self.cancel_deploys()

    def cancel_deploys(self) -> None:
        """Cancels the deploy once a signal came (also one that came just before)."""
        runner, deploy_id = self._runner, self._deploy_id
        if self.received is None or runner is None or deploy_id is None or self.switching:
            return
        if deploy_id in self._cancelled:
            return
        self._cancelled.add(deploy_id)
        reason = f"{self.received} to {PROG}"
        if runner.runs(deploy_id) and runner.engine.cancel(deploy_id, reason):
            say(f"{self.received}: cancelling deploy {deploy_id}; it rolls back, wait for it")
            return
        say(f"{self.received}: cancelling deploy {deploy_id}")
        self._pending = asyncio.ensure_future(runner.cancel(deploy_id, self._actor, reason))


def _detach_from_terminal() -> None:
    """The terminal closed (SIGHUP): the deploy is this process's to finish, so it goes on
    to its end with its output to nowhere, as under nohup; the store and audit record it."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for fd in (1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)


async def _follow(
    services: DeployServices,
    request: DeployRequest,
    args: argparse.Namespace,
    interrupts: _Interrupts,
) -> int:
    """Queue the deploy, run it here when its turn comes (unless another console's runner
    takes it first: then follow it through the store), and exit with its outcome."""
    from console.queue.release_queue import DeployQueue
    from console.queue.runner import Runner
    from screens.cli.outbox_after import deliver_after_deploy

    runner = Runner(services.engine, DeployQueue(services.store, services.config), only=())
    glass = getattr(args, "break_glass", None) or ""
    record = await runner.enqueue(request, break_glass=glass)
    if glass:
        say(f"BREAK GLASS: {record.id} rolls back {request.rollback_of} without approval: {glass}")
    _print_queued(record, args)
    if record.not_before is not None:  # `deploy --at`: a runner starts it on time
        schedule.print_scheduled(record, args)
        await schedule.ensure_runner(services.config, services.store.path)
        return EXIT_SUCCEEDED
    if getattr(args, "no_wait", False):
        return EXIT_SUCCEEDED
    interrupts.follow(runner, record.id, request.actor)
    loop = asyncio.create_task(runner.run_forever())
    outcome = DeployState.FAILED
    try:
        async for event in runner.follow(record.id):
            interrupts.cancel_deploys()
            if isinstance(event, StepStarted) and event.step is Step.TRAFFIC_GUARD:
                interrupts.switching = True
            _show(event, args)
            if isinstance(event, DeployFinished):
                outcome = event.state
    finally:
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop
    # With no runner serving the store, its events would wait in the outbox for one.
    await deliver_after_deploy(services)
    if outcome is DeployState.CANCELLED and await rejected(services.store, record.id):
        return EXIT_BUSY  # refused by an approver
    return EXIT_SUCCEEDED if outcome is DeployState.SUCCEEDED else EXIT_FAILED


def _print_queued(record: Any, args: argparse.Namespace) -> None:
    if args.json:
        print(json.dumps({"event": "DeployQueued", "deploy_id": record.id}), flush=True)
    else:
        print(
            f"queued {record.id}: {record.project} -> {record.cluster}, release "
            f"{record.release}, by {record.actor}",
            flush=True,
        )


def _show(event: DeployEvent, args: argparse.Namespace) -> None:
    from console.events import DeployWaiting

    if args.json:
        print(json.dumps(event_json(event)), flush=True)
    elif isinstance(event, DeployWaiting):
        if event.reason:  # "waiting for approval by ..." says it already
            said = event.reason.startswith("waiting ")
            print(f"  {'' if said else 'waiting: '}{event.reason}", flush=True)
    else:
        _print_event(event, sys.stdout)


async def _chain(
    first: dict[str, Any], rest: AsyncIterator[dict[str, Any]]
) -> AsyncIterator[dict[str, Any]]:
    yield first
    async for answer in rest:
        yield answer


async def _deploy_through_service(config: Config, args: argparse.Namespace) -> int:
    """On a shared console host: the runner service queues and runs the deploy (it knows who
    asks); this follows it. Leaving (ctrl+c) leaves the deploy to the runner."""
    from console.events import event_from_json
    from console.servers.runner_door import DoorClient, from_wire

    assert config.runner_socket is not None
    client = DoorClient(config.runner_socket)
    wait = not getattr(args, "no_wait", False) and args.not_before is None
    outcome = DeployState.FAILED
    pair: dict[str, Any] = {
        "project": args.project,
        "cluster": args.cluster,
        "release": args.release,
    }
    if args.ticket:
        pair["ticket"] = args.ticket
    pair.update(schedule.wire(args.not_before, args.window_override))
    answers = client.stream("deploy", **pair, follow=wait, anyway=args.anyway)
    try:
        first = await anext(answers)
    except ReleaseWarned as warned:
        # The service read the warnings; a person at a terminal confirms and asks again.
        if not sys.stdin.isatty():
            raise ReleaseWarned(f"{warned.message}: pass --anyway to deploy it") from None
        say(f"WARNING: {warned.message}")
        typed = await asyncio.to_thread(input, f"Deploy {args.release} anyway? Type yes: ")
        if typed.strip().lower() != "yes":
            raise DeployError(f"release {args.release} not confirmed: nothing deployed") from None
        answers = client.stream("deploy", **pair, follow=wait, anyway=True)
        first = await anext(answers)
    answers = _chain(first, answers)
    try:
        async for answer in answers:
            if "result" in answer:
                _print_queued(from_wire(answer["result"]), args)
                schedule.print_scheduled(from_wire(answer["result"]), args)
                if not wait:
                    return EXIT_SUCCEEDED
                continue
            event = event_from_json(answer["event"])
            _show(event, args)
            if isinstance(event, DeployFinished):
                outcome = event.state
    except asyncio.CancelledError:
        say("stopped following: the runner service goes on with the deploy")
        raise
    return EXIT_SUCCEEDED if outcome is DeployState.SUCCEEDED else EXIT_FAILED


async def _deploy(config: Config, args: argparse.Namespace, fleet: Fleet) -> int:
    from console.deploy.services import actor, deploy_services, store_path

    request = DeployRequest(
        args.project,
        args.cluster,
        args.release,
        actor(),
        ticket=args.ticket or None,
        not_before=args.not_before,
        window_override=args.window_override,
    )
    # Planned before the store is opened: an unknown release leaves no store file behind.
    store = store_path(config, args.store)
    with _Interrupts() as interrupts:
        async with deploy_services(config, store, plan=request, fleet=fleet) as services:
            return await _follow(services, request, args, interrupts)
    return EXIT_FAILED  # a signal stopped it before the deploy started


def _busy(busy: LockBusy) -> int:
    say(f"refused: {busy.message}")
    return EXIT_BUSY


def _refuse_if_blocked(config: Config, args: argparse.Namespace) -> None:
    """--fail-if-blocked: why the deploy would wait, read from the store before anything is
    queued (a deploy queued by someone else in between still waits: checked, not reserved)."""
    if not getattr(args, "fail_if_blocked", False):
        return
    from console.deploy.services import actor, store_path
    from screens.cli.gate import blocked

    request = DeployRequest(
        args.project, args.cluster, args.release, actor(), window_override=args.window_override
    )
    why = asyncio.run(blocked(config, store_path(config, args.store), request))
    if why:
        raise Blocked(f"blocked: {why}")


class Blocked(ConsoleError):
    """--fail-if-blocked: the deploy would wait; nothing was queued."""


def deploy_command(config: Config, args: argparse.Namespace) -> int:
    """Exit 0 succeeded, 1 failed, 2 bad input, 3 refused (permission, busy, blocked, a
    ticket check or release gate that said no)."""
    from console.access import AccessDenied
    from console.gates.checks import GateRefused

    try:
        return _deploy_command(config, args)
    except (AccessDenied, Blocked, GateRefused) as refused:
        say(f"refused: {refused.message}")
        return EXIT_BUSY


def _deploy_command(config: Config, args: argparse.Namespace) -> int:
    config.project(args.project)
    config.cluster(args.cluster)
    if args.cluster not in config.project(args.project).clusters:
        raise DeployError(f"project {args.project} is not configured in cluster {args.cluster}")
    _check_ticket(config, args.cluster, args.ticket)
    args.not_before = schedule.not_before(args)  # bad input before anything: exit 2
    args.window_override = schedule.override(config, args.cluster, args)
    from console.access import Action
    from console.deploy.services import check_allowed, store_path

    if config.runner_socket is not None:  # a shared host: the runner service checks and runs
        if getattr(args, "fail_if_blocked", False):
            raise DeployError("--fail-if-blocked is not available through a runner service yet")
        _confirm_protected(config, args.cluster, args.yes)
        return asyncio.run(_deploy_through_service(config, args))
    # Before AWS or the queue: a refusal is only written to the audit.
    check_allowed(
        config, store_path(config, args.store), Action.DEPLOY, args.cluster, project=args.project
    )
    schedule.check_override(
        config, store_path(config, args.store), args.cluster, args.project, args.window_override
    )
    _confirm_protected(config, args.cluster, args.yes)
    _refuse_if_blocked(config, args)  # before the warnings: nothing to confirm if it would wait
    from console.fleet.inventory import Fleet

    # One fleet for the warnings and the deploy: an MFA code is typed once.
    fleet = Fleet(config, mfa_prompt=terminal_mfa_prompt())
    try:
        warned = asyncio.run(_release_warnings(config, args, fleet))
        if warned is None:
            return EXIT_FAILED  # a signal stopped it before the deploy started
        _confirm_warnings(*warned, args.anyway)
        return asyncio.run(_deploy(config, args, fleet))
    except LockBusy as busy:
        return _busy(busy)
    finally:
        fleet.close()


async def _rollback(config: Config, args: argparse.Namespace) -> int:
    from console.deploy.services import actor, deploy_services, store_path

    store = store_path(config, args.store)
    if not store.exists():  # nothing was ever deployed with it: do not create it now
        raise DeployError(f"unknown deploy {args.deploy_id!r} (no store at {store})")
    async with deploy_services(config, store, mfa_prompt=terminal_mfa_prompt()) as services:
        request = await services.engine.rollback_request(args.deploy_id, actor())
        _check_ticket(config, request.cluster, args.ticket)
        outside = schedule.override(config, request.cluster, args)
        await schedule.check_override_in(
            config, services.store, request.actor, request.cluster, request.project, outside
        )
        request = dataclasses.replace(request, ticket=args.ticket or None, window_override=outside)
        if not args.json:
            print(
                f"rolling back {args.deploy_id}: deploying {request.release} of "
                f"{request.project} to {request.cluster} again",
                flush=True,
            )
        _confirm_protected(config, request.cluster, args.yes)
        with _Interrupts() as interrupts:
            plan = await services.engine.plan(request)  # refused before anything changes
            if plan.reuses and not args.json:  # within the cluster's keep_old: seconds
                print(f"starts kept {', '.join(plan.reuses)}: no launch", flush=True)
            return await _follow(services, request, args, interrupts)
        return EXIT_FAILED  # a signal stopped it before the deploy started


def rollback_command(config: Config, args: argparse.Namespace) -> int:
    """`rollback DEPLOY_ID`: a new deploy of the release that deploy replaced. Exits as
    `deploy`: 3 when refused (the role may not deploy there, the pair is busy)."""
    from console.access import AccessDenied
    from console.gates.checks import GateRefused

    if args.break_glass is not None and not args.break_glass.strip():
        raise DeployError("--break-glass needs the reason (the incident): nothing rolled back")
    try:
        return asyncio.run(_rollback(config, args))
    except AccessDenied as refused:
        say(f"refused: {refused.message}")
        return EXIT_BUSY
    except LockBusy as busy:
        return _busy(busy)
    except GateRefused as refused:
        say(f"refused: {refused.message}")
        return EXIT_BUSY
    except schedule.OverrideRefused as refused:
        say(f"refused: {refused.message}")
        return EXIT_BUSY
