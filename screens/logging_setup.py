"""Where the console logs: stderr in one-line text or JSON, or a rotating file under the TUI."""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from console.config.paths import PRIVATE_FILE, private_dir, user_state_dir
from console.logs import DeployIdFilter

LEVELS = ("debug", "info", "warning", "error")
FORMATS = ("text", "json")
# The commands that draw the Textual app: nothing may reach their terminal.
TUI_COMMANDS = frozenset({None, "demo", "kiosk"})
# The commands that serve for hours: they say what they do (info) unless told otherwise.
SERVING_COMMANDS = frozenset({"runner", "sshd", "web", "world"})
OWN_LOGGERS = ("console", "screens")
TUI_LOG_FILE = "console.log"
MAX_BYTES, BACKUPS = 1_000_000, 5

# What every LogRecord has: anything else on a record is an extra (logged as key=value).
_STANDARD = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()
    | {"message", "asctime", "deploy_id", "taskName"}
)


def tui_log_path(state_dir: Path | None = None) -> Path:
    """The TUI's log file: in the user state dir (tests give their own `state_dir`)."""
    return (user_state_dir() if state_dir is None else state_dir) / TUI_LOG_FILE


def stderr_is_journal(environ: dict[str, str] | None = None, stream: TextIO | None = None) -> bool:
    """Whether stderr is journald's stream (systemd sets JOURNAL_STREAM to its device:inode)."""
    value = (os.environ if environ is None else environ).get("JOURNAL_STREAM", "")
    device, _, inode = value.partition(":")
    if not device.isdigit() or not inode.isdigit():
        return False
    try:
        status = os.fstat((sys.stderr if stream is None else stream).fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return (status.st_dev, status.st_ino) == (int(device), int(inode))


def extras(record: logging.LogRecord) -> dict[str, Any]:
    """A record's own fields (logger.info(..., extra={...})), in the order given."""
    return {key: value for key, value in vars(record).items() if key not in _STANDARD}


def _value(value: object) -> str:
    text = str(value)
    if not text or any(c.isspace() or c in '"=\\' for c in text) or not text.isprintable():
        return json.dumps(text, ensure_ascii=False)
    return text


def _one_line(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\r", "\\r").replace("\n", "\\n")


class TextFormatter(logging.Formatter):
    """`[2026-12-05T03:10:00.123+00:00 ]LEVEL logger: message deploy=ID key=value...`: one line
    per record (newlines escaped), without the time when journald stamps it anyway."""

    def __init__(self, *, timestamps: bool = True) -> None:
        super().__init__()
        self.timestamps = timestamps

    def format(self, record: logging.LogRecord) -> str:
        parts = [f"{record.levelname} {record.name}: {_one_line(record.getMessage())}"]
        deploy_id = getattr(record, "deploy_id", None)
        if deploy_id:
            parts.append(f"deploy={_value(deploy_id)}")
        parts.extend(f"{key}={_value(value)}" for key, value in extras(record).items())
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            parts.append(f"exc={_value(f'{type(error).__name__}: {error}')}")
        line = " ".join(parts)
        if self.timestamps:
            return f"{_timestamp(record)} {line}"
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, deploy_id (when there is one), extras."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        deploy_id = getattr(record, "deploy_id", None)
        if deploy_id:
            data["deploy_id"] = deploy_id
        for key, value in extras(record).items():
            data.setdefault(key, value)
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False, default=str)


def _timestamp(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """A handler on whatever sys.stderr is when a record comes (tests swap it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


def _private_rotating(path: Path) -> logging.Handler:
    private_dir(path.parent)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, PRIVATE_FILE))
    return logging.handlers.RotatingFileHandler(
        path, maxBytes=MAX_BYTES, backupCount=BACKUPS, encoding="utf-8"
    )


def configure(
    command: str | None,
    level: str | None = None,
    log_format: str = "text",
    *,
    state_dir: Path | None = None,
    environ: dict[str, str] | None = None,
) -> Path | None:
    """Set up the root logger for `command`; return the log file under the TUI (else None).

    Under the TUI: a rotating file (1 MB x 5) in the state dir, nothing on the terminal.
    Elsewhere: stderr; serving commands default to info, the others to warning.
    """
    root = logging.getLogger()
    reset()
    default = "info" if command in SERVING_COMMANDS else "warning"
    chosen = logging.getLevelName((level or default).upper())
    # The level is the console's own; libraries (botocore, asyncssh, moto...) say warnings and
    # errors only: their debug lines would bury the console's (and may hold request bodies).
    root.setLevel(max(chosen, logging.WARNING))
    for name in OWN_LOGGERS:
        logging.getLogger(name).setLevel(chosen)
    path = tui_log_path(state_dir) if command in TUI_COMMANDS else None
    handler: logging.Handler = _Stderr()
    if path is not None:
        try:
            handler = _private_rotating(path)
        except OSError as error:  # said before the screen starts; the console runs without
            print(f"deploy-console: cannot log to {path}: {error.strerror}", file=sys.stderr)
            handler = logging.NullHandler()
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        timestamps = path is not None or not stderr_is_journal(environ)
        handler.setFormatter(TextFormatter(timestamps=timestamps))
    handler.addFilter(DeployIdFilter())
    handler._deploy_console = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    logging.captureWarnings(path is not None)
    return path


def reset() -> None:
    """Remove what configure() added (a command run in-process leaves nothing behind)."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "_deploy_console", False)]:
        root.removeHandler(handler)
        handler.close()
    logging.captureWarnings(False)


@contextmanager
def configured(
    command: str | None, level: str | None = None, log_format: str = "text"
) -> Iterator[Path | None]:
    """configure() for the length of one command; then the root logger as it was."""
    root = logging.getLogger()
    was = root.level
    try:
        yield configure(command, level, log_format)
    finally:
        reset()
        root.setLevel(was)
        for name in OWN_LOGGERS:
            logging.getLogger(name).setLevel(logging.NOTSET)


def log_file() -> Path | None:
    """The file the console logs to now (the TUI's), for the help screen to say where."""
    for handler in logging.getLogger().handlers:
        if getattr(handler, "_deploy_console", False) and isinstance(handler, logging.FileHandler):
            return Path(handler.baseFilename)
    return None


def add_arguments(parser: Any, default: object) -> None:
    """--log-level and --log-format, accepted before the command or after it."""
    parser.add_argument(
        "--log-level",
        metavar="LEVEL",
        type=str.lower,
        choices=LEVELS,
        default=default,
        help="debug, info, warning or error (default: info for runner, sshd, web and world; "
        "warning for the others)",
    )
    parser.add_argument(
        "--log-format",
        metavar="FORMAT",
        type=str.lower,
        choices=FORMATS,
        default=default,
        help="text (one line per record; the default) or json (one object per line)",
    )
