"""`deploy --at` and `--outside-window`: the options, read and checked before anything is
queued (bad input exit 2, a non-admin's override exit 3), and what a scheduled deploy prints."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from console.access import AccessDenied
from console.config import Config
from console.errors import DeployError
from console.safe_text import has_controls
from screens import PROG

if TYPE_CHECKING:
    from console.store import AuditStore

AT_HELP = (
    "start it no sooner than TIME: ISO 8601 with an offset (2026-12-04T14:00+01:00, ...Z), "
    "HH:MM (the next such time here) or +30m / +2h; queues it, prints its id and exits 0 "
    f"(`{PROG} wait ID` follows it)"
)
OUTSIDE_WINDOW_HELP = (
    "admins: start it even outside the cluster's deploy windows, for REASON (audited; a freeze, "
    "a lock and --at still hold)"
)


class OverrideRefused(AccessDenied):
    """A role that may not deploy outside windows asked to (exit 3, as any refusal)."""


def add_options(parser: argparse.ArgumentParser, *, at: bool = True) -> None:
    if at:
        parser.add_argument("--at", metavar="TIME", help=AT_HELP)
    parser.add_argument("--outside-window", metavar="REASON", help=OUTSIDE_WINDOW_HELP)


def not_before(args: argparse.Namespace) -> datetime | None:
    """--at as a UTC time (HH:MM in this host's zone); one line and exit 2 when malformed,
    past, or asked together with --fail-if-blocked."""
    text = getattr(args, "at", None)
    if text is None:
        return None
    if getattr(args, "fail_if_blocked", False):
        raise DeployError(
            "--at with --fail-if-blocked: a scheduled deploy waits by design "
            f"(run `{PROG} check` at its time instead)"
        )
    from console.queue.schedule import parse_at

    return parse_at(text, datetime.now(UTC))


def override(config: Config, cluster: str, args: argparse.Namespace) -> str | None:
    """--outside-window's reason, checked as the queue will (exit 2 when empty, not one
    line, or for a cluster without windows); who may is checked by the caller."""
    reason: str | None = getattr(args, "outside_window", None)
    if reason is None:
        return None
    if not reason.strip() or has_controls(reason):
        raise DeployError("--outside-window takes a reason: one line of plain text")
    if not config.cluster(cluster).windows:
        raise DeployError(
            f"{cluster} has no deploy windows: --outside-window has nothing to override"
        )
    return reason.strip()


def check_override(
    config: Config, store: Path, cluster: str, project: str, reason: str | None
) -> None:
    """AccessDenied (exit 3, and on the audit) unless the caller may deploy outside windows."""
    if reason is None or config.runner_socket is not None:
        return  # nothing asked; or the runner service checks who asks
    from console.access import Action
    from console.deploy.services import check_allowed

    check_allowed(config, store, Action.DEPLOY_OUTSIDE_WINDOW, cluster, project=project)


async def check_override_in(
    config: Config, store: AuditStore, who: str, cluster: str, project: str, reason: str | None
) -> None:
    """check_override inside a running command (rollback): OverrideRefused, on the audit."""
    if reason is None:
        return
    from console.access import Access, AccessDenied, Action

    try:
        Access(config).check(who, Action.DEPLOY_OUTSIDE_WINDOW, cluster, project=project)
    except AccessDenied as denied:
        await store.record_denial(who, denied.message, cluster=cluster, project=project)
        raise OverrideRefused(denied.message) from None


def wire(not_before: datetime | None, reason: str | None) -> dict[str, Any]:
    """The runner service's deploy arguments for them (only those given)."""
    args: dict[str, Any] = {}
    if not_before is not None:
        args["at"] = not_before.isoformat()
    if reason is not None:
        args["outside_window"] = reason
    return args


def print_scheduled(record: Any, args: argparse.Namespace) -> None:
    """After `queued ...`: when it starts, and how to follow it."""
    from console.queue.schedule import scheduled_for

    if record.not_before is None:
        return
    if args.json:
        at = record.not_before.astimezone(UTC).isoformat()
        print(json.dumps({"event": "DeployScheduled", "deploy_id": record.id, "not_before": at}))
        return
    when = scheduled_for(record.not_before, datetime.now(UTC))
    print(f"{when}: `{PROG} wait {record.id}` follows it", flush=True)


async def ensure_runner(config: Config, store: Path) -> None:
    """A scheduled deploy needs a runner when its time comes: one serving the store already,
    or one started here, detached (it stays while anything is queued)."""
    from console.servers.runner_service import DetachedRunners
    from screens.cli.console import runner_argv

    await DetachedRunners(store, runner_argv(config, store)).ensure()
