"""The world's notification inbox: a loopback webhook receiver on the world's own port (POST
/_deploy-console/inbox/CHANNEL), so that the demo's notifications go somewhere a person can
read (`deploy-console notify inbox`: GET /_deploy-console/inbox) and reach nothing else."""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from console.config.notify import INBOX_PREFIX as PREFIX

KEEP = 200  # messages kept (the newest)
MAX_BODY = 64 * 1024

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class Inbox:
    """What the world's receiver got: the newest KEEP messages, thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._messages: deque[dict[str, Any]] = deque(maxlen=KEEP)

    def add(self, channel: str, headers: dict[str, str], body: bytes) -> None:
        try:
            payload: Any = json.loads(body)
        except ValueError:
            payload = body.decode(errors="replace")
        with self._lock:
            self._messages.append(
                {
                    "received_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
                    "channel": channel,
                    "idempotency_key": headers.get("idempotency-key", ""),
                    "body": payload,
                }
            )

    def messages(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._messages)


def with_inbox(app: WsgiApp, inbox: Inbox) -> WsgiApp:
    """The moto app with the inbox's two routes in front of it."""

    def serve(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path: str = environ.get("PATH_INFO", "")
        if path != PREFIX and not path.startswith(PREFIX + "/"):
            return app(environ, start_response)
        method = environ.get("REQUEST_METHOD", "GET")
        channel = path[len(PREFIX) + 1 :]
        if method == "POST" and channel and "/" not in channel:
            length = min(int(environ.get("CONTENT_LENGTH") or 0), MAX_BODY)
            body = environ["wsgi.input"].read(length) if length else b""
            headers = {
                key[5:].replace("_", "-").lower(): str(value)
                for key, value in environ.items()
                if key.startswith("HTTP_")
            }
            inbox.add(channel, headers, body)
            start_response("204 No Content", [])
            return [b""]
        if method == "GET" and not channel:
            data = json.dumps(inbox.messages(), ensure_ascii=False).encode()
            start_response("200 OK", [("Content-Type", "application/json")])
            return [data]
        start_response("405 Method Not Allowed", [("Content-Type", "text/plain")])
        return [b"POST to /_deploy-console/inbox/CHANNEL, GET /_deploy-console/inbox\n"]

    return serve
