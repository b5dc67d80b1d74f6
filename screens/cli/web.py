"""`deploy-console web`: the console or the kiosk in a browser, through textual-serve.

Its server is in screens/cli/web_server.py, imported only when it starts.

textual-serve has no authentication: the console's front (console/servers/web_front.py)
authenticates
every request (a trusted proxy's user header, or a per-user token), checks the websocket's
Origin and Host, caps sessions and clamps terminal sizes. Each browser's console is forked from
a fork server (screens/cli/session_fork.py) with the actor handed in memory; it is read-only unless
--allow-actions. Every session's process group is killed when the server stops.
With --allow-actions the server runs the queue's runner: a browser's console only queues and
follows, so a closed tab never leaves a deploy half-done (with `[runner] socket` the runner
service runs them instead). SIGTERM stops it as `deploy-console runner` (a grace, then a
hand-over, never a rollback: screens/cli/server_runner.py); SIGHUP reloads its [web] settings
(tokens).
"""

from __future__ import annotations

import argparse
import asyncio

from console.access import READ_ONLY_ENV
from console.config import Config, find_config, paths
from console.config.web import new_token, token_hash
from console.errors import ConsoleError
from console.identity import Actor, IdentityError
from screens.cli.command_line import PORT, Commands
from screens.cli.metrics_option import add_metrics_option, metrics_served

DEFAULT_LISTEN = "127.0.0.1"
DEFAULT_PORT = 8080


def register(commands: Commands) -> None:
    web = commands.add(
        "web",
        "serve the console (read-only) in a browser (textual-serve)",
        _web_handler,
    )
    web.add_argument("--listen", metavar="ADDR", default=DEFAULT_LISTEN, help="(127.0.0.1)")
    web.add_argument(
        "--port", type=PORT, metavar="N", default=DEFAULT_PORT, help="(8080; 0: any free)"
    )
    web.add_argument("--kiosk", action="store_true", help="serve the kiosk instead")
    web.add_argument(
        "--new-token",
        metavar="USER",
        help="print a new token for USER and its [[web.tokens]] entry (the hash), then exit",
    )
    web.add_argument(
        "--allow-actions",
        action="store_true",
        help="let each browser act with its user's role ([web] auth; loopback only without)",
    )
    web.add_argument(
        "--public-url", metavar="URL", help="the URL browsers reach it by (behind a proxy)"
    )
    add_metrics_option(web, "web")


def _web_handler(args: argparse.Namespace) -> int:
    if args.new_token is not None:
        return new_token_command(args.new_token)
    return web_command(find_config(args.config), args)


def served_argv(config: Config, store: str | None, kiosk: bool) -> list[str]:
    """The arguments each browser's console runs with: this console, on the same config and
    store (forked from the fork server, so no command line can say who it acts for)."""
    argv = ["--config", str(config.source)]
    if store:
        argv += ["--store", store]
    if kiosk:
        argv.append("kiosk")
    return argv


def served_environment(allow_actions: bool) -> dict[str, str]:
    """What each session's environment adds to the server's: it reads the fleet the server
    polls, and without --allow-actions everyone is a viewer. Neither can raise a role."""
    from console.fleet.share import READ_ONLY_FLEET_ENV

    extra = {READ_ONLY_FLEET_ENV: "1"}
    if not allow_actions:
        extra[READ_ONLY_ENV] = "1"
    return extra


def new_token_command(user: str) -> int:
    """Print a fresh token for `user` and the [[web.tokens]] entry (its hash) for config."""
    try:
        Actor(user)
    except IdentityError as error:
        raise ConsoleError(f"--new-token: {error.message}") from None
    token = new_token()
    print(f"# the token for {user} (give it to {user} only; it is not kept anywhere):")
    print(f"# {token}")
    print(f"# {user} opens the console once at https://HOST/?token=<the token> (or sends")
    print("# `Authorization: Bearer <the token>`). Add to the config:")
    print("[[web.tokens]]")
    print(f'user = "{user}"')
    print(f'sha256 = "{token_hash(token)}"')
    return 0


def web_command(config: Config, args: argparse.Namespace) -> int:
    # aiohttp, textual-serve and the fork server are loaded only when the server starts.
    from console.fleet.share import shared_fleet
    from console.metrics.current import count_sessions
    from console.servers.web_front import Front, check_exposure
    from screens.cli.session_fork import ForkedConsoles
    from screens.cli.web_server import WebServer, serve

    if not 0 <= args.port <= 65535:
        raise ConsoleError(f"--port must be between 0 and 65535, not {args.port}")
    if args.public_url is not None and not args.public_url.startswith(("http://", "https://")):
        raise ConsoleError(
            f"--public-url must start with http:// or https://, not {args.public_url}"
        )
    check_exposure(args.listen, args.allow_actions, config.web, str(config.source))
    store = getattr(args, "store", None)
    spawner = ForkedConsoles(served_argv(config, store, args.kiosk))
    extra_env = served_environment(args.allow_actions)
    front = Front(config.web, args.listen)
    server = WebServer(front, spawner, extra_env, args.listen, args.port)
    store_file = paths.store_path(config.store, store)
    fleet = shared_fleet(config, store_file, "web")
    with metrics_served(config.metrics.web, args):
        count_sessions("web", lambda: len(server.live_sessions))
        return asyncio.run(serve(server, args, fleet, config, store_file))
