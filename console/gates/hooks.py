"""[[hooks]]: commands run before a deploy changes anything and after it ends.

Each gets the deploy as JSON on stdin and as DEPLOY_* variables, in a clean environment (no
secret of the console's reaches it). What it prints is masked and made harmless before it is
kept: the runner stores it in the deploy's log and says it on a `hook` audit row.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from console.config import Config, HookSettings
from console.config.gates import fill
from console.gates.probe import CommandResult, clean_environment, console_masker, run_command, shown
from console.safe_text import SecretMasker, harmless
from console.store import DeployRecord

__all__ = ["END_EVENTS", "HookRun", "deploy_facts", "hooks_for", "run_hook"]

# A deploy's final state -> the hook event of that end (every end is also "post-deploy").
END_EVENTS = {
    "succeeded": "succeeded",
    "failed": "failed",
    "rolled_back": "rolled-back",
    "cancelled": "cancelled",
}


@dataclass(frozen=True)
class HookRun:
    """One hook's run: its result, its output lines as they may be kept, and one line."""

    hook: HookSettings
    event: str
    result: CommandResult
    lines: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return self.result.passed

    @property
    def source(self) -> str:
        """The deploy log's source of its lines."""
        return f"hook {self.hook.name}"

    def summary(self) -> str:
        """`pre-deploy hook NAME: exit 1: first line of its output`."""
        first = next((line.strip() for line in self.lines if line.strip()), "")
        said = self.result.status(self.hook.timeout) + (f": {first}" if first else "")
        return f"{self.event} hook {self.hook.name}: {said}"


def hooks_for(config: Config, event: str, project: str, cluster: str) -> list[HookSettings]:
    return [hook for hook in config.hooks if hook.applies(event, project, cluster)]


def deploy_facts(record: DeployRecord, event: str) -> dict[str, Any]:
    """The deploy as a hook sees it (stdin's JSON): nothing secret is in a deploy record."""
    return {
        "event": event,
        "id": record.id,
        "project": record.project,
        "cluster": record.cluster,
        "release": record.release,
        "image_id": record.image_id or "",
        "actor": record.actor,
        "ticket": record.ticket or "",
        "state": record.state,
        "reason": record.reason,
        "rollback_of": record.rollback_of or "",
        "previous_release": record.previous_release or "",
        "created_at": _when(record.created_at),
        "started_at": _when(record.started_at),
        "finished_at": _when(record.finished_at),
    }


def _when(moment: datetime | None) -> str:
    return moment.isoformat() if moment is not None else ""


def environment(facts: dict[str, Any]) -> dict[str, str]:
    """DEPLOY_ID, DEPLOY_PROJECT, ... DEPLOY_EVENT: the facts as variables (one line each)."""
    return {
        f"DEPLOY_{key.upper()}": " ".join(str(value).splitlines())
        for key, value in facts.items()
        if key not in ("created_at", "started_at", "finished_at")
    }


async def run_hook(
    hook: HookSettings,
    event: str,
    record: DeployRecord,
    config: Config,
    masker: SecretMasker | None = None,
) -> HookRun:
    """Run one hook for `record` at `event`, to its end or its timeout."""
    facts = deploy_facts(record, event)
    masker = masker or console_masker()
    values = {
        "project": record.project,
        "cluster": record.cluster,
        "release": record.release,
        "image_id": record.image_id or "",
        "ticket": record.ticket or "",
        "config": str(config.source),
    }
    argv = [fill(part, values) for part in hook.command]
    result = await run_command(
        argv,
        hook.timeout,
        env=clean_environment(environment(facts)),
        stdin=(json.dumps(facts) + "\n").encode(),
    )
    lines = tuple(harmless(masker.mask(line)) for line in result.lines)
    if result.truncated:
        lines += ("(more output not kept)",)
    return HookRun(hook, event, result, lines)


def reason(runs: Sequence[HookRun]) -> str:
    """Why a deploy stops: the failed hooks' summaries (already masked), in one line."""
    return shown("; ".join(run.summary() for run in runs if not run.passed), SecretMasker())
