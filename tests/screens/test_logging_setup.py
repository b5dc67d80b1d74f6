"""The log formats (text and JSON), where configure() sends records, and deploy ids on records."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from console.logs import DeployIdFilter, deploy_context, deploy_scope
from console.servers.runner_service import rotate_log
from screens import logging_setup
from screens.logging_setup import JsonFormatter, TextFormatter, configure, stderr_is_journal


def record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    made = logging.LogRecord("console.queue.runner", logging.INFO, __file__, 1, message, args, None)
    made.created = 1796446800.25  # 2026-12-05T05:00:00.250Z
    for key, value in extra.items():
        setattr(made, key, value)
    return made


@pytest.fixture
def clean_logging() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    yield
    logging_setup.reset()
    root.setLevel(level)
    for name in logging_setup.OWN_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET)


def test_text_is_one_line_with_time_level_logger_message_and_fields() -> None:
    line = TextFormatter().format(
        record("claimed %s", "it", deploy_id="d-1", project="shop", reason="two words\nmore")
    )
    assert line == (
        "2026-12-05T05:00:00.250+00:00 INFO console.queue.runner: claimed it deploy=d-1 "
        'project=shop reason="two words\\nmore"'
    )


def test_text_for_journald_has_no_time_and_escapes_newlines() -> None:
    line = TextFormatter(timestamps=False).format(record("a\nb"))
    assert line == "INFO console.queue.runner: a\\nb"


def test_text_says_an_exception_in_the_same_line() -> None:
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        made = record("failed")
        made.exc_info = sys.exc_info()
    line = TextFormatter(timestamps=False).format(made)
    assert line == 'INFO console.queue.runner: failed exc="ValueError: bad\\nthing"'


def test_json_is_one_object_with_ts_level_logger_msg_deploy_id_and_extras() -> None:
    line = JsonFormatter().format(record("claimed %s", "it", deploy_id="d-1", seconds=2.5))
    assert "\n" not in line
    assert json.loads(line) == {
        "ts": "2026-12-05T05:00:00.250+00:00",
        "level": "info",
        "logger": "console.queue.runner",
        "msg": "claimed it",
        "deploy_id": "d-1",
        "seconds": 2.5,
    }
    assert "deploy_id" not in json.loads(JsonFormatter().format(record("no deploy")))


def test_stderr_is_journald_only_when_journal_stream_names_it(tmp_path: Path) -> None:
    with (tmp_path / "stream").open("w") as stream:
        status = os.fstat(stream.fileno())
        here = f"{status.st_dev}:{status.st_ino}"
        assert stderr_is_journal({"JOURNAL_STREAM": here}, stream)
        assert not stderr_is_journal({"JOURNAL_STREAM": f"{status.st_dev}:1"}, stream)
        assert not stderr_is_journal({}, stream)
        assert not stderr_is_journal({"JOURNAL_STREAM": "junk"}, stream)


async def test_records_logged_during_a_deploy_carry_its_id() -> None:
    seen: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = seen.append  # type: ignore[method-assign]
    handler.addFilter(DeployIdFilter())
    log = logging.getLogger("console.test_deploy_ids")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:

        async def step() -> None:
            log.info("inside")
            await asyncio.create_task(inner())  # a task it starts inherits the id

        async def inner() -> None:
            log.info("nested")

        await asyncio.gather(
            asyncio.create_task(step(), context=deploy_context("d-a")),
            asyncio.create_task(step(), context=deploy_context("d-b")),
        )
        log.info("outside")  # the caller's context never got an id
        with deploy_scope("d-c"):
            log.info("scoped")
        log.info("given", extra={"deploy_id": "d-given"})
    finally:
        log.removeHandler(handler)
        log.setLevel(logging.NOTSET)
    ids = sorted((r.getMessage(), r.deploy_id) for r in seen)  # type: ignore[attr-defined]
    assert ids == [
        ("given", "d-given"),
        ("inside", "d-a"),
        ("inside", "d-b"),
        ("nested", "d-a"),
        ("nested", "d-b"),
        ("outside", None),
        ("scoped", "d-c"),
    ]


def test_serving_commands_log_info_others_warning_libraries_warning(
    clean_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure("status")
    logging.getLogger("console.x").info("not said")
    logging.getLogger("console.x").warning("said")
    configure("runner")
    logging.getLogger("console.x").info("now said")
    configure("runner", "debug")
    logging.getLogger("console.x").debug("debug said")
    logging.getLogger("botocore.x").info("library chatter")
    err = capsys.readouterr().err
    assert "WARNING console.x: said" in err and "INFO console.x: now said" in err
    assert "DEBUG console.x: debug said" in err
    assert "not said" not in err and "library chatter" not in err
    assert len([h for h in logging.getLogger().handlers if getattr(h, "_deploy_console", 0)]) == 1


def test_under_the_tui_records_go_to_a_private_file_never_the_terminal(
    clean_logging: None, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = configure(None, "info", state_dir=tmp_path / "state")
    assert path == tmp_path / "state" / "console.log"
    logging.getLogger("console.x").warning("to the file")
    logging.getLogger("console.x").error(
        "an error too", exc_info=(ValueError, ValueError("v"), None)
    )
    assert capsys.readouterr() == ("", "")
    assert logging_setup.log_file() == path
    text = path.read_text()
    assert "WARNING console.x: to the file" in text and "ERROR console.x: an error too" in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    handler = next(h for h in logging.getLogger().handlers if getattr(h, "_deploy_console", 0))
    assert isinstance(handler, logging.handlers.RotatingFileHandler)
    assert (handler.maxBytes, handler.backupCount) == (1_000_000, 5)
    logging_setup.reset()
    assert logging_setup.log_file() is None


def test_a_detached_runners_log_rotates_when_full(tmp_path: Path) -> None:
    log = tmp_path / "store.db.runner.log"
    rotate_log(log, max_bytes=10)  # none yet: nothing to do
    log.write_text("first run, long\n")
    rotate_log(log, max_bytes=10, backups=2)
    assert (
        not log.exists() and (tmp_path / "store.db.runner.log.1").read_text() == "first run, long\n"
    )
    log.write_text("second run, long\n")
    rotate_log(log, max_bytes=10, backups=2)
    log.write_text("short\n")
    rotate_log(log, max_bytes=10, backups=2)
    assert log.read_text() == "short\n"
    assert (tmp_path / "store.db.runner.log.1").read_text() == "second run, long\n"
    assert (tmp_path / "store.db.runner.log.2").read_text() == "first run, long\n"
