"""What every command shares: the program name, the one-line error, typed options, the registry."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Callable, Sized
from typing import NoReturn

from console.config import Config, find_config
from console.config.paths import DemoFiles
from console.errors import ConsoleError
from console.inputs import seconds, shown, whole_number
from screens import PROG

Handler = Callable[[argparse.Namespace], int]
"""Runs one command from its parsed arguments; returns the exit code."""


class UsageError(ConsoleError):
    """The command line itself is wrong."""


def say(message: str) -> None:
    """One line on stderr in the program's name: `deploy-console: message`."""
    print(f"{PROG}: {message}", file=sys.stderr, flush=True)


def error_line(message: str) -> str:
    """The one format of an error: `deploy-console: error: message`."""
    return f"{PROG}: error: {message}"


def fail(message: str) -> int:
    """Say the error in its one line; exit code 2 (bad input or a refusal before any work)."""
    print(error_line(message), file=sys.stderr)
    return 2


def stop_on_signals(*, keep_ignored: bool = False) -> asyncio.Event:
    """An event that SIGINT or SIGTERM sets, in the running loop: how a serving command learns
    to stop. With keep_ignored, a signal the process was started ignoring stays ignored."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        if not keep_ignored or signal.getsignal(signum) is not signal.SIG_IGN:
            loop.add_signal_handler(signum, stop.set)
    return stop


async def serve_until_stopped(
    stop: asyncio.Event, banner: str, name: str, sessions: Callable[[], Sized]
) -> None:
    """A server's life once it listens: its banner on stdout (what a script waits for), then,
    once `stop` is set, how many of its sessions end with it."""
    print(banner, flush=True)
    await stop.wait()
    say(f"{name} stopping: ending {len(sessions())} session(s)")


class Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line on stderr and exit code 2."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see {self.prog} --help)")


def whole(name: str, minimum: int, maximum: int) -> Callable[[str], int]:
    """An argparse type for an integer within bounds (console.inputs): text that is no number
    is "invalid int value" (shortened), a number out of bounds one line naming the option."""

    def parse(text: str) -> int:
        try:
            int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid int value: {shown(text)!r}") from None
        return whole_number(text, name, minimum, maximum)

    return parse


def seconds_option(name: str, maximum: float) -> Callable[[str], float]:
    """An argparse type for a number of seconds above 0, finite and at most maximum."""

    def parse(text: str) -> float:
        try:
            float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid float value: {shown(text)!r}") from None
        return seconds(text, name, maximum)

    return parse


PORT = whole("--port", 0, 65535)


def with_config(command: Callable[[Config, argparse.Namespace], int]) -> Handler:
    """A handler that finds the config first (--config, $DEPLOY_CONSOLE_CONFIG, user dir)."""

    def handler(args: argparse.Namespace) -> int:
        config = find_config(args.config)
        if args.config is None and config.source == DemoFiles.here().config:
            say(f"no config of your own: using the running demo's ({config.source})")
        return command(config, args)

    return handler


class Commands:
    """The registry of one parser's subcommands: each command group adds its parsers here,
    each with the handler that runs it."""

    def __init__(self, subparsers: argparse._SubParsersAction[Parser], common: Parser) -> None:
        self._subparsers = subparsers
        self.common = common
        """--config and --store, accepted after the command too."""

    def add(
        self, name: str, help: str, handler: Handler | None = None, *, common: bool = True
    ) -> Parser:
        """The parser of command `name`; `handler` runs it (else its parent's handler does)."""
        parser = self._subparsers.add_parser(
            name, parents=[self.common] if common else [], help=help
        )
        if handler is not None:
            parser.set_defaults(handler=handler)
        return parser

    def nested(
        self, parser: Parser, dest: str, *, required: bool = False, metavar: str | None = "COMMAND"
    ) -> Commands:
        """The subcommands of `parser` (`queue cancel`, `lock add`), their name in `dest`."""
        subparsers = parser.add_subparsers(dest=dest, parser_class=Parser, metavar=metavar)
        subparsers.required = required
        return Commands(subparsers, self.common)


# Options that name files: a path may be any bytes. Every other value is text that reaches
# SQLite, JSON or a terminal, which take UTF-8 only.
PATH_OPTIONS = frozenset({"config", "store", "output", "write_config"})


def check_text(args: argparse.Namespace) -> None:
    """Arguments that are not UTF-8 (Python keeps their bytes as surrogates) are refused here,
    not as a UnicodeEncodeError wherever they are first written."""
    for name, value in vars(args).items():
        if isinstance(value, str) and name not in PATH_OPTIONS:
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raw = value.encode("utf-8", "surrogateescape")
                raise UsageError(f"{name} {shown(ascii(raw))} is not UTF-8 text") from None
