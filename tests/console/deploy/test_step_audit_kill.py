"""A step and its audit record are one transaction: a real `deploy-console deploy` process is
killed with SIGKILL inside the transaction that records a step's start or end, and the store
it leaves has an intact audit chain in which every step row has its audit rows and every
"deploy.step" audit row its step row.

The kill lands exactly there: triggers put in the test's store make the write that records
the step's *second* row (whichever of the step row and its audit row comes second) run a
query that never ends, and the process is killed while it holds the store's write lock in
it. Written in one transaction, the pair is then not on record at all; written in two, the
first would be on record without the second, and the test fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from console.config import Config
from console.model import DEPLOY_STEPS, Step
from console.store import Store
from tests.console.queue.test_queue_crash import command, world  # noqa: F401 (a fixture)
from tests.deploy_world import ROOT
from tests.waiting import wait_until

# How long the deploy must hold the write lock before it counts as stuck in the endless
# write: ordinary writes hold it for milliseconds.
STUCK_SECONDS = 1.5
DEPLOY_TIMEOUT = 60.0

# Each point: (the step, whether its start or its end is being written), a pair of its own
# (a killed deploy leaves its pair mid-way), and a release that pair does not run yet.
POINTS = {
    "lock held": (Step.LOCK, "finished", "storefront", "2.14.1"),
    "mid-launch": (Step.LAUNCH, "finished", "checkout-api", "5.2.0"),
    "mid-health": (Step.HEALTH_GATE, "finished", "admin-portal", "3.8.0"),
    "mid-drain": (Step.DEREGISTER, "finished", "media-service", "1.5.0"),
    "after cutover": (Step.TERMINATE, "started", "partner-gateway", "1.0.0"),
}

# A query that runs until the process running it is killed (CTEs may not appear in a
# trigger's own statements, but a view may hold one).
ENDLESS = (
    "CREATE VIEW endless AS WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) "
    "SELECT x FROM n LIMIT -1"
)
STEP_AUDIT = "SELECT 1 FROM audit WHERE action = 'deploy.step' AND step = '{step}' AND {outcome}"
TRIGGERS = {
    # A step's start: its row is inserted, its audit row says "started".
    "started": (
        "CREATE TRIGGER stuck_step AFTER INSERT ON steps "
        "WHEN NEW.step = '{step}' AND EXISTS ("
        + STEP_AUDIT.format(step="{step}", outcome="outcome = 'started'")
        + ") BEGIN SELECT count(*) FROM endless; END",
        "CREATE TRIGGER stuck_audit AFTER INSERT ON audit "
        "WHEN NEW.action = 'deploy.step' AND NEW.step = '{step}' AND NEW.outcome = 'started' "
        "AND EXISTS (SELECT 1 FROM steps WHERE step = '{step}') "
        "BEGIN SELECT count(*) FROM endless; END",
    ),
    # A step's end: its row gets finished_at, its audit row says how it ended.
    "finished": (
        "CREATE TRIGGER stuck_step AFTER UPDATE OF finished_at ON steps "
        "WHEN NEW.step = '{step}' AND NEW.finished_at IS NOT NULL AND EXISTS ("
        + STEP_AUDIT.format(step="{step}", outcome="outcome != 'started'")
        + ") BEGIN SELECT count(*) FROM endless; END",
        "CREATE TRIGGER stuck_audit AFTER INSERT ON audit "
        "WHEN NEW.action = 'deploy.step' AND NEW.step = '{step}' AND NEW.outcome != 'started' "
        "AND EXISTS (SELECT 1 FROM steps WHERE step = '{step}' AND finished_at IS NOT NULL) "
        "BEGIN SELECT count(*) FROM endless; END",
    ),
}


def _prepare(store: Path, step: Step, phase: str) -> None:
    """A new store, with the write that completes `step`'s `phase` made endless."""

    async def create() -> None:
        async with await Store.open(store):
            pass

    asyncio.run(create())
    with _connect(store) as db:
        db.execute(ENDLESS)
        for trigger in TRIGGERS[phase]:
            db.execute(trigger.format(step=step.value))


def _disarm(store: Path) -> None:
    with _connect(store) as db:
        for name in ("TRIGGER stuck_step", "TRIGGER stuck_audit", "VIEW endless"):
            db.execute(f"DROP {name}")


def _connect(store: Path, timeout: float = 5.0) -> contextlib.closing[sqlite3.Connection]:
    return contextlib.closing(sqlite3.connect(store, timeout=timeout, isolation_level=None))


def _write_locked(store: Path) -> bool:
    with _connect(store, timeout=0) as db:
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as error:
            if error.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY:
                raise
            return True
        db.execute("ROLLBACK")
    return False


def _stuck(
    store: Path, step: Step, phase: str, deploy: subprocess.Popen[bytes], output: Path
) -> Callable[[], bool]:
    """A condition: the store shows the deploy at the endless write, and the deploy has held
    the store's write lock for STUCK_SECONDS (a slow ordinary write elsewhere in the deploy,
    on a loaded machine, is not taken for it)."""
    since: list[float] = []

    def condition() -> bool:
        assert deploy.poll() is None, f"the deploy ended first:\n{output.read_text()[-3000:]}"
        if not (_write_locked(store) and _at(_on_record(store)[0], step, phase)):
            since.clear()
            return False
        since[:] = since or [time.monotonic()]
        return time.monotonic() - since[0] >= STUCK_SECONDS

    return condition


def _at(steps: dict[str, tuple[str, bool]], step: Step, phase: str) -> bool:
    """Whether the steps on record are those of a deploy recording `step`'s `phase`: every
    step before it finished, and no step after it begun. (Either row of the pair may be on
    record already if the pair were written in two transactions.)"""
    names = [Step(s) for s in steps]
    before = list(DEPLOY_STEPS[: DEPLOY_STEPS.index(step)])
    if names[: len(before)] != before or not all(steps[s.value][1] for s in before):
        return False
    rest = names[len(before) :]
    return rest in ([], [step]) if phase == "started" else rest == [step]


def _on_record(store: Path) -> tuple[dict[str, tuple[str, bool]], Counter[tuple[str, str]]]:
    """The one deploy's steps (step -> (state, finished)) and its deploy.step audit rows
    counted by (step, outcome), read in one transaction."""
    with _connect(store) as db:
        db.execute("BEGIN")
        steps = {
            step: (state, finished is not None)
            for step, state, finished in db.execute(
                "SELECT step, state, finished_at FROM steps ORDER BY seq"
            )
        }
        audit = Counter(
            db.execute("SELECT step, outcome FROM audit WHERE action = 'deploy.step'").fetchall()
        )
        db.execute("COMMIT")
    return steps, audit


@pytest.mark.parametrize(("step", "phase", "project", "release"), POINTS.values(), ids=POINTS)
def test_a_deploy_killed_inside_a_step_write_leaves_step_and_audit_in_agreement(
    world: tuple[Config, Path],  # noqa: F811 (the fixture imported above)
    tmp_path: Path,
    step: Step,
    phase: str,
    project: str,
    release: str,
) -> None:
    _, source = world
    store = tmp_path / "store.db"
    _prepare(store, step, phase)
    output = tmp_path / "deploy.out"
    with output.open("wb") as out:
        deploy = subprocess.Popen(
            command("deploy", "--anyway", project, "staging", release, config=source, store=store),
            cwd=ROOT, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
    try:
        wait_until(
            _stuck(store, step, phase, deploy, output),
            f"the deploy stuck recording the {phase} of {step.value}",
            DEPLOY_TIMEOUT,
        )
        deploy.send_signal(signal.SIGKILL)  # nothing more is written, nothing rolled back
    finally:
        if deploy.poll() is None:
            deploy.kill()
        deploy.wait()
    _disarm(store)

    verify = subprocess.run(
        command("audit", "verify", config=source, store=store),
        cwd=ROOT, capture_output=True, text=True, timeout=DEPLOY_TIMEOUT,
    )  # fmt: skip
    assert verify.returncode == 0, verify.stderr
    assert verify.stdout.startswith("audit ok: ")

    steps, audit = _on_record(store)
    from_steps = Counter((s, "started") for s in steps)
    from_steps.update((s, state) for s, (state, finished) in steps.items() if finished)
    assert from_steps == audit, f"steps {steps} but deploy.step audit rows {dict(audit)}"

    # The kill landed where it was aimed: the write that was stuck is not on record, every
    # step before it is.
    assert _at(steps, step, phase), steps
    if phase == "started":
        assert step.value not in steps
    else:
        assert steps[step.value] == ("running", False)
