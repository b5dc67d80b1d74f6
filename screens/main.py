"""The entry point: parses the command line and wires the core to the UI.

Commands that do not need a screen (status, config check, world) never start Textual.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from console.config import Config, find_config, load_config, sample_config, write_world_config
from console.config.paths import user_data_dir
from console.errors import ConsoleError
from console.inputs import SQLITE_INTEGER_MAX, seconds, shown, whole_number
from screens.cli.history import STATES

if TYPE_CHECKING:
    from console.world.server import World

PROG = "deploy-console"
DEMO_CONFIG = sample_config("demo.toml")
MAX_LIMIT = 1_000_000  # history --limit


class UsageError(ConsoleError):
    """The command line itself is wrong."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line on stderr and exit code 2."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see {self.prog} --help)")


def _whole(name: str, minimum: int, maximum: int) -> Callable[[str], int]:
    """An argparse type for an integer within bounds (console.inputs): text that is no number
    is "invalid int value" (shortened), a number out of bounds one line naming the option."""

    def parse(text: str) -> int:
        try:
            int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid int value: {shown(text)!r}") from None
        return whole_number(text, name, minimum, maximum)

    return parse


def _seconds(name: str, maximum: float) -> Callable[[str], float]:
    """An argparse type for a number of seconds above 0, finite and at most maximum."""

    def parse(text: str) -> float:
        try:
            float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid float value: {shown(text)!r}") from None
        return seconds(text, name, maximum)

    return parse


PORT = _whole("--port", 0, 65535)


def _parser() -> argparse.ArgumentParser:
    def options(default: object) -> _Parser:
        shared = _Parser(add_help=False)
        shared.add_argument(
            "--config",
            metavar="PATH",
            default=default,
            help="config file (else $DEPLOY_CONSOLE_CONFIG, else the user config dir)",
        )
        shared.add_argument(
            "--store",
            metavar="PATH",
            default=default,
            help="the deploy and audit store (else the config's `store`, else the user data dir)",
        )
        return shared

    # Given before the command or after it: a command's own default must not undo the first.
    common = options(argparse.SUPPRESS)
    parser = _Parser(
        prog=PROG,
        description="A terminal console for the fleet: health, versions, deploys.",
        parents=[options(None)],
    )
    commands = parser.add_subparsers(dest="command", parser_class=_Parser, metavar="COMMAND")
    status = commands.add_parser(
        "status", parents=[common], help="print the fleet matrix (or JSON) and exit"
    )
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.add_argument("--project", action="append", metavar="NAME", help="only this project")
    status.add_argument("--cluster", action="append", metavar="NAME", help="only this cluster")
    deploy = commands.add_parser(
        "deploy", parents=[common], help="deploy a release of a project to a cluster, to its end"
    )
    deploy.add_argument("project")
    deploy.add_argument("cluster")
    deploy.add_argument("release", help="a version (the AMI's Version tag) or an AMI id")
    deploy.add_argument("--yes", action="store_true", help="confirm a protected cluster")
    deploy.add_argument("--json", action="store_true", help="one JSON event per line")
    deploy.add_argument(
        "--no-wait", action="store_true", help="queue it, print its id and exit (a runner runs it)"
    )
    rollback = commands.add_parser(
        "rollback", parents=[common], help="deploy again the release a finished deploy replaced"
    )
    rollback.add_argument("deploy_id", metavar="DEPLOY_ID")
    rollback.add_argument("--yes", action="store_true", help="confirm a protected cluster")
    rollback.add_argument("--json", action="store_true", help="one JSON event per line")
    releases = commands.add_parser(
        "releases", parents=[common], help="a project's releases, newest first"
    )
    releases.add_argument("project")
    releases.add_argument("--cluster", metavar="NAME", help="the cluster's region (default: first)")
    releases.add_argument("--json", action="store_true", help="machine-readable output")
    history = commands.add_parser(
        "history", parents=[common], help="the latest deploys, or one deploy with its steps"
    )
    history.add_argument("deploy_id", metavar="DEPLOY_ID", nargs="?", help="show this deploy")
    history.add_argument("--project", metavar="NAME", help="only this project")
    history.add_argument("--cluster", metavar="NAME", help="only this cluster")
    history.add_argument("--actor", metavar="USER", help="only deploys by this user")
    history.add_argument("--state", choices=STATES, help="only deploys that ended so")
    history.add_argument(
        "--limit", type=_whole("--limit", 1, MAX_LIMIT), default=20, help="at most this many (20)"
    )
    history.add_argument("--json", action="store_true", help="machine-readable output")
    history.add_argument(
        "--rules", action="store_true", help="when the rules (roles, protected clusters) changed"
    )
    queue = commands.add_parser(
        "queue", parents=[common], help="the queued and running deploys, and why each waits"
    )
    queue.add_argument("--json", action="store_true", help="machine-readable output")
    queue_commands = queue.add_subparsers(
        dest="queue_command", parser_class=_Parser, metavar="COMMAND"
    )
    queue_cancel = queue_commands.add_parser(
        "cancel", parents=[common], help="cancel a queued deploy (a running one rolls back)"
    )
    queue_cancel.add_argument("deploy_id", metavar="DEPLOY_ID")
    queue_cancel.add_argument("--reason", help="why (kept in the audit)")
    for direction in ("up", "down"):
        move = queue_commands.add_parser(
            direction, parents=[common], help=f"move a queued deploy {direction} within its pair"
        )
        move.add_argument("deploy_id", metavar="DEPLOY_ID")
    lock = commands.add_parser("lock", help="manual locks on the fleet, a cluster, a project")
    lock_commands = lock.add_subparsers(
        dest="lock_command", parser_class=_Parser, metavar="COMMAND"
    )
    lock_commands.required = True
    lock_add = lock_commands.add_parser(
        "add", parents=[common], help="lock (no --project/--cluster: everything)"
    )
    lock_add.add_argument("--project", metavar="NAME", help="only this project")
    lock_add.add_argument("--cluster", metavar="NAME", help="only this cluster")
    lock_add.add_argument("--reason", required=True, help="why (shown to whoever waits)")
    lock_add.add_argument("--until", metavar="WHEN", help="expiry: 30m, 2h, 1d or an ISO time")
    lock_add.add_argument("--warning", action="store_true", help="only warn: deploys still start")
    lock_commands.add_parser("list", parents=[common], help="the locks in force")
    lock_remove = lock_commands.add_parser("remove", parents=[common], help="remove a lock")
    lock_remove.add_argument(
        "lock_id", metavar="LOCK_ID", type=_whole("LOCK_ID", 1, SQLITE_INTEGER_MAX)
    )
    freeze = commands.add_parser(
        "freeze", parents=[common], help="hold every queued deploy of a cluster"
    )
    freeze.add_argument("cluster")
    freeze.add_argument("--reason", required=True, help="why (shown to whoever waits)")
    unfreeze = commands.add_parser("unfreeze", parents=[common], help="lift a cluster's freeze")
    unfreeze.add_argument("cluster")
    promote = commands.add_parser(
        "promote",
        parents=[common],
        help="queue a release along the promotion chain, each stage after the last succeeded",
    )
    promote.add_argument("project")
    promote.add_argument("release", help="a version (the AMI's Version tag) or an AMI id")
    promote.add_argument("--yes", action="store_true", help="confirm protected clusters")
    promote.add_argument("--json", action="store_true", help="machine-readable output")
    runner = commands.add_parser(
        "runner", parents=[common], help="run queued deploys headless (a host without a TUI)"
    )
    runner.add_argument(
        "--exit-when-idle",
        action="store_true",
        help="end once nothing is queued, running or left to reconcile (a console starts "
        "such a runner when none serves its store)",
    )
    runner.add_argument(
        "--socket",
        metavar="PATH",
        help="serve people's commands on this Unix socket (a shared console host; a caller is "
        "known by its uid, SO_PEERCRED; default: config [runner] socket)",
    )
    audit = commands.add_parser("audit", help="verify, anchor or export the store's audit log")
    audit_commands = audit.add_subparsers(
        dest="audit_command", parser_class=_Parser, metavar="COMMAND"
    )
    audit_commands.required = True
    audit_commands.add_parser(
        "verify", parents=[common], help="recompute the audit hash chain (exit 1 if it breaks)"
    )
    audit_commands.add_parser(
        "anchor", parents=[common], help="write the chain's head to the S3 anchor ([audit])"
    )
    export = audit_commands.add_parser(
        "export", parents=[common], help="write the audit rows as CSV or JSON lines"
    )
    # Checked by cli_audit, not with choices=: one line naming the value, like every mistake.
    export.add_argument("--format", default="jsonl", help="csv or jsonl (default: jsonl)")
    export.add_argument("--output", metavar="FILE", help="write FILE atomically, not stdout")
    export.add_argument("--project", metavar="NAME", help="only rows of this project")
    export.add_argument("--cluster", metavar="NAME", help="only rows of this cluster")
    export.add_argument("--actor", metavar="NAME", help="only rows by this actor")
    export.add_argument("--outcome", metavar="OUTCOME", help="only rows with this outcome")
    export.add_argument(
        "--since", metavar="ISO", help="rows at or after this time (UTC if no zone)"
    )
    export.add_argument("--until", metavar="ISO", help="rows before this time (UTC if no zone)")
    iam = commands.add_parser(
        "iam-policy", help="print a least-privilege IAM policy of the console (docs/iam)"
    )
    # Checked by console.aws.iam, not with choices=: one line naming the roles, exit 2.
    iam.add_argument("role", nargs="?", metavar="ROLE", help="poller, runner, anchor-writer, trust")
    config = commands.add_parser("config", help="configuration commands")
    config_commands = config.add_subparsers(dest="config_command", parser_class=_Parser)
    config_commands.required = True
    config_commands.add_parser("check", parents=[common], help="validate the config")
    world = commands.add_parser(
        "world", parents=[common], help="run the embedded AWS world alone (demo fleet)"
    )
    world.add_argument("--port", type=PORT, default=0, help="port on 127.0.0.1 (0: any free)")
    world.add_argument(
        "--write-config", metavar="PATH", help="where to write a config that points at it"
    )
    sshd = commands.add_parser(
        "sshd", parents=[common], help="serve the console over SSH (public keys from [sshd])"
    )
    sshd.add_argument("--listen", metavar="ADDR", help="address to listen on (127.0.0.1)")
    sshd.add_argument("--port", type=PORT, metavar="N", help="port to listen on (2222)")
    sshd.add_argument("--kiosk", action="store_true", help="serve the read-only kiosk instead")
    web = commands.add_parser(
        "web", parents=[common], help="serve the console (read-only) in a browser (textual-serve)"
    )
    web.add_argument("--listen", metavar="ADDR", default="127.0.0.1", help="(127.0.0.1)")
    web.add_argument("--port", type=PORT, metavar="N", default=8080, help="(8080; 0: any free)")
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
    kiosk = commands.add_parser(
        "kiosk", parents=[common], help="a read-only wall screen: tiles, clock, latest deploys"
    )
    kiosk.add_argument(
        "--rotate",
        type=_seconds("--rotate", maximum=86400.0),
        default=15.0,
        metavar="SECONDS",
        help="show the next page every SECONDS when the fleet needs several (default: 15)",
    )
    kiosk.add_argument(
        "--quit-key", default="ctrl+q", metavar="KEY", help="the one key that does anything"
    )
    demo = commands.add_parser(
        "demo", parents=[common], help="start the embedded world and the console together"
    )
    demo.add_argument("--port", type=PORT, default=0, help="port on 127.0.0.1 (0: any free)")
    return parser


def has_command(name: str) -> bool:
    """Whether this build of the console has the command `name` (the SSH server asks)."""
    return any(
        isinstance(action, argparse._SubParsersAction) and name in action.choices
        for action in _parser()._actions
    )


def _fail(message: str) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return 2


# Options that name files: a path may be any bytes. Every other value is text that reaches
# SQLite, JSON or a terminal, which take UTF-8 only.
PATH_OPTIONS = frozenset({"config", "store", "output", "write_config"})


def _check_text(args: argparse.Namespace) -> None:
    """Arguments that are not UTF-8 (Python keeps their bytes as surrogates) are refused here,
    not as a UnicodeEncodeError wherever they are first written."""
    for name, value in vars(args).items():
        if isinstance(value, str) and name not in PATH_OPTIONS:
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raw = value.encode("utf-8", "surrogateescape")
                raise UsageError(f"{name} {shown(ascii(raw))} is not UTF-8 text") from None


def main(argv: Sequence[str] | None = None) -> None:
    try:
        code = run(list(sys.argv[1:] if argv is None else argv))
        # Flushed here, not at exit: a reader that left early is then caught below.
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (`| head -1`): it has what it wanted. As Python's docs advise
        # (signal module, "Note on SIGPIPE"), point stdout at devnull so that the
        # interpreter's own last flush cannot fail again, and end quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        code = 0
    sys.exit(code)


def run(argv: list[str]) -> int:
    try:
        args = _parser().parse_args(argv)
        _check_text(args)
        if args.command == "status":
            return _status(args)
        if args.command == "config":
            return _config_check(args)
        if args.command in ("deploy", "rollback", "releases"):
            from screens.cli import deploy as cli_deploy

            config = find_config(args.config)
            if args.command == "deploy":
                return cli_deploy.deploy_command(config, args)
            if args.command == "rollback":
                return cli_deploy.rollback_command(config, args)
            return cli_deploy.releases_command(config, args)
        if args.command == "history":
            from screens.cli.history import history_command

            return history_command(find_config(args.config), args)
        if args.command in ("queue", "lock", "freeze", "unfreeze", "promote", "runner"):
            from screens.cli import queue as cli_queue

            config = find_config(args.config)
            if args.command == "queue":
                return cli_queue.queue_command(config, args)
            if args.command == "lock":
                return cli_queue.lock_command(config, args)
            if args.command == "promote":
                return cli_queue.promote_command(config, args)
            if args.command == "runner":
                return cli_queue.runner_command(config, args)
            return cli_queue.freeze_command(config, args)
        if args.command == "audit":
            from screens.cli import audit as cli_audit

            return cli_audit.command(args)
        if args.command == "iam-policy":
            from screens.cli.iam import iam_policy_command

            return iam_policy_command(args)
        if args.command == "world":
            return _world(args)
        if args.command == "demo":
            return _demo(args)
        if args.command == "sshd":
            from screens.cli.sshd import sshd_command

            return sshd_command(find_config(args.config), args, has_command("kiosk"))
        if args.command == "web":
            from screens.cli.web import new_token_command, web_command

            if args.new_token is not None:
                return new_token_command(args.new_token)
            return web_command(find_config(args.config), args)
        if args.command == "kiosk":
            return _kiosk(find_config(args.config), args)
        return _console(find_config(args.config), getattr(args, "store", None))
    except ConsoleError as error:
        return _fail(error.message)
    except KeyboardInterrupt:
        return 130


def _config_check(args: argparse.Namespace) -> int:
    config = find_config(args.config)
    lb_count = sum(
        len(settings.load_balancers)
        for project in config.projects
        for settings in project.clusters.values()
    )
    protected = [cluster.name for cluster in config.clusters if cluster.protected]
    print(
        f"{config.source}: ok: {len(config.clusters)} clusters "
        f"({', '.join(config.cluster_names)}; protected: {', '.join(protected) or 'none'}), "
        f"{len(config.projects)} projects, {lb_count} load balancers"
    )
    return 0


def _status(args: argparse.Namespace) -> int:
    from console.fleet.inventory import Fleet
    from console.fleet.report import snapshot_json

    config = find_config(args.config)
    projects = tuple(args.project) if args.project else None
    clusters = tuple(args.cluster) if args.cluster else None
    for name in clusters or ():
        config.cluster(name)
    for name in projects or ():
        config.project(name)
    from screens.cli.iam import terminal_mfa_prompt

    fleet = Fleet(config, mfa_prompt=terminal_mfa_prompt())
    try:
        snapshot = asyncio.run(fleet.refresh())
    finally:
        fleet.close()
    if args.json:
        json.dump(snapshot_json(snapshot, projects, clusters), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        from screens.cli.status_table import print_status

        print_status(snapshot, projects, clusters)
    failed = [
        cluster
        for cluster in snapshot.clusters
        if cluster.error and (clusters is None or cluster.name in clusters)
    ]
    for cluster in failed:
        print(f"{PROG}: error: cluster {cluster.name}: {cluster.error}", file=sys.stderr)
    return 2 if failed else 0


def _world_config_source(args: argparse.Namespace) -> Path:
    return Path(args.config) if args.config else DEMO_CONFIG


def _start_world(source: Path, port: int) -> World:
    """The embedded world, seeded and serving; the caller stops it."""
    from console.world.server import World

    if port < 0 or port > 65535:
        raise UsageError(f"--port must be between 0 and 65535, not {port}")
    # The embedded world needs no credentials and must never reach instance metadata.
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    world = World(load_config(source), port=port)
    world.start()
    return world


def _world(args: argparse.Namespace) -> int:
    source = _world_config_source(args)
    destination = Path(args.write_config) if args.write_config else user_data_dir() / "world.toml"
    world = _start_world(source, args.port)
    stop = threading.Event()
    try:
        write_world_config(source, world.endpoint_url, destination, world.start_ssh())
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        print(f"world ready: {world.endpoint_url}", flush=True)
        print(
            f"{PROG}: {world.report.instances} instances, {world.report.load_balancers} load "
            f"balancers seeded in {world.report.seconds:.1f} s; config written to {destination}; "
            f"try: {PROG} --config {destination}",
            file=sys.stderr,
            flush=True,
        )
        stop.wait()
    finally:
        world.stop()
    return 0


def _demo(args: argparse.Namespace) -> int:
    source = _world_config_source(args)
    print(f"{PROG}: starting the embedded AWS world from {source}...", file=sys.stderr, flush=True)
    world = _start_world(source, args.port)
    try:
        destination = user_data_dir() / "demo-world.toml"
        write_world_config(source, world.endpoint_url, destination, world.start_ssh())
        # The world lives in this process: a deploy cannot outlive it, so this console runs
        # its deploys itself.
        return _console(load_config(destination), args.store, runs_deploys=True)
    finally:
        world.stop()


def _console(config: Config, store: str | None, *, runs_deploys: bool = False) -> int:
    from console.deploy.services import store_path

    return asyncio.run(_run_console(config, store_path(config, store), runs_deploys))


def runner_argv(config: Config, store: Path) -> list[str]:
    """The detached runner a console starts when no runner serves its store."""
    return [
        sys.executable, "-m", "screens.main", "--config", str(config.source.resolve()),
        "--store", str(store.resolve()), "runner", "--exit-when-idle",
    ]  # fmt: skip


async def _run_console(config: Config, store: Path, runs_deploys: bool = False) -> int:
    from console.audit.anchor import anchor_schedule
    from console.deploy.services import actor, deploy_services
    from console.fleet.share import READ_ONLY_FLEET_ENV, shared_fleet
    from console.queue.release_queue import DeployQueue
    from console.queue.runner import Runner
    from console.servers.runner_service import DetachedRunners
    from screens.app import build_app
    from screens.deploy.support import EngineDeploys

    # A session of `sshd` or `web`: it reads the fleet its server polls for every session,
    # and the server's runner runs what it queues.
    session = os.environ.get(READ_ONLY_FLEET_ENV) == "1"
    # The store belongs to the loop it was opened on: the app's, so open it here.
    async with deploy_services(config, store) as services:
        fleet = shared_fleet(config, store, "console")
        queue = DeployQueue(services.store, config)
        # A deploy belongs to a runner process, never to this console: closing its terminal
        # (or dropping its SSH or browser session) changes nothing about a deploy. A local
        # console starts a detached runner when none serves the store (and at start, when
        # something waits for one).
        detached = (
            None if session or runs_deploys else DetachedRunners(store, runner_argv(config, store))
        )
        runner = Runner(
            services.engine,
            queue,
            executes=runs_deploys,
            on_queued=detached.ensure if detached is not None else None,
        )
        if detached is not None and await queue.entries():
            await detached.ensure()
        deploys = EngineDeploys(services.engine, services.fleet.gateway, actor(), runner=runner)
        anchor = (
            None
            if session
            else anchor_schedule(config.audit, services.store, services.fleet.gateway)
        )
        app = build_app(config, fleet, deploys=deploys, anchor=anchor, history=services.store)
        running = asyncio.create_task(runner.run_forever())
        try:
            await app.run_async()
        finally:
            await fleet.aclose()
            if runner.running_here:
                print(
                    f"{PROG}: cancelling the deploys this console ran "
                    f"({', '.join(runner.running_here)}); each rolls back first",
                    file=sys.stderr,
                    flush=True,
                )
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running
        return app.return_code or 0


def _kiosk(config: Config, args: argparse.Namespace) -> int:
    from console.deploy.services import store_path
    from screens.kiosk.screen import check_quit_key

    try:
        quit_key = check_quit_key(args.quit_key)
    except ValueError as error:
        raise UsageError(str(error)) from None
    store = store_path(config, getattr(args, "store", None))
    return asyncio.run(_run_kiosk(config, store, args.rotate, quit_key))


async def _run_kiosk(config: Config, store_file: Path, rotate: float, quit_key: str) -> int:
    from console.fleet.share import shared_fleet
    from console.queue.board import DeployBoard, read_board
    from console.queue.release_queue import DeployQueue
    from console.store import Store
    from screens.kiosk.screen import build_kiosk

    # Read-only: the kiosk never creates the store; until a console has, it shows no deploys.
    opened: list[Store] = []

    async def board() -> DeployBoard:
        if not opened:
            if not store_file.is_file():
                return DeployBoard({}, ())
            # Opened on the app's loop, like the console's: aiosqlite objects belong to it.
            opened.append(await Store.open(store_file, create=False))
        return await read_board(opened[0], DeployQueue(opened[0], config))

    # Read-only here too: without a store file the kiosk polls AWS on its own.
    fleet = shared_fleet(config, store_file, "kiosk", create_store=False)
    app = build_kiosk(config, fleet, board, rotate_seconds=rotate, quit_key=quit_key)
    try:
        await app.run_async()
    finally:
        await fleet.aclose()
        for store in opened:
            await store.close()
    return app.return_code or 0


if __name__ == "__main__":
    main()
