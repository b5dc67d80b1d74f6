"""Every wait of the engine ends at its deadline, whatever the AWS endpoint does, and says
what it waits for every few seconds.

The engine reaches a world of its own through a loopback TCP proxy that the test turns into a
blackhole (accepts, never answers) once the health gate has begun: botocore's own timeouts
and retries (30 s reads, 3 attempts) must not outlive the gate's promise.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import re
import time
from collections.abc import Callable
from pathlib import Path

from console.config import Config
from console.deploy.services import deploy_services
from console.events import DeployEvent, OutputLine, StepFinished, StepStarted
from console.model import DeployRequest, DeployState, Step, StepState
from tests.blackhole import BlackholeProxy, blackhole_proxy
from tests.console.deploy.test_engine import config_head, finished, world_fixture
from tests.deploy_world import live, serving_in

MARGIN = 1  # [engine] health_gate_margin_seconds
INTERVAL = 5  # the world's target group: checks every 5 s (AWS's least), healthy after 2
THRESHOLD = 2
GATE = THRESHOLD * INTERVAL + INTERVAL + MARGIN  # "up to 16 s"
PROGRESS_GAP = 6.5  # progress every 5 s, with room for a loaded machine
LATE = 3.0  # how far past its deadline a wait may end
DRAIN = 7  # the drain wait: deregistration delay (1 s) + two polls (0.5 s) + 5 s

CONFIG = (
    config_head(MARGIN)
    + f"""
[[projects]]
name = "ledger"
repository = "https://github.com/example-shop/ledger"

[projects.clusters.staging]
target_groups = ["ledger-web-staging"]
[projects.clusters.staging.launch]
instance_type = "t3.small"
subnet = "staging-app-a"
security_groups = ["staging-web"]

[projects.deploy]
start = "sh app/bin/start"
health = "sh app/bin/healthcheck"
env_file = "app.env"
startup_timeout_seconds = 12
health_interval_seconds = 0.5

[world]
seed = 12
registration_seconds = 3
health_check_interval_seconds = {INTERVAL}
healthy_threshold = {THRESHOLD}
deregistration_delay_seconds = 1

[world.projects.ledger]
versions = ["1.0.0", "1.1.0"]
[world.projects.ledger.clusters.staging]
instances = 1
version = "1.0.0"
"""
)


ledger_world = world_fixture("ledger", CONFIG)


def through(config: Config, proxy: BlackholeProxy) -> Config:
    """The config with every cluster's AWS endpoint behind the proxy."""
    clusters = tuple(dataclasses.replace(c, endpoint_url=proxy.url) for c in config.clusters)
    return dataclasses.replace(config, clusters=clusters)


async def deploy_with_silence(
    world: Config,
    store: Path,
    step: Step,
    silence_from: Callable[[DeployEvent], bool],
    limit: float,
) -> list[tuple[float, DeployEvent]]:
    """Deploys ledger 1.1.0 through the proxy; each event with the moment it arrived.

    Once `step` has begun, the first event `silence_from` accepts turns the endpoint into a
    blackhole; it answers again when `step` ends, or `limit` s after `step` began (a wait that
    overran its promise), so that the deploy ends either way.
    """
    received: list[tuple[float, DeployEvent]] = []
    endpoint = world.clusters[0].endpoint_url
    assert endpoint is not None
    with blackhole_proxy(endpoint) as proxy:
        began = False
        holed = False
        async with deploy_services(through(world, proxy), store) as services:
            request = DeployRequest("ledger", "staging", "1.1.0", "tester")
            async for event in services.engine.run(request):
                received.append((time.monotonic(), event))
                if isinstance(event, StepStarted) and event.step is step:
                    began = True
                    asyncio.get_running_loop().call_later(limit, proxy.restore)
                elif began and not holed and silence_from(event):
                    proxy.blackhole()
                    holed = True
                elif isinstance(event, StepFinished) and event.step is step:
                    proxy.restore()
        assert holed
    return received


def step_times(received: list[tuple[float, DeployEvent]], step: Step) -> tuple[float, float]:
    began = next(t for t, e in received if isinstance(e, StepStarted) and e.step is step)
    ended = next(t for t, e in received if isinstance(e, StepFinished) and e.step is step)
    return began, ended


def progress_between(
    received: list[tuple[float, DeployEvent]], began: float, ended: float
) -> list[str]:
    """The wait's progress lines from `began` to `ended`; asserts they came every few seconds."""
    progress = [
        (t, e.text)
        for t, e in received
        if isinstance(e, OutputLine) and e.text.startswith("waiting for ")
        and began <= t <= ended
    ]  # fmt: skip
    moments = [began, *(t for t, _ in progress), ended]
    gaps = [later - earlier for earlier, later in itertools.pairwise(moments)]
    assert max(gaps) <= PROGRESS_GAP, (gaps, progress)
    return [text for _, text in progress]


def first_waiting_note(event: DeployEvent) -> bool:
    return isinstance(event, OutputLine) and event.text.startswith("waiting: ")


async def test_health_gate_ends_at_its_deadline_when_aws_stops_answering(
    ledger_world: Config, tmp_path: Path
) -> None:
    old = live(ledger_world, "ledger", "staging")
    assert len(old) == 1
    # AWS answers the gate once ("waiting: ... initial"), then stops answering.
    received = await deploy_with_silence(
        ledger_world, tmp_path / "store.db", Step.HEALTH_GATE, first_waiting_note, GATE + 3 * LATE
    )

    events = [event for _, event in received]
    started = next(e for e in events if isinstance(e, StepStarted) and e.step is Step.HEALTH_GATE)
    assert started.detail == f"up to {GATE} s"
    gate_began, gate_ended = step_times(received, Step.HEALTH_GATE)
    # The promise held: the gate failed by its deadline, not after botocore's retries.
    assert gate_ended - gate_began <= GATE + LATE, f"gate took {gate_ended - gate_began:.1f} s"
    gate = next(e for e in events if isinstance(e, StepFinished) and e.step is Step.HEALTH_GATE)
    assert gate.state is StepState.FAILED
    outcome = finished(events)
    assert outcome.state is DeployState.ROLLED_BACK, outcome.reason
    assert f"not healthy after {GATE} s" in outcome.reason
    assert "is initial in target group ledger-web-staging" in outcome.reason
    assert "AWS did not answer" in outcome.reason

    # It said what it waited for, at least every few seconds, all through the silence.
    progress = progress_between(received, gate_began, gate_ended)
    launch = next(e for e in events if isinstance(e, StepFinished) and e.step is Step.LAUNCH)
    new = launch.detail
    assert new.startswith("i-")
    for text in progress:
        assert f"{new} healthy in target group ledger-web-staging: initial, " in text, text
        assert f"of up to {GATE} s" in text, text
    assert any("AWS has not answered for" in text for text in progress), progress

    # Rolled back once AWS answered again: the old instance serves, alone.
    assert live(ledger_world, "ledger", "staging") == old
    assert serving_in(ledger_world, "ledger", "staging") == {"ledger-web-staging": old}


async def test_drain_wait_ends_at_its_deadline_when_aws_stops_answering(
    ledger_world: Config, tmp_path: Path
) -> None:
    old = live(ledger_world, "ledger", "staging")
    assert len(old) == 1

    def deregistered(event: DeployEvent) -> bool:
        return isinstance(event, OutputLine) and event.text.startswith("deregistered ")

    received = await deploy_with_silence(
        ledger_world, tmp_path / "store.db", Step.DEREGISTER, deregistered, DRAIN + 3 * LATE
    )
    events = [event for _, event in received]
    began, ended = step_times(received, Step.DEREGISTER)
    assert ended - began <= DRAIN + LATE, f"the drain wait took {ended - began:.1f} s"
    drain = next(e for e in events if isinstance(e, StepFinished) and e.step is Step.DEREGISTER)
    assert drain.detail.startswith("deregistration delay of 1 s passed"), drain.detail
    assert "AWS did not answer" in drain.detail, drain.detail
    progress = progress_between(received, began, ended)
    assert progress, [e for e in events if isinstance(e, OutputLine)]
    for text in progress:
        assert re.search(r"waiting for i-\w+ to leave target group ledger-web-staging", text)
        assert f"of up to {DRAIN} s" in text, text

    # The deploy went on (the delay had passed): the new instance serves, the old is gone.
    outcome = finished(events)
    assert outcome.state is DeployState.SUCCEEDED, outcome.reason
    new = live(ledger_world, "ledger", "staging")
    assert len(new) == 1 and not new & old
    assert serving_in(ledger_world, "ledger", "staging") == {"ledger-web-staging": new}
