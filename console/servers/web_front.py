"""The web door's front: who a request is (trusted proxy header or token), Host and Origin
checks, session caps and terminal size clamps, in front of whatever serves the sessions."""

from __future__ import annotations

import hmac
import ipaddress
import secrets
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit

from aiohttp import web

from console.config.web import WebSettings, origin_of, token_hash
from console.errors import ConsoleError
from console.identity import WEB, Actor, IdentityError, local_actor

ACTOR_KEY = web.RequestKey("actor", Actor)
COOKIE = "deploy_console_session"
LOGIN_SECONDS = 12 * 3600  # a browser logged in with ?token= stays so this long
MAX_LOGINS = 1000  # remembered browser logins (the oldest is forgotten first)
MAX_GROUPS = 64
MIN_SIZE = (10, 3)  # the smallest terminal a browser may ask for (columns, rows)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def is_loopback(listen: str) -> bool:
    if listen == "localhost":
        return True
    try:
        return ipaddress.ip_address(listen.strip("[]")).is_loopback
    except ValueError:
        return False


def check_exposure(listen: str, allow_actions: bool, settings: WebSettings, source: str) -> None:
    """Refuse to let browsers act through a non-loopback address that nobody authenticates."""
    if allow_actions and settings.auth == "none" and not is_loopback(listen):
        raise ConsoleError(
            f"web --listen {listen} --allow-actions needs authentication: in {source} set "
            '[web] auth = "proxy" with trusted_proxies (your authenticating proxy\'s address), '
            'or auth = "tokens" with [[web.tokens]] (`deploy-console web --new-token USER`)'
        )


def clamp_size(width: object, height: object, settings: WebSettings) -> tuple[int, int]:
    """A terminal size a browser asked for, within [web] max_columns x max_rows."""
    return (
        _clamp(width, 80, MIN_SIZE[0], settings.max_columns),
        _clamp(height, 24, MIN_SIZE[1], settings.max_rows),
    )


def _clamp(value: object, default: int, low: int, high: int) -> int:
    if isinstance(value, str):
        try:
            value = int(value)
        except ValueError:
            return min(default, high)
    if not isinstance(value, int) or isinstance(value, bool):
        return min(default, high)
    return max(low, min(high, value))


def _refuse(status: type[web.HTTPException], text: str) -> web.HTTPException:
    headers = {"WWW-Authenticate": "Bearer"} if status is web.HTTPUnauthorized else None
    return status(text=f"{text}\n", headers=headers)


@dataclass
class _Login:
    actor: Actor
    expires: float


@dataclass
class Front:
    """Authenticates each request and guards the session websocket.

    `listen`/`port`/`public_url` are where browsers reach the server: their host and origin
    are always allowed, with [web] allowed_hosts/allowed_origins on top."""

    settings: WebSettings
    listen: str
    port: int = 0
    public_url: str = ""
    secure_cookie: bool = False
    _logins: dict[str, _Login] = field(default_factory=dict)
    sessions: dict[str, int] = field(default_factory=dict)

    # -- where browsers come from ---------------------------------------------------------------
    def bound(self, port: int, public_url: str) -> None:
        self.port, self.public_url = port, public_url
        self.secure_cookie = public_url.startswith("https://")

    def _served_hosts(self) -> set[str]:
        shown = f"[{self.listen}]" if ":" in self.listen else self.listen
        hosts = {f"{shown}:{self.port}".lower()}
        if is_loopback(self.listen):
            hosts |= {f"localhost:{self.port}", f"127.0.0.1:{self.port}"}
        return hosts

    def allowed_hosts(self) -> set[str]:
        """The served address (and its loopback names), the public URL's, and [web]'s."""
        hosts = self._served_hosts() | set(self.settings.allowed_hosts)
        if self.public_url:
            hosts.add(urlsplit(self.public_url).netloc.lower())
        return hosts

    def allowed_origins(self) -> set[str]:
        """The pages that may open a session: this server's own, and [web]'s."""
        origins = {f"http://{host}" for host in self._served_hosts()}
        origins |= set(self.settings.allowed_origins)
        if self.public_url:
            origins.add(origin_of(self.public_url))
        return origins

    # -- every request ----------------------------------------------------------------------------
    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Host first (a rebound DNS name is refused), then who: 401 for nobody."""
        if request.host.lower() not in self.allowed_hosts():
            raise _refuse(web.HTTPForbidden, "403: this server is not reached by that Host")
        token = request.query.get("token")
        if token is not None:
            return self._login(request, token)
        request[ACTOR_KEY] = self.authenticate(request)
        return await handler(request)

    def authenticate(self, request: web.Request) -> Actor:
        mode = self.settings.auth
        if mode == "proxy":
            return self._from_proxy(request)
        if mode == "tokens":
            return self._from_token(request)
        try:
            return Actor(local_actor().user, WEB, source=_peer(request))
        except IdentityError as error:
            raise _refuse(web.HTTPForbidden, f"403: {error.message}") from None

    def _from_proxy(self, request: web.Request) -> Actor:
        peer = _peer_ip(request)
        if peer is None or not any(peer in network for network in self.settings.trusted_proxies):
            # A user header from anyone else is what anyone can type: never believed.
            raise _refuse(web.HTTPUnauthorized, "401: authentication required (through the proxy)")
        user = request.headers.get(self.settings.user_header, "").strip()
        if not user:
            raise _refuse(web.HTTPUnauthorized, "401: the proxy named no user")
        groups = tuple(
            name.strip()
            for name in request.headers.get(self.settings.groups_header, "").split(",")
            if name.strip()
        )[:MAX_GROUPS]
        source = _peer(request)
        forwarded = request.headers.get("X-Forwarded-For", "").split(",")[-1].strip()
        if forwarded:
            with suppress(ValueError):
                source = str(ipaddress.ip_address(forwarded))
        try:
            for group in groups:
                Actor(group)  # a group must be a name the roles can hold, as a user
            return Actor(user, WEB, source=source, groups=groups)
        except IdentityError as error:
            raise _refuse(web.HTTPForbidden, f"403: {error.message}") from None

    def _from_token(self, request: web.Request) -> Actor:
        authorization = request.headers.get("Authorization", "")
        if authorization.startswith("Bearer "):
            actor = self._token_actor(authorization[len("Bearer ") :].strip(), request)
            if actor is not None:
                return actor
            raise _refuse(web.HTTPUnauthorized, "401: unknown token")
        login = self._logins.get(request.cookies.get(COOKIE, ""))
        if login is not None and login.expires > time.monotonic():
            return Actor(login.actor.user, WEB, source=_peer(request), groups=login.actor.groups)
        raise _refuse(
            web.HTTPUnauthorized, "401: authentication required (open the link with ?token=)"
        )

    def _token_actor(self, token: str, request: web.Request) -> Actor | None:
        """The token's owner; every configured hash is compared, in constant time each."""
        digest = token_hash(token)
        found: Actor | None = None
        for entry in self.settings.tokens:
            if hmac.compare_digest(digest, entry.sha256):
                found = Actor(entry.user, WEB, source=_peer(request), groups=entry.groups)
        return found

    def _login(self, request: web.Request, token: str) -> web.StreamResponse:
        """`?token=`: remember this browser with a random cookie and send it to the same page
        without the token, so the token stays out of its history and of every later URL."""
        if self.settings.auth != "tokens":
            raise _refuse(web.HTTPUnauthorized, "401: this server does not take tokens")
        actor = self._token_actor(token, request)
        if actor is None:
            raise _refuse(web.HTTPUnauthorized, "401: unknown token")
        now = time.monotonic()
        for key in [key for key, login in self._logins.items() if login.expires <= now]:
            del self._logins[key]
        while len(self._logins) >= MAX_LOGINS:
            del self._logins[next(iter(self._logins))]
        session = secrets.token_urlsafe(32)
        self._logins[session] = _Login(actor, now + LOGIN_SECONDS)
        query = urlencode([(k, v) for k, v in request.query.items() if k != "token"])
        response = web.HTTPSeeOther(request.path + (f"?{query}" if query else ""))
        response.set_cookie(
            COOKIE,
            session,
            max_age=LOGIN_SECONDS,
            path="/",
            httponly=True,
            samesite="Lax",  # a link from elsewhere opens the page; a session needs our Origin
            secure=self.secure_cookie,
        )
        return response

    # -- the session websocket ------------------------------------------------------------------
    def check_origin(self, request: web.Request) -> None:
        """A browser always says which page opens a websocket: only ours may (no cross-site
        page drives a console with the user's cookie)."""
        origin = request.headers.get("Origin", "").lower()
        if origin not in self.allowed_origins():
            shown = origin or "none"
            raise _refuse(web.HTTPForbidden, f"403: a session is not opened from origin {shown}")

    @contextmanager
    def session_slot(self, actor: Actor) -> Iterator[None]:
        """Hold one of the user's sessions and one of all sessions; 429 when either is full."""
        total = sum(self.sessions.values())
        if total >= self.settings.sessions_total:
            raise _refuse(
                web.HTTPTooManyRequests,
                f"429: the server has its {self.settings.sessions_total} sessions open",
            )
        key = actor.user if self.settings.auth != "none" else ""
        if key and self.sessions.get(key, 0) >= self.settings.sessions_per_user:
            raise _refuse(
                web.HTTPTooManyRequests,
                f"429: {actor.user} has {self.settings.sessions_per_user} sessions open",
            )
        self.sessions[key] = self.sessions.get(key, 0) + 1
        try:
            yield
        finally:
            self.sessions[key] -= 1
            if not self.sessions[key]:
                del self.sessions[key]


def _peer(request: web.Request) -> str:
    peer = request.transport.get_extra_info("peername") if request.transport else None
    if not peer:
        return ""
    host, port = peer[0], peer[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _peer_ip(request: web.Request) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    peer = request.transport.get_extra_info("peername") if request.transport else None
    if not peer:
        return None
    try:
        return ipaddress.ip_address(peer[0])
    except ValueError:
        return None
