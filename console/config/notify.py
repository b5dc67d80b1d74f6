"""The `[notify]` table: channels (webhook, email, command), routes per cluster and event, the
retry policy; and the one table of which audit actions are which events. A password is never
in the config text: `password_env` or `password_file`."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from console.config.reader import DAY, ENV_NAME_PATTERN, HOUR, MAX_PORT, NAME_PATTERN, Table

__all__ = [
    "AUDIT_EVENTS",
    "EVENT_NAMES",
    "CommandChannel",
    "EmailChannel",
    "NotifySettings",
    "Route",
    "WebhookChannel",
    "event_of",
    "inbox_listing_url",
    "is_inbox_url",
    "masked_url",
    "parse_notify",
]

# (audit action, outcome or None for any outcome) -> event name. The first match wins.
# Names of other parts of issue 14 are here too (approvals: approval-wait, approve, reject,
# break-glass; bake: bake-start, bake-end, bake-rollback): their rows exist once merged.
# Changing this table after a store was migrated needs a migration that recreates the trigger
# (console/store/notify_events.py: DROP TRIGGER audit_notify, then its trigger again).
AUDIT_EVENTS: tuple[tuple[str, str | None, str], ...] = (
    ("queue.enqueue", None, "queued"),
    ("approval-wait", None, "waiting-for-approval"),
    ("approve", None, "approved"),
    ("reject", None, "rejected"),
    ("break-glass", None, "break-glass"),
    ("queue.claim", None, "started"),
    ("deploy.started", None, "started"),
    ("bake-start", None, "baking"),
    ("bake-end", None, "baked"),
    ("bake-rollback", None, "bake-rollback"),
    ("deploy.finished", "succeeded", "succeeded"),
    ("deploy.finished", "failed", "failed"),
    ("deploy.finished", "rolled_back", "rolled-back"),
    ("deploy.finished", "cancelled", "cancelled"),
    ("deploy.finished", "interrupted", "interrupted"),
    ("queue.cancel", None, "cancelled"),
    ("deploy.interrupted", None, "interrupted"),
    ("lock.taken_over", "interrupted", "interrupted"),  # a stale deploy's lock taken over
    ("queue.freeze", None, "freeze-set"),
    ("queue.unfreeze", None, "freeze-lifted"),
    ("lock.add", None, "lock-taken"),
    ("lock.remove", None, "lock-released"),
    ("lock.expired", None, "lock-released"),
    ("drift.found", None, "drift"),  # (drift) a new finding (console/drift/)
)

# Every event a route may name, in the order people read them.
EVENT_NAMES: tuple[str, ...] = tuple(dict.fromkeys(event for _, _, event in AUDIT_EVENTS))


def event_of(action: str, outcome: str | None) -> str | None:
    """The event of an audit row in Python (the same table; for tests and messages)."""
    for known, wanted, event in AUDIT_EVENTS:
        if known == action and (wanted is None or wanted == outcome):
            return event
    return None


# A webhook whose URL's path is under this goes to a world's inbox (console/world/inbox.py):
# writing a world's config points it at that world (console/config/load.py).
INBOX_PREFIX = "/_deploy-console/inbox"


def is_inbox_url(url: str) -> bool:
    """Whether a webhook URL is a world inbox's."""
    return urlsplit(url).path.startswith(INBOX_PREFIX + "/")


def inbox_at(url: str, endpoint_url: str) -> str:
    """An inbox URL moved to the world serving at `endpoint_url` (its path kept)."""
    parts, endpoint = urlsplit(url), urlsplit(endpoint_url)
    return urlunsplit((endpoint.scheme, endpoint.netloc, parts.path, parts.query, ""))


def inbox_listing_url(url: str) -> str:
    """Where the inbox that `url` posts to lists what it received."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, INBOX_PREFIX, "", ""))


FORMATS = ("json", "text")
SECRET_KEYS = ("password", "secret", "token", "api_key")
_ADDRESS = re.compile(r"^[^@\s<>]+@[^@\s<>]+$")


def masked_url(url: str) -> str:
    """A webhook URL as it may be shown: scheme, host and port; a path or query (where
    webhook tokens live) becomes `/…`."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(an invalid URL)"
    host = f"[{host}]" if ":" in host else host
    rest = "/…" if parts.path.strip("/") or parts.query else ""
    return f"{parts.scheme}://{host}{port}{rest}"


@dataclass(frozen=True)
class WebhookChannel:
    """HTTP POST of the event: `json` (the documented event) or `text` ({"text": ...},
    Slack/Mattermost incoming webhooks). The URL from the config or an environment variable."""

    name: str
    url: str | None = None
    url_env: str | None = None
    format: str = "json"
    timeout: float = 10.0
    kind: str = "webhook"

    def where(self) -> str:
        return masked_url(self.url) if self.url else f"${self.url_env}"


@dataclass(frozen=True)
class EmailChannel:
    """SMTP with STARTTLS (unless starttls = false on a loopback relay) and login."""

    name: str
    host: str
    sender: str
    to: tuple[str, ...]
    port: int = 587
    starttls: bool = True
    username: str | None = None
    password_env: str | None = None
    password_file: Path | None = None
    ca_file: Path | None = None
    timeout: float = 20.0
    kind: str = "email"

    def where(self) -> str:
        return f"smtp://{self.host}:{self.port} → {', '.join(self.to)}"


@dataclass(frozen=True)
class CommandChannel:
    """A program run with the event JSON on stdin (argv, never a shell)."""

    name: str
    argv: tuple[str, ...]
    timeout: float = 30.0
    kind: str = "command"

    def where(self) -> str:
        return f"command {self.argv[0]}"


Channel = WebhookChannel | EmailChannel | CommandChannel


@dataclass(frozen=True)
class Route:
    """Events to channels: empty clusters or events mean all of them."""

    channels: tuple[str, ...]
    clusters: tuple[str, ...] = ()
    events: tuple[str, ...] = ()

    def matches(self, event: str, cluster: str | None) -> bool:
        if self.events and event not in self.events:
            return False
        return not self.clusters or cluster in self.clusters


@dataclass(frozen=True)
class NotifySettings:
    channels: dict[str, Channel] = field(default_factory=dict)
    routes: tuple[Route, ...] = ()
    max_attempts: int = 10
    retry_seconds: float = 2.0  # the first retry's delay; each next one doubles
    max_retry_seconds: float = 600.0

    def channels_for(self, event: str, cluster: str | None) -> list[str]:
        """The channels an event goes to, each once, in the order the routes name them."""
        names: dict[str, None] = {}
        for route in self.routes:
            if route.matches(event, cluster):
                names.update(dict.fromkeys(route.channels))
        return list(names)

    def retry_after(self, attempts: int) -> float | None:
        """The delay before the next attempt after `attempts` failed ones; None: give up."""
        if attempts >= self.max_attempts:
            return None
        return float(min(self.retry_seconds * 2 ** (attempts - 1), self.max_retry_seconds))


def parse_notify(table: Table, cluster_names: tuple[str, ...]) -> NotifySettings:
    channels: dict[str, Channel] = {}
    sub = table.table("channels")
    if sub is not None:
        for name in sub.data:
            if not NAME_PATTERN.match(name):
                sub.fail("a channel name is lower-case letters, digits and dashes", name)
            channel_table = sub.table(name)
            assert channel_table is not None
            channels[name] = _parse_channel(channel_table, name)
        sub.done()
    routes = tuple(_parse_route(route, channels, cluster_names) for route in table.tables("routes"))
    settings = NotifySettings(
        channels=channels,
        routes=routes,
        max_attempts=table.integer("max_attempts", 10, minimum=1, maximum=100),
        retry_seconds=table.number("retry_seconds", 2.0, minimum=0.01, maximum=HOUR),
        max_retry_seconds=table.number("max_retry_seconds", 600.0, minimum=0.01, maximum=DAY),
    )
    table.done()
    return settings


def _parse_route(table: Table, channels: dict[str, Channel], clusters: tuple[str, ...]) -> Route:
    route = Route(
        channels=table.strings("channels", required=True),
        clusters=table.strings("clusters"),
        events=table.strings("events"),
    )
    for name in route.channels:
        if name not in channels:
            known = ", ".join(channels) or "none defined"
            table.fail(f"unknown channel {name!r} (channels: {known})", "channels")
    for name in route.clusters:
        if name not in clusters:
            table.fail(f"unknown cluster {name!r} (known: {', '.join(clusters)})", "clusters")
    for name in route.events:
        if name not in EVENT_NAMES:
            table.fail(f"unknown event {name!r} (events: {', '.join(EVENT_NAMES)})", "events")
    table.done()
    return route


def _parse_channel(table: Table, name: str) -> Channel:
    for key in SECRET_KEYS:
        if key in table.data:
            table.fail(
                'a secret never goes in the config text: use password_env = "NAME" '
                '(an environment variable) or password_file = "path"',
                key,
            )
    kind = table.string("type", required=True)
    timeout_default = {"webhook": 10.0, "email": 20.0, "command": 30.0}
    if kind not in timeout_default:
        table.fail(f"must be webhook, email or command, not {kind!r}", "type")
    timeout = table.number("timeout", timeout_default[kind], minimum=0.1, maximum=HOUR)
    channel: Channel
    if kind == "webhook":
        channel = _parse_webhook(table, name, timeout)
    elif kind == "email":
        channel = _parse_email(table, name, timeout)
    else:
        argv = table.strings("command", required=True)
        if not argv:
            table.fail("must name a program (argv list, no shell)", "command")
        channel = CommandChannel(name=name, argv=argv, timeout=timeout)
    table.done()
    return channel


def _parse_webhook(table: Table, name: str, timeout: float) -> WebhookChannel:
    url: str | None = table.string("url")
    url_env = _env_name(table, "url_env")
    if (url is None) == (url_env is None):
        table.fail("needs url or url_env (one of them)", "url" if url else None)
    if url is not None and not re.match(r"^https?://[^\s/?#]+", url):
        table.fail(f"must be an http(s) URL, not {masked_url(url)!r}", "url")
    format_ = table.string("format", default="json")
    if format_ not in FORMATS:
        table.fail(f"must be json or text, not {format_!r}", "format")
    return WebhookChannel(name=name, url=url, url_env=url_env, format=format_, timeout=timeout)


def _parse_email(table: Table, name: str, timeout: float) -> EmailChannel:
    sender: str = table.string("from", required=True)
    to = table.strings("to", required=True)
    for address in (sender, *to):
        if not _ADDRESS.match(address):
            table.fail(f"{address!r} is not an email address", "to" if address in to else "from")
    username: str | None = table.string("username")
    password_env = _env_name(table, "password_env")
    password_file = table.file_path("password_file")
    if password_env and password_file:
        table.fail("give password_env or password_file, not both", "password_file")
    if username is not None and not (password_env or password_file):
        table.fail("a login needs password_env or password_file", "username")
    return EmailChannel(
        name=name,
        host=table.string("host", required=True),
        port=table.integer("port", 587, minimum=1, maximum=MAX_PORT),
        starttls=table.boolean("starttls", True),
        sender=sender,
        to=to,
        username=username,
        password_env=password_env,
        password_file=password_file,
        ca_file=table.file_path("ca_file"),
        timeout=timeout,
    )


def _env_name(table: Table, key: str) -> str | None:
    value: str | None = table.string(key)
    if value is not None and not ENV_NAME_PATTERN.match(value):
        table.fail("is not a valid environment variable name", key)
    return value
