"""The store behind docs/json.md: seeded deploys, a lock and a freeze; each documented command
run against it and the demo world (`python -m tests.screens.cli.json_examples` prints them)."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from console.config import Config, load_config
from console.model import DeployRequest
from console.queue.release_queue import DeployQueue
from console.store import DeployRecord, Store
from tests.conftest import DEMO_CONFIG, ROOT

DOCS = ROOT / "docs" / "json.md"
# A section: its schema in a heading, the command in a code span, then its example.
SECTION = re.compile(
    r"^### `(?P<schema>deploy-console\.[a-z-]+/\d+)`\n+`deploy-console (?P<argv>[^`]+)`"
    r".*?```json\n(?P<example>.*?)\n```",
    re.MULTILINE | re.DOTALL,
)


@dataclass(frozen=True)
class Section:
    """One command's entry in docs/json.md."""

    schema: str
    argv: list[str]
    example: dict[str, Any]


def documented() -> list[Section]:
    """Every command docs/json.md describes, in its order."""
    return [
        Section(m["schema"], m["argv"].split(), json.loads(m["example"]))
        for m in SECTION.finditer(DOCS.read_text())
    ]


async def seed(path: Path, config: Config) -> None:
    """A finished deploy with its steps (d-1), two queued (d-2 waits behind a freeze, d-3 is
    the only one of its pair), a lock and a freeze: something in every listing."""
    async with await Store.open(path) as store:
        await store.create_deploy(
            DeployRecord(
                id="d-1", project="storefront", cluster="staging", release="2.15.0", actor="alice"
            )
        )
        await store.set_deploy_state("d-1", "running", image_id="ami-1", previous_release="2.14.1")
        for step in ("lock", "resolve", "launch"):
            await store.step_started("d-1", step)
            await store.step_finished("d-1", step, "succeeded", detail=f"{step} done")
        await store.set_deploy_state("d-1", "succeeded")
        queue = DeployQueue(store, config)
        await queue.freeze("prod2", "bob", "Black Friday")
        await queue.lock(owner="carol", reason="db migration", project="search-api")
        await queue.enqueue(DeployRequest("checkout-api", "prod2", "5.2.3", "alice"), "d-2")
        await queue.enqueue(DeployRequest("media-service", "qaprod1", "1.5.0", "bob"), "d-3")


def seeded_store(folder: Path, config: Config) -> Path:
    path = folder / "store.db"
    asyncio.run(seed(path, config))
    return path


def command(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "screens.main", *argv],
        cwd=ROOT, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def main() -> None:
    """Each documented command's JSON, against the demo world in a process of its own."""
    from tests.deploy_world import world_process

    with (
        tempfile.TemporaryDirectory() as folder,
        world_process(DEMO_CONFIG, Path(folder)) as config,
    ):
        for section in documented():
            store = seeded_store(Path(tempfile.mkdtemp(dir=folder)), load_config(config.source))
            options = ["--config", str(config.source), "--store", str(store)]
            if section.argv[:2] == ["notify", "inbox"]:  # a message in it first
                command(*options, "notify", "test", "oncall")
            result = command(*options, *section.argv)
            print(f"### {section.schema} (exit {result.returncode})\n{result.stdout}", flush=True)


if __name__ == "__main__":
    main()
