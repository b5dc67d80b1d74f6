"""What a wall screen shows of deploys: each pair's deploy in flight with its progress, and
the latest finished deploys. Read-only: it only reads the store."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from console.model import DEPLOY_STEPS, Step
from console.queue.release_queue import DeployQueue
from console.store import QUEUED, RUNNING, DeployRecord, DeployStore

FINISHED_STEP_STATES = frozenset({"succeeded", "skipped", "failed"})
ROLLBACK = Step.ROLLBACK.value


@dataclass(frozen=True)
class InFlight:
    """The deploy a pair is running now (or the first one waiting for it)."""

    record: DeployRecord
    steps_done: int
    steps_total: int
    current_step: str | None
    """The step running now ("rollback" when rolling back), None before the first step."""
    queued_behind: int = 0
    """How many more deploys of the pair wait behind this one."""

    @property
    def running(self) -> bool:
        return self.record.state == RUNNING


@dataclass(frozen=True)
class DeployBoard:
    in_flight: dict[tuple[str, str], InFlight]
    latest: tuple[DeployRecord, ...]
    """Finished deploys, newest first."""


def progress(steps: list[tuple[str, str]]) -> tuple[int, str | None]:
    """(deploy steps ended, the step running now) from (step, state) runs in start order."""
    ended = {step for step, state in steps if state in FINISHED_STEP_STATES}
    done = sum(1 for step in DEPLOY_STEPS if step.value in ended)
    running = [step for step, state in steps if state == "running"]
    return done, (running[-1] if running else None)


async def read_board(store: DeployStore, queue: DeployQueue, *, latest: int = 10) -> DeployBoard:
    """One read of the queue (running and queued deploys) and of the latest finished ones."""
    in_flight: dict[tuple[str, str], InFlight] = {}
    behind: dict[tuple[str, str], int] = {}
    for entry in await queue.entries():
        record = entry.record
        if record.state not in (QUEUED, RUNNING):
            continue
        pair = (record.project, record.cluster)
        if pair in in_flight and (in_flight[pair].running or record.state != RUNNING):
            behind[pair] = behind.get(pair, 0) + 1
            continue
        if pair in in_flight:
            behind[pair] = behind.get(pair, 0) + 1
        done, current = 0, None
        if record.state == RUNNING:
            runs = await store.steps(record.id)
            done, current = progress([(run.step, run.state) for run in runs])
        in_flight[pair] = InFlight(record, done, len(DEPLOY_STEPS), current)
    for pair, count in behind.items():
        flight = in_flight[pair]
        in_flight[pair] = InFlight(
            flight.record, flight.steps_done, flight.steps_total, flight.current_step, count
        )
    recent = await store.deploys(limit=latest * 3)
    finished = tuple(r for r in recent if r.state not in (QUEUED, RUNNING))[:latest]
    return DeployBoard(in_flight, finished)


def finished_at(record: DeployRecord) -> datetime:
    return record.finished_at or record.started_at or record.created_at
