"""Drift on a world of its own: the demo as seeded (a fleet taken over, no deploy history: its
later stages' images never passed the stage before), `drift --baseline`, an instance launched
by hand (unmanaged), an image that skipped its stage (provenance), a count against `desired`,
`drift ack` with its reason in the audit, and a new finding told through the world's inbox."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from console.config import Config, load_config, read_toml
from console.servers.runner_service import runner_service
from console.store import Store
from tests.conftest import ROOT
from tests.deploy_world import client, demo_seed, world_process
from tests.waiting import await_until

COMMAND_TIMEOUT = 120.0
DELIVERY_TIMEOUT = 90.0


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Config]:
    workdir = tmp_path_factory.mktemp("drift-world")
    with world_process(demo_seed(workdir), workdir) as config:
        yield config


def cli(*args: str, config: Path, store: Path) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "screens.main", *args, "--config", str(config)]
    return subprocess.run(
        [*argv, "--store", str(store)], cwd=ROOT, stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=COMMAND_TIMEOUT,
    )  # fmt: skip


def findings(config: Path, store: Path) -> tuple[int, list[dict[str, Any]]]:
    result = cli("drift", "--json", config=config, store=store)
    assert result.returncode in (0, 1), result.stderr
    document = json.loads(result.stdout)
    assert document["schema"] == "deploy-console.drift/1"
    assert document["open"] == sum(1 for f in document["findings"] if f["state"] in ("new", "open"))
    return result.returncode, document["findings"]


def launch(config: Config, project: str, cluster: str, version: str, **tags: str) -> str:
    """An instance of a release launched straight through boto3, tagged as a console would
    find it (Project, Environment, Version) plus `tags`."""
    ec2 = client(config, cluster, "ec2")
    images = ec2.describe_images(
        Filters=[
            {"Name": "tag:Project", "Values": [project]},
            {"Name": "tag:Version", "Values": [version]},
        ]
    )["Images"]
    names = {"Project": project, "Environment": cluster, "Version": version, **tags}
    response = ec2.run_instances(
        ImageId=images[0]["ImageId"], MinCount=1, MaxCount=1, InstanceType="t3.small",
        TagSpecifications=[{
            "ResourceType": "instance",
            "Tags": [{"Key": key, "Value": value} for key, value in names.items()],
        }],
    )  # fmt: skip
    instance_id: str = response["Instances"][0]["InstanceId"]
    return instance_id


async def audit_rows(store: Path, action: str) -> list[Any]:
    async with await Store.open(store) as opened:
        return [row for row in await opened.audit_rows() if row.action == action]


def test_the_demo_as_seeded_is_a_fleet_taken_over(world: Config, tmp_path: Path) -> None:
    store = tmp_path / "store.db"
    code, found = findings(world.source, store)
    assert code == 1
    # Every instance carries ManagedBy=deploy-console: nothing unmanaged, no desired counts;
    # but no deploy ever passed a stage, so each later stage's image is a provenance finding.
    assert {f["kind"] for f in found} == {"provenance"}
    assert all(f["state"] == "new" for f in found)
    assert not [f for f in found if f["cluster"] == "staging"]  # the chain's first stage
    (storefront,) = [f for f in found if (f["project"], f["cluster"]) == ("storefront", "prod1")]
    assert len(storefront["instances"]) == 3
    assert (
        "2.14.1" in storefront["what"]
        and "never deployed successfully to qaprod1" in (storefront["what"])
    )
    # search-api has no qaprod1: its prod clusters answer to staging.
    search = [f for f in found if f["project"] == "search-api"]
    assert search and all("to staging" in f["what"] for f in search)

    baseline = cli("drift", "--baseline", config=world.source, store=store)
    assert baseline.returncode == 0, baseline.stderr
    assert baseline.stdout.startswith(f"baselined {len(found)} findings")
    code, again = findings(world.source, store)
    assert code == 0
    assert {f["state"] for f in again} == {"baseline"}
    (row,) = asyncio.run(audit_rows(store, "drift.baseline"))
    assert row.reason.startswith(f"{len(found)} findings taken as known")

    shown = cli("drift", config=world.source, store=store)
    assert shown.returncode == 0
    assert shown.stdout.startswith(f"{len(found)} findings: 0 to look at, {len(found)} baselined")


def test_an_instance_by_hand_an_image_that_skipped_a_stage_and_ack(
    world: Config, tmp_path: Path
) -> None:
    store = tmp_path / "store.db"
    assert cli("drift", "--baseline", config=world.source, store=store).returncode == 0
    by_hand = launch(world, "admin-portal", "staging", "3.9.0")
    # A prod1 instance on 2.15.0, tagged as the console tags, which never passed qaprod1 here.
    skipped = launch(world, "storefront", "prod1", "2.15.0", ManagedBy="deploy-console")
    code, found = findings(world.source, store)
    assert code == 1
    fresh = {f["kind"]: f for f in found if f["state"] == "new"}
    assert set(fresh) == {"unmanaged", "provenance"}
    assert fresh["unmanaged"]["instances"] == [by_hand]
    assert fresh["unmanaged"]["subject"] == by_hand
    assert "ManagedBy" in fresh["unmanaged"]["todo"]
    assert fresh["provenance"]["instances"] == [skipped]
    assert (fresh["provenance"]["project"], fresh["provenance"]["cluster"]) == (
        "storefront",
        "prod1",
    )

    for finding in fresh.values():
        acked = cli(
            "drift", "ack", finding["id"], "--reason", "ticket OPS-7: a trial",
            config=world.source, store=store,
        )  # fmt: skip
        assert acked.returncode == 0, acked.stderr
        assert acked.stdout.startswith(f"acknowledged {finding['id']}")
    code, found = findings(world.source, store)
    assert code == 0
    (mine,) = [f for f in found if f["id"] == fresh["unmanaged"]["id"]]
    assert mine["state"] == "acknowledged"
    assert mine["reason"] == "ticket OPS-7: a trial"
    rows = asyncio.run(audit_rows(store, "drift.ack"))
    assert {row.outcome for row in rows} == {f["id"] for f in fresh.values()}
    assert {row.reason for row in rows} == {
        "unmanaged: ticket OPS-7: a trial",
        "provenance: ticket OPS-7: a trial",
    }
    client(world, "staging", "ec2").terminate_instances(InstanceIds=[by_hand])
    client(world, "prod1", "ec2").terminate_instances(InstanceIds=[skipped])


def test_a_count_against_desired_and_bad_input(world: Config, tmp_path: Path) -> None:
    data = read_toml(world.source)
    for project in data["projects"]:
        if project["name"] == "storefront":
            project["clusters"]["staging"]["desired"] = 3  # it runs 1
        if project["name"] == "checkout-api":
            project["clusters"]["staging"]["desired"] = 1  # as it runs: no finding
    source = tmp_path / "desired.toml"
    source.write_text(tomli_w.dumps(data))
    store = tmp_path / "store.db"
    _, found = findings(source, store)
    (count,) = [f for f in found if f["kind"] == "count"]
    assert (count["project"], count["cluster"], count["subject"]) == (
        "storefront",
        "staging",
        "below",
    )
    assert count["what"] == "1 instance running, 3 desired (below)"
    assert "scale storefront staging 3" in count["todo"]

    unknown = cli("drift", "ack", "d-0000000000", "--reason", "x", config=source, store=store)
    assert unknown.returncode == 2
    assert unknown.stderr.startswith("deploy-console: error: no finding 'd-0000000000'")
    assert len(unknown.stderr.splitlines()) == 1
    mixed = cli("drift", "--baseline", "--json", config=source, store=store)
    assert mixed.returncode == 2 and len(mixed.stderr.splitlines()) == 1
    blank = cli("drift", "ack", count["id"], "--reason", " ", config=source, store=store)
    assert blank.returncode == 2 and "--reason" in blank.stderr


async def test_a_new_finding_is_told_through_the_inbox(world: Config, tmp_path: Path) -> None:
    data = read_toml(world.source)
    data["refresh_seconds"] = 1  # the runner's drift watch looks every 6 s
    source = tmp_path / "quick.toml"
    source.write_text(tomli_w.dumps(data))
    config, store = load_config(source), tmp_path / "store.db"
    assert cli("drift", "--baseline", config=source, store=store).returncode == 0
    async with runner_service(config, store) as service:
        by_hand = await asyncio.to_thread(launch, world, "marketing-site", "staging", "24.11.2")

        def told() -> list[dict[str, Any]]:
            result = cli("notify", "inbox", "--json", "--last", "200", config=source, store=store)
            messages: list[dict[str, Any]] = json.loads(result.stdout)["messages"]
            return [m for m in messages if by_hand in json.dumps(m["body"])]

        (message,) = await await_until(
            lambda: asyncio.to_thread(told), "the new finding in the inbox", DELIVERY_TIMEOUT, 1.0
        )
        assert not service.runner.errors
    # Everything on staging goes to team-chat, as text.
    assert message["channel"] == "team-chat"
    text = message["body"]["text"]
    assert "marketing-site / staging: drift" in text
    assert "unmanaged d-" in text and by_hand in text
    (row,) = [r for r in await audit_rows(store, "drift.found") if r.project == "marketing-site"]
    assert row.instance_ids == (by_hand,) and row.outcome == "unmanaged"
    client(world, "staging", "ec2").terminate_instances(InstanceIds=[by_hand])
