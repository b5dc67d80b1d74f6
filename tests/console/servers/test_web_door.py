"""The web door's front, driven through the real server on loopback with an aiohttp client:
tokens and a trusted proxy authenticate, Host and Origin are checked, sessions capped, sizes
clamped, the session's console acts for the authenticated user; [web] mistakes are one line."""

from __future__ import annotations

import asyncio
import hashlib
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import tomli_w

from console.config import read_toml
from tests.console.servers.test_web import _children, _refused, _run, _web

RUN = 30.0


def _config(world_config_path: Path, folder: Path, web: dict[str, Any], **extra: Any) -> Path:
    data = read_toml(world_config_path)
    data["web"] = web
    data.update(extra)
    path = folder / "web.toml"
    path.write_bytes(tomli_w.dumps(data).encode())
    return path


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


TOKENS = {"alice": "alice-token-" + "a" * 30, "bob": "bob-token-" + "b" * 30}
TOKEN_WEB = {
    "auth": "tokens",
    "tokens": [{"user": user, "sha256": _hash(token)} for user, token in TOKENS.items()],
}


def _bearer(user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[user]}"}


async def _status(session: aiohttp.ClientSession, url: str, **kwargs: Any) -> tuple[int, str]:
    async with session.get(url, allow_redirects=False, **kwargs) as response:
        return response.status, await response.text()


async def _ws_refused(session: aiohttp.ClientSession, url: str, **kwargs: Any) -> int:
    """The HTTP status a websocket upgrade is refused with (fails if it is accepted)."""
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        async with session.ws_connect(url, **kwargs):
            pass
    return refused.value.status


async def _screen(
    websocket: aiohttp.ClientWebSocketResponse, until: Callable[[bytes], bool]
) -> bytes:
    """What the console has drawn, once `until` holds for it."""
    seen = b""

    async def read() -> bytes:
        nonlocal seen
        while not until(seen):
            message = await websocket.receive()
            if message.type == aiohttp.WSMsgType.BINARY:
                seen += message.data
            elif message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                raise AssertionError(f"the session ended; it drew {seen[-300:]!r}")
        return seen

    return await asyncio.wait_for(read(), RUN)


async def _press(websocket: aiohttp.ClientWebSocketResponse, keys: str) -> None:
    await websocket.send_json(["stdin", keys])


def _drew(text: bytes) -> Callable[[bytes], bool]:
    return lambda seen: text in seen


# -- tokens --------------------------------------------------------------------------------------
@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


async def test_no_or_an_unknown_token_is_401_and_a_token_logs_the_browser_in(
    world_config_path: Path, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    config = _config(world_config_path, tmp_path, TOKEN_WEB)
    with _web(config, "--store", str(tmp_path / "s.db")) as (_, port):
        page = f"http://127.0.0.1:{port}/"
        origin = f"http://127.0.0.1:{port}"
        status, body = await _status(http, page)
        assert (status, body.strip()) == (
            401,
            "401: authentication required (open the link with ?token=)",
        )
        assert (await _status(http, page, headers={"Authorization": "Bearer nope"}))[0] == 401
        assert (await _status(http, page + "?token=nope"))[0] == 401
        assert (await _status(http, f"{page}static/css/xterm.css"))[0] == 401
        ws = f"ws://127.0.0.1:{port}/ws"
        assert await _ws_refused(http, ws, origin=origin) == 401
        assert (
            await _ws_refused(http, ws, origin=origin, headers={"Authorization": "Bearer x"}) == 401
        )
        # The link with the token: a cookie for this browser, and the same page without it.
        async with http.get(
            f"{page}?fontsize=14&token={TOKENS['alice']}", allow_redirects=False
        ) as login:
            assert login.status == 303
            assert login.headers["Location"] == "/?fontsize=14"
            cookie = login.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and TOKENS["alice"] not in cookie
        status, body = await _status(http, page)
        assert status == 200 and "deploy-console" in body and TOKENS["alice"] not in body
        async with http.ws_connect(ws, origin=origin) as websocket:
            await _screen(websocket, _drew(b"projects"))
    # A bearer token works alone (scripts, tests), without a cookie.
    with _web(config) as (_, port):
        async with aiohttp.ClientSession() as fresh:
            status, _ = await _status(fresh, f"http://127.0.0.1:{port}/", headers=_bearer("bob"))
            assert status == 200


def test_new_token_prints_a_token_and_only_its_hash_for_config(
    world_config_path: Path, tmp_path: Path
) -> None:
    result = _run("web", "--new-token", "carol")
    assert result.returncode == 0, result.stderr
    token = re.search(r"^# ([A-Za-z0-9_-]{43})$", result.stdout, re.M)
    assert token is not None, result.stdout
    entry = result.stdout[result.stdout.index("[[web.tokens]]") :]
    assert f'sha256 = "{_hash(token[1])}"' in entry and token[1] not in entry
    _refused("web", "--new-token", "car ol")


# -- Host and Origin -------------------------------------------------------------------------------
async def test_another_origin_or_host_is_refused_403(
    world_config_path: Path, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    config = _config(world_config_path, tmp_path, TOKEN_WEB)
    with _web(config) as (_, port):
        ws = f"ws://127.0.0.1:{port}/ws"
        alice = _bearer("alice")
        for origin in ("http://evil.example", f"http://127.0.0.1:{port + 1}", "null"):
            assert await _ws_refused(http, ws, origin=origin, headers=alice) == 403, origin
        assert await _ws_refused(http, ws, headers=alice) == 403  # no Origin at all
        status, body = await _status(http, ws, headers={**alice, "Origin": "http://evil.example"})
        assert (status, body.strip()) == (
            403,
            "403: a session is not opened from origin http://evil.example",
        )
        # A DNS name rebound to 127.0.0.1 arrives with its own Host: refused on every path.
        status, body = await _status(
            http, f"http://127.0.0.1:{port}/", headers={**alice, "Host": "evil.example"}
        )
        assert (status, body.strip()) == (403, "403: this server is not reached by that Host")
        async with http.ws_connect(
            ws, origin=f"http://localhost:{port}", headers=alice
        ) as websocket:
            await _screen(websocket, _drew(b"projects"))


# -- a trusted proxy -------------------------------------------------------------------------------
PROXY_WEB = {"auth": "proxy", "trusted_proxies": ["127.0.0.2/32"]}
ALICE_VIA_PROXY = {
    "X-Forwarded-User": "alice",
    "X-Forwarded-Groups": "ops, web-team",
    "X-Forwarded-For": "127.0.0.9",
}


def _from(address: str) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(address, 0)))


async def test_a_proxy_user_header_counts_only_from_a_trusted_proxy(
    world_config_path: Path, tmp_path: Path
) -> None:
    config = _config(world_config_path, tmp_path, PROXY_WEB)
    with _web(config) as (_, port):
        page = f"http://127.0.0.1:{port}/"
        async with _from("127.0.0.1") as stranger:
            status, body = await _status(stranger, page, headers=ALICE_VIA_PROXY)
            assert (status, body.strip()) == (
                401,
                "401: authentication required (through the proxy)",
            )
            ws = f"ws://127.0.0.1:{port}/ws"
            assert (
                await _ws_refused(stranger, ws, origin=page.rstrip("/"), headers=ALICE_VIA_PROXY)
                == 401
            )
        async with _from("127.0.0.2") as proxy:
            assert (await _status(proxy, page, headers=ALICE_VIA_PROXY))[0] == 200
            assert (await _status(proxy, page))[0] == 401  # the proxy named nobody


async def test_the_proxys_user_acts_in_their_session_and_the_audit_names_them(
    world_config_path: Path, tmp_path: Path
) -> None:
    store = tmp_path / "store.db"
    config = _config(world_config_path, tmp_path, PROXY_WEB, access={"admins": ["alice"]})
    with _web(config, "--allow-actions", "--store", str(store)) as (_, port):
        async with (
            _from("127.0.0.2") as proxy,
            proxy.ws_connect(
                f"ws://127.0.0.1:{port}/ws?width=120&height=40",
                origin=f"http://127.0.0.1:{port}",
                headers=ALICE_VIA_PROXY,
            ) as websocket,
        ):
            await _screen(websocket, _drew(b"staging"))
            await _press(websocket, "q")  # the queue
            await _screen(websocket, _drew(b"Freeze"))
            await _press(websocket, "f")  # freeze a cluster: an admin's action
            await _screen(websocket, _drew(b"freeze a cluster"))
            await _press(websocket, "web door test\r")
            rows = await asyncio.to_thread(_audit_rows, store, "queue.freeze")
    # The server runs as root; the audit names alice, who came by the web, and from where.
    assert rows == [("alice (web from 127.0.0.9)", "frozen", "web door test")], rows


def _audit_rows(store: Path, action: str) -> list[tuple[str, str, str]]:
    end = time.monotonic() + RUN
    while time.monotonic() < end:
        if store.exists():
            with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as db:
                try:
                    rows = db.execute(
                        "SELECT actor, outcome, reason FROM audit WHERE action = ?", (action,)
                    ).fetchall()
                except sqlite3.OperationalError:
                    rows = []
            if rows:
                return [tuple(row) for row in rows]
        time.sleep(0.1)
    raise AssertionError(f"no {action} in the audit")


# -- sizes and caps --------------------------------------------------------------------------------
CURSOR = re.compile(rb"\x1b\[(\d+);(\d+)H")


def _rows(seen: bytes) -> int:
    """The lowest row the console has drawn on (it moves the cursor to each line it draws)."""
    return max((int(row) for row, _ in CURSOR.findall(seen)), default=0)


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def _within_memory(server_pid: int, limit_mb: float, work: Any) -> Any:
    """Run `work`, failing as soon as a session's console grows past `limit_mb`."""
    task = asyncio.ensure_future(work)
    try:
        while not task.done():
            for pid in _children(server_pid):
                try:
                    rss = _rss_mb(pid)
                except OSError:
                    continue
                assert rss < limit_mb, f"a session's console grew to {rss:.0f} MB"
            await asyncio.wait([task], timeout=0.1)
        return task.result()
    finally:
        task.cancel()


CLAMP = {"max_columns": 200, "max_rows": 60}
MEMORY_MB = 400  # a session's console at 200 x 60: ~42 MB resident here


async def test_a_huge_terminal_size_is_clamped(
    world_config_path: Path, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    config = _config(world_config_path, tmp_path, CLAMP)
    with _web(config, "--store", str(tmp_path / "s.db")) as (server, port):
        ws, origin = f"ws://127.0.0.1:{port}/ws", f"http://127.0.0.1:{port}"
        async with http.ws_connect(f"{ws}?width=100&height=30", origin=origin) as websocket:
            first = await _screen(websocket, lambda seen: _rows(seen) >= 30)
            assert _rows(first) == 30  # a size within the clamp is the browser's own
            await websocket.send_json(["resize", {"width": 100_000, "height": 100_000}])
            after = await _within_memory(
                server.pid, MEMORY_MB, _screen(websocket, lambda seen: _rows(seen) >= 60)
            )
            assert _rows(after) == CLAMP["max_rows"]
            # Still answering, at the clamped size, after a key.
            await _press(websocket, "j")
            more = await _within_memory(
                server.pid, MEMORY_MB, _screen(websocket, lambda seen: len(seen) > len(after))
            )
            assert _rows(more) == CLAMP["max_rows"]
        # A size asked for in the URL is clamped the same way; a non-number is the default.
        url = f"{ws}?width=100000&height=100000"
        async with http.ws_connect(url, origin=origin) as websocket:
            seen = await _within_memory(
                server.pid, MEMORY_MB, _screen(websocket, lambda seen: _rows(seen) >= 60)
            )
            assert _rows(seen) == CLAMP["max_rows"]


async def test_sessions_are_capped_per_user_and_in_total_429(
    world_config_path: Path, tmp_path: Path
) -> None:
    tokens = {**TOKENS, "carol": "carol-token-" + "c" * 30}
    web = {
        "auth": "tokens",
        "tokens": [{"user": user, "sha256": _hash(token)} for user, token in tokens.items()],
        "sessions_per_user": 1,
        "sessions_total": 2,
    }
    config = _config(world_config_path, tmp_path, web)
    with _web(config, "--store", str(tmp_path / "s.db")) as (_, port):
        ws, origin = f"ws://127.0.0.1:{port}/ws", f"http://127.0.0.1:{port}"

        def who(user: str) -> dict[str, str]:
            return {"Authorization": f"Bearer {tokens[user]}"}

        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(ws, origin=origin, headers=who("alice")) as alice:
                await _screen(alice, _drew(b"projects"))
                assert await _ws_refused(http, ws, origin=origin, headers=who("alice")) == 429
                status, body = await _status(http, ws, headers={**who("alice"), "Origin": origin})
                assert (status, body.strip()) == (429, "429: alice has 1 sessions open")
                async with http.ws_connect(ws, origin=origin, headers=who("bob")) as bob:
                    await _screen(bob, _drew(b"projects"))
                    assert await _ws_refused(http, ws, origin=origin, headers=who("carol")) == 429
                    status, body = await _status(
                        http, ws, headers={**who("carol"), "Origin": origin}
                    )
                    assert body.strip() == "429: the server has its 2 sessions open"
            # alice's tab closed: her session's slot is free again.
            deadline = time.monotonic() + RUN
            while True:
                try:
                    async with http.ws_connect(ws, origin=origin, headers=who("alice")) as again:
                        await _screen(again, _drew(b"projects"))
                        break
                except aiohttp.WSServerHandshakeError as refused:
                    assert refused.status == 429 and time.monotonic() < deadline
                    await asyncio.sleep(0.1)


# -- exposure and config ---------------------------------------------------------------------------
def test_actions_beyond_loopback_without_authentication_refuse_to_start(
    world_config_path: Path,
) -> None:
    err = _refused(
        "web", "--listen", "0.0.0.0", "--port", "0", "--allow-actions",
        "--config", str(world_config_path),
    )  # fmt: skip
    assert err.startswith(
        "deploy-console: error: web --listen 0.0.0.0 --allow-actions needs authentication: "
        f"in {world_config_path} set [web] auth = "
    ), err
    assert "trusted_proxies" in err and "--new-token USER" in err


def test_check_exposure_lets_loopback_and_authenticated_servers_act() -> None:
    from console.config.web import WebSettings
    from console.errors import ConsoleError
    from console.servers.web_front import check_exposure

    none, proxy = WebSettings(), WebSettings(auth="proxy")
    check_exposure("127.0.0.1", True, none, "c.toml")
    check_exposure("::1", True, none, "c.toml")
    check_exposure("0.0.0.0", False, none, "c.toml")  # read-only: everyone a viewer
    check_exposure("0.0.0.0", True, proxy, "c.toml")
    for listen in ("0.0.0.0", "::", "192.0.2.10", "console.example.com"):
        with pytest.raises(ConsoleError):
            check_exposure(listen, True, none, "c.toml")


@pytest.mark.parametrize(
    ("web", "expected"),
    [
        ('auth = "magic"', "web.auth: must be one of none, proxy, tokens, not 'magic'"),
        ('auth = "proxy"', 'web.trusted_proxies: is required with auth = "proxy"'),
        (
            'auth = "proxy"\ntrusted_proxies = ["10.0.0.300"]',
            "web.trusted_proxies: must be addresses or CIDRs such as 10.0.0.5/32",
        ),
        ('auth = "tokens"', "web.tokens: needs at least one [[web.tokens]]"),
        (
            'auth = "tokens"\n[[web.tokens]]\nuser = "alice"\nsha256 = "secret-token"',
            "web.tokens[0].sha256: must be the token's sha256 in 64 lower-case hex digits",
        ),
        (
            f'auth = "tokens"\n[[web.tokens]]\nuser = "al ice"\nsha256 = "{"0" * 64}"',
            "web.tokens[0].user: 'al ice' must be letters",
        ),
        (f'[[web.tokens]]\nuser = "a"\nsha256 = "{"0" * 64}"', "web.tokens: are used only with"),
        ('user_header = "X Forwarded User"', "web.user_header: must be an HTTP header name"),
        ('allowed_origins = ["https://x.example/app"]', "web.allowed_origins: must be like"),
        ('allowed_hosts = ["x.example/app"]', "web.allowed_hosts: must be HOST or HOST:PORT"),
        ("max_columns = 100000", "web.max_columns: must be at most 1000, not 100000"),
        ("max_rows = 2", "web.max_rows: must be at least 10, not 2"),
        ("sessions_total = 0", "web.sessions_total: must be at least 1, not 0"),
        ("sessions_per_user = true", "web.sessions_per_user: must be an integer, not a boolean"),
        ("tokenz = 1", "web.tokenz: unknown key"),
    ],
)
def test_web_config_mistakes_are_one_line_with_exit_2(
    world_config_path: Path, tmp_path: Path, web: str, expected: str
) -> None:
    path = tmp_path / "web.toml"
    path.write_text(world_config_path.read_text() + "\n[web]\n" + web + "\n")
    err = _refused("config", "check", "--config", str(path))
    # The file, then (for an unknown key) its line: `web.toml:784: web.tokenz: …`.
    assert re.search(rf"{re.escape(str(path))}(:\d+)?: {re.escape(expected)}", err), err
