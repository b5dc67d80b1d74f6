"""The `audit verify`, `audit anchor` and `audit export` commands: the store's audit log for
scripts and CI.

They read an existing store and never create one (nor migrate anything into a file that is
not a store). Bad input (a malformed date, an unknown
format) is refused before the store is opened. Only the audit rows' own fields are
exported: they never hold a secret (Store.audit takes none). A CSV cell that a spreadsheet
would run as a formula gets a leading `'`; JSON lines keep every value as stored. With an
anchor configured ([audit] in the config), verify also checks the store against the latest
anchor in S3, and anchor writes one (console.audit.anchor).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import fields
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from console.config import Config, find_config
from console.config.paths import store_path
from console.errors import ConsoleError, StoreError
from console.inputs import moment, shown
from screens.cli.command_line import Commands, say

if TYPE_CHECKING:
    from console.audit.anchor import S3Anchors
    from console.aws.gateway import AwsGateway
    from console.store import AuditRow

EXIT_OK = 0
EXIT_TAMPERED = 1
FORMATS = ("csv", "jsonl")
PAGE_SIZE = 1000
# What makes a spreadsheet read a cell as a formula (and the full-width forms some accept).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def register(commands: Commands) -> None:
    audit = commands.add(
        "audit", "verify, anchor or export the store's audit log", command, common=False
    )
    audit_commands = commands.nested(audit, "audit_command", required=True)
    verify = audit_commands.add("verify", "recompute the audit hash chain (exit 1 if it breaks)")
    verify.add_argument("--json", action="store_true", help="machine-readable output")
    audit_commands.add("anchor", "write the chain's head to the S3 anchor ([audit])")
    export = audit_commands.add("export", "write the audit rows as CSV or JSON lines")
    # Checked by export_command, not with choices=: one line naming the value, like every
    # mistake.
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


class AuditInputError(ConsoleError):
    """An audit command's arguments are wrong."""


def _config(args: argparse.Namespace) -> Config | None:
    """--store needs no config (then no anchor is checked); a --config given is still read
    (and a bad one refused)."""
    if args.store and not args.config:
        return None
    return find_config(args.config)


def _store(args: argparse.Namespace, config: Config | None = None) -> Path:
    if config is None and not (args.store and not args.config):
        config = find_config(args.config)
    return store_path(config.store if config else None, args.store)


def _moment(option: str, text: str | None) -> datetime | None:
    if text is None:
        return None
    parsed = moment(text, option)
    if parsed is None:
        raise AuditInputError(
            f"{option} {shown(text)!r} is not an ISO date or time (like 2026-11-27 or "
            "2026-11-27T14:30:00+00:00)"
        )
    return parsed


def command(args: argparse.Namespace) -> int:
    if args.audit_command == "verify":
        config = _config(args)
        return asyncio.run(_verify(_store(args, config), config, as_json=args.json))
    if args.audit_command == "anchor":
        config = find_config(args.config)
        return asyncio.run(_anchor(_store(args, config), config))
    return export_command(args)


@contextmanager
def _anchors(config: Config | None) -> Iterator[S3Anchors | None]:
    """The configured anchors (None: none configured), their boto3 calls in a small pool."""
    if config is None or config.audit.anchor_bucket is None:
        yield None
        return
    from console.audit.anchor import s3_anchors
    from console.aws.gateway import AwsGateway

    executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="aws")

    def gateway(name: str) -> AwsGateway:
        return AwsGateway(config.cluster(name), executor)

    try:
        yield s3_anchors(config.audit, gateway)
    finally:
        executor.shutdown(wait=False, cancel_futures=True)


def _tampered(message: str) -> int:
    say(f"audit: {message}")
    return EXIT_TAMPERED


def _verdict(rows: int, head: str, problem: str | None, anchor: str | None, as_json: bool) -> int:
    """What verify says: the JSON (ok or not) on stdout, else its line; a problem is also one
    line on stderr, and exit 1."""
    if as_json:
        from screens.cli.json_out import emit

        ok = problem is None
        emit("audit-verify", ok=ok, rows=rows, head=head, problem=problem, anchor=anchor)
    if problem is not None:
        return _tampered(problem)
    if not as_json:
        print(f"audit ok: {rows} rows verified, head {head}; {anchor or 'no anchor configured'}")
    return EXIT_OK


async def _verify(path: Path, config: Config | None, *, as_json: bool = False) -> int:
    from console.audit.anchor import chain_problem
    from console.audit.anchor_verify import verify_anchors
    from console.store import Store

    async with await Store.open(path, read_only=True) as store:
        check = await store.check_audit()
        if check.problem is not None:
            problem = f"{chain_problem(check)} ({check.rows} rows before it verify)"
            return _verdict(check.rows, check.head, problem, None, as_json)
        with _anchors(config) as anchors:
            if anchors is None:
                return _verdict(check.rows, check.head, None, None, as_json)
            verdict = await verify_anchors(store, anchors)
    return _verdict(check.rows, check.head, verdict.problem, verdict.note or None, as_json)


async def _anchor(path: Path, config: Config) -> int:
    from console.audit.anchor import AnchorWriter
    from console.store import Store

    with _anchors(config) as anchors:
        if anchors is None:
            raise AuditInputError(
                f"{config.source}: no anchor configured: set anchor_bucket and anchor_cluster "
                "in [audit] (see config/example.toml)"
            )
        async with await Store.open(path, create=False) as store:
            outcome = await AnchorWriter(store, anchors).write()
    if outcome.problem is not None:
        return _tampered(f"{outcome.problem}; not anchored")
    if outcome.anchor is None:
        print("audit: no rows to anchor yet")
        return EXIT_OK
    anchor = outcome.anchor
    if outcome.locked_until is None:
        lock = "not locked: the bucket has no Object Lock"
    else:
        lock = f"locked ({anchors.lock_mode}) until {outcome.locked_until:%Y-%m-%d %H:%M:%S} UTC"
    print(
        f"audit anchored: row {anchor.rows}, head {anchor.head} in {anchors.location} "
        f"({anchor.at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC; {lock})"
    )
    return EXIT_OK


@cache
def _columns() -> tuple[str, ...]:
    """The audit row's fields, in order: the export's columns (the store loads on first use)."""
    from console.store import AuditRow

    return tuple(item.name for item in fields(AuditRow))


def _csv_line(row: AuditRow) -> list[object]:
    values = _values(row)
    values["instance_ids"] = " ".join(row.instance_ids)
    return ["" if values[name] is None else _cell(values[name]) for name in _columns()]


def _cell(value: object) -> object:
    """A text cell a spreadsheet would run as a formula gets a leading `'` (OWASP's CSV
    injection advice): the audit holds text people typed (reasons, releases, actors)."""
    if isinstance(value, str) and value.lstrip(" ").startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _values(row: AuditRow) -> dict[str, Any]:
    values = {name: getattr(row, name) for name in _columns()}
    values["at"] = row.at.isoformat(timespec="microseconds")
    values["instance_ids"] = list(row.instance_ids)
    return values


def _writer(format_: str, out: IO[str]) -> Callable[[AuditRow], object]:
    if format_ == "jsonl":
        return lambda row: out.write(json.dumps(_values(row), ensure_ascii=False) + "\n")
    # Every cell quoted (OWASP): a lone "\r" in a minimally quoted cell would end the row
    # for most readers and start a forged one.
    lines = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_ALL)
    lines.writerow(_columns())
    return lambda row: lines.writerow(_csv_line(row))


def export_command(args: argparse.Namespace) -> int:
    if args.format not in FORMATS:
        raise AuditInputError(f"--format {args.format!r}: choose csv or jsonl")
    filters: dict[str, Any] = {
        "project": args.project,
        "cluster": args.cluster,
        "actor": args.actor,
        "outcome": args.outcome,
        "since": _moment("--since", args.since),
        "until": _moment("--until", args.until),
    }
    path = _store(args)
    if args.output is None:
        # A reader that leaves early (`| head`) ends it quietly: screens.main sees to that.
        asyncio.run(_export(path, args.format, filters, sys.stdout))
        return EXIT_OK
    destination = Path(args.output).expanduser()
    if destination.is_dir():
        raise AuditInputError(f"--output {destination} is a folder")
    try:
        handle, temporary = tempfile.mkstemp(
            dir=destination.parent, prefix=f".{destination.name}-", suffix=".tmp"
        )
    except OSError as exc:
        raise AuditInputError(f"cannot write {destination}: {exc.strerror}") from None
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as out:
            asyncio.run(_export(path, args.format, filters, out))
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, destination)
    except BaseException as exc:
        Path(temporary).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise StoreError(f"cannot write {destination}: {exc.strerror}") from None
        raise
    return EXIT_OK


async def _export(path: Path, format_: str, filters: dict[str, Any], out: IO[str]) -> None:
    from console.store import Store

    async with await Store.open(path, read_only=True) as store:
        write = _writer(format_, out)
        async for row in store.iter_audit(page_size=PAGE_SIZE, **filters):
            write(row)
