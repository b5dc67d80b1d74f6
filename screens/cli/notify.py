"""`deploy-console notify`: what the notification outbox still has to deliver (`status`), a
test message on one channel (`test CHANNEL`), and what the demo world's inbox received
(`inbox`)."""

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
from screens.cli.json_out import iso

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
    inbox = notify_commands.add(
        "inbox", "the last messages the demo world's loopback inbox received"
    )
    inbox.set_defaults(handler=with_config(inbox_command))
    inbox.add_argument("-n", "--last", type=int, default=20, help="how many (default 20)")
    inbox.add_argument("--json", action="store_true", help="machine-readable output")


def status_command(config: Config, args: argparse.Namespace) -> int:
    path = store_path(config.store, args.store)
    counts, unsettled = asyncio.run(_status(path)) if path.exists() else ({}, [])
    rows = [_row(config, delivery) for delivery in unsettled]
    if args.json:
        from screens.cli.json_out import emit

        emit("notify-status", counts=counts, deliveries=rows)
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
            iso(delivery.next_at.replace(microsecond=0)) if delivery.state == "pending" else None
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


def inbox_command(config: Config, args: argparse.Namespace) -> int:
    from console.config.notify import WebhookChannel, inbox_listing_url, is_inbox_url

    if args.last < 1:
        return fail(f"--last must be 1 or more, not {args.last}")
    urls = [
        channel.url
        for channel in config.notify.channels.values()
        if isinstance(channel, WebhookChannel) and channel.url and is_inbox_url(channel.url)
    ]
    if not urls:
        return fail(
            "no channel of this config posts to a world's inbox (the demo's do: "
            f"`{PROG} demo`, then `{PROG} notify inbox` in another terminal)"
        )
    where = inbox_listing_url(urls[0])
    try:
        messages = _read_inbox(where)
    except OSError as error:
        reason = getattr(error, "reason", None) or error.strerror or error
        print(
            error_line(f"notify inbox: {where} does not answer ({reason}): is the demo running?"),
            file=sys.stderr,
        )
        return 1
    messages = messages[-args.last :]
    if args.json:
        from screens.cli.json_out import emit

        emit("notify-inbox", inbox=where, messages=messages)
        return 0
    if not messages:
        print(f"the inbox at {where} is empty: nothing delivered yet")
        return 0
    width = max(len(str(message.get("channel", ""))) for message in messages)
    for message in messages:
        print(_inbox_line(message, width))
    return 0


def _read_inbox(url: str) -> list[dict[str, Any]]:
    import urllib.request

    with urllib.request.urlopen(url, timeout=5) as answer:  # loopback: the world's own port
        data = json.loads(answer.read())
    return [item for item in data if isinstance(item, dict)] if isinstance(data, list) else []


def _inbox_line(message: dict[str, Any], width: int) -> str:
    from console.safe_text import harmless

    body = message.get("body")
    text = body.get("text") if isinstance(body, dict) else body
    at = str(message.get("received_at", ""))[11:19]
    return harmless(f"{at} {message.get('channel', '')!s:<{width}}  {text}")
