"""`deploy-console history`: the deploys a store recorded, read by the real command."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from console.store import DEPLOY_STATES, DeployRecord, Store
from screens.cli.history import STATES
from tests.conftest import DEMO_CONFIG, ROOT

START = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=2)
        return self.now


async def _record(path: Path) -> None:
    async with await Store.open(path, clock=Clock()) as store:
        deploys = [
            ("d-1", "storefront", "staging", "2.15.0", "alice", "succeeded", ""),
            ("d-2", "storefront", "qaprod1", "2.16.0", "bob", "rolled_back", "health failed"),
            ("d-3", "checkout-api", "staging", "5.2.3", "alice", "succeeded", ""),
        ]
        for deploy_id, project, cluster, release, actor, state, reason in deploys:
            await store.create_deploy(
                DeployRecord(
                    id=deploy_id, project=project, cluster=cluster, release=release, actor=actor
                )
            )
            await store.set_deploy_state(
                deploy_id, "running", image_id=f"ami-{deploy_id}", previous_release="1.0.0"
            )
            for step in ("lock", "resolve", "launch"):
                await store.step_started(deploy_id, step)
                await store.step_finished(deploy_id, step, "succeeded", detail=f"{step} done")
            await store.set_deploy_state(deploy_id, state, reason=reason)


@pytest.fixture
def store(tmp_path: Path) -> Path:
    path = tmp_path / "store.db"
    asyncio.run(_record(path))
    return path


def history(*args: str, store: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "screens.main", "history", *args,
         "--config", str(DEMO_CONFIG), "--store", str(store)],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_the_states_offered_are_the_stores() -> None:
    assert set(STATES) == DEPLOY_STATES


def test_history_lists_the_latest_deploys_newest_first(store: Path) -> None:
    result = history("--json", store=store)
    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)
    assert listed["schema"] == "deploy-console.history/1"
    deploys = listed["deploys"]
    assert [d["id"] for d in deploys] == ["d-3", "d-2", "d-1"]
    second = deploys[1]
    assert (second["project"], second["cluster"], second["release"]) == (
        "storefront",
        "qaprod1",
        "2.16.0",
    )
    assert (second["actor"], second["state"], second["reason"]) == (
        "bob",
        "rolled_back",
        "health failed",
    )
    assert second["previous_release"] == "1.0.0" and second["image_id"] == "ami-d-2"
    assert second["seconds"] is not None and second["seconds"] > 0

    table = history(store=store)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split()[:2] == ["deploy", "pair"]
    assert lines[1].startswith("d-3") and "checkout-api → staging" in lines[1]
    # The text says each state as every screen does; JSON keeps the value (above).
    assert "1.0.0 → 2.16.0" in lines[2] and "  rolled back  " in lines[2]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (["--project", "storefront"], ["d-2", "d-1"]),
        (["--cluster", "staging"], ["d-3", "d-1"]),
        (["--actor", "alice"], ["d-3", "d-1"]),
        (["--state", "rolled_back"], ["d-2"]),
        (["--limit", "1"], ["d-3"]),
        (["--project", "admin-portal"], []),
    ],
)
def test_filters_narrow_the_list(store: Path, filters: list[str], expected: list[str]) -> None:
    result = history("--json", *filters, store=store)
    assert result.returncode == 0, result.stderr
    assert [d["id"] for d in json.loads(result.stdout)["deploys"]] == expected


def test_one_deploy_shows_its_steps_and_timings(store: Path) -> None:
    result = history("d-2", "--json", store=store)
    assert result.returncode == 0, result.stderr
    deploy = json.loads(result.stdout)
    assert deploy["schema"] == "deploy-console.history-deploy/1"
    assert deploy["id"] == "d-2" and deploy["state"] == "rolled_back"
    assert [(s["step"], s["state"], s["detail"]) for s in deploy["steps"]] == [
        ("lock", "succeeded", "lock done"),
        ("resolve", "succeeded", "resolve done"),
        ("launch", "succeeded", "launch done"),
    ]
    assert all(s["seconds"] == pytest.approx(2.0) for s in deploy["steps"])

    text = history("d-2", store=store)
    assert text.returncode == 0, text.stderr
    assert text.stdout.splitlines()[0].startswith(
        "deploy d-2: storefront → qaprod1, 1.0.0 → 2.16.0"
    )
    assert "health failed" in text.stdout
    assert any(line.split()[:2] == ["launch", "succeeded"] for line in text.stdout.splitlines())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["d-9"], "unknown deploy 'd-9'"),
        (["--project", "shop"], "unknown project 'shop'"),
        (["--cluster", "prod3"], "unknown cluster 'prod3'"),
        (["--limit", "0"], "--limit must be between 1 and 1000000, not 0"),
        (["--state", "done"], "invalid choice: 'done'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(store: Path, args: list[str], message: str) -> None:
    result = history(*args, store=store)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert message in result.stderr


def test_a_missing_store_is_an_error_and_is_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "store.db"
    result = history(store=missing)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"deploy-console: error: no store at {missing}: nothing was deployed with it"
    )
    assert not missing.parent.exists()


async def _record_by_doors(path: Path) -> None:
    async with await Store.open(path, clock=Clock()) as store:
        for deploy_id, actor in (
            ("d-ssh", "alice (ssh SHA256:abcDEF123 from 127.0.0.1:50412)"),
            ("d-web", "alice (web from 127.0.0.1:8000)"),
            ("d-local", "alice"),
            ("d-alicia", "alicia"),
        ):
            await store.create_deploy(
                DeployRecord(
                    id=deploy_id,
                    project="storefront",
                    cluster="staging",
                    release="2.15.0",
                    actor=actor,
                )
            )
            await store.audit("queue", actor=actor, deploy_id=deploy_id, outcome="queued")


def test_the_actor_filter_matches_the_user_whatever_door_they_came_by(tmp_path: Path) -> None:
    path = tmp_path / "doors.db"
    asyncio.run(_record_by_doors(path))
    listed = history("--actor", "alice", "--json", store=path)
    assert listed.returncode == 0, listed.stderr
    deploys = json.loads(listed.stdout)["deploys"]
    assert [d["id"] for d in deploys] == ["d-local", "d-web", "d-ssh"]
    # Each door's fields are there apart: user, door, key fingerprint, source address.
    assert deploys[2]["by"] == {
        "user": "alice", "door": "ssh", "key": "SHA256:abcDEF123", "source": "127.0.0.1:50412",
    }  # fmt: skip
    assert deploys[1]["by"] == {
        "user": "alice",
        "door": "web",
        "key": "",
        "source": "127.0.0.1:8000",
    }
    assert deploys[0]["by"]["door"] == "local"
    detail = history("d-ssh", store=path)
    assert "by alice · ssh · key SHA256:abcDEF123 · from 127.0.0.1:50412" in detail.stdout
    exported = subprocess.run(
        [sys.executable, "-m", "screens.main", "audit", "export", "--format", "jsonl",
         "--actor", "alice", "--store", str(path)],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    rows = [json.loads(line) for line in exported.stdout.splitlines()]
    assert [row["deploy_id"] for row in rows] == ["d-ssh", "d-web", "d-local"]
