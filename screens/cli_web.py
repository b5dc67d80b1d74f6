"""`deploy-console web`: the console or the kiosk in a browser, through textual-serve.

textual-serve has no authentication, so what it serves is read-only (the kiosk, or the
console with everyone a viewer) unless --allow-actions says otherwise. It spawns one process
per browser; each gets its own process group, and every group is killed when the server stops.
With --allow-actions the server runs the queue's runner: a browser's console only queues and
follows, so a closed tab never leaves a deploy half-done.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shlex
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web
from textual_serve.app_service import AppService
from textual_serve.server import Server, log, to_int

from console import paths
from console.access import READ_ONLY_ENV
from console.config import Config
from console.errors import ConsoleError
from console.fleet_share import READ_ONLY_FLEET_ENV, SharedFleet, shared_fleet
from console.runner_service import runner_service

PROG = "deploy-console"
DEFAULT_LISTEN = "127.0.0.1"
DEFAULT_PORT = 8080
REAP_SECONDS = 3.0  # a child gets this long after SIGTERM, then SIGKILL
# textual-serve's page links its font from fonts.googleapis.com; the same font ships in its
# static files, so the page loads it from this server and the browser asks no other host.
REMOTE_FONT = re.compile(
    r"<link\s+rel=\"stylesheet\"\s+href=\"https://fonts\.googleapis\.com[^>]*>"
)
LOCAL_FONT = """<style>
      @font-face {
        font-family: "Roboto Mono";
        src: url("{{ config.static.url }}fonts/RobotoMono-VariableFont_wght.ttf");
      }
      @font-face {
        font-family: "Roboto Mono";
        font-style: italic;
        src: url("{{ config.static.url }}fonts/RobotoMono-Italic-VariableFont_wght.ttf");
      }
    </style>"""


def served_command(config: Config, store: str | None, kiosk: bool, allow_actions: bool) -> str:
    """The shell command each browser client runs: this console, on the same config and store."""
    argv = [sys.executable, "-m", "screens.main", "--config", str(config.source)]
    if store:
        argv += ["--store", store]
    if kiosk:
        argv.append("kiosk")
    read_only = "" if allow_actions else f"{READ_ONLY_ENV}=1 "
    # Every browser's console reads the fleet the server polls: one poller for all.
    return f"{read_only}{READ_ONLY_FLEET_ENV}=1 exec {shlex.join(argv)}"


class _ReapedAppService(AppService):
    """textual-serve's per-client service, its process in a new session the server can kill."""

    def __init__(self, *args: Any, children: set[asyncio.subprocess.Process], **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._children = children

    async def _open_app_process(self, width: int = 80, height: int = 24) -> Any:
        process = await asyncio.create_subprocess_shell(
            self.command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self._build_environment(width=width, height=height),
            start_new_session=True,
        )
        self._process = process
        assert process.stdin is not None
        self._stdin = process.stdin
        self._children.add(process)
        return process


class _LocalFontTemplates(jinja2.FileSystemLoader):
    """textual-serve's templates, their remote font link replaced by the bundled font."""

    def get_source(self, environment: jinja2.Environment, template: str) -> Any:
        source, filename, uptodate = super().get_source(environment, template)
        return REMOTE_FONT.sub(LOCAL_FONT, source), filename, uptodate


class WebServer(Server):
    """textual-serve's server, quiet, with its children tracked and reaped on stop."""

    def __init__(self, command: str, host: str, port: int) -> None:
        super().__init__(command, host=host, port=port, title="deploy-console")
        self.children: set[asyncio.subprocess.Process] = set()

    async def _make_app(self) -> web.Application:
        app = await super()._make_app()
        aiohttp_jinja2.setup(app, loader=_LocalFontTemplates(self.templates_path))
        return app

    async def on_startup(self, app: web.Application) -> None:
        """No banner: the command prints one line of its own."""

    async def handle_websocket(self, request: web.Request) -> web.WebSocketResponse:
        # textual-serve's own handler, with the service that tracks its process.
        websocket = web.WebSocketResponse(heartbeat=15)
        width = to_int(request.query.get("width", "80"), 80)
        height = to_int(request.query.get("height", "24"), 24)
        app_service: AppService | None = None
        try:
            await websocket.prepare(request)
            app_service = _ReapedAppService(
                self.command,
                write_bytes=websocket.send_bytes,
                write_str=websocket.send_str,
                close=websocket.close,
                download_manager=self.download_manager,
                debug=self.debug,
                children=self.children,
            )
            await app_service.start(width, height)
            await self._process_messages(websocket, app_service)
        except asyncio.CancelledError:
            await websocket.close()
        except Exception as error:
            log.exception(error)
        finally:
            if app_service is not None:
                await app_service.stop()
        return websocket

    async def reap(self) -> None:
        """SIGTERM every child's process group, SIGKILL what is left after REAP_SECONDS."""
        live = [child for child in self.children if child.returncode is None]
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


def web_command(config: Config, args: argparse.Namespace) -> int:
    if not 0 <= args.port <= 65535:
        raise ConsoleError(f"--port must be between 0 and 65535, not {args.port}")
    if args.public_url is not None and not args.public_url.startswith(("http://", "https://")):
        raise ConsoleError(
            f"--public-url must start with http:// or https://, not {args.public_url}"
        )
    command = served_command(
        config, getattr(args, "store", None), args.kiosk, allow_actions=args.allow_actions
    )
    store = paths.store_path(config.store, getattr(args, "store", None))
    fleet = shared_fleet(config, store, "web")
    return asyncio.run(
        _serve(WebServer(command, args.listen, args.port), args, fleet, config, store)
    )


async def _serve(
    server: WebServer, args: argparse.Namespace, fleet: SharedFleet, config: Config, store: Path
) -> int:
    if args.kiosk or not args.allow_actions:
        return await _serve_sessions(server, args, fleet)  # no session can queue a deploy
    # The server's one runner executes every deploy a browser's console queues: a session only
    # queues and follows, so a closed tab changes nothing about a deploy.
    async with runner_service(config, store):
        return await _serve_sessions(server, args, fleet)


async def _serve_sessions(server: WebServer, args: argparse.Namespace, fleet: SharedFleet) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    runner = web.AppRunner(await server._make_app(), handle_signals=False, shutdown_timeout=2.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, args.listen, args.port)
        try:
            await site.start()
        except OSError as error:
            raise ConsoleError(f"cannot listen on {args.listen}:{args.port}: {error}") from error
        bound = runner.addresses[0][1]
        fleet.start_polling()
        shown = f"[{args.listen}]" if ":" in args.listen else args.listen
        server.public_url = (args.public_url or f"http://{shown}:{bound}").rstrip("/")
        what = "kiosk" if args.kiosk else "console"
        mode = "actions allowed" if args.allow_actions else "read-only"
        print(f"web serving the {what} ({mode}) on {server.public_url}", flush=True)
        await stop.wait()
        print(
            f"{PROG}: web stopping: ending {len(server.children)} session(s)",
            file=sys.stderr,
            flush=True,
        )
    finally:
        await fleet.aclose()
        await server.reap()
        await runner.cleanup()
    return 0
