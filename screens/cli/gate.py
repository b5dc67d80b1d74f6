"""Pipeline gates: `check PROJECT CLUSTER` (may a deploy go now?) and `wait DEPLOY_ID`.

Both read the store read-only and never create it: no store means nothing queued, locked or
frozen. Exit codes (README, "Pipeline gates and exit codes"): 0 yes / succeeded, 1 no /
failed, 2 bad input, 3 (`wait`) a deploy rejected by an approver, 4 `wait --timeout` ran out
with the deploy still queued or running.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from console.config import Config
from console.config.paths import store_path
from console.errors import AwsError, DeployError
from console.identity import person
from screens.cli.command_line import Commands, say, seconds_option, with_config

if TYPE_CHECKING:
    from console.model import DeployRequest, EnvStatus
    from console.queue.rules import QueueView

EXIT_OK = 0
EXIT_NO = 1
EXIT_REJECTED = 3
EXIT_TIMEOUT = 4
MAX_WAIT = 7 * 24 * 3600.0  # --timeout: a week is already more than any pipeline waits
POLL_SECONDS = 0.5
ENDED = {"succeeded": EXIT_OK}  # every other finished state exits 1


def register(commands: Commands) -> None:
    check = commands.add(
        "check",
        "exit 0 only if a project in a cluster is healthy, not frozen, not locked, not deploying",
        with_config(check_command),
    )
    check.add_argument("project")
    check.add_argument("cluster")
    check.add_argument("--json", action="store_true", help="machine-readable output")
    wait = commands.add(
        "wait", "wait for a queued or running deploy to end; exit with its outcome",
        with_config(wait_command),
    )  # fmt: skip
    wait.add_argument("deploy_id", metavar="DEPLOY_ID")
    wait.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=seconds_option("--timeout", MAX_WAIT),
        help="give up after this long: exit 4 (the deploy goes on)",
    )
    wait.add_argument("--json", action="store_true", help="print the final record as JSON")


# -- the queue's side, pure -------------------------------------------------------------------


def pair_holds(view: QueueView, project: str, cluster: str, actor: str) -> list[str]:
    """Every reason a new deploy of the pair by `actor` would not start at once: freezes of the
    cluster, blocking manual locks over the pair (a warning lock, or the actor's own, does not
    hold it, as in the queue's rules), deploys queued, running or being reconciled on it."""
    reasons = [
        f"frozen by {freeze.actor}: {freeze.reason}"
        for freeze in view.freezes
        if freeze.cluster == cluster
    ]
    reasons += [
        lock.describe()
        for lock in view.manual_locks
        if not lock.warning
        and person(lock.owner) != person(actor)
        and lock.active(view.now)
        and lock.covers(project, cluster)
    ]
    in_flight = {
        d.id: d.state for d in view.deploys if (d.project, d.cluster) == (project, cluster)
    }
    for lock in view.locks:
        if (lock.project, lock.cluster) == (project, cluster):
            in_flight.setdefault(lock.deploy_id, "running")
    reasons += [f"deploy {deploy_id} {state}" for deploy_id, state in in_flight.items()]
    return reasons


def why_waiting(view: QueueView, request: DeployRequest, newest_wins: bool) -> str:
    """Why `request`, queued now, would wait; "" if it would start at once. The queue's own
    rules decide; a project whose newest deploy wins cancels the queued ones of its pair, so
    they hold nothing. The global limit is capacity, not a hold: it is not a reason here."""
    from console.queue.rules import waiting_reasons
    from console.store import QUEUED, DeployRecord

    deploys = tuple(
        d
        for d in view.deploys
        if not (
            newest_wins
            and d.state == QUEUED
            and (d.project, d.cluster) == (request.project, request.cluster)
        )
    )
    candidate = DeployRecord.new("(this deploy)", request, view.now)
    unlimited = replace(view, deploys=(*deploys, candidate), parallel=len(deploys) + 1)
    return waiting_reasons(unlimited).get(candidate.id, "")


async def queue_view(path: Path, config: Config) -> QueueView | None:
    """The queue as it stands, read-only; None when there is no store (nothing in it)."""
    from console.queue.release_queue import DeployQueue
    from console.store import Store

    if not path.exists():
        return None
    async with await Store.open(path, create=False, read_only=True) as store:
        return await DeployQueue(store, config).view()


async def blocked(config: Config, store: Path, request: DeployRequest) -> str:
    """Why a deploy of `request` would wait if queued now ("" if it would start): what
    `deploy --fail-if-blocked` checks before it queues anything."""
    from console.queue.rules import QueueView
    from console.store import utc_now

    view = await queue_view(store, config)
    if view is None:  # nothing queued yet: the config's own rules still hold
        clusters = config.clusters
        view = QueueView(
            (), (), (), (), {}, utc_now(), config.queue.parallel,
            {cluster.name: cluster.windows for cluster in clusters if cluster.windows},
            {cluster.name: cluster.approvals for cluster in clusters if cluster.approvals},
        )  # fmt: skip
    return why_waiting(view, request, config.project(request.project).newest_wins)


# -- check ------------------------------------------------------------------------------------


async def _env(config: Config, project: str, cluster: str) -> EnvStatus:
    from console.fleet.inventory import Fleet
    from screens.cli.iam import terminal_mfa_prompt

    fleet = Fleet(config, mfa_prompt=terminal_mfa_prompt())
    try:
        snapshot = await fleet.refresh()
    finally:
        fleet.close()
    error = snapshot.cluster(cluster).error
    if error:
        raise AwsError(f"cluster {cluster}: {error}")
    env = snapshot.env(project, cluster)
    if env is None:
        raise DeployError(f"project {project} is not configured in cluster {cluster}")
    return env


def _health_reason(env: EnvStatus) -> str:
    from console.model import Health

    if env.health is Health.HEALTHY:
        return ""
    serving = f" ({env.serving_count}/{env.total_count} instances serving)"
    return f"{env.health}{serving}" + (f": {env.error}" if env.error else "")


def check_command(config: Config, args: argparse.Namespace) -> int:
    """`check PROJECT CLUSTER`: exit 0 when a deploy could go now and the pair is healthy;
    else exit 1 with one line per reason on stdout."""
    from console.deploy.services import actor

    config.project(args.project)
    config.cluster(args.cluster)
    if args.cluster not in config.project(args.project).clusters:
        raise DeployError(f"project {args.project} is not configured in cluster {args.cluster}")
    env = asyncio.run(_env(config, args.project, args.cluster))
    view = asyncio.run(queue_view(store_path(config.store, args.store), config))
    from console.queue.windows import outside_windows
    from console.store import utc_now

    closed = outside_windows(args.cluster, config.cluster(args.cluster).windows, utc_now())
    reasons = [why for why in [_health_reason(env), closed] if why]
    if view is not None:
        reasons += pair_holds(view, args.project, args.cluster, actor())
    version = env.versions[0] if env.versions else None
    if args.json:
        from screens.cli.json_out import emit

        emit("check", ok=not reasons, project=args.project, cluster=args.cluster,
             reasons=reasons, health=str(env.health), version=version)  # fmt: skip
    elif reasons:
        for reason in reasons:
            print(f"{args.project} in {args.cluster}: {reason}")
    else:
        print(f"{args.project} in {args.cluster}: ok ({env.health}, {version or 'no version'})")
    return EXIT_NO if reasons else EXIT_OK


# -- wait -------------------------------------------------------------------------------------


async def rejected(store: Any, deploy_id: str) -> bool:
    """Whether an approver rejected the deploy (console/queue/approving.py)."""
    from console.queue.approvals import rejection

    async with store.snapshot() as tx:
        given = (await tx.approvals([deploy_id])).get(deploy_id, ())
    return rejection(given) is not None


async def _wait(path: Path, deploy_id: str, timeout: float | None) -> tuple[Any, bool, bool]:
    """The deploy's record once it ended (True), or as it stands when the timeout came; and
    whether it ended rejected."""
    from console.model import DeployState
    from console.store import Store

    if not path.exists():
        raise DeployError(f"unknown deploy {deploy_id!r} (no store at {path})")
    deadline = None if timeout is None else time.monotonic() + timeout
    async with await Store.open(path, create=False, read_only=True) as store:
        while True:
            record = await store.deploy(deploy_id)
            if record is None:
                raise DeployError(f"unknown deploy {deploy_id!r} in {path}")
            if DeployState(record.state).finished:
                return record, True, await rejected(store, deploy_id)
            if deadline is not None and time.monotonic() >= deadline:
                return record, False, False
            left = POLL_SECONDS if deadline is None else deadline - time.monotonic()
            await asyncio.sleep(max(0.0, min(POLL_SECONDS, left)))


def wait_command(config: Config, args: argparse.Namespace) -> int:
    """`wait DEPLOY_ID`: follows the deploy through the store (whichever console runs it)."""
    from console.model import DeployState
    from screens.cli.history import deploy_json

    path = store_path(config.store, args.store)
    started = time.monotonic()
    record, ended, was_rejected = asyncio.run(_wait(path, args.deploy_id, args.timeout))
    state = DeployState(record.state)
    if args.json:
        from screens.cli.json_out import emit

        emit("wait", **deploy_json(record))
    elif ended:
        reason = f": {record.reason}" if record.reason else ""
        print(f"deploy {record.id} {state.words}{reason}")
    if not ended:
        waited = time.monotonic() - started
        say(f"deploy {record.id} still {state.words} after {waited:.0f} s")
        return EXIT_TIMEOUT
    if was_rejected:
        return EXIT_REJECTED
    return ENDED.get(state.value, EXIT_NO)
