"""Every command's `--json`: one object, its `schema` first, datetimes in ISO 8601 UTC."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Any

PREFIX = "deploy-console"

SCHEMAS: dict[str, int] = {
    "status": 1,
    "queue": 1,
    "lock-list": 1,
    "freeze-list": 1,
    "promote": 1,
    "releases": 1,
    "history": 1,
    "history-deploy": 1,
    "history-rules": 1,
    "check": 1,
    "wait": 1,
    "audit-verify": 1,
    "config-check": 1,
    "config-keys": 1,
    "notify-status": 1,
    "notify-inbox": 1,
    "iam-policy": 1,
    "stack-plan": 1,
    "stack-status": 1,
    "stack-diff": 1,
}
"""Each command's JSON and its version: an added key keeps it, a removed or renamed one bumps
it (docs/json.md)."""


def schema_name(name: str) -> str:
    """The `schema` value of a command's JSON: `deploy-console.queue/1`."""
    return f"{PREFIX}.{name}/{SCHEMAS[name]}"


def iso(moment: datetime | None) -> str | None:
    """A time as ISO 8601 in UTC (a naive time is taken as UTC already, as the store keeps it)."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat()


def _default(value: object) -> object:
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, tuple | frozenset | set):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def document(name: str, /, **data: Any) -> dict[str, Any]:
    """The object `name` prints: its schema first, then `data` in the order given."""
    return {"schema": schema_name(name), **data}


def render(name: str, /, **data: Any) -> str:
    """The text of `document(name, **data)`: indented, keys in their given order."""
    return json.dumps(document(name, **data), indent=2, default=_default)


def emit(name: str, /, **data: Any) -> None:
    """Print command `name`'s JSON on stdout (one object, then a newline)."""
    sys.stdout.write(render(name, **data) + "\n")
    sys.stdout.flush()
