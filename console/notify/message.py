"""What an event says: the documented JSON body, the one-line text, the email."""

from __future__ import annotations

import json
from datetime import UTC
from email.message import EmailMessage
from typing import Any

from console.safe_text import harmless
from console.store.outbox import OutboxEvent

SCHEMA = "deploy-console.notification/1"


def body(event: OutboxEvent) -> dict[str, Any]:
    """The event as JSON (README "Notifications" documents these fields)."""
    return {
        "schema": SCHEMA,
        "idempotency_key": event.key,
        "event": event.event,
        "at": event.at.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "actor": event.actor,
        "project": event.project,
        "cluster": event.cluster,
        "deploy_id": event.deploy_id,
        "release": event.release,
        "ticket": event.ticket,
        "outcome": event.outcome,
        "reason": event.reason,
        "text": summary(event),
    }


def summary(event: OutboxEvent) -> str:
    """One line a person reads in a chat channel or a subject."""
    if event.deploy_id is not None:
        pair = f"{event.project} → {event.cluster}"
        release = f" {event.release}" if event.release else ""
        what = f"deploy {event.deploy_id} {pair}{release}: {event.event}"
    elif event.event.startswith("freeze"):
        what = f"cluster {event.cluster}: {event.event}"
    else:
        scope = " / ".join(part for part in (event.project, event.cluster) if part) or "everything"
        what = f"{scope}: {event.event}"
    ticket = f" · ticket {event.ticket}" if event.ticket else ""
    reason = f" — {event.reason}" if event.reason else ""
    return harmless(f"{what} (by {event.actor}){ticket}{reason}")


def json_bytes(event: OutboxEvent) -> bytes:
    return json.dumps(body(event), ensure_ascii=False).encode()


def text_bytes(event: OutboxEvent) -> bytes:
    """Slack/Mattermost incoming webhooks: {"text": ...} (and the key, for receivers that
    deduplicate)."""
    payload = {"text": summary(event), "idempotency_key": event.key}
    return json.dumps(payload, ensure_ascii=False).encode()


def email(event: OutboxEvent, sender: str, to: tuple[str, ...]) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = f"[deploy-console] {summary(event)}"[:200]
    message["From"] = sender
    message["To"] = ", ".join(to)
    message["Idempotency-Key"] = event.key
    message["Message-ID"] = f"<{event.key}@deploy-console>"
    fields = body(event)
    lines = [summary(event), ""]
    lines += [f"{name}: {value}" for name, value in fields.items() if name not in ("text",)]
    message.set_content("\n".join(lines) + "\n")
    return message
