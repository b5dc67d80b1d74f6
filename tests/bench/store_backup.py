"""Store backup and restore figures: the time and size of `store backup` for a store of 10,000
(and 100,000) audit rows, alone and while a writer appends, and of `store restore` (the copy's
chain verified; no config, so no anchor or AWS is read).

    .venv/bin/python -m tests.bench.store_backup [--rows 10000 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from console.servers.store_restore import restore
from console.store import Store
from console.store.backup import take_backup
from tests.bench.audit_query import build

REPEAT = 5


async def _backups(store: Path, folder: Path) -> tuple[list[float], int]:
    times = []
    size = 0
    for n in range(REPEAT):
        summary = await take_backup(store, folder / f"copy-{n}.db")
        times.append(summary.seconds * 1000)
        size = summary.size
    return times, size


async def _while_writing(store: Path, folder: Path) -> tuple[list[float], int]:
    """Backups taken while another connection appends audit rows as fast as it can."""
    stop = asyncio.Event()
    written = 0

    async def writer() -> None:
        nonlocal written
        async with await Store.open(store) as opened:
            while not stop.is_set():
                await opened.audit("deploy.step", actor="bench", reason=str(written))
                written += 1
                await asyncio.sleep(0)

    task = asyncio.create_task(writer())
    try:
        await asyncio.sleep(0.2)
        times, _ = await _backups(store, folder / "busy")
    finally:
        stop.set()
        await task
    return times, written


async def measure(rows: int, folder: Path) -> dict[str, Any]:
    store = folder / "console.db"
    (folder / "busy").mkdir()
    idle, size = await _backups(store, folder)
    busy, written = await _while_writing(store, folder)
    started = time.perf_counter()
    await restore(
        folder / "copy-0.db", folder / "restored" / "console.db", config=None, actor="bench"
    )
    restore_ms = (time.perf_counter() - started) * 1000
    return {
        "audit_rows": rows,
        "store_bytes": store.stat().st_size,
        "copy_bytes": size,
        "backup_ms_median": round(statistics.median(idle), 1),
        "backup_while_writing_ms_median": round(statistics.median(busy), 1),
        "rows_written_meanwhile": written,
        "restore_ms": round(restore_ms, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000])
    args = parser.parse_args()
    for rows in args.rows:
        with tempfile.TemporaryDirectory() as folder:
            build(Path(folder) / "console.db", rows)
            figures = asyncio.run(measure(rows, Path(folder)))
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
