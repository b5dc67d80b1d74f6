"""The queue's runner: every console (and `deploy-console runner`) claims queued deploys,
runs them with the engine, reconciles deploys whose console died, and lets anyone follow a
deploy's events wherever it runs."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import secrets
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass

from console.deploy.engine import DeployEngine, new_deploy_id
from console.errors import ConsoleError, DeployError
from console.events import (
    DeployEvent,
    DeployFinished,
    DeployWaiting,
    OutputLine,
    StepFinished,
    StepStarted,
)
from console.gates.hooks import END_EVENTS, HookRun, hooks_for, run_hook
from console.gates.hooks import reason as hooks_reason
from console.identity import current_actor
from console.logs import deploy_context
from console.model import DeployRequest, DeployState, Step, StepState
from console.notify.delivery import notifier_for
from console.queue.release_queue import DeployQueue, QueueEntry
from console.store import DeployRecord

log = logging.getLogger(__name__)

POLL_SECONDS = 0.5
KEEP_FINISHED = 50  # followed deploys whose events stay in memory after they end
REAP_SECONDS = 60.0  # (bake) how often kept old instances past their keep_old are looked for


@dataclass(frozen=True)
class Reconciled:
    """An interrupted deploy was put right against AWS by this runner."""

    deploy_id: str
    summary: str


def runner_name() -> str:
    """host:pid:random, unique per runner (shown as who runs a deploy)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(2)}"


class _Followed:
    """A deploy run here: every event so far, and a signal for each new one."""

    def __init__(self) -> None:
        self.events: list[DeployEvent] = []
        self.changed = asyncio.Event()
        self.done = False


class Runner:
    """Claims and runs queued deploys until stopped. `only`: claim just these deploys (the
    `deploy` command runs its own deploy and no one else's). `executes=False`: a console or
    session that only queues and follows (the deploy belongs to a runner process, see
    console/servers/runner_service.py); `on_queued` then makes sure one serves the store."""

    def __init__(
        self,
        engine: DeployEngine,
        queue: DeployQueue,
        *,
        name: str | None = None,
        only: Iterable[str] | None = None,
        poll_seconds: float = POLL_SECONDS,
        reconcile: bool = True,
        on_event: Callable[[str, object], None] | None = None,
        executes: bool = True,
        on_queued: Callable[[], Awaitable[object]] | None = None,
        reap_seconds: float = REAP_SECONDS,
    ) -> None:
        self.engine = engine
        self.queue = queue
        self.name = name or runner_name()
        self.only = None if only is None else set(only)
        self.poll_seconds = poll_seconds
        self.reconcile = reconcile
        self.on_event = on_event
        self.executes = executes
        self.on_queued = on_queued
        self._wake = asyncio.Event()
        self._ticking = asyncio.Lock()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._followed: dict[str, _Followed] = {}
        self.errors: list[str] = []
        # A runner serving the queue (not one `deploy` command's) delivers the notification
        # outbox (console/notify/).
        serves = reconcile and only is None
        self.notifier = notifier_for(queue.store, queue.config, self.name) if serves else None
        self.reap_seconds = reap_seconds
        self._reaped_at: float | None = None  # the first look waits a period: a start is busy
        self._reaping: asyncio.Task[None] | None = None
        if queue.images is None:  # a check naming {image_id} gets the release's AMI
            queue.images = self._image_id

    # -- what callers use ------------------------------------------------------------------

    async def enqueue(
        self, request: DeployRequest, *, after: str | None = None, break_glass: str = ""
    ) -> DeployRecord:
        """Queue a deploy and wake the runner; it starts here when its turn comes (or, when
        this runner does not execute, in the runner process that serves the store)."""
        deploy_id = new_deploy_id(self.engine.now())
        record = await self.queue.enqueue(request, deploy_id, after=after, break_glass=break_glass)
        if self.executes and self.only is not None:
            self.only.add(record.id)
        self.wake()
        if self.on_queued is not None:
            await self.on_queued()
        return record

    def wake(self) -> None:
        self._wake.set()

    async def _image_id(self, request: DeployRequest) -> str:
        return (await self.engine.plan(request)).release.image_id

    def runs(self, deploy_id: str) -> bool:
        task = self._tasks.get(deploy_id)
        return task is not None and not task.done()

    @property
    def running_here(self) -> list[str]:
        return [deploy_id for deploy_id, task in self._tasks.items() if not task.done()]

    async def cancel(self, deploy_id: str, actor: str, reason: str = "") -> DeployRecord | None:
        """Cancel a deploy wherever it is: here (it rolls back now), queued (it never runs),
        or running in another console (asked through the store)."""
        if self.runs(deploy_id) and self.engine.cancel(deploy_id, actor):
            return None
        record = await self.queue.cancel(deploy_id, actor, reason)
        self.wake()
        return record

    async def follow(self, deploy_id: str, *, output: bool = False) -> AsyncIterator[DeployEvent]:
        """A deploy's events to its end, wherever it runs: live when this runner runs it,
        else read from the store (its wait reason, its steps, with `output` the lines its
        commands printed, as the runner flushes them, and its outcome)."""
        index = 0
        lines_seen = 0
        waiting: str | None = None
        seen_steps: list[tuple[str, str]] = []
        while True:
            followed = self._followed.get(deploy_id)
            if followed is not None:
                while index < len(followed.events):
                    event = followed.events[index]
                    index += 1
                    yield event
                    if isinstance(event, DeployFinished):
                        return
                if followed.done:
                    return
                followed.changed.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.poll_seconds):
                        await followed.changed.wait()
                continue
            record = await self.queue.store.deploy(deploy_id)
            if record is None:
                raise DeployError(f"unknown deploy {deploy_id!r}")
            if record.state == DeployState.QUEUED.value:
                entry = await self._entry(deploy_id)
                reason = entry.waiting if entry else ""
                if reason != waiting:
                    waiting = reason
                    yield DeployWaiting(deploy_id, reason)
            else:
                for event in await self._stored_steps(deploy_id, seen_steps):
                    yield event
                if output:
                    lines = await self.queue.store.deploy_log(deploy_id)
                    for line in lines[lines_seen:]:
                        yield OutputLine(deploy_id, line.source, line.line, line.stream)
                    lines_seen = len(lines)
                if record.state not in (DeployState.QUEUED.value, DeployState.RUNNING.value):
                    if deploy_id in self._followed:
                        continue  # it ran here after all: the live events say more
                    yield _finished(record)
                    return
            await asyncio.sleep(self.poll_seconds)

    async def _entry(self, deploy_id: str) -> QueueEntry | None:
        for entry in await self.queue.entries():
            if entry.record.id == deploy_id:
                return entry
        return None

    async def _stored_steps(self, deploy_id: str, seen: list[tuple[str, str]]) -> list[DeployEvent]:
        """Step events for step rows not seen yet (a deploy run by another console)."""
        events: list[DeployEvent] = []
        for index, step in enumerate(await self.queue.store.steps(deploy_id)):
            known = seen[index] if index < len(seen) else None
            if known is None:
                seen.append((step.step, "running"))
                # Its detail too: the bake's says how long it runs and what it watches.
                events.append(StepStarted(deploy_id, Step(step.step), step.started_at, step.detail))
                known = seen[index]
            if step.state != "running" and known[1] == "running":
                seen[index] = (step.step, step.state)
                events.append(
                    StepFinished(
                        deploy_id,
                        Step(step.step),
                        StepState(step.state),
                        step.seconds or 0.0,
                        step.detail,
                    )
                )
        return events

    # -- the loop --------------------------------------------------------------------------

    async def run_forever(self) -> None:
        """Claim, run and reconcile until cancelled; then cancel what runs here (each rolls
        back) and wait for it."""
        config = self.queue.config
        if self.reconcile and config.digest:  # the runner serving the store says its rules
            await self.queue.store.record_config(
                str(current_actor()), config.digest, config.rules, str(config.source)
            )
        delivering = None
        if self.notifier is not None and self.executes:
            delivering = asyncio.create_task(self.notifier.run_forever())
        try:
            while True:
                try:
                    await self.tick()
                except ConsoleError as error:
                    self._note_error(error.message)
                await self._sleep()
        finally:
            await self.stop()
            if delivering is not None:
                delivering.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await delivering

    async def tick(self) -> None:
        """One look at the queue: reconcile what died, then start what may start."""
        async with self._ticking:
            if self.executes:
                await self._tick()

    async def pause(self) -> None:
        """Claim and reconcile nothing more (until `executes` is set again); returns once no
        look at the queue is under way, so `running_here` is the whole truth."""
        self.executes = False
        async with self._ticking:
            pass

    async def _tick(self) -> None:
        self._start_reaper()
        if self.reconcile:
            for record in await self.queue.take_interrupted(self.name):
                if record.id not in self._tasks or self._tasks[record.id].done():
                    self._tasks[record.id] = asyncio.create_task(
                        self._reconcile(record), context=deploy_context(record.id)
                    )
        if self.only is not None and not self.only:
            return
        while (claimed := await self.queue.claim(self.name, only=self.only)) is not None:
            self._followed[claimed.id] = _Followed()
            # Every record logged by the deploy's work carries its id (console.logs).
            self._tasks[claimed.id] = asyncio.create_task(
                self._run(claimed), context=deploy_context(claimed.id)
            )

    def _start_reaper(self) -> None:
        """(bake) Now and then, the kept old instances whose keep_old passed are terminated
        (engine.reap_kept); only by a runner that reconciles, only if a cluster keeps any."""
        clusters = self.engine.config.clusters
        if not self.reconcile or not any(c.bake.keeps_old for c in clusters):
            return
        if self._reaping is not None and not self._reaping.done():
            return
        now = asyncio.get_running_loop().time()
        if self._reaped_at is None:
            self._reaped_at = now
        if now - self._reaped_at < self.reap_seconds:
            return
        self._reaped_at = now
        self._reaping = asyncio.create_task(self._reap())

    async def _reap(self) -> None:
        try:
            gone = await self.engine.reap_kept()
        except ConsoleError as error:
            self._note_error(f"reaping kept instances: {error.message}")
            return
        if gone:
            log.info("terminated kept old instances past their keep_old: %s", ", ".join(gone))

    async def stop(self) -> None:
        """Cancel the deploys running here (each rolls back) and wait for them to end."""
        if self._reaping is not None:
            self._reaping.cancel()
        for deploy_id in self.running_here:
            self.engine.cancel(deploy_id, "the console stopping")
        tasks = [task for task in self._tasks.values() if not task.done()]
        if tasks:
            await asyncio.shield(asyncio.gather(*tasks, return_exceptions=True))

    async def drain(self, grace: float) -> list[str]:
        """(service) A stopping runner: claim and reconcile nothing more, and give what runs
        here `grace` seconds to reach its end (no rollback asked); the ids still running."""
        await self.pause()
        tasks = [task for task in self._tasks.values() if not task.done()]
        if tasks and grace > 0:
            await asyncio.wait(tasks, timeout=grace)
        return self.running_here

    async def hand_over(self, why: str) -> list[str]:
        """(service) Leave the deploys running here, as they are, to the next runner: one
        `deploy.handed_over` audit row each; nothing is cancelled or rolled back. The caller
        then ends the process without stopping them (console/servers/runner_service.py), so
        their lock goes stale and the next runner reconciles them (resumes or rolls back)."""
        await self.pause()
        left = self.running_here
        for deploy_id in left:
            record = await self.queue.store.deploy(deploy_id)
            if record is None or record.state not in (
                DeployState.RUNNING.value,
                DeployState.INTERRUPTED.value,
            ):
                continue  # it ended meanwhile
            steps = await self.queue.store.steps(deploy_id)
            where = f"at step {steps[-1].step}" if steps else "before its first step"
            what = "its reconcile" if record.state == DeployState.INTERRUPTED.value else "it"
            await self.queue.store.audit(
                "deploy.handed_over",
                actor=str(current_actor()),
                project=record.project,
                cluster=record.cluster,
                deploy_id=deploy_id,
                outcome=record.state,
                reason=f"runner {self.name} stopped ({why}) {where}: {what} is left as it is, "
                "not rolled back; the next runner reconciles it (finishes or rolls back)",
            )
            log.info("handed over %s %s", deploy_id, where, extra={"deploy_id": deploy_id})
        return left

    async def _sleep(self) -> None:
        # asyncio.timeout, not wait_for: 3.11's wait_for can lose a cancel that races its
        # timeout, and the runner then never stops.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.poll_seconds):
                await self._wake.wait()
        self._wake.clear()

    async def _run(self, record: DeployRecord) -> None:
        followed = self._followed[record.id]
        # An approved deploy is pinned to the image its approvers were shown (its AMI id).
        request = DeployRequest(
            record.project,
            record.cluster,
            record.image_id or record.release,
            record.actor,
            record.rollback_of,
            kind=record.kind,
        )
        try:
            if await self._pre_deploy(record, followed):
                async for event in self.engine.run(request, claimed=record):
                    self._tell(followed, record.id, event)
                # After its end is recorded: a post hook never undoes the deploy.
                ended = await self.queue.store.deploy(record.id)
                if ended is not None and ended.state in END_EVENTS:
                    await self._hooks(ended, ("post-deploy", END_EVENTS[ended.state]), followed)
        except Exception as error:  # the engine records its own failures; this is a last resort
            self._note_error(f"deploy {record.id}: {error}")
        finally:
            followed.done = True
            followed.changed.set()
            self._forget_old()
            self.wake()  # the pair is free: the next deploy may start
            if self.notifier is not None:
                self.notifier.wake()  # its end is in the outbox: tell it now

    def _tell(self, followed: _Followed, deploy_id: str, event: DeployEvent) -> None:
        followed.events.append(event)
        followed.changed.set()
        if self.on_event is not None:
            self.on_event(deploy_id, event)

    async def _pre_deploy(self, record: DeployRecord, followed: _Followed) -> bool:
        """The pre-deploy hooks, before the engine changes anything: False when one failed
        (the deploy is then ended as failed, its reason their output, its pair let go)."""
        if not hooks_for(self.queue.config, "pre-deploy", record.project, record.cluster):
            return True
        with contextlib.suppress(ConsoleError):  # unresolved: the engine will say why
            request = DeployRequest(record.project, record.cluster, record.release, record.actor)
            record = dataclasses.replace(record, image_id=await self._image_id(request))
        # The pair's lock is the claim's: kept fresh while the hooks run (no engine beats yet).
        beat = asyncio.create_task(self._keep_lock(record, max(0.5, self.queue.stale_after / 3)))
        try:
            runs = await self._hooks(record, ("pre-deploy",), followed)
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat
        if all(run.passed for run in runs):
            return True
        reason = f"{hooks_reason(runs)}: nothing changed"
        await self.queue.store.set_deploy_state(
            record.id,
            DeployState.FAILED.value,
            reason=reason,
            release=(record.project, record.cluster),
            audit={
                "action": "deploy.finished",
                "actor": record.actor,
                "project": record.project,
                "cluster": record.cluster,
                "deploy_id": record.id,
                "outcome": DeployState.FAILED.value,
                "reason": reason,
            },
        )
        self._tell(followed, record.id, DeployFinished(record.id, DeployState.FAILED, reason, 0, 0))
        return False

    async def _hooks(
        self, record: DeployRecord, events: tuple[str, ...], followed: _Followed
    ) -> list[HookRun]:
        """Run the hooks of `events` for the deploy, one after another: their output into
        its log (and to whoever follows it), each on a `hook` audit row."""
        runs: list[HookRun] = []
        config = self.queue.config
        for event in events:
            for hook in hooks_for(config, event, record.project, record.cluster):
                run = await run_hook(hook, event, record, config)
                runs.append(run)
                now = self.engine.now()
                await self.queue.store.append_log(
                    record.id, [(now, run.source, "stdout", line) for line in run.lines]
                )
                for line in run.lines:
                    self._tell(followed, record.id, OutputLine(record.id, run.source, line))
                await self.queue.store.audit(
                    "hook",
                    actor=record.actor,
                    project=record.project,
                    cluster=record.cluster,
                    deploy_id=record.id,
                    outcome="passed" if run.passed else "failed",
                    reason=run.summary(),
                )
                if not run.passed and event == "pre-deploy":
                    return runs  # the deploy stops here: no later hook is asked
        return runs

    async def _reconcile(self, record: DeployRecord) -> None:
        stale = self.queue.stale_after
        beat = asyncio.create_task(self._keep_lock(record, max(0.5, stale / 3)))
        try:
            summary, ids = await self.engine.reconcile(record)
            await self.queue.reconciled(record, self.name, summary, ids)
            log.info("reconciled %s: %s", record.id, summary)
            if self.on_event is not None:
                self.on_event(record.id, Reconciled(record.id, summary))
        except Exception as error:  # its lock goes stale, and the next look tries again
            self._note_error(f"reconcile {record.id}: {error}")
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat
            self.wake()

    async def _keep_lock(self, record: DeployRecord, period: float) -> None:
        while True:
            await asyncio.sleep(period)
            await self.queue.store.heartbeat(record.project, record.cluster, record.id)

    def _note_error(self, text: str) -> None:
        log.warning("runner %s: %s", self.name, text)
        self.errors.append(text)
        del self.errors[:-20]

    def _forget_old(self) -> None:
        finished = [key for key, followed in self._followed.items() if followed.done]
        for key in finished[:-KEEP_FINISHED]:
            del self._followed[key]
            self._tasks.pop(key, None)


def _finished(record: DeployRecord) -> DeployFinished:
    seconds = 0.0
    if record.started_at and record.finished_at:
        seconds = (record.finished_at - record.started_at).total_seconds()
    return DeployFinished(record.id, DeployState(record.state), record.reason, seconds, 0.0)
