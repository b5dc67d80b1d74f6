"""The entry point: parses the command line and runs the command's handler (screens/cli/).

Commands that do not need a screen (status, config check, world) never start Textual.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from console.errors import ConsoleError
from screens.cli.command_line import Handler, check_text, fail
from screens.cli.commands import has_command, parser
from screens.cli.completion import COMPLETE, complete_command
from screens.cli.console import runner_argv
from screens.cli.world import DEMO_CONFIG
from screens.logging_setup import configured as logs_configured

__all__ = ["DEMO_CONFIG", "has_command", "main", "run", "runner_argv"]


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
    if argv[:1] == [COMPLETE]:
        # The completion scripts' helper: not a command (no --help line, no SSH door).
        return complete_command(parser(), argv[1:])
    try:
        args = parser().parse_args(argv)
        check_text(args)
        handler: Handler = args.handler
        with logs_configured(
            getattr(args, "command", None),
            getattr(args, "log_level", None),
            getattr(args, "log_format", None) or "text",
        ):
            return handler(args)
    except ConsoleError as error:
        return fail(error.message)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    main()
