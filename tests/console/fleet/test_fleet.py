"""Fleet inventory against the embedded world: facts, call counts, failing clusters."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from console.config import Config, ProjectClusterConfig
from console.fleet.inventory import Fleet
from console.model import FleetSnapshot, Health, LoadBalancerKind
from console.world.server import World
from tests.conftest import ROOT


def minimum_calls(config: Config) -> int:
    """The fewest calls one refresh can make: see DESIGN.md, Architecture."""
    total = 0
    groups: dict[tuple[object, ...], list[str]] = {}
    for cluster in config.clusters:
        groups.setdefault(cluster.account_key, []).append(cluster.name)
    for names in groups.values():
        envs = [s for p in config.projects for c, s in p.clusters.items() if c in names]
        classic = {lb for s in envs for lb in s.classic_elbs}
        target_groups = {lb for s in envs for lb in s.target_groups}
        total += 1 + (1 if classic else 0) + (1 if target_groups else 0)
        total += len(classic) + len(target_groups)
        # (dns) With a record to judge, every classic ELB and ALB is listed.
        if any(s.dns for p in config.projects for s in p.clusters.values()):
            total += (0 if classic else 1) + 1
    # (dns) One page of records of the demo's one zone (its zones listed once, then cached).
    return total + (1 if any(s.dns for p in config.projects for s in p.clusters.values()) else 0)


async def _one_refresh(config: Config) -> FleetSnapshot:
    """One snapshot of the fleet `config` describes, from a Fleet of its own."""
    fleet = Fleet(config)
    try:
        return await fleet.refresh()
    finally:
        fleet.close()


def _with_cluster(config: Config, name: str, **changes: Any) -> Config:
    """The config with cluster `name`'s settings changed (the others as they are)."""
    clusters = tuple(
        dataclasses.replace(c, **changes) if c.name == name else c for c in config.clusters
    )
    return dataclasses.replace(config, clusters=clusters)


async def test_snapshot_shows_the_demo_fleet(world_config: Config) -> None:
    snapshot = await _one_refresh(world_config)
    assert [c.name for c in snapshot.clusters] == ["staging", "qaprod1", "prod1", "prod2"]
    assert all(c.error is None for c in snapshot.clusters)
    storefront = snapshot.env("storefront", "prod2")
    assert storefront is not None
    assert storefront.health == Health.DEGRADED
    assert (storefront.serving_count, storefront.total_count) == (2, 3)
    stopped = [i for i in storefront.instances if i.state == "stopped"]
    assert len(stopped) == 1
    assert stopped[0].targets[0].state == "unused"
    assert stopped[0].targets[0].reason == "Target.InvalidState"

    media = snapshot.env("media-service", "prod1")
    assert media is not None and media.health == Health.DEGRADED
    failing = [i for i in media.instances if not i.serving]
    assert len(failing) == 1 and failing[0].state == "running"
    target = failing[0].targets[0]
    assert target.kind == LoadBalancerKind.CLASSIC and target.state == "OutOfService"
    assert "UnhealthyThreshold" in target.reason

    empty = snapshot.env("search-api", "staging")
    assert empty is not None and empty.health == Health.EMPTY and empty.total_count == 0
    assert snapshot.env("search-api", "qaprod1") is None  # not deployed there at all

    marketing = snapshot.env("marketing-site", "prod1")
    assert marketing is not None and marketing.versions == ("24.11.0", "24.10.1")  # newest first

    gateway = snapshot.env("partner-gateway", "prod1")
    assert gateway is not None and gateway.health == Health.HEALTHY
    kinds = {t.kind for i in gateway.instances for t in i.targets}
    assert kinds == {LoadBalancerKind.CLASSIC, LoadBalancerKind.TARGET_GROUP}

    worker = snapshot.env("notifications-worker", "prod1")
    assert worker is not None and worker.health == Health.HEALTHY
    assert worker.instances[0].targets == ()
    assert worker.instances[0].private_address.startswith("10.")
    assert worker.instances[0].image_id.startswith("ami-")
    assert sum(env.total_count for env in snapshot.envs.values()) >= 24


async def test_one_refresh_makes_the_minimum_number_of_calls(world_config: Config) -> None:
    seen: list[str] = []
    fleet = Fleet(world_config, on_call=seen.append)
    try:
        await fleet.refresh()
        first = list(seen)
        seen.clear()
        await fleet.refresh()
    finally:
        fleet.close()
    assert len(first) == minimum_calls(world_config) + 1 == 31  # ListHostedZones, then cached
    assert sorted([*seen, "ListHostedZones"]) == sorted(first)
    assert first.count("DescribeInstances") == 2  # us-east-1 (3 clusters) and us-west-2
    assert first.count("DescribeTargetHealth") == 13
    assert first.count("DescribeInstanceHealth") == 8


async def test_concurrent_refreshes_share_one(world_config: Config) -> None:
    import asyncio

    seen: list[str] = []
    fleet = Fleet(world_config, on_call=seen.append)
    try:
        first, second = await asyncio.gather(fleet.refresh(), fleet.refresh())
    finally:
        fleet.close()
    assert first is second
    assert len(seen) == minimum_calls(world_config) + 1  # (dns) and the zones, listed once


async def test_unreachable_cluster_is_unknown_and_the_others_stay_live(
    world_config: Config,
) -> None:
    snapshot = await _one_refresh(
        _with_cluster(world_config, "prod2", endpoint_url="http://127.0.0.1:9")
    )
    prod2 = snapshot.cluster("prod2")
    assert prod2.error is not None and "cannot reach http://127.0.0.1:9" in prod2.error
    assert all(
        env.health == Health.UNKNOWN and env.error == prod2.error
        for (_, cluster), env in snapshot.envs.items()
        if cluster == "prod2"
    )
    assert snapshot.cluster("prod1").error is None
    prod1 = snapshot.env("storefront", "prod1")
    assert prod1 is not None and prod1.health == Health.HEALTHY


async def test_bad_credentials_fail_only_their_cluster(
    world_config: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    snapshot = await _one_refresh(
        _with_cluster(world_config, "staging", endpoint_url=None, profile="nobody")
    )
    assert snapshot.cluster("staging").error == "cluster staging: AWS profile 'nobody' not found"
    assert snapshot.cluster("qaprod1").error is None
    env = snapshot.env("checkout-api", "qaprod1")
    assert env is not None and env.health == Health.HEALTHY


async def test_missing_load_balancer_is_reported_on_its_cell(world_config: Config) -> None:
    projects = tuple(
        dataclasses.replace(
            p,
            clusters={
                **p.clusters,
                "staging": ProjectClusterConfig(target_groups=("checkout-api-gone",)),
            },
        )
        if p.name == "checkout-api"
        else p
        for p in world_config.projects
    )
    snapshot = await _one_refresh(dataclasses.replace(world_config, projects=projects))
    env = snapshot.env("checkout-api", "staging")
    assert env is not None
    assert env.error == "target group checkout-api-gone not found"
    assert env.health == Health.DOWN  # its instance is in no load balancer that exists
    assert env.instances[0].targets[0].state == "unknown"


async def test_world_stopped_mid_run_keeps_last_good_data_with_its_age(
    world: World, world_config: Config
) -> None:
    second = World(world.config, port=0)
    endpoint = second.start(seed=False)  # same fleet (moto state is per process), own port
    clusters = tuple(dataclasses.replace(c, endpoint_url=endpoint) for c in world_config.clusters)
    moments = iter(
        [datetime(2026, 11, 26, 12, 0, tzinfo=UTC), datetime(2026, 11, 26, 12, 0, 45, tzinfo=UTC)]
    )
    fleet = Fleet(dataclasses.replace(world_config, clusters=clusters), clock=lambda: next(moments))
    try:
        before = await fleet.refresh()
        second.stop()
        after = await fleet.refresh()
    finally:
        second.stop()
        fleet.close()
    assert all(c.error is None for c in before.clusters)
    assert all(c.error and "cannot reach" in c.error for c in after.clusters)
    env = after.env("storefront", "prod1")
    assert env is not None
    assert env.health == Health.UNKNOWN
    assert env.versions == ("2.14.1",) and env.total_count == 3  # last good data stays
    assert env.age_seconds(after.generated_at) == pytest.approx(45.0)
    assert after.cluster("prod1").fetched_at == before.generated_at


async def test_load_balancer_settings_come_from_aws(world_config: Config) -> None:
    fleet = Fleet(world_config)
    try:
        settings = await fleet.load_balancer_settings("partner-gateway", "prod1")
        staging = await fleet.load_balancer_settings("storefront", "staging")
    finally:
        fleet.close()
    by_name = {s.name: s for s in settings}
    classic = by_name["partner-gateway-legacy"]
    assert classic.kind == LoadBalancerKind.CLASSIC
    assert (classic.interval_seconds, classic.healthy_threshold) == (5, 2)
    assert classic.deregistration_delay_seconds == 5
    group = by_name["partner-gateway-prod1"]
    assert (group.interval_seconds, group.healthy_threshold, group.unhealthy_threshold) == (
        5,
        2,
        2,
    )
    assert group.time_to_healthy_seconds == 15
    assert staging[0].deregistration_delay_seconds == 5  # read from AWS (its default: 300)


def test_snapshot_age_is_measured_from_fetch(world_config: Config) -> None:
    from console.model import EnvStatus

    moment = datetime(2026, 1, 1, tzinfo=UTC)
    env = EnvStatus("p", "c", Health.HEALTHY, fetched_at=moment)
    assert env.age_seconds(moment + timedelta(seconds=12)) == 12


async def test_throttling_is_retried_then_reported_on_its_cluster_only(
    world_config: Config,
) -> None:
    from console.world import moto_patches as world_moto

    seen: list[str] = []
    fleet = Fleet(world_config, on_call=seen.append)
    try:
        # Two throttled answers: botocore's standard retry mode absorbs them.
        world_moto.throttle("DescribeTargetHealth", times=2)
        retried = await fleet.refresh()
        assert all(c.error is None for c in retried.clusters)
        assert all(env.health != Health.UNKNOWN for env in retried.envs.values())
        # Throttled for good: after the retries the cells say so; nothing else breaks.
        world_moto.throttle("DescribeInstanceHealth")
        throttled = await fleet.refresh()
    finally:
        world_moto.unthrottle("DescribeTargetHealth")
        world_moto.unthrottle("DescribeInstanceHealth")
        fleet.close()
    admin = throttled.env("admin-portal", "prod1")  # behind a classic ELB
    assert admin is not None and admin.health == Health.UNKNOWN
    assert admin.error is not None and "Throttling: Rate exceeded" in admin.error
    storefront = throttled.env("storefront", "prod1")  # behind a target group
    assert storefront is not None and storefront.health == Health.HEALTHY
    assert all(c.error is None for c in throttled.clusters)


async def test_throttled_inventory_marks_the_clusters_unknown(world_config: Config) -> None:
    from console.world import moto_patches as world_moto

    world_moto.throttle("DescribeInstances")
    try:
        snapshot = await _one_refresh(world_config)
    finally:
        world_moto.unthrottle("DescribeInstances")
    assert all(
        c.error is not None and c.error.startswith("RequestLimitExceeded")
        for c in snapshot.clusters
    )


async def test_the_refresh_can_run_in_a_worker_process(world_config: Config) -> None:
    from console.fleet.process import WORKER_NICENESS, ProcessFleet

    in_process = Fleet(world_config)
    isolated = ProcessFleet(world_config)
    try:
        expected = await in_process.refresh()
        first, second = await asyncio.gather(isolated.refresh(), isolated.refresh())
        settings = await isolated.load_balancer_settings("media-service", "prod1")
        # The refresh is background work: its process gives way to the UI's key presses.
        worker_niceness = await asyncio.wrap_future(isolated._pool.submit(os.nice, 0))
    finally:
        in_process.close()
        isolated.close()
    assert first is second  # concurrent callers share one refresh
    assert first.envs.keys() == expected.envs.keys()
    for key, env in expected.envs.items():
        assert first.envs[key].instances == env.instances, key
        assert first.envs[key].health == env.health, key
    assert [s.name for s in settings] == ["media-service-prod1"]
    assert settings[0].deregistration_delay_seconds == 5
    assert worker_niceness == min(19, os.nice(0) + WORKER_NICENESS)


async def test_settings_after_a_refresh_ask_only_for_the_attributes(world_config: Config) -> None:
    seen: list[str] = []
    fleet = Fleet(world_config, on_call=seen.append)
    try:
        await fleet.refresh()
        seen.clear()
        settings = await fleet.load_balancer_settings("partner-gateway", "prod1")
    finally:
        fleet.close()
    assert sorted(seen) == ["DescribeLoadBalancerAttributes", "DescribeTargetGroupAttributes"]
    assert {s.name: s.healthy_threshold for s in settings} == {
        "partner-gateway-legacy": 2,
        "partner-gateway-prod1": 2,
    }


CAPTURED_STDERR_SCRIPT = """
import asyncio, io, sys
from pathlib import Path
from typing import Any
from console.config import load_config
from console.fleet.process import ProcessFleet

class Captured(io.StringIO):
    def fileno(self):  # Textual's stderr capture has no descriptor
        return -1

sys.stderr = Captured()
fleet = ProcessFleet(load_config(Path(sys.argv[1])))
try:
    snapshot = asyncio.run(fleet.refresh())
except BaseException as error:
    print(type(error).__name__, error)
    raise SystemExit(1) from None
finally:
    fleet.close()
print(len(snapshot.envs))
"""


def test_the_worker_process_starts_from_inside_the_app(world_config_path: Path) -> None:
    # The console makes its fleet worker while Textual has replaced sys.stderr (the poller
    # lease is taken from the app): multiprocessing must not hand the worker fd -1.
    result = subprocess.run(
        [sys.executable, "-c", CAPTURED_STDERR_SCRIPT, str(world_config_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:]
    assert int(result.stdout.strip()) > 0


KILLED_CONSOLE_SCRIPT = """
import asyncio, sys, time
from pathlib import Path
from typing import Any
from console.config import load_config
from console.fleet.process import ProcessFleet

fleet = ProcessFleet(load_config(Path(sys.argv[1])))
asyncio.run(fleet.refresh())
print(*fleet._pool._processes, flush=True)
time.sleep(120)
"""


def test_a_killed_consoles_fleet_worker_ends_too(world_config_path: Path) -> None:
    console = subprocess.Popen(
        [sys.executable, "-c", KILLED_CONSOLE_SCRIPT, str(world_config_path)],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert console.stdout is not None
        (worker,) = [int(pid) for pid in console.stdout.readline().split()]
        assert Path(f"/proc/{worker}").exists()
    finally:
        console.kill()  # SIGKILL: the console cannot stop its worker
        console.wait()
    deadline = time.monotonic() + 30
    while Path(f"/proc/{worker}").exists() and _state(worker) != "Z":
        assert time.monotonic() < deadline, "the fleet worker outlived its console"
        time.sleep(0.1)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"
