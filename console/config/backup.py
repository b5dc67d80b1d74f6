"""The `[backup]` table: the folder the runner copies the store into, how often, how many kept."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from console.config.reader import Table

__all__ = ["BackupSettings", "parse_backup"]

MAX_KEEP = 10_000
MIN_EVERY_SECONDS = 60.0


@dataclass(frozen=True)
class BackupSettings:
    """No `dir`: the runner takes no copies (`deploy-console store backup` still does)."""

    dir: Path | None = None
    every_seconds: float = 3600.0
    keep: int = 24


def _every(table: Table) -> float:
    return table.seconds(
        "every",
        BackupSettings.every_seconds,
        timedelta(days=30),
        "30m, 1h, 1d",
        MIN_EVERY_SECONDS,
        "must be at least 1m (a copy a minute at most), not {text}",
    )


def parse_backup(table: Table) -> BackupSettings:
    folder = table.file_path("dir")
    every = _every(table)
    keep = table.integer("keep", BackupSettings.keep, minimum=1, maximum=MAX_KEEP)
    if folder is None:
        for name in ("every", "keep"):
            if name in table.data:
                table.fail("needs dir (the folder the runner copies the store into)", name)
    table.done()
    return BackupSettings(dir=folder, every_seconds=every, keep=keep)
