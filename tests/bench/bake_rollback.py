"""The bake benchmark: from an alarm during the bake to every old instance serving again.

Against a world of its own (moto's CloudWatch, EC2 and target groups, the SSH jump host; the
world of tests/console/deploy/test_bake.py), one engine in this process deploys checkout 1.1.0
to a cluster with `bake = "60s"` and `alarms = ["checkout-*"]`. Once the bake step starts, the
bench sets the alarm to ALARM (set_alarm_state; 1 s + a point spread over one engine poll
interval later, so the engine's next look is waited for as in life) and a thread polls the
target group every 20 ms: the figure is the time from the alarm to the first poll where
every old instance is healthy again, and to the deploy's end (the new ones drained and
terminated). Each run ends rolled back, so the next one deploys the same release again. Runs
at the engine's poll interval of the test configs (0.5 s) and at its default (2 s).

The world's target group takes `registration_seconds = 1` to call a registered target healthy
(AWS: healthy threshold x interval, 10-150 s by its settings): the figure is the console's
part, start + register + its health polls, plus that one second.

    .venv/bin/python -m tests.bench.bake_rollback [--runs N]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import platform
import statistics
import tempfile
import threading
import time
from pathlib import Path

from console.config import Config
from console.deploy.services import deploy_services
from console.events import DeployFinished, StepStarted
from console.model import DeployRequest, DeployState, Step
from tests.console.deploy.test_bake import CONFIG
from tests.deploy_world import client, live, serving_in, world_process

CLUSTER = "alarm"


def prepare(config: Config) -> None:
    cloudwatch = client(config, CLUSTER, "cloudwatch")
    cloudwatch.put_metric_alarm(
        AlarmName="checkout-5xx",
        MetricName="HTTPCode_Target_5XX_Count",
        Namespace="AWS/ApplicationELB",
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=10,
        ComparisonOperator="GreaterThanThreshold",
    )


def alarm(config: Config, state: str) -> None:
    client(config, CLUSTER, "cloudwatch").set_alarm_state(
        AlarmName="checkout-5xx", StateValue=state, StateReason="bench"
    )


async def one_run(config: Config, store: Path, offset: float) -> tuple[float, float]:
    """(alarm -> every old instance healthy, alarm -> deploy rolled back), in seconds."""
    alarm(config, "OK")
    old = live(config, "checkout", CLUSTER)
    fired: list[float] = []
    back: list[float] = []
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            healthy = set().union(*serving_in(config, "checkout", CLUSTER).values())
            if fired and old <= healthy:
                back.append(time.monotonic())
                return
            stop.wait(0.02)

    watcher = threading.Thread(target=poll, daemon=True)
    ended = 0.0

    async def fire(after: float) -> None:
        await asyncio.sleep(after)
        await asyncio.to_thread(alarm, config, "ALARM")
        fired.append(time.monotonic())
        watcher.start()

    firing: asyncio.Task[None] | None = None
    async with deploy_services(config, store) as services:
        request = DeployRequest("checkout", CLUSTER, "1.1.0", "bench")
        async for event in services.engine.run(request):
            if isinstance(event, StepStarted) and event.step is Step.BAKE:
                # At a random moment of the bake, not at its first look: the alarm waits for
                # the engine's next look, up to one poll interval.
                firing = asyncio.create_task(fire(offset))
            if isinstance(event, DeployFinished):
                ended = time.monotonic()
                assert event.state is DeployState.ROLLED_BACK, event.reason
    assert firing is not None
    await firing
    watcher.join(30)
    stop.set()
    alarm(config, "OK")
    assert back, "the old instances never served again"
    return back[0] - fired[0], ended - fired[0]


def summary(name: str, values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return (
        f"  {name}: median {statistics.median(values):.2f} s, p95 {p95:.2f} s, "
        f"min {ordered[0]:.2f} s, max {ordered[-1]:.2f} s (n={len(values)})"
    )


async def bench(runs: int) -> None:
    with tempfile.TemporaryDirectory() as work:
        workdir = Path(work)
        source = workdir / "bake.toml"
        source.write_text(CONFIG)
        with world_process(source, workdir) as world:
            prepare(world)
            print(f"bake rollback benchmark ({platform.python_version()}, {runs} runs each)")
            for poll in (0.5, 2.0):
                config = dataclasses.replace(
                    world, engine=dataclasses.replace(world.engine, poll_seconds=poll)
                )
                serving: list[float] = []
                finished: list[float] = []
                for run in range(runs):
                    offset = 1.0 + poll * (run + 0.5) / runs  # spread over one poll interval
                    store = workdir / f"store-{poll}.db"
                    to_serving, to_end = await one_run(config, store, offset)
                    serving.append(to_serving)
                    finished.append(to_end)
                print(f"engine poll_seconds = {poll}")
                print(summary("alarm -> every old instance healthy", serving))
                print(summary("alarm -> deploy rolled back (new drained)", finished))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(bench(args.runs))


if __name__ == "__main__":
    main()
