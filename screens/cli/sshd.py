"""`deploy-console sshd`: the console's SSH server, one console process per session.

Textual is never imported here: each session's console is forked from a fork server that
imported it (screens/cli/session_fork.py).

As a service: SIGTERM ends the sessions, then its runner stops as `deploy-console runner` does
(screens/cli/server_runner.py: a grace, then a hand-over, never a rollback; none of its own
with `[runner] socket`); SIGHUP reloads the config and the authorized keys for new logins.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from console.config import Config, find_config, paths
from console.config.paths import user_data_dir
from console.errors import ConsoleError
from screens.cli.command_line import PORT, Commands, serve_until_stopped
from screens.cli.metrics_option import add_metrics_option, metrics_served

if TYPE_CHECKING:
    from console.fleet.share import SharedFleet
    from console.servers.runner_service import RunnerService
    from console.servers.sshd import SshServer
    from screens.cli.session_fork import ForkedConsoles

log = logging.getLogger("console.sshd")


def register(commands: Commands) -> None:
    sshd = commands.add(
        "sshd", "serve the console over SSH (public keys from [sshd])", _sshd_handler
    )
    sshd.add_argument("--listen", metavar="ADDR", help="address to listen on (127.0.0.1)")
    sshd.add_argument("--port", type=PORT, metavar="N", help="port to listen on (2222)")
    sshd.add_argument("--kiosk", action="store_true", help="serve the read-only kiosk instead")
    add_metrics_option(sshd, "sshd")


def _sshd_handler(args: argparse.Namespace) -> int:
    return sshd_command(find_config(args.config), args)


def console_command(config: Config, store: str | None, kiosk: bool) -> list[str]:
    """What each session runs: this console, on the same config and store."""
    command = [sys.executable, "-m", "screens.main", "--config", str(config.source)]
    if store:
        command += ["--store", store]
    if kiosk:
        command.append("kiosk")
    return command


def sshd_command(config: Config, args: argparse.Namespace) -> int:
    # asyncssh and the fork server are loaded only when the server starts.
    from console.fleet.share import READ_ONLY_FLEET_ENV, shared_fleet
    from console.metrics.current import count_sessions
    from console.servers.sshd import SshServer, authorized_keys, load_host_key
    from screens.cli.session_fork import ForkedConsoles

    listen = args.listen if args.listen is not None else config.sshd.listen
    port = args.port if args.port is not None else config.sshd.port
    if not 0 <= port <= 65535:
        raise ConsoleError(f"--port must be between 0 and 65535, not {port}")
    allowed = authorized_keys(config.sshd, config.source)
    if not allowed:
        raise ConsoleError(
            f"{config.source}: no SSH keys may log in: add [[sshd.keys]] (user, key) or "
            "[sshd] authorized_keys"
        )
    host_key = load_host_key(user_data_dir())
    store = getattr(args, "store", None)
    command = console_command(config, store, args.kiosk)
    # Each session's console is forked from one process that imported the console once.
    spawner = ForkedConsoles(command[3:])
    server = SshServer(
        host_key,
        allowed,
        command,
        # Sessions read the fleet this server polls: one poller for all of them.
        environment={**os.environ, READ_ONLY_FLEET_ENV: "1"},
        spawner=spawner,
        settings=config.sshd,
        # CI runs console subcommands over SSH (sshd_exec.EXEC_COMMANDS); a kiosk runs none.
        commands=not args.kiosk,
    )
    store_file = paths.store_path(config.store, store)
    fleet = shared_fleet(config, store_file, "sshd")
    with metrics_served(config.metrics.sshd, args):
        count_sessions("ssh", lambda: len(server.sessions))
        return asyncio.run(
            _serve(server, spawner, listen, port, fleet, config, store_file, args.kiosk)
        )


async def _serve(
    server: SshServer,
    spawner: ForkedConsoles,
    listen: str,
    port: int,
    fleet: SharedFleet,
    config: Config,
    store: Path,
    kiosk: bool,
) -> int:
    from screens.cli.server_runner import on_hangup, server_runner, server_signals

    signals = server_signals()
    # The server's one runner executes every deploy its sessions queue (unless the runner
    # service of [runner] socket does): a session only queues and follows, so a dropped
    # connection changes nothing about a deploy.
    async with server_runner(config, store, signals, "sshd", not kiosk) as service:
        reloading = asyncio.create_task(
            on_hangup(signals, lambda: _reload(server, config.source, service))
        )
        try:
            return await _serve_sessions(server, spawner, listen, port, fleet, signals.stop)
        finally:
            reloading.cancel()


async def _reload(server: SshServer, source: Path, service: RunnerService | None) -> None:
    """SIGHUP: read the config and the authorized keys again; new sessions log in with the
    new keys (those open continue). A config or a key that does not read is refused in one
    line and the old keys stay."""
    from console.config import load_config
    from console.servers.runner_service import RunnerServiceError
    from console.servers.sshd import authorized_keys

    try:
        new = await asyncio.to_thread(load_config, source)
        allowed = await asyncio.to_thread(authorized_keys, new.sshd, new.source)
        if not allowed:
            raise ConsoleError(f"{source}: no SSH keys may log in")
    except ConsoleError as error:
        log.error("sshd: reload refused: %s; kept the keys it had", error.message)
        return
    server.allowed = dict(allowed)
    log.info("sshd: reloaded %s: %d key(s) may log in", source, len(allowed))
    if service is not None:
        try:
            changed = await service.reload(new)
        except RunnerServiceError as error:
            log.error("sshd: runner config reload refused: %s", error.message)
        else:
            log.info("sshd: runner config reloaded: %s", changed)


async def _serve_sessions(
    server: SshServer,
    spawner: ForkedConsoles,
    listen: str,
    port: int,
    fleet: SharedFleet,
    stop: asyncio.Event,
) -> int:
    await spawner.start()
    bound = await server.start(listen, port)
    fleet.start_polling()
    try:
        shown = f"[{listen}]" if ":" in listen else listen
        banner = f"sshd listening on {shown}:{bound} (host key {server.host_fingerprint})"
        await serve_until_stopped(stop, banner, "sshd", lambda: server.sessions)
    finally:
        await fleet.aclose()
        await server.close()
    return 0
