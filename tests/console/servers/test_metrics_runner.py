"""`deploy-console runner --metrics`: a real runner on its own world serves Prometheus metrics
on loopback; a scrape before and after a deploy shows the deploy counted, its durations
observed and the AWS calls it made. Bad addresses are refused in one line (exit 2)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from console.config import Config
from tests.conftest import DEMO_CONFIG
from tests.deploy_world import ROOT, quick_seed, running_versions, world_process
from tests.waiting import wait_until

PROJECT, CLUSTER = "checkout-api", "staging"
DEPLOY_TIMEOUT = 120.0
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Config]:
    workdir = tmp_path_factory.mktemp("metrics-world")
    with world_process(quick_seed(workdir, 1), workdir) as config:
        yield config


def cli(config: Config, store: Path) -> list[str]:
    return [sys.executable, "-m", "screens.main", "--config", str(config.source), "--store",
            str(store)]  # fmt: skip


# Loopback only: never through a proxy the environment may name.
DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def scrape(url: str) -> Samples:
    with DIRECT.open(url, timeout=10) as answer:
        text = answer.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of `name` over every sample whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


@pytest.fixture
def runner(world: Config, tmp_path: Path) -> Iterator[tuple[str, list[str], dict[str, str]]]:
    """`runner --metrics 127.0.0.1:0` on a store of its own: the metrics URL it printed, the
    command line on the same store, the environment."""
    env = {**os.environ, "DEPLOY_CONSOLE_DATA_DIR": str(tmp_path / "data")}
    base = cli(world, tmp_path / "store.db")
    stderr = tmp_path / "runner.stderr"  # a file: a full pipe would stall the runner
    with stderr.open("wb") as errors:
        process = subprocess.Popen(
            [*base, "runner", "--metrics", "127.0.0.1:0"], cwd=ROOT, env=env,
            stdout=subprocess.PIPE, stderr=errors, text=True, start_new_session=True,
        )  # fmt: skip
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        found = re.match(r"metrics on (http://127\.0\.0\.1:\d+/metrics)$", line.strip())
        assert found, f"{line!r} {stderr.read_text()[-2000:]}"
        yield found.group(1), base, env
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_a_deploy_moves_the_runners_metrics(
    world: Config, runner: tuple[str, list[str], dict[str, str]]
) -> None:
    url, base, env = runner
    before = scrape(url)
    assert total(before, "deploy_console_deploys_total", outcome="succeeded") == 0
    (current,) = running_versions(world, PROJECT, CLUSTER)
    release = "5.2.0" if current != "5.2.0" else "5.2.3"
    queued = subprocess.run(
        [*base, "deploy", "--anyway", PROJECT, CLUSTER, release, "--no-wait", "--json"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert queued.returncode == 0, queued.stderr
    assert json.loads(queued.stdout)["deploy_id"]

    def ended() -> Samples | None:
        now = scrape(url)
        done = total(now, "deploy_console_deploys_total")
        return now if done >= 1 else None

    after = wait_until(ended, "the deploy counted in the runner's metrics", DEPLOY_TIMEOUT, 0.5)
    ok = {"cluster": CLUSTER, "outcome": "succeeded"}
    assert total(after, "deploy_console_deploys_total", **ok) == 1, after
    assert total(after, "deploy_console_deploy_duration_seconds_count", **ok) == 1
    assert total(after, "deploy_console_deploy_duration_seconds_sum", **ok) > 0
    # Every step it ran was timed; it waited in the queue; it launched through AWS.
    assert total(after, "deploy_console_step_duration_seconds_count", step="launch") == 1
    assert total(after, "deploy_console_queue_wait_seconds_count", cluster=CLUSTER) == 1
    launched = {"service": "ec2", "operation": "RunInstances"}
    assert total(before, "deploy_console_aws_calls_total", **launched) == 0
    assert total(after, "deploy_console_aws_calls_total", **launched) >= 1
    assert total(after, "deploy_console_aws_calls_total") > total(
        before, "deploy_console_aws_calls_total"
    )
    # The door's sessions and the queue's depth are there from the first scrape.
    assert ("deploy_console_queue_depth", frozenset({("state", "queued")})) in after
    started = time.perf_counter()
    scrape(url)
    print(f"scrape: {(time.perf_counter() - started) * 1000:.1f} ms")


@pytest.mark.parametrize("address", ["0.0.0.0:9464", "192.0.2.1:9464", "nine"])
def test_a_metrics_address_off_loopback_is_refused(tmp_path: Path, address: str) -> None:
    done = subprocess.run(
        [*cli_demo(tmp_path), "runner", "--metrics", address],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert "--metrics" in line


def test_a_config_metrics_address_off_loopback_names_its_line(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(DEMO_CONFIG.read_text() + '\n[metrics]\nsshd = "0.0.0.0:9464"\n')
    done = subprocess.run(
        [sys.executable, "-m", "screens.main", "--config", str(config), "--store",
         str(tmp_path / "store.db"), "runner"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    (line,) = done.stderr.splitlines()
    lines = config.read_text().splitlines()
    assert f"{config}:{len(lines)}: metrics.sshd: " in line and "loopback only" in line


def cli_demo(tmp_path: Path) -> list[str]:
    return [sys.executable, "-m", "screens.main", "--config", str(DEMO_CONFIG), "--store",
            str(tmp_path / "store.db")]  # fmt: skip
