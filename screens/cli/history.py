"""`deploy-console history`: the deploys recorded in the store, and one deploy's steps."""

from __future__ import annotations

import argparse
import asyncio
from dataclasses import asdict
from datetime import datetime
from typing import Any

from console.config import Config
from console.deploy.entry import entry_text
from console.errors import DeployError
from console.identity import actor_fields, describe, person
from console.model import DeployState
from screens.cli.command_line import Commands, whole, with_config
from screens.cli.json_out import emit, iso

STATES = tuple(state.value for state in DeployState)
MAX_LIMIT = 1_000_000  # --limit


def register(commands: Commands) -> None:
    history = commands.add(
        "history",
        "the latest deploys, or one deploy with its steps",
        with_config(history_command),
    )
    history.add_argument("deploy_id", metavar="DEPLOY_ID", nargs="?", help="show this deploy")
    history.add_argument("--project", metavar="NAME", help="only this project")
    history.add_argument("--cluster", metavar="NAME", help="only this cluster")
    history.add_argument("--actor", metavar="USER", help="only deploys by this user")
    history.add_argument("--state", choices=STATES, help="only deploys that ended so")
    history.add_argument(
        "--limit", type=whole("--limit", 1, MAX_LIMIT), default=20, help="at most this many (20)"
    )
    history.add_argument("--json", action="store_true", help="machine-readable output")
    history.add_argument(
        "--rules", action="store_true", help="when the rules (roles, protected clusters) changed"
    )


def _plain(record: Any) -> dict[str, Any]:
    """A store record as JSON-ready data (times in ISO 8601)."""
    data = asdict(record)
    for key, value in data.items():
        if isinstance(value, datetime):
            data[key] = iso(value)
    return data


def deploy_json(record: Any) -> dict[str, Any]:
    took = None
    if record.started_at is not None and record.finished_at is not None:
        took = round((record.finished_at - record.started_at).total_seconds(), 1)
    return {**_plain(record), "by": actor_fields(record.actor), "seconds": took}


def _short(moment: str | None) -> str:
    return "-" if moment is None else moment[:19].replace("T", " ")


def _release_text(deploy: dict[str, Any]) -> str:
    """A deploy's "old → new" release; a scale's "scale to N", a stack change's id."""
    kind = deploy.get("kind", "deploy")
    if kind != "deploy":
        return entry_text(kind, deploy["release"])
    return f"{deploy['previous_release'] or '?'} → {deploy['release']}"


def _print_list(deploys: list[dict[str, Any]]) -> None:
    if not deploys:
        print("no deploys match")
        return
    rows = [
        (
            d["id"],
            f"{d['project']} → {d['cluster']}",
            _release_text(d),
            d["actor"],
            DeployState(d["state"]).words,
            _short(d["started_at"] or d["created_at"]),
            "-" if d["seconds"] is None else f"{d['seconds']:.1f}s",
        )
        for d in deploys
    ]
    header = ("deploy", "pair", "release", "actor", "state", "started (UTC)", "took")
    from screens.cli.tables import print_table

    print_table(header, rows)


def _print_detail(deploy: dict[str, Any], steps: list[dict[str, Any]]) -> None:
    print(
        f"deploy {deploy['id']}: {deploy['project']} → {deploy['cluster']}, "
        f"{_release_text(deploy)} ({deploy['image_id'] or '-'}), "
        f"by {describe(deploy['actor'])}"
    )
    took = "" if deploy["seconds"] is None else f" in {deploy['seconds']:.1f}s"
    print(
        f"  {DeployState(deploy['state']).words}{took}, started {_short(deploy['started_at'])} UTC"
    )
    if deploy["reason"]:
        print(f"  {deploy['reason']}")
    if deploy["rollback_of"]:
        print(f"  rolls back {deploy['rollback_of']}")
    if deploy["ticket"]:
        print(f"  change ticket {deploy['ticket']}")
    if deploy.get("not_before"):
        print(f"  scheduled: not before {_short(deploy['not_before'])} UTC")
    if deploy.get("window_override"):
        by = person(deploy["window_override_by"] or deploy["actor"])
        print(f"  outside its window by {by}: {deploy['window_override']}")
    for step in steps:
        seconds = "" if step["seconds"] is None else f"{step['seconds']:6.1f}s"
        detail = f"  {step['detail']}" if step["detail"] else ""
        print(f"  {step['step']:<14}{step['state']:<11}{seconds:>8}{detail}")


async def _history(config: Config, args: argparse.Namespace) -> int:
    from console.config.paths import store_path
    from console.store import Store

    path = store_path(config.store, args.store)
    if not path.exists():  # never create a store just to read it
        raise DeployError(f"no store at {path}: nothing was deployed with it")
    async with await Store.open(path, read_only=True) as store:
        if getattr(args, "rules", False):
            return _print_rules(await store.config_changes(limit=args.limit), args.json)
        if args.deploy_id:
            record = await store.deploy(args.deploy_id)
            if record is None:
                raise DeployError(f"unknown deploy {args.deploy_id!r} in {path}")
            deploy = deploy_json(record)
            steps = [_plain(step) for step in await store.steps(record.id)]
            if args.json:
                emit("history-deploy", **deploy, steps=steps)
            else:
                _print_detail(deploy, steps)
            return 0
        records = await store.deploys(
            project=args.project,
            cluster=args.cluster,
            actor=args.actor,
            state=args.state,
            limit=args.limit,
        )
    deploys = [deploy_json(record) for record in records]
    if args.json:
        emit("history", deploys=deploys)
    else:
        _print_list(deploys)
    return 0


def _print_rules(rows: list[Any], as_json: bool) -> int:
    """The config rows of the audit, newest first: when the rules changed, and who started a
    console or runner on them."""
    changes = [
        {
            "at": iso(row.at),
            "by": row.actor,
            "outcome": row.outcome,
            "rules": row.reason,
            "config": row.config,
        }
        for row in rows
    ]
    if as_json:
        emit("history-rules", changes=changes)
    elif not changes:
        print("no rules recorded yet (a console or runner records them when it starts)")
    else:
        from screens.cli.tables import print_table

        rows = [
            (_short(c["at"]), c["outcome"], c["by"], c["rules"], str(c["config"])[:12])
            for c in changes
        ]
        print_table(("at (UTC)", "outcome", "by", "rules", "sha256"), rows)
    return 0


def history_command(config: Config, args: argparse.Namespace) -> int:
    """`history [DEPLOY_ID]`: the latest deploys (filtered), or one deploy with its steps."""
    if args.project is not None:
        config.project(args.project)
    if args.cluster is not None:
        config.cluster(args.cluster)
    return asyncio.run(_history(config, args))
