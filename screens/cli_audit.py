"""The `audit verify` and `audit export` commands: the store's audit log for scripts and CI.

Both read an existing store and never create one (nor migrate anything into a file that is
not a store). Bad input (a malformed date, an unknown
format) is refused before the store is opened. Only the audit rows' own fields are
exported: they never hold a secret (Store.audit takes none).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import sys
import tempfile
from collections.abc import Callable
from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from console.config import find_config
from console.errors import ConsoleError, StoreError
from console.paths import store_path
from console.store import AuditRow, Store

PROG = "deploy-console"
EXIT_OK = 0
EXIT_TAMPERED = 1
FORMATS = ("csv", "jsonl")
COLUMNS = [item.name for item in fields(AuditRow)]
PAGE_SIZE = 1000


class AuditInputError(ConsoleError):
    """An audit command's arguments are wrong."""


def _store(args: argparse.Namespace) -> Path:
    """--store needs no config; a --config given is still read (and a bad one refused)."""
    if args.store and not args.config:
        return store_path(None, args.store)
    return store_path(find_config(args.config).store, args.store)


def _moment(option: str, text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise AuditInputError(
            f"{option} {text!r} is not an ISO date or time (like 2026-11-27 or "
            "2026-11-27T14:30:00+00:00)"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def command(args: argparse.Namespace) -> int:
    if args.audit_command == "verify":
        return asyncio.run(_verify(_store(args)))
    return export_command(args)


async def _verify(path: Path) -> int:
    async with await Store.open(path, create=False) as store:
        check = await store.check_audit()
    if check.problem is not None:
        problem = check.problem
        print(
            f"{PROG}: audit: row {problem.id} {problem.kind}: {problem.detail} "
            f"({check.rows} rows before it verify)",
            file=sys.stderr,
        )
        return EXIT_TAMPERED
    print(f"audit ok: {check.rows} rows verified, head {check.head}")
    return EXIT_OK


def _csv_line(row: AuditRow) -> list[object]:
    values = _values(row)
    values["instance_ids"] = " ".join(row.instance_ids)
    return ["" if values[name] is None else values[name] for name in COLUMNS]


def _values(row: AuditRow) -> dict[str, Any]:
    values = {name: getattr(row, name) for name in COLUMNS}
    values["at"] = row.at.isoformat(timespec="microseconds")
    values["instance_ids"] = list(row.instance_ids)
    return values


def _writer(format_: str, out: IO[str]) -> Callable[[AuditRow], object]:
    if format_ == "jsonl":
        return lambda row: out.write(json.dumps(_values(row), ensure_ascii=False) + "\n")
    lines = csv.writer(out, lineterminator="\n")
    lines.writerow(COLUMNS)
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
        try:
            asyncio.run(_export(path, args.format, filters, sys.stdout))
            sys.stdout.flush()
        except BrokenPipeError:  # `| head`: the reader has what it wanted
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
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
    async with await Store.open(path, create=False) as store:
        write = _writer(format_, out)
        async for row in store.iter_audit(page_size=PAGE_SIZE, **filters):
            write(row)
