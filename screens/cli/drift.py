"""`deploy-console drift`: every drift finding fleet-wide (exit 1 when one calls for
attention), `drift --baseline` (today's findings taken as known) and `drift ack ID --reason`."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from console.config import Config
from console.config.paths import store_path
from screens import PROG
from screens.cli.command_line import Commands, UsageError, with_config
from screens.cli.json_out import emit

if TYPE_CHECKING:
    from console.drift.findings import Finding
    from console.drift.review import Reviewed
    from console.model import FleetSnapshot
    from console.store import Store

EXIT_FOUND, EXIT_REFUSED = 1, 3
T = TypeVar("T")


def register(commands: Commands) -> None:
    drift = commands.add(
        "drift",
        "what differs from what the console put there: provenance, unmanaged instances, "
        "counts, stacks (exit 1 when a finding is neither baselined nor acknowledged)",
        with_config(drift_command),
    )
    drift.add_argument("--json", action="store_true", help="machine-readable output")
    drift.add_argument(
        "--baseline",
        action="store_true",
        help="admins: take today's findings as known (a fleet first taken over; audited)",
    )
    nested = commands.nested(drift, "drift_command")
    ack = nested.add("ack", "acknowledge one finding, with a reason (audited)")
    ack.add_argument("finding_id", metavar="FINDING_ID")
    ack.add_argument("--reason", required=True, help="why it may stay (kept in the audit)")


def drift_command(config: Config, args: argparse.Namespace) -> int:
    if args.drift_command == "ack":
        if getattr(args, "baseline", False):
            raise UsageError(f"ack takes no --baseline (see {PROG} drift --help)")
        if not args.reason.strip():
            raise UsageError("--reason must say why (it is kept in the audit)")
        return _acknowledge(config, args)
    if args.baseline:
        return _baseline(config, args)
    snapshot, stacks = _poll(config)
    reviewed = asyncio.run(_review(config, args, snapshot, stacks))
    open_ = [item for item in reviewed if item.counts]
    if args.json:
        emit(
            "drift",
            generated_at=snapshot.generated_at,
            findings=[item.json() for item in reviewed],
            open=len(open_),
        )
    else:
        _print(reviewed)
    _cluster_errors(snapshot)
    return EXIT_FOUND if open_ else 0


def _poll(config: Config) -> tuple[FleetSnapshot, list[Finding]]:
    """The fleet, and the stack findings of the pairs with a stack (read with it)."""
    from console.drift.stacks import stack_findings
    from console.fleet.inventory import Fleet
    from screens.cli.iam import terminal_mfa_prompt

    fleet = Fleet(config, mfa_prompt=terminal_mfa_prompt())

    async def read() -> tuple[FleetSnapshot, list[Finding]]:
        snapshot = await fleet.refresh()
        return snapshot, await stack_findings(config, fleet.gateway)

    try:
        return asyncio.run(read())
    finally:
        fleet.close()


def _cluster_errors(snapshot: FleetSnapshot) -> None:
    import sys

    for cluster in snapshot.clusters:
        if cluster.error:
            print(
                f"{PROG}: warning: cluster {cluster.name} not read ({cluster.error}): "
                "its findings are unknown",
                file=sys.stderr,
            )


async def _review(
    config: Config, args: argparse.Namespace, snapshot: FleetSnapshot, stacks: list[Finding]
) -> list[Reviewed]:
    from console.drift.review import review
    from console.store import Store

    path = store_path(config.store, args.store)
    if not path.exists():
        return await review(config, snapshot, None, stacks)
    async with await Store.open(path, create=False, read_only=True) as store:
        return await review(config, snapshot, store, stacks)


def _print(reviewed: list[Reviewed]) -> None:
    if not reviewed:
        print("no drift: every instance is where a deploy put it")
        return
    from rich.text import Text

    from screens.cli.tables import print_table

    rows = []
    for item in sorted(reviewed, key=lambda item: not item.counts):  # to look at first
        finding = item.finding
        style = "dim" if not item.counts else ""
        cells = (
            finding.id, finding.kind, f"{finding.project}/{finding.cluster}", item.state,
            f"{finding.what}; to do: {finding.todo}",
        )  # fmt: skip
        rows.append([Text(cell, style=style) for cell in cells])
    open_ = sum(1 for item in reviewed if item.counts)
    known = len(reviewed) - open_
    title = f"{len(reviewed)} finding{'s' if len(reviewed) != 1 else ''}: {open_} to look at"
    title += f", {known} baselined or acknowledged" if known else ""
    print_table(("finding", "kind", "pair", "state", "what, and what to do"), rows, title=title)


def _baseline(config: Config, args: argparse.Namespace) -> int:
    from console.access import AccessDenied, Action
    from console.deploy.services import check_allowed

    if args.json:
        raise UsageError(f"--json goes with the listing, not --baseline (see {PROG} drift --help)")
    path = store_path(config.store, args.store)
    try:
        who = check_allowed(config, path, Action.LOCK)  # fleet-wide: admins, as a fleet lock
    except AccessDenied as refused:
        print(f"refused: {refused.message}")
        return EXIT_REFUSED
    snapshot, taken, known = take_baseline(config, path, who)
    print(
        f"baselined {taken} finding{'s' if taken != 1 else ''}"
        + (f" ({known} known already)" if known else "")
        + f": `{PROG} drift` now exits 0 until something new drifts"
    )
    _cluster_errors(snapshot)
    return 0


def take_baseline(config: Config, path: Path, who: str) -> tuple[FleetSnapshot, int, int]:
    """Today's findings recorded as known by `who` (audited): the fleet read, how many taken,
    how many were known already."""
    snapshot, stacks = _poll(config)

    async def work(store: Store) -> tuple[int, int]:
        from console.drift.review import review, row

        reviewed = await review(config, snapshot, store, stacks)
        fresh = [row(item.finding) for item in reviewed if item.counts]
        return await store.drift.baseline(fresh, who), len(reviewed) - len(fresh)

    taken, known = asyncio.run(_with_store(path, work))
    return snapshot, taken, known


def _acknowledge(config: Config, args: argparse.Namespace) -> int:
    from console.access import AccessDenied, Action
    from console.deploy.services import check_allowed

    path = store_path(config.store, args.store)
    snapshot, stacks = _poll(config)
    reviewed = asyncio.run(_review(config, args, snapshot, stacks))
    found = next((item for item in reviewed if item.finding.id == args.finding_id), None)
    if found is None:
        known = ", ".join(item.finding.id for item in reviewed[:5]) or "none now"
        raise UsageError(f"no finding {args.finding_id!r} in the fleet now (findings: {known})")
    finding = found.finding
    try:
        # Whoever may deploy there may say its drift is known: a deployer, an admin on
        # protected clusters.
        who = check_allowed(config, path, Action.DEPLOY, finding.cluster, project=finding.project)
    except AccessDenied as refused:
        print(f"refused: {refused.message}")
        return EXIT_REFUSED

    async def work(store: Store) -> None:
        from console.drift.review import row

        await store.drift.acknowledge(row(finding), who, args.reason.strip())

    asyncio.run(_with_store(path, work))
    print(f"acknowledged {finding.id} ({finding.kind}, {finding.project}/{finding.cluster})")
    return 0


async def _with_store(path: Path, work: Callable[[Store], Awaitable[T]]) -> T:
    from console.store import Store

    async with await Store.open(path) as store:
        return await work(store)
