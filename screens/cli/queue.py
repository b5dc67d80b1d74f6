"""The queue's commands: `queue` (list, cancel, move), `lock`, `freeze` and `promote`, for
scripts, CI and hosts without a TUI."""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from console.access import Action
from console.config import Config
from console.config.paths import store_path
from console.errors import ConsoleError
from console.inputs import SQLITE_INTEGER_MAX, until
from console.model import DeployState
from console.stacks.labels import entry_label
from screens import PROG
from screens.cli.command_line import Commands, UsageError, whole, with_config
from screens.cli.json_out import emit, iso

if TYPE_CHECKING:
    from console.deploy.engine import DeployEngine
    from console.model import DeployRequest
    from console.queue.release_queue import DeployQueue, QueueEntry, QueueView
    from console.store import DeployRecord

# A manual lock's longest duration: further is a typo (and past datetime's range, an error).


def register(commands: Commands) -> None:
    queue = commands.add(
        "queue",
        "the queued and running deploys, and why each waits",
        with_config(queue_command),
    )
    queue.add_argument("--json", action="store_true", help="machine-readable output")
    queue_commands = commands.nested(queue, "queue_command")
    cancel = queue_commands.add("cancel", "cancel a queued deploy (a running one rolls back)")
    cancel.add_argument("deploy_id", metavar="DEPLOY_ID")
    cancel.add_argument("--reason", help="why (kept in the audit)")
    override = queue_commands.add(
        "override", "admins: let a queued deploy start outside its cluster's deploy windows"
    )
    override.add_argument("deploy_id", metavar="DEPLOY_ID")
    override.add_argument("--reason", required=True, help="why (shown in the queue, audited)")
    for direction in ("up", "down"):
        move = queue_commands.add(direction, f"move a queued deploy {direction} within its pair")
        move.add_argument("deploy_id", metavar="DEPLOY_ID")
    _register_locks(commands)
    promote = commands.add(
        "promote",
        "queue a release along the promotion chain, each stage after the last succeeded",
        with_config(promote_command),
    )
    promote.add_argument("project")
    promote.add_argument("release", help="a version (the AMI's Version tag) or an AMI id")
    promote.add_argument("--yes", action="store_true", help="confirm protected clusters")
    promote.add_argument(
        "--again",
        action="store_true",
        help="deploy also to the stages that run the release already (skipped by default)",
    )
    promote.add_argument("--json", action="store_true", help="machine-readable output")
    promote.add_argument(
        "--ticket", metavar="ID", help="the change ticket every stage goes with (see deploy)"
    )


def _register_locks(commands: Commands) -> None:
    lock = commands.add(
        "lock",
        "manual locks on the fleet, a cluster, a project",
        with_config(lock_command),
        common=False,
    )
    lock_commands = commands.nested(lock, "lock_command", required=True)
    add = lock_commands.add("add", "lock (no --project/--cluster: everything)")
    add.add_argument("--project", metavar="NAME", help="only this project")
    add.add_argument("--cluster", metavar="NAME", help="only this cluster")
    add.add_argument("--reason", required=True, help="why (shown to whoever waits)")
    add.add_argument("--until", metavar="WHEN", help="expiry: 30m, 2h, 1d or an ISO time")
    add.add_argument("--warning", action="store_true", help="only warn: deploys still start")
    listing = lock_commands.add("list", "the locks in force")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    remove = lock_commands.add("remove", "remove a lock")
    remove.add_argument("lock_id", metavar="LOCK_ID", type=whole("LOCK_ID", 1, SQLITE_INTEGER_MAX))
    freeze = commands.add(
        "freeze",
        "hold every queued deploy of a cluster (`freeze list`: the freezes in force)",
        with_config(freeze_command),
    )
    freeze.add_argument("cluster", help="the cluster to freeze, or `list`")
    # Required for a freeze, refused with `list`: checked by freeze_command.
    freeze.add_argument("--reason", help="why (shown to whoever waits; required)")
    freeze.add_argument("--json", action="store_true", help="`freeze list` machine-readable")
    unfreeze = commands.add("unfreeze", "lift a cluster's freeze", with_config(freeze_command))
    unfreeze.add_argument("cluster")


class QueueInputError(ConsoleError):
    """A queue command's arguments are wrong."""


def _allowed(
    config: Config,
    args: argparse.Namespace,
    action: Action,
    cluster: str | None,
    project: str | None = None,
) -> None:
    """The caller's role is checked before the queue is touched (the queue checks again); a
    refusal is written to the audit."""
    from console.deploy.services import check_allowed

    if config.runner_socket is not None:
        return  # the runner service checks who asks, and keeps the refusal on record
    check_allowed(config, _store(config, args), action, cluster, project=project)


def _store(config: Config, args: argparse.Namespace) -> Path:
    return store_path(config.store, args.store)


async def _with_queue(
    config: Config,
    args: argparse.Namespace,
    work: Any,
    *,
    create: bool,
    read_only: bool = False,
    changes: bool = False,
) -> Any:
    """`work` on the queue: the store's own (read-only for a reader), or for a change on a
    shared console host (config [runner] socket) the runner service's, which knows who asks."""
    from console.queue.release_queue import DeployQueue
    from console.store import Store

    if changes and config.runner_socket is not None:
        from console.servers.runner_door import DoorClient, RemoteQueue

        return await work(RemoteQueue(DoorClient(config.runner_socket)))
    path = _store(config, args)
    if not create and not path.exists():
        return None
    async with await Store.open(path, create=create, read_only=read_only) as store:
        return await work(DeployQueue(store, config))


def _ago(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "-"
    seconds = max(0, int((now - moment).total_seconds()))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def entry_json(entry: QueueEntry) -> dict[str, Any]:
    record = entry.record
    return {
        "id": record.id,
        "state": record.state,
        "project": record.project,
        "cluster": record.cluster,
        "release": record.release,
        "actor": record.actor,
        "queued_at": iso(record.created_at),
        "started_at": iso(record.started_at),
        "runner": record.runner,
        "after": record.after_deploy,
        "waiting": entry.waiting or None,
        "not_before": iso(record.not_before),
        "outside_window": record.window_override,
    }


def freezes_json(view: QueueView) -> list[dict[str, Any]]:
    return [
        {"cluster": f.cluster, "actor": f.actor, "reason": f.reason, "since": iso(f.created_at)}
        for f in view.freezes
    ]


def locks_json(view: QueueView) -> list[dict[str, Any]]:
    return [
        {
            "id": lock.id,
            "scope": lock.scope,
            "project": lock.project,
            "cluster": lock.cluster,
            "owner": lock.owner,
            "reason": lock.reason,
            "warning": lock.warning,
            "until": iso(lock.expires_at),
            "since": iso(lock.created_at),
        }
        for lock in view.manual_locks
    ]


def view_json(view: QueueView, entries: list[QueueEntry]) -> dict[str, Any]:
    return {
        "deploys": [entry_json(entry) for entry in entries],
        "freezes": freezes_json(view),
        "locks": locks_json(view),
        "parallel": view.parallel,
    }


def print_queue(view: QueueView, entries: list[QueueEntry]) -> None:
    for freeze in view.freezes:
        print(f"frozen: {freeze.describe()}")
    for lock in view.manual_locks:
        print(f"lock #{lock.id}: {lock.describe()}")
    if not entries:
        print("the queue is empty")
        return
    rows = [
        (
            e.record.id,
            DeployState(e.record.state).words,
            f"{e.record.project} → {e.record.cluster}",
            entry_label(e.record.kind, e.record.release),
            e.record.actor,
            _ago(e.record.created_at, view.now),
            e.status,
        )
        for e in entries
    ]
    header = ("deploy", "state", "pair", "release", "actor", "queued", "why / where")
    from screens.cli.tables import print_table

    print_table(header, rows)


# -- queue ------------------------------------------------------------------------------------


def queue_command(config: Config, args: argparse.Namespace) -> int:
    from console.deploy.services import actor

    action = args.queue_command
    if action in (None, "list"):

        async def show(queue: DeployQueue) -> tuple[QueueView, list[QueueEntry]]:
            return await queue.view(), await queue.entries()

        found = asyncio.run(_with_queue(config, args, show, create=False, read_only=True))
        if found is None:
            if args.json:
                emit("queue", deploys=[], freezes=[], locks=[], parallel=config.queue.parallel)
            else:
                print("the queue is empty (no store yet)")
            return 0
        view, entries = found
        if args.json:
            emit("queue", **view_json(view, entries))
        else:
            print_queue(view, entries)
        return 0
    who = actor()
    if action == "cancel":

        async def cancel(queue: DeployQueue) -> str:
            record = await queue.cancel(args.deploy_id, who, args.reason or "")
            if record.state == DeployState.CANCELLED:
                return f"cancelled {record.id} ({record.project} → {record.cluster})"
            return f"asked {record.id} to cancel: its console ({record.runner}) rolls it back"

        print(_changed(config, args, cancel, _unknown_deploy(args)))
        return 0
    if action == "override":
        return _override(config, args, who)
    steps = -1 if action == "up" else 1

    async def move(queue: DeployQueue) -> str:
        record = await queue.move(args.deploy_id, steps, who)
        return f"moved {record.id} {action}"

    print(_changed(config, args, move, _unknown_deploy(args)))
    return 0


def _override(config: Config, args: argparse.Namespace, who: str) -> int:
    """`queue override ID --reason`: exit 3 (and the refusal on the audit) for a role that
    may not deploy outside windows, as `deploy --outside-window`."""
    from console.access import AccessDenied
    from screens.cli.command_line import say

    async def read(queue: DeployQueue) -> DeployRecord | None:
        return await queue.store.deploy(args.deploy_id)

    async def outside(queue: DeployQueue) -> str:
        record = await queue.override_window(args.deploy_id, who, args.reason)
        return f"{record.id} ({record.project} → {record.cluster}) may start outside its window"

    try:
        record = asyncio.run(_with_queue(config, args, read, create=False, read_only=True))
        if record is not None:
            _allowed(config, args, Action.DEPLOY_OUTSIDE_WINDOW, record.cluster, record.project)
        print(_changed(config, args, outside, _unknown_deploy(args)))
    except AccessDenied as refused:
        say(f"refused: {refused.message}")
        return 3
    return 0


def _unknown_deploy(args: argparse.Namespace) -> str:
    return f"unknown deploy {args.deploy_id!r} (no store yet)"


def _changed(config: Config, args: argparse.Namespace, work: Any, missing: str) -> str:
    """`work`, a change, on the queue of a store that exists: without one, `missing` says
    what is not there (and nothing is created)."""
    result = asyncio.run(_with_queue(config, args, work, create=False, changes=True))
    if result is None:
        raise QueueInputError(missing)
    return str(result)


# -- locks and freezes -------------------------------------------------------------------------


def lock_command(config: Config, args: argparse.Namespace) -> int:
    from console.deploy.services import actor

    who = actor()
    if args.lock_command == "add":
        moment = until(args.until, datetime.now(UTC))
        _allowed(config, args, Action.LOCK, args.cluster, args.project)

        async def add(queue: DeployQueue) -> str:
            lock = await queue.lock(
                owner=who,
                reason=args.reason,
                project=args.project,
                cluster=args.cluster,
                expires_at=moment,
                warning=args.warning,
            )
            return f"lock #{lock.id}: {lock.describe()}"

        print(asyncio.run(_with_queue(config, args, add, create=True, changes=True)))
        return 0
    if args.lock_command == "remove":

        async def remove(queue: DeployQueue) -> str:
            lock = await queue.unlock(args.lock_id, who)
            return f"removed lock #{lock.id} ({lock.scope}, {lock.owner}: {lock.reason})"

        print(_changed(config, args, remove, f"no lock #{args.lock_id} (no store yet)"))
        return 0

    async def listing(queue: DeployQueue) -> QueueView:
        return await queue.view()

    view = asyncio.run(_with_queue(config, args, listing, create=False, read_only=True))
    if args.json:
        emit("lock-list", locks=locks_json(view) if view else [])
        return 0
    locks = view.manual_locks if view else ()
    rows = [
        (
            f"#{lock.id}",
            lock.scope,
            lock.owner,
            "warning" if lock.warning else "blocks",
            f"{lock.expires_at:%Y-%m-%d %H:%M}" if lock.expires_at else "-",
            lock.reason,
        )
        for lock in locks
    ]
    if rows:
        from screens.cli.tables import print_table

        print_table(("lock", "scope", "owner", "kind", "until (UTC)", "reason"), rows)
    else:
        print("no locks")
    return 0


def _freeze_list(config: Config, args: argparse.Namespace) -> int:
    """`freeze list`: the clusters frozen now, who froze them, since when, why."""
    if args.reason is not None:
        raise UsageError(
            f"freeze list lists the freezes: it takes no --reason (see {PROG} freeze --help)"
        )

    async def listing(queue: DeployQueue) -> QueueView:
        return await queue.view()

    view = asyncio.run(_with_queue(config, args, listing, create=False, read_only=True))
    if args.json:
        emit("freeze-list", freezes=freezes_json(view) if view else [])
        return 0
    freezes = view.freezes if view else ()
    rows = [(f.cluster, f.actor, f"{f.created_at:%Y-%m-%d %H:%M}", f.reason) for f in freezes]
    if rows:
        from screens.cli.tables import print_table

        print_table(("cluster", "frozen by", "since (UTC)", "reason"), rows)
    else:
        print("no freezes")
    return 0


def freeze_command(config: Config, args: argparse.Namespace) -> int:
    from console.deploy.services import actor

    if args.command == "freeze" and args.cluster == "list":
        return _freeze_list(config, args)
    if getattr(args, "json", False):
        raise UsageError(f"--json goes with `freeze list` (see {PROG} freeze --help)")
    if args.command == "freeze" and args.reason is None:
        raise UsageError(
            f"the following arguments are required: --reason (see {PROG} freeze --help)"
        )
    who = actor()
    config.cluster(args.cluster)
    _allowed(config, args, Action.FREEZE, args.cluster)
    if args.command == "freeze":

        async def freeze(queue: DeployQueue) -> str:
            return (await queue.freeze(args.cluster, who, args.reason)).describe()

        print(
            f"frozen: {asyncio.run(_with_queue(config, args, freeze, create=True, changes=True))}"
        )
        return 0

    async def unfreeze(queue: DeployQueue) -> str:
        await queue.unfreeze(args.cluster, who)
        return f"{args.cluster} unfrozen: queued deploys may start"

    print(_changed(config, args, unfreeze, f"{args.cluster} is not frozen"))
    return 0


# -- promote --------------------------------------------------------------------------------


def promote_command(config: Config, args: argparse.Namespace) -> int:
    project = config.project(args.project)
    stages = [c for stage in config.promotion for c in stage if c in project.clusters]
    if not stages:
        raise QueueInputError(f"{project.name} is in no cluster of the promotion chain")
    from console.access import Action

    for cluster in stages:  # every stage's deploy is the caller's: refused before anything
        _allowed(config, args, Action.DEPLOY, cluster, project.name)
    for cluster in stages:
        if config.cluster(cluster).protected and not args.yes:
            raise QueueInputError(
                f"the promotion reaches protected cluster {cluster}: pass --yes to queue it"
            )
    from console.gates.checks import GateRefused

    try:
        return asyncio.run(_promote(config, args, stages))
    except GateRefused as refused:  # a ticket check or release gate said no: exit 3
        print(f"{PROG}: refused: {refused.message}", file=sys.stderr, flush=True)
        return 3


async def _promote(config: Config, args: argparse.Namespace, clusters: list[str]) -> int:
    from console.deploy.engine import new_deploy_id
    from console.deploy.services import actor, deploy_services
    from console.model import DeployRequest
    from console.queue.release_queue import DeployQueue

    first = DeployRequest(args.project, clusters[0], args.release, actor())
    now = datetime.now(UTC)
    ids = [new_deploy_id(now) for _ in clusters]
    skipped: dict[str, str] = {}
    if config.runner_socket is not None:  # the runner service plans it and knows who asks
        from console.servers.runner_door import DoorClient, RemoteQueue

        remote = RemoteQueue(DoorClient(config.runner_socket))
        records = await remote.promote(
            args.project, args.release, first.actor, ids, ticket=args.ticket
        )
    else:
        # The release is checked where it starts, before anything is queued or created.
        async with deploy_services(config, _store(config, args), plan=first) as services:
            if not args.again:
                skipped = await _running_already(services.engine, first, clusters)
            queue = DeployQueue(services.store, config)
            records = await queue.promote(
                args.project, args.release, first.actor, ids, skip=skipped, ticket=args.ticket
            )
    _print_promotion(args, clusters, records, skipped)
    return 0


async def _running_already(
    engine: DeployEngine, first: DeployRequest, clusters: list[str]
) -> dict[str, str]:
    """Cluster -> why it is skipped: every instance there runs the release already (a cluster
    whose plan cannot be read is not skipped: its deploy says what is wrong)."""
    skipped: dict[str, str] = {}
    for cluster in clusters:
        try:
            plan = await engine.plan(replace(first, cluster=cluster))
        except ConsoleError:
            continue
        if set(plan.current_versions) == {plan.release.version}:
            skipped[cluster] = f"already runs {plan.release.version}"
    return skipped


def _print_promotion(
    args: argparse.Namespace, clusters: list[str], records: list[DeployRecord], why: dict[str, str]
) -> None:
    """Each stage in chain order: its deploy, or why it was skipped."""
    queued = {record.cluster: record for record in records}
    if args.json:
        emit("promote", project=args.project, release=args.release, stages=[
            {"id": None, "cluster": c, "after": None, "skipped": why[c]} if c in why
            else {"id": queued[c].id, "cluster": c, "after": queued[c].after_deploy,
                  "skipped": None}
            for c in clusters if c in why or c in queued
        ])  # fmt: skip
        return
    print(f"promoting {args.project} {args.release}:")
    for cluster in clusters:
        if cluster in why:
            print(f"  {'skipped':<22}  {cluster:<10} {why[cluster]} (--again deploys it anyway)")
        elif cluster in queued:
            record = queued[cluster]
            after = f"after {record.after_deploy} succeeds" if record.after_deploy else "first"
            print(f"  {record.id}  {cluster:<10} {after}")
    if records:
        print(f"the runners start each stage in turn; follow with `{PROG} queue`")
    else:
        print("nothing queued: every stage runs it already")
