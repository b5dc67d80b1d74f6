"""`deploy-console notify`: what the notification outbox still has to deliver (`status`), and a
test message on one channel (`test CHANNEL`)."""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from console.config import Config
from console.config.paths import store_path
from console.errors import ConsoleError
from screens import PROG
from screens.cli.command_line import Commands, error_line, fail, with_config

if TYPE_CHECKING:
    from console.store.outbox import Delivery


def register(commands: Commands) -> None:
    notify = commands.add("notify", "notifications: what is left to deliver, a test message")
    notify_commands = commands.nested(notify, "notify_command", required=True)
    status = notify_commands.add(
        "status", "pending and failed deliveries, their last error and next retry"
    )
    status.set_defaults(handler=with_config(status_command))
    status.add_argument("--json", action="store_true", help="machine-readable output")
    test = notify_commands.add("test", "send a test message on a channel (exit 1 if it fails)")
    test.set_defaults(handler=with_config(test_command))
    test.add_argument("channel", metavar="CHANNEL", help="a channel of [notify.channels]")


def status_command(config: Config, args: argparse.Namespace) -> int:
    path = store_path(config.store, args.store)
    counts, unsettled = asyncio.run(_status(path)) if path.exists() else ({}, [])
    rows = [_row(config, delivery) for delivery in unsettled]
    if args.json:
        print(json.dumps({"counts": counts, "deliveries": rows}, indent=2))
        return 0
    if not counts:
        print("no notifications yet (no store)")
        return 0
    print(
        f"notifications: {counts['pending']} pending, {counts['failed']} failed, "
        f"{counts['delivered']} delivered, {counts['unrouted']} not routed yet"
    )
    for row in rows:
        retry = f"next retry {row['next_retry']}" if row["state"] == "pending" else "gave up"
        about = f"deploy {row['deploy_id']}" if row["deploy_id"] else row["cluster"] or ""
        ticket = f" ticket {row['ticket']}" if row["ticket"] else ""
        print(
            f"#{row['id']} {row['state']} {row['channel']} ({row['where']}): {row['event']} "
            f"{about}{ticket} · {row['attempts']} attempts · {retry}"
        )
        if row["last_error"]:
            print(f"    last error: {row['last_error']}")
    return 0


async def _status(path: Any) -> tuple[dict[str, int], list[Delivery]]:
    from console.store import Store

    async with await Store.open(path, create=False, read_only=True) as store:
        return await store.outbox.counts(), await store.outbox.unsettled()


def _row(config: Config, delivery: Delivery) -> dict[str, Any]:
    channel = config.notify.channels.get(delivery.channel)
    return {
        "id": delivery.id,
        "state": delivery.state,
        "channel": delivery.channel,
        "where": channel.where() if channel else "(no longer in the config)",
        "event": delivery.event.event,
        "deploy_id": delivery.event.deploy_id,
        "cluster": delivery.event.cluster,
        "ticket": delivery.event.ticket,
        "attempts": delivery.attempts,
        "last_error": delivery.last_error,
        "next_retry": (
            delivery.next_at.astimezone(UTC).isoformat(timespec="seconds")
            if delivery.state == "pending"
            else None
        ),
        "idempotency_key": delivery.event.key,
    }


def test_command(config: Config, args: argparse.Namespace) -> int:
    from console.identity import current_actor
    from console.notify.channels import send
    from console.store.outbox import OutboxEvent

    channel = config.notify.channels.get(args.channel)
    if channel is None:
        known = ", ".join(config.notify.channels) or "none in the config"
        return fail(f"unknown channel {args.channel!r} (channels: {known})")
    event = OutboxEvent(
        outbox_id=0,
        event="test",
        audit_id=0,
        at=datetime.now(UTC),
        actor=str(current_actor()),
        action="notify.test",
        project=None,
        cluster=None,
        deploy_id=None,
        outcome=None,
        reason=f"a test message from {PROG} notify test {args.channel}",
        ticket=None,
        release=None,
        key=f"test-{secrets.token_hex(12)}",
    )
    try:
        asyncio.run(send(channel, event))
    except ConsoleError as error:
        print(error_line(f"notify test {args.channel}: {error.message}"), file=sys.stderr)
        return 1
    print(f"sent a test message to {args.channel} ({channel.where()})")
    return 0
