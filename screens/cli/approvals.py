"""`approve` and `reject`: another person's verdict on a queued deploy that waits for approval.

Exit codes: 0 done; 2 bad input, an unknown deploy, one not queued or needing no approval;
3 refused (no `approve` permission on its cluster, or one's own deploy), kept in the audit.
`approve` shows the plan first (what will change, read from AWS) and approves that image.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

from console.config import Config
from console.config.paths import store_path
from console.errors import DeployError
from screens.cli.command_line import Commands, say, with_config

if TYPE_CHECKING:
    from console.model import DeployPlan
    from console.queue.release_queue import DeployQueue
    from console.store import DeployRecord

EXIT_OK = 0
EXIT_REFUSED = 3


def register(commands: Commands) -> None:
    approve = commands.add(
        "approve",
        "approve another person's queued deploy that waits for approval (shows its plan)",
        with_config(approve_command),
    )
    approve.add_argument("deploy_id", metavar="DEPLOY_ID")
    approve.add_argument("--comment", help="a word for the audit")
    reject = commands.add(
        "reject",
        "reject another person's queued deploy that waits for approval: it ends, with the reason",
        with_config(reject_command),
    )
    reject.add_argument("deploy_id", metavar="DEPLOY_ID")
    reject.add_argument("--reason", required=True, help="why (the deploy ends with it)")


def plan_lines(plan: DeployPlan) -> list[str]:
    """What the approved deploy will change, as the approver reads it before approving."""
    release = plan.release
    now = ", ".join(plan.current_versions) or "nothing"
    lines = [
        f"plan: {plan.project} {now} → {release.version} in {plan.cluster}",
        f"  AMI      {release.image_id}",
        f"  launch   {plan.count} x {plan.instance_type}",
        f"  replace  {', '.join(plan.old_instances) or 'no instance (first deploy)'}",
    ]
    if plan.load_balancers:
        lines.append(f"  switch   {', '.join(b.name for b in plan.load_balancers)}")
    return lines


async def _record(path: Path, deploy_id: str) -> DeployRecord:
    from console.store import Store

    if not path.exists():
        raise DeployError(f"unknown deploy {deploy_id!r} (no store at {path})")
    async with await Store.open(path, create=False, read_only=True) as store:
        record = await store.deploy(deploy_id)
    if record is None:
        raise DeployError(f"unknown deploy {deploy_id!r}")
    return record


async def _plan(config: Config, record: DeployRecord, who: str) -> DeployPlan:
    """The deploy's plan as it would run: its pinned image, else its release now."""
    from console.deploy.planner import DeployPlanner
    from console.fleet.inventory import Fleet
    from console.model import DeployRequest
    from screens.cli.iam import terminal_mfa_prompt

    fleet = Fleet(config, mfa_prompt=terminal_mfa_prompt())
    try:
        request = DeployRequest(
            record.project, record.cluster, record.image_id or record.release, who
        )
        return await DeployPlanner(config, fleet.gateway).plan(request)
    finally:
        fleet.close()


async def _judge(config: Config, args: argparse.Namespace, verb: str) -> int:
    from console.access import AccessDenied
    from console.deploy.services import actor
    from console.queue.release_queue import DeployQueue
    from console.store import Store

    who = actor()
    path = store_path(config.store, args.store)
    record = await _record(path, args.deploy_id)
    async with await Store.open(path, create=False) as store:
        queue = DeployQueue(store, config)
        try:
            queue.check_judge(record, who, verb)  # before AWS is asked
            if verb == "approve":
                plan = await _plan(config, record, who)
                for line in plan_lines(plan):
                    print(line)
                said = await _approve(queue, record, who, plan.release.image_id, args.comment)
            else:
                ended = await queue.reject(record.id, who, args.reason)
                said = f"rejected {ended.id} ({ended.project} → {ended.cluster}): {ended.reason}"
        except AccessDenied as denied:
            await queue.record_denial(who, denied, record.cluster, record.project)
            say(f"refused: {denied.message}")
            return EXIT_REFUSED
    print(said)
    return EXIT_OK


async def _approve(
    queue: DeployQueue, record: DeployRecord, who: str, image_id: str, comment: str | None
) -> str:
    verdict = await queue.approve(record.id, who, image_id, comment or "")
    pair = f"{record.project} → {record.cluster}, {record.release} ({image_id})"
    after = f"waits for {verdict.waiting}" if verdict.waiting else "it may start"
    return f"approved {record.id} ({pair}): {after}"


def approve_command(config: Config, args: argparse.Namespace) -> int:
    return asyncio.run(_judge(config, args, "approve"))


def reject_command(config: Config, args: argparse.Namespace) -> int:
    return asyncio.run(_judge(config, args, "reject"))
