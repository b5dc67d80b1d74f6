"""The fleet's read clients run on service models cut to their calls (cached on disk): they
read the same facts as clients on the full models, and every other call still works."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from console.aws import models
from console.config import Config
from console.fleet.inventory import Fleet


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty model cache and a loader of its own (nothing parsed yet in this process)."""
    monkeypatch.setenv(models.CACHE_ENV, str(tmp_path))
    monkeypatch.setattr(models, "_LOADER", None)
    yield tmp_path


def facts(answer: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in answer.items() if key != "ResponseMetadata"}


async def test_read_clients_read_what_full_clients_read(world_config: Config, cache: Path) -> None:
    fleet = Fleet(world_config)
    try:
        snapshot = await fleet.refresh()
        assert not any(cluster.error for cluster in snapshot.clusters)
        gateway = fleet.gateway("prod1")
        assert gateway.ec2.meta.service_model.operation_names == ["DescribeInstances"]
        cached = sorted(path.name.split(".")[0] for path in cache.glob("botocore-*/*.json"))
        assert cached == ["ec2"] * 3 + ["elb"] * 3 + ["elbv2"] * 3 + ["route53"] * 3

        # Outside `reading()`, a client on the full model: the same answer to the same call.
        full = gateway._session.create_client("ec2", **gateway._client_kwargs)
        assert len(full.meta.service_model.operation_names) > 100
        cut_answer = gateway.ec2.describe_instances()
        assert facts(full.describe_instances()) == facts(cut_answer)
        assert cut_answer["Reservations"][0]["Instances"][0]["Tags"]

        # A call the cut model lacks goes to a client on the full model, made on first use.
        regions = await gateway.call("ec2", "describe_regions")
        assert any(region["RegionName"] == "us-east-1" for region in regions["Regions"])
        groups = await gateway.call("elbv2", "describe_target_groups")
        assert groups["TargetGroups"]
    finally:
        fleet.close()


async def test_a_second_process_reads_the_cut_models_from_the_cache(
    world_config: Config, cache: Path
) -> None:
    first = Fleet(world_config)
    try:
        await first.refresh()
    finally:
        first.close()
    written = {path: path.stat().st_mtime_ns for path in cache.glob("botocore-*/*.json")}
    models._LOADER = None  # as a new process: nothing parsed in memory
    second = Fleet(world_config)
    try:
        snapshot = await second.refresh()
    finally:
        second.close()
    assert not any(cluster.error for cluster in snapshot.clusters)
    assert {path: path.stat().st_mtime_ns for path in cache.glob("botocore-*/*.json")} == written


async def test_an_unwritable_cache_costs_only_time(
    world_config: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    monkeypatch.setenv(models.CACHE_ENV, str(blocked / "cache"))
    monkeypatch.setattr(models, "_LOADER", None)
    fleet = Fleet(world_config)
    try:
        snapshot = await fleet.refresh()
    finally:
        fleet.close()
    assert not any(cluster.error for cluster in snapshot.clusters)
    assert any(env.instances for env in snapshot.envs.values())
