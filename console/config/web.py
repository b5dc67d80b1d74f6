"""The `[web]` config table: how `deploy-console web` authenticates, whom it lets in, its caps."""

from __future__ import annotations

import hashlib
import ipaddress
import re
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from console.config.reader import Table

AUTH_MODES = ("none", "proxy", "tokens")
# A user or group name the audit and the roles can hold (as console.identity's USER_PATTERN).
USER_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@+-]{0,63}$")
HEADER_PATTERN = re.compile(r"^[A-Za-z0-9-]{1,64}$")
SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}$")
HOST_PATTERN = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?$")
# Bounds on what a browser may ask for: a terminal past these is no person's screen.
COLUMNS_RANGE = (40, 1000)
ROWS_RANGE = (10, 500)
# More browser sessions than this would not fit one console host anyway.
MAX_SESSIONS = 10_000

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class WebToken:
    """A person's web token, kept only as the sha256 of the token (hex)."""

    user: str
    sha256: str
    groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class WebSettings:
    """`deploy-console web`: its authentication ("none", "proxy" or "tokens"), the trusted
    proxies and their headers, the tokens, the Origin/Host allowed on top of the served
    address, and the caps on sessions and terminal size."""

    auth: str = "none"
    user_header: str = "X-Forwarded-User"
    groups_header: str = "X-Forwarded-Groups"
    trusted_proxies: tuple[Network, ...] = ()
    tokens: tuple[WebToken, ...] = ()
    allowed_origins: tuple[str, ...] = ()
    allowed_hosts: tuple[str, ...] = ()
    sessions_per_user: int = 3
    sessions_total: int = 20
    max_columns: int = 300
    max_rows: int = 120


def token_hash(token: str) -> str:
    """What config keeps of a token: its sha256 (a token is random, so no salt is needed)."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    """A fresh random token (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def origin_of(url: str) -> str:
    """`scheme://host[:port]` of a URL, lower-case, as a browser sends it in `Origin`."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def parse_web(table: Table) -> WebSettings:
    """Validate `[web]`; every mistake is one line naming the key."""
    defaults = WebSettings()
    auth: str = table.string("auth", default="none")
    if auth not in AUTH_MODES:
        table.fail(f"must be one of {', '.join(AUTH_MODES)}, not {auth!r}", "auth")
    headers = {}
    for key in ("user_header", "groups_header"):
        value: str = table.string(key, default=getattr(defaults, key))
        if not HEADER_PATTERN.match(value):
            table.fail(f"must be an HTTP header name such as X-Forwarded-User, not {value!r}", key)
        headers[key] = value
    proxies = _networks(table, "trusted_proxies")
    tokens = _tokens(table)
    if auth == "proxy" and not proxies:
        table.fail(
            'is required with auth = "proxy": the addresses (CIDRs) of the proxies whose '
            "user header is believed",
            "trusted_proxies",
        )
    if auth == "tokens" and not tokens:
        table.fail(
            'needs at least one [[web.tokens]] with auth = "tokens" (make one with '
            "`deploy-console web --new-token USER`)",
            "tokens",
        )
    if tokens and auth != "tokens":
        table.fail('are used only with auth = "tokens"', "tokens")
    if proxies and auth != "proxy":
        table.fail('are used only with auth = "proxy"', "trusted_proxies")
    origins = table.strings("allowed_origins")
    for origin in origins:
        if origin_of(origin) != origin.lower() or not origin.startswith(("http://", "https://")):
            table.fail(
                f"must be like https://console.example.com[:port] (no path), not {origin!r}",
                "allowed_origins",
            )
    hosts = table.strings("allowed_hosts")
    for host in hosts:
        if not HOST_PATTERN.match(host):
            table.fail(f"must be HOST or HOST:PORT, not {host!r}", "allowed_hosts")
    settings = WebSettings(
        auth=auth,
        user_header=headers["user_header"],
        groups_header=headers["groups_header"],
        trusted_proxies=proxies,
        tokens=tokens,
        allowed_origins=tuple(origin.lower() for origin in origins),
        allowed_hosts=tuple(host.lower() for host in hosts),
        sessions_per_user=table.integer(
            "sessions_per_user", defaults.sessions_per_user, 1, MAX_SESSIONS
        ),
        sessions_total=table.integer("sessions_total", defaults.sessions_total, 1, MAX_SESSIONS),
        max_columns=_bounded(table, "max_columns", defaults.max_columns, COLUMNS_RANGE),
        max_rows=_bounded(table, "max_rows", defaults.max_rows, ROWS_RANGE),
    )
    table.done()
    return settings


def _bounded(table: Table, key: str, default: int, bounds: tuple[int, int]) -> int:
    return table.integer(key, default, minimum=bounds[0], maximum=bounds[1])


def _networks(table: Table, key: str) -> tuple[Network, ...]:
    networks = []
    for text in table.strings(key):
        try:
            networks.append(ipaddress.ip_network(text, strict=True))
        except ValueError:
            table.fail(f"must be addresses or CIDRs such as 10.0.0.5/32, not {text!r}", key)
    return tuple(networks)


def _tokens(table: Table) -> tuple[WebToken, ...]:
    tokens: list[WebToken] = []
    for entry in table.tables("tokens"):
        user: str = entry.string("user", required=True)
        if not USER_PATTERN.match(user):
            entry.fail(f"{user!r} must be letters, digits and . _ @ + - (at most 64)", "user")
        digest: str = entry.string("sha256", required=True)
        if not SHA256_PATTERN.match(digest):
            entry.fail(
                "must be the token's sha256 in 64 lower-case hex digits (never the token: "
                "`deploy-console web --new-token USER` prints both)",
                "sha256",
            )
        groups = entry.strings("groups")
        for group in groups:
            if not USER_PATTERN.match(group):
                entry.fail(f"{group!r} is not a group name", "groups")
        if any(token.sha256 == digest for token in tokens):
            entry.fail("is the same token as another entry's", "sha256")
        entry.done()
        tokens.append(WebToken(user, digest, groups))
    return tuple(tokens)
