"""The server of `deploy-console web`: textual-serve behind the front, a console per browser."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import re
import signal
from pathlib import Path
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import WSMsgType, web
from textual_serve.app_service import AppService
from textual_serve.server import Server, log

from console.config import Config, WebSettings, load_config
from console.errors import ConsoleError
from console.fleet.share import SharedFleet
from console.identity import Actor
from console.servers.runner_service import RunnerService, RunnerServiceError
from console.servers.web_front import ACTOR_KEY, Front, check_exposure, clamp_size
from screens import PROG
from screens.cli.command_line import serve_until_stopped
from screens.cli.server_runner import on_hangup, server_runner, server_signals
from screens.cli.session_fork import ForkedConsoles, PipedConsole

REAP_SECONDS = 3.0  # a child gets this long after SIGTERM, then SIGKILL
# textual-serve's page links its font from fonts.googleapis.com; the same font ships in its
# static files, so the page loads it from this server and the browser asks no other host.
REMOTE_FONT = re.compile(
    r"<link\s+rel=\"stylesheet\"\s+href=\"https://fonts\.googleapis\.com[^>]*>"
)
ROBOTO_MONO = """
      @font-face {
        font-family: "Roboto Mono";
        src: url("{{ config.static.url }}fonts/RobotoMono-VariableFont_wght.ttf");
      }
      @font-face {
        font-family: "Roboto Mono";
        font-style: italic;
        src: url("{{ config.static.url }}fonts/RobotoMono-Italic-VariableFont_wght.ttf");
      }"""
# Roboto Mono has none of the UI's arrows, boxes, blocks, marks or emoji: subsets of free fonts
# that hold them (fonts/faces.json, made by tests/web_fonts.py) join its family for just those
# characters (unicode-range), upright and italic, so the terminal's one font draws them all.
FONTS = Path(__file__).resolve().parent / "fonts"
FALLBACK_FACE = """
      @font-face {{
        font-family: "Roboto Mono";
        font-style: {style};
        src: url("{{{{ console_fonts_url }}}}{file}") format("woff");
        unicode-range: {unicode_range};
      }}"""
# xterm.js draws on a canvas and keeps each glyph it drew: the terminal starts only once the
# family's faces are loaded, or a glyph drawn before its face arrived stays a stand-in.
# Textual's web driver starts the console as if its window had lost focus (its footer stays
# empty until it is told otherwise, and textual-serve tells it only when the terminal gains
# focus): once the console has written, the terminal takes the keyboard, as a terminal window
# does, and says so.
FONTS_FIRST = """
    <script>
      const startTerminal = window.onload;
      window.onload = (event) => {
        const faces = [...document.fonts].filter((face) => face.family.includes("Roboto Mono"));
        Promise.allSettled(faces.map((face) => face.load())).then(() => {
          startTerminal(event);
          new MutationObserver((changes, observer) => {
            if (!document.body.classList.contains("-first-byte")) return;
            observer.disconnect();
            const keyboard = document.querySelector(".xterm-helper-textarea");
            keyboard?.blur();
            keyboard?.focus();
          }).observe(document.body, { attributes: true, attributeFilter: ["class"] });
        });
      };
    </script>"""
reports = logging.getLogger("console.web")  # (textual-serve's own logger is `log`)
TEXTUAL_JS = re.compile(r"<script src=\"[^\"]*js/textual\.js\"></script>")


def local_fonts() -> str:
    """The page's fonts, all from this server: Roboto Mono and its fallback faces."""
    faces = json.loads((FONTS / "faces.json").read_text())
    fallbacks = "".join(
        FALLBACK_FACE.format(style=style, **face)
        for face in faces
        for style in ("normal", "italic")
    )
    return f"<style>{ROBOTO_MONO}{fallbacks}\n    </style>"


WEB_SESSION_ENV = {
    # What textual-serve sets for its app; Textual reads the first three when it is imported,
    # so the fork server (which imports it once for every session) starts with them too.
    "TEXTUAL_DRIVER": "textual.drivers.web_driver:WebDriver",
    "TEXTUAL_FPS": "60",
    "TEXTUAL_COLOR_SYSTEM": "truecolor",
}
MAX_MESSAGE_BYTES = 64 * 1024  # a browser sends keys, pastes and resizes: nothing bigger


class _ForkedAppService(AppService):
    """textual-serve's per-client service, its console forked with the session's actor."""

    def __init__(
        self,
        *args: Any,
        spawner: ForkedConsoles,
        actor: Actor,
        extra_env: dict[str, str],
        children: set[PipedConsole],
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._spawner = spawner
        self._actor = actor
        self._extra_env = extra_env
        self._children = children
        self.console: PipedConsole | None = None

    async def _open_app_process(self, width: int = 80, height: int = 24) -> Any:
        env = {**self._build_environment(width=width, height=height), **self._extra_env}
        console = await self._spawner.spawn_piped(env, self._actor)
        self.console = console
        self._process = console  # type: ignore[assignment]  # what run() reads: stdout, stderr
        self._stdin = console.stdin
        self._children.add(console)
        return console


class _LocalFontTemplates(jinja2.FileSystemLoader):
    """textual-serve's templates, their remote font link replaced by the fonts this server
    serves, and the terminal started once they are loaded."""

    def get_source(self, environment: jinja2.Environment, template: str) -> Any:
        source, filename, uptodate = super().get_source(environment, template)
        source = REMOTE_FONT.sub(lambda _: local_fonts(), source)
        source = TEXTUAL_JS.sub(lambda found: found[0] + FONTS_FIRST, source)
        return source, filename, uptodate


class WebServer(Server):
    """textual-serve's server behind the console's front (console.servers.web_front): every request
    authenticated, the websocket's Origin checked, sessions capped, sizes clamped; each
    session's console forked with its actor, and reaped on stop."""

    def __init__(
        self,
        front: Front,
        spawner: ForkedConsoles,
        extra_env: dict[str, str],
        host: str,
        port: int,
    ) -> None:
        super().__init__(PROG, host=host, port=port, title=PROG)
        self.front = front
        self.spawner = spawner
        self.extra_env = extra_env
        self.children: set[PipedConsole] = set()

    @property
    def live_sessions(self) -> list[PipedConsole]:
        return [child for child in self.children if child.returncode is None]

    async def _make_app(self) -> web.Application:
        app = await super()._make_app()
        app.middlewares.append(self.front.middleware)
        app.router.add_static("/fonts", FONTS, name="console-fonts")
        aiohttp_jinja2.setup(
            app,
            loader=_LocalFontTemplates(self.templates_path),
            context_processors=[self._fonts_url],
        )
        return app

    async def _fonts_url(self, request: web.Request) -> dict[str, str]:
        """The template's `console_fonts_url`: where this server serves fonts/."""
        path = request.app.router["console-fonts"].url_for(filename="/")
        return {"console_fonts_url": f"{self.public_url}{path}".rstrip("/") + "/"}

    async def on_startup(self, app: web.Application) -> None:
        """No banner: the command prints one line of its own."""

    async def handle_websocket(self, request: web.Request) -> web.WebSocketResponse:
        # textual-serve's own handler, behind the front's checks (each refusal an HTTP status
        # before the upgrade), with the size clamped and the console forked for the actor.
        self.front.check_origin(request)
        actor = request[ACTOR_KEY]
        with self.front.session_slot(actor):
            return await self._session(request, actor)

    async def _session(self, request: web.Request, actor: Actor) -> web.WebSocketResponse:
        websocket = web.WebSocketResponse(heartbeat=15, max_msg_size=MAX_MESSAGE_BYTES)
        width, height = clamp_size(
            request.query.get("width", "80"), request.query.get("height", "24"), self.front.settings
        )
        app_service: _ForkedAppService | None = None
        try:
            await websocket.prepare(request)
            app_service = _ForkedAppService(
                self.command,
                write_bytes=websocket.send_bytes,
                write_str=websocket.send_str,
                close=websocket.close,
                download_manager=self.download_manager,
                debug=self.debug,
                spawner=self.spawner,
                actor=actor,
                extra_env=self.extra_env,
                children=self.children,
            )
            await app_service.start(width, height)
            await self._process_messages(websocket, app_service)
        except asyncio.CancelledError:
            await websocket.close()
        except Exception as error:
            log.error("web session of %s ended: %s", actor, error)
        finally:
            if app_service is not None:
                await _stop(app_service)
        return websocket

    async def _process_messages(
        self, websocket: web.WebSocketResponse, app_service: AppService
    ) -> None:
        """textual-serve's loop, but a message it cannot read is dropped (never a traceback)
        and a resize is clamped to [web] max_columns x max_rows."""
        async for message in websocket:
            if message.type != WSMsgType.TEXT:
                continue
            try:
                envelope = json.loads(message.data)
            except ValueError:
                continue
            if not isinstance(envelope, list) or not envelope:
                continue
            kind, data = envelope[0], envelope[1] if len(envelope) > 1 else None
            if kind == "stdin" and isinstance(data, str):
                await app_service.send_bytes(data.encode("utf-8"))
            elif kind == "resize" and isinstance(data, dict):
                size = clamp_size(data.get("width"), data.get("height"), self.front.settings)
                await app_service.set_terminal_size(*size)
            elif kind == "ping":
                await websocket.send_json(["pong", data])
            elif kind == "blur":
                await app_service.blur()
            elif kind == "focus":
                await app_service.focus()

    async def start(self) -> None:
        """Start the fork server (it imports the console once, with Textual set up for the
        web driver) before the first session."""
        os.environ.update(WEB_SESSION_ENV)
        await self.spawner.start()

    async def reap(self) -> None:
        """SIGTERM every child's process group, SIGKILL what is left after REAP_SECONDS."""
        live: list[PipedConsole] = self.live_sessions
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for child in live:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.pid, sig)
            waits = [asyncio.create_task(child.wait()) for child in live]
            if not waits:
                return
            _, pending = await asyncio.wait(waits, timeout=REAP_SECONDS)
            for task in pending:
                task.cancel()
            live = [child for child in live if child.returncode is None]


async def _stop(app_service: _ForkedAppService) -> None:
    """Ask the console to quit; kill its process group if it has not within REAP_SECONDS."""
    with contextlib.suppress(Exception):
        await asyncio.wait_for(app_service.stop(), REAP_SECONDS)
    console = app_service.console
    if console is not None and console.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(console.pid, signal.SIGKILL)
    if console is not None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(console.wait(), REAP_SECONDS)
        console.stdin.close()


async def serve(
    server: WebServer, args: argparse.Namespace, fleet: SharedFleet, config: Config, store: Path
) -> int:
    signals = server_signals()
    # The server's one runner executes every deploy a browser's console queues (unless the
    # runner service of [runner] socket does): a session only queues and follows, so a closed
    # tab changes nothing about a deploy. Without actions no session can queue one.
    runs_deploys = args.allow_actions and not args.kiosk
    async with server_runner(config, store, signals, "web", runs_deploys) as service:
        reloading = asyncio.create_task(
            on_hangup(signals, lambda: _reload(server, args, config.source, service))
        )
        try:
            return await _serve_sessions(server, args, fleet, signals.stop)
        finally:
            reloading.cancel()


async def _reload(
    server: WebServer, args: argparse.Namespace, source: Path, service: RunnerService | None
) -> None:
    """SIGHUP: read the config again and take its [web] settings (tokens, limits, proxies):
    new requests are checked against them; a browser logged in with a token no longer
    configured is logged out. A config that does not read, or that would expose actions
    without authentication, is refused in one line and the old settings stay."""
    try:
        new = await asyncio.to_thread(load_config, source)
        check_exposure(args.listen, args.allow_actions, new.web, str(new.source))
    except ConsoleError as error:
        reports.error("web: reload refused: %s; kept the settings it had", error.message)
        return
    _take_settings(server.front, new.web)
    reports.info(
        "web: reloaded %s: auth %s, %d token(s)", source, new.web.auth, len(new.web.tokens)
    )
    if service is not None:
        try:
            changed = await service.reload(new)
        except RunnerServiceError as error:
            reports.error("web: runner config reload refused: %s", error.message)
        else:
            reports.info("web: runner config reloaded: %s", changed)


def _take_settings(front: Front, settings: WebSettings) -> None:
    """The front checks new requests against `settings`; a browser's login whose token is
    no longer configured (same user, same groups) ends."""
    kept = {(entry.user, entry.groups) for entry in settings.tokens}
    front.settings = settings
    for key, login in list(front._logins.items()):
        if (login.actor.user, login.actor.groups) not in kept:
            del front._logins[key]


async def _serve_sessions(
    server: WebServer, args: argparse.Namespace, fleet: SharedFleet, stop: asyncio.Event
) -> int:
    await server.start()
    # No access log: a request line could carry a token (?token= before the login redirect).
    runner = web.AppRunner(
        await server._make_app(), handle_signals=False, shutdown_timeout=2.0, access_log=None
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, args.listen, args.port)
        try:
            await site.start()
        except OSError as error:
            raise ConsoleError(f"cannot listen on {args.listen}:{args.port}: {error}") from error
        bound = runner.addresses[0][1]
        shown = f"[{args.listen}]" if ":" in args.listen else args.listen
        server.public_url = (args.public_url or f"http://{shown}:{bound}").rstrip("/")
        server.front.bound(bound, server.public_url if args.public_url else "")
        fleet.start_polling()
        what = "kiosk" if args.kiosk else "console"
        mode = "actions allowed" if args.allow_actions else "read-only"
        auth = server.front.settings.auth
        banner = f"web serving the {what} ({mode}, auth {auth}) on {server.public_url}"
        await serve_until_stopped(stop, banner, "web", lambda: server.live_sessions)
    finally:
        await fleet.aclose()
        await server.reap()
        await runner.cleanup()
    return 0
