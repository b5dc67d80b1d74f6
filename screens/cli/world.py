"""`deploy-console world` and `demo`: the embedded AWS world alone, or with a console on it."""

from __future__ import annotations

import argparse
import os
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from console.config import Config, load_config, sample_config, write_world_config
from console.config.paths import DemoFiles, user_data_dir
from screens import PROG
from screens.cli.command_line import PORT, Commands, UsageError, say, with_config

if TYPE_CHECKING:
    from console.config import Config
    from console.world.server import World


# The demo's config: the sample shipped in the package (config/demo.toml in the repository).
DEMO_CONFIG = sample_config("demo.toml")


def register_world(commands: Commands) -> None:
    world = commands.add("world", "run the embedded AWS world alone (demo fleet)", world_command)
    world.add_argument("--port", type=PORT, default=0, help="port on 127.0.0.1 (0: any free)")
    world.add_argument(
        "--write-config", metavar="PATH", help="where to write a config that points at it"
    )
    world_commands = commands.nested(world, "world_command")
    alarm = world_commands.add(
        "alarm",
        "set a CloudWatch alarm's state in the running world (e.g. fire one during a bake)",
        with_config(alarm_command),
    )
    alarm.add_argument("name", metavar="NAME", help="the alarm, e.g. checkout-api-5xx")
    alarm.add_argument(
        "state",
        metavar="STATE",
        type=str.upper,
        choices=("ALARM", "OK", "INSUFFICIENT_DATA"),
        help="ALARM, OK or INSUFFICIENT_DATA",
    )
    alarm.add_argument("--reason", default="set by hand", help="the state's reason (CloudWatch's)")
    dns = world_commands.add(
        "dns",
        "point a Route 53 record of the running world elsewhere (a DNS finding to see)",
        with_config(dns_command),
    )
    dns.add_argument("name", metavar="NAME", help="the record, e.g. www.prod1.example.internal")
    target = dns.add_mutually_exclusive_group(required=True)
    target.add_argument(
        "--points-to",
        metavar="VALUE",
        help="a DNS name, an IPv4 address, or a load balancer or target group's name",
    )
    target.add_argument("--delete", action="store_true", help="delete the record")


def register_demo(commands: Commands) -> None:
    demo = commands.add("demo", "start the embedded world and the console together", demo_command)
    demo.add_argument("--port", type=PORT, default=0, help="port on 127.0.0.1 (0: any free)")


def _config_source(args: argparse.Namespace) -> Path:
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


def world_command(args: argparse.Namespace) -> int:
    source = _config_source(args)
    destination = Path(args.write_config) if args.write_config else user_data_dir() / "world.toml"
    world = _start_world(source, args.port)
    stop = threading.Event()
    try:
        write_world_config(source, world.endpoint_url, destination, world.start_ssh())
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        print(f"world ready: {world.endpoint_url}", flush=True)
        say(
            f"{world.report.instances} instances, {world.report.load_balancers} load "
            f"balancers seeded in {world.report.seconds:.1f} s; config written to {destination}; "
            f"try: {PROG} --config {destination}"
        )
        stop.wait()
    finally:
        world.stop()
    return 0


def alarm_command(config: Config, args: argparse.Namespace) -> int:
    """`world alarm NAME STATE`: the running world's alarm set (moto never evaluates one);
    a bake watching it sees the new state at its next look."""
    from console.world.alarms import set_alarm_state

    regions = set_alarm_state(config, args.name, args.state, args.reason)
    print(f"alarm {args.name} is {args.state} in {', '.join(regions)}")
    return 0


def dns_command(config: Config, args: argparse.Namespace) -> int:
    """`world dns NAME --points-to VALUE|--delete`: the running world's record changed by
    hand; the console's next refresh judges it."""
    from console.world.dns import point_record

    print(point_record(config, args.name, None if args.delete else args.points_to))
    return 0


def demo_command(args: argparse.Namespace) -> int:
    from console.store.files import remove_store
    from screens.cli.console import run_console

    source = _config_source(args)
    import console.world.server  # noqa: F401  (without the [demo] extra: its one-line error first)

    demo = DemoFiles.here()
    other = demo.running_pid()
    if other is not None:
        raise UsageError(
            f"a demo is already running (pid {other}): use it, e.g. `{PROG} status` in "
            "another terminal, or stop it first"
        )
    say(f"starting the embedded AWS world from {source}...")
    world = _start_world(source, args.port)
    try:
        if args.store is None:
            # The demo's own store starts with its world: nothing of an earlier run's
            # deploys, audit or anchors, and nothing of this user's real store. (Imported
            # here: every command imports this module, and the store loads aiosqlite.)
            from console.store.files import remove_store

            remove_store(demo.store)
        write_world_config(
            source, world.endpoint_url, demo.config, world.start_ssh(), store=demo.store
        )
        demo.mark_running()
        if args.store is None:
            _take_over(load_config(demo.config), demo.store)
        _say_inbox(load_config(demo.config))
        # The world lives in this process: a deploy cannot outlive it, so this console runs
        # its deploys itself.
        return run_console(load_config(demo.config), args.store, runs_deploys=True)
    finally:
        demo.mark_stopped()
        world.stop()


def _take_over(config: Config, store: Path) -> None:
    """The demo's fleet is one first taken over: what it runs as seeded (releases that passed
    no stage on record, in a fresh store) is baselined, audited, as `drift --baseline` does,
    so that the dashboard marks only what drifts from now on (`drift` lists the known)."""
    from console.deploy.services import actor
    from screens.cli.drift import take_baseline

    _snapshot, taken, _known = take_baseline(config, store, actor())
    say(f"drift: the demo fleet is taken over as seeded ({taken} findings baselined)")


def _say_inbox(config: Config) -> None:
    """Where the demo's notifications go, when its config sends some to the world's inbox."""
    from console.config.notify import WebhookChannel, is_inbox_url

    names = [
        name
        for name, channel in config.notify.channels.items()
        if isinstance(channel, WebhookChannel) and channel.url and is_inbox_url(channel.url)
    ]
    if names:
        say(
            f"notifications ({', '.join(names)}) go to the world's inbox on loopback: "
            f"`{PROG} notify inbox` in another terminal shows them"
        )
