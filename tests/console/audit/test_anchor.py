"""The audit anchor: [audit] in the config, the writer that never blesses a rewritten history,
its schedule, and the console running it; S3 is the session world's (moto on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from console.audit.anchor import (
    Anchor,
    AnchorOutcome,
    AnchorSchedule,
    AnchorWriter,
    S3Anchors,
    anchor_schedule,
    s3_anchors,
)
from console.aws.gateway import AwsGateway
from console.config import DEFAULT_ANCHOR_KEY, AuditSettings, Config, load_config
from console.errors import AwsError, ConsoleError
from console.store import GENESIS_HASH, Store
from console.world.server import World
from screens.app import build_app
from screens.main import run
from tests.conftest import DEMO_CONFIG, EXAMPLE_CONFIG
from tests.console.config.test_config import VALID, check
from tests.screens.cli.test_cli_audit import rewrite_chain, tamper
from tests.screens.ui import SIZE, StubFleet, synthetic_snapshot, wait_for
from tests.waiting import await_until

BUCKET = "deploy-console-audit"
AT = datetime(2026, 11, 27, 10, 15, tzinfo=UTC)
WAIT = 15.0


# -- [audit] in the config -----------------------------------------------------------------


def test_demo_and_example_configs_anchor_the_audit_chain() -> None:
    demo = load_config(DEMO_CONFIG).audit
    assert (demo.anchor_bucket, demo.anchor_cluster) == (BUCKET, "prod1")
    example = load_config(EXAMPLE_CONFIG).audit
    assert example.anchor_bucket is not None
    assert example.anchor_key == DEFAULT_ANCHOR_KEY
    text = EXAMPLE_CONFIG.read_text()
    fields = ("[audit]", "anchor_bucket", "anchor_key", "anchor_cluster", "anchor_every")
    for field in (*fields, "anchor_lock_mode", "anchor_retention_days"):
        assert field in text, field


def test_no_audit_table_anchors_nothing(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(VALID)
    assert load_config(path).audit == AuditSettings()
    path.write_text(VALID + '\n[audit]\nanchor_bucket = "b-1.x"\nanchor_cluster = "prod1"\n')
    assert load_config(path).audit == AuditSettings(
        anchor_bucket="b-1.x",
        anchor_cluster="prod1",
        anchor_every_seconds=300.0,
        anchor_lock_mode="governance",
        anchor_retention_days=365,
    )
    path.write_text(
        VALID + '\n[audit]\nanchor_bucket = "b-1.x"\nanchor_cluster = "prod1"\n'
        'anchor_lock_mode = "compliance"\nanchor_retention_days = 2555\n'
    )
    audit = load_config(path).audit
    assert (audit.anchor_lock_mode, audit.anchor_retention_days) == ("compliance", 2555)


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ('anchor_bucket = "b"', "audit.anchor_bucket: 'b' is not an S3 bucket name"),
        ('anchor_bucket = "Audit_Bucket"', "audit.anchor_bucket: 'Audit_Bucket' is not an S3"),
        ('anchor_bucket = "a..b"', "audit.anchor_bucket: 'a..b' is not an S3 bucket name"),
        ('anchor_bucket = "audit"', "audit.anchor_cluster: is required with anchor_bucket"),
        (
            'anchor_bucket = "audit"\nanchor_cluster = "prod3"',
            "audit.anchor_cluster: unknown cluster 'prod3' (known: staging, prod1)",
        ),
        ('anchor_cluster = "prod1"', "audit.anchor_cluster: needs anchor_bucket"),
        (
            'anchor_bucket = "audit"\nanchor_cluster = "prod1"\nanchor_key = "/x.json"',
            "audit.anchor_key: must be an S3 object key like",
        ),
        (
            'anchor_bucket = "audit"\nanchor_cluster = "prod1"\nanchor_every_seconds = 0',
            "audit.anchor_every_seconds: must be at least 1, not 0",
        ),
        (
            'anchor_bucket = "audit"\nanchor_cluster = "prod1"\nanchor_every_seconds = "5"',
            "audit.anchor_every_seconds: must be a number, not a string",
        ),
        (
            'anchor_bucket = "audit"\nanchor_cluster = "prod1"\nbucket = "x"',
            "audit.bucket: unknown key",
        ),
        ("anchor_bucket = 3", "audit.anchor_bucket: must be a string, not an integer"),
        (
            'anchor_bucket = "audit"\nanchor_cluster = "prod1"\nanchor_lock_mode = "legal"',
            "audit.anchor_lock_mode: choose governance or compliance, not 'legal'",
        ),
        (
            'anchor_bucket = "audit"\nanchor_cluster = "prod1"\nanchor_retention_days = 0',
            "audit.anchor_retention_days: must be at least 1, not 0",
        ),
        (
            'anchor_bucket = "audit"\nanchor_cluster = "prod1"\nanchor_retention_days = 36501',
            "audit.anchor_retention_days: must be at most 36500, not 36501",
        ),
        (
            "anchor_retention_days = 30",
            "audit.anchor_retention_days: needs anchor_bucket",
        ),
    ],
)
def test_a_bad_audit_table_is_one_line_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], table: str, expected: str
) -> None:
    code, err = check(tmp_path, f"{VALID}\n[audit]\n{table}\n", capsys)
    assert code == 2
    assert len(err.splitlines()) == 1, err
    # The file, then (for an unknown key) its line: `console.toml:20: audit.bucket: …`.
    assert re.search(rf"console\.toml(:\d+)?: {re.escape(expected)}", err), err


def test_audit_anchor_is_a_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["audit", "nonsense"]) == 2
    assert "choose from 'verify', 'anchor', 'export'" in capsys.readouterr().err


# -- the writer and its schedule -------------------------------------------------------------


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    pool = ThreadPoolExecutor(max_workers=2)
    yield pool
    pool.shutdown(wait=False, cancel_futures=True)


def anchors_for(
    config: Config, executor: ThreadPoolExecutor, key: str, bucket: str = BUCKET
) -> S3Anchors:
    settings = AuditSettings(anchor_bucket=bucket, anchor_key=key, anchor_cluster="prod1")
    anchors = s3_anchors(settings, lambda name: AwsGateway(config.cluster(name), executor))
    assert anchors is not None
    return anchors


@pytest.fixture
def key(tmp_path: Path) -> str:
    return f"tests/{tmp_path.name}/anchor.json"


@pytest.fixture
def anchors(world_config: Config, executor: ThreadPoolExecutor, key: str) -> S3Anchors:
    return anchors_for(world_config, executor, key)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with await Store.open(tmp_path / "store.db") as opened:
        await append(opened, 5)
        yield opened


async def append(store: Store, count: int) -> None:
    for n in range(count):
        await store.audit("deploy.step", actor="alice", project="storefront", reason=f"{n}")


async def head(store: Store) -> tuple[int, str]:
    [last] = await store.audit_rows(limit=1)
    return last.id, last.hash


async def test_the_latest_anchor_round_trips_through_s3(anchors: S3Anchors, world: World) -> None:
    assert await anchors.latest() is None
    assert not await anchors.has_history()
    anchor = Anchor(rows=12, head="ab" * 32, at=AT, store="/var/lib/deploy-console.db")
    now = datetime(2026, 12, 1, 9, 30, 15, 500, tzinfo=UTC)
    until = await anchors.write(anchor, now=now)
    # The world's bucket has Object Lock: the anchor is locked for the configured retention.
    assert until == datetime(2027, 12, 1, 9, 30, 15, tzinfo=UTC)
    assert await anchors.latest() == anchor
    s3 = world.client("s3", "us-east-1")
    stored = json.loads(s3.get_object(Bucket=BUCKET, Key=anchors.key)["Body"].read())
    assert stored == {
        "rows": 12,
        "head": "ab" * 32,
        "at": "2026-11-27T10:15:00.000000+00:00",
        "store": "/var/lib/deploy-console.db",
    }
    listing = s3.list_objects_v2(Bucket=BUCKET, Prefix=anchors.history_prefix)
    history_key = f"{anchors.history_prefix}20261127T101500000000Z-row12-{'ab' * 32}.json"
    assert [item["Key"] for item in listing["Contents"]] == [history_key]
    for key in (anchors.key, history_key):
        head = s3.head_object(Bucket=BUCKET, Key=key)
        assert (head["ObjectLockMode"], head["ObjectLockRetainUntilDate"]) == ("GOVERNANCE", until)
    assert anchors.history_prefix == anchors.key.removesuffix(".json") + "/history/"


async def test_check_audit_after_recomputes_only_the_rows_after_a_known_head(
    store: Store,
) -> None:
    rows = await store.audit_rows()
    whole = await store.check_audit()
    tail = await store.check_audit_after(3, rows[2].hash)
    assert (tail.rows, tail.head, tail.problem) == (5, whole.head, None)
    assert await store.check_audit_after(5, whole.head) == whole
    assert (await store.check_audit_after(0, GENESIS_HASH)) == whole
    wrong = await store.check_audit_after(3, rows[1].hash)
    assert wrong.problem is not None and wrong.problem.id == 4, wrong


async def test_the_writer_anchors_the_head_and_then_only_when_it_moved(
    store: Store, anchors: S3Anchors
) -> None:
    writer = AnchorWriter(store, anchors, clock=lambda: AT)
    first = await writer.write(only_if_moved=True)
    assert first.locked_until is not None
    assert first == AnchorOutcome(
        Anchor(5, (await head(store))[1], AT, str(store.path)), True, None, first.locked_until
    )
    assert await anchors.latest() == first.anchor
    unchanged = await writer.write(only_if_moved=True)
    assert unchanged == AnchorOutcome(first.anchor, written=False)
    await append(store, 2)
    moved = await writer.write(only_if_moved=True)
    assert moved.written and moved.anchor is not None
    assert (moved.anchor.rows, moved.anchor.head) == await head(store)
    # On demand, an unchanged head is written again (a fresh time).
    assert (await writer.write()).written


async def test_the_writer_notes_its_anchor_in_the_store_and_refuses_a_rolled_back_one(
    store: Store, anchors: S3Anchors, world: World
) -> None:
    writer = AnchorWriter(store, anchors, clock=lambda: AT)
    first = await writer.write()
    assert first.anchor is not None
    note = await store.anchor_record(anchors.location)
    assert note is not None and (note.rows, note.head, note.anchored_at) == (
        5,
        first.anchor.head,
        AT,
    )
    # A store anchored before it kept the note gets it on the next round.
    await asyncio.to_thread(tamper, store.path, "DELETE FROM audit_anchors")
    assert await store.anchor_record(anchors.location) is None
    assert not (await writer.write(only_if_moved=True)).written
    assert await store.anchor_record(anchors.location) == note
    # An older anchor put over the newest: the writer does not anchor on top of it.
    await append(store, 2)
    assert (await writer.write()).written
    s3 = world.client("s3", "us-east-1")
    s3.put_object(Bucket=BUCKET, Key=anchors.key, Body=first.anchor.to_json())
    await append(store, 1)
    refused = await writer.write(only_if_moved=True)
    assert not refused.written and refused.problem is not None
    assert refused.problem.endswith(
        "older than row 7 that this store anchored there on "
        f"{AT:%Y-%m-%d %H:%M:%S} UTC: an older anchor was put over "
        "the newest"
    ), refused.problem


async def test_the_writer_never_blesses_a_rewritten_history(
    store: Store, anchors: S3Anchors
) -> None:
    writer = AnchorWriter(store, anchors)
    first = await writer.write()
    assert first.written and first.anchor is not None
    await asyncio.to_thread(
        rewrite_chain, store.path, "UPDATE audit SET actor = 'mallory' WHERE id = 2"
    )
    await append(store, 1)
    refused = await writer.write(only_if_moved=True)
    assert not refused.written
    assert refused.problem is not None
    assert refused.problem.startswith("row 5 does not match the anchor written "), refused
    assert await anchors.latest() == first.anchor


async def test_the_writer_recomputes_only_the_rows_since_the_latest_anchor(
    store: Store, anchors: S3Anchors
) -> None:
    """A million-row store is anchored in the time its new rows take; a change to a row the
    anchor already covers is verify's to find (the anchor holds that row's chain)."""
    writer = AnchorWriter(store, anchors)
    assert (await writer.write()).written
    await asyncio.to_thread(tamper, store.path, "UPDATE audit SET actor = 'mallory' WHERE id = 2")
    await append(store, 1)
    again = await writer.write(only_if_moved=True)
    assert again.written and again.anchor is not None and again.anchor.rows == 6
    check = await store.check_audit()
    assert check.problem is not None and (check.problem.id, check.problem.kind) == (2, "changed")


async def test_a_garbled_latest_anchor_is_refused(
    store: Store, anchors: S3Anchors, world: World
) -> None:
    s3 = world.client("s3", "us-east-1")
    for body in (b"[]", b'{"rows": 0, "head": "x", "at": "2026-11-27T10:15:00+00:00"}'):
        s3.put_object(Bucket=BUCKET, Key=anchors.key, Body=body)
        outcome = await AnchorWriter(store, anchors).write()
        assert not outcome.written
        assert outcome.problem is not None
        assert outcome.problem.startswith(f"s3://{BUCKET}/{anchors.key} is not an audit anchor")


async def test_the_schedule_anchors_each_new_head_and_reports_every_round(
    store: Store, anchors: S3Anchors, world_config: Config
) -> None:
    reports: list[AnchorOutcome | ConsoleError] = []
    schedule = AnchorSchedule(AnchorWriter(store, anchors), every=0.05)
    task = asyncio.create_task(schedule.run(reports.append))
    try:
        await await_until(
            lambda: any(getattr(r, "written", False) for r in reports), "an anchor", WAIT
        )
        await append(store, 3)
        await await_until(
            lambda: any(
                isinstance(r, AnchorOutcome) and r.anchor is not None and r.anchor.rows == 8
                for r in reports
            ),
            "the anchor of row 8",
            WAIT,
        )
        latest = await anchors.latest()
        assert latest is not None and (latest.rows, latest.head) == await head(store)
        written = [r for r in reports if isinstance(r, AnchorOutcome) and r.written]
        assert [r.anchor.rows for r in written if r.anchor] == [5, 8]
        # Rounds with nothing new write nothing.
        count = len(reports)
        await await_until(lambda: len(reports) >= count + 2, "two more rounds", WAIT)
        assert all(not r.written for r in reports[count:] if isinstance(r, AnchorOutcome))
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_the_schedule_goes_on_when_s3_cannot_be_reached(
    store: Store, world_config: Config, executor: ThreadPoolExecutor, key: str
) -> None:
    clusters = tuple(
        replace(cluster, endpoint_url="http://127.0.0.1:9") for cluster in world_config.clusters
    )
    unreachable = replace(world_config, clusters=clusters)
    reports: list[AnchorOutcome | ConsoleError] = []
    schedule = AnchorSchedule(AnchorWriter(store, anchors_for(unreachable, executor, key)), 0.05)
    task = asyncio.create_task(schedule.run(reports.append))
    try:
        await await_until(lambda: len(reports) >= 2, "two rounds", WAIT)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert all(isinstance(r, AwsError) for r in reports)
    assert str(reports[0]).startswith(
        f"audit anchor s3://{BUCKET}/{key}: cannot reach http://127.0.0.1:9/"
    )


def make_gateway(config: Config, executor: ThreadPoolExecutor) -> Callable[[str], AwsGateway]:
    return lambda name: AwsGateway(config.cluster(name), executor)


async def test_no_schedule_without_an_anchor(
    store: Store, world_config: Config, executor: ThreadPoolExecutor
) -> None:
    gateway = make_gateway(world_config, executor)
    assert anchor_schedule(AuditSettings(), store, gateway) is None
    assert s3_anchors(AuditSettings(), gateway) is None


# -- the console runs the schedule -----------------------------------------------------------


async def test_the_console_anchors_on_its_schedule_and_says_when_it_is_refused(
    store: Store, world_config: Config, executor: ThreadPoolExecutor, key: str, world: World
) -> None:
    settings = AuditSettings(
        anchor_bucket=BUCKET, anchor_key=key, anchor_cluster="prod1", anchor_every_seconds=1
    )
    config = replace(world_config, audit=settings)
    schedule = anchor_schedule(settings, store, make_gateway(config, executor))
    assert schedule is not None
    schedule.every = 0.05
    fleet = StubFleet(config, [synthetic_snapshot(config, AT, "1.0")])
    app = build_app(config, fleet, auto_refresh=False, anchor=schedule)  # type: ignore[arg-type]
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(
            pilot,
            lambda: isinstance(app.anchor_outcome, AnchorOutcome) and app.anchor_outcome.written,
            "the first anchor",
        )
        assert not app._notifications
        # Someone rewrote the store's history: the console refuses to anchor it, and says so.
        await asyncio.to_thread(
            rewrite_chain, store.path, "UPDATE audit SET actor = 'mallory' WHERE id = 1"
        )
        await append(store, 1)
        await wait_for(pilot, lambda: any(app._notifications), "a notification")
        [shown] = list(app._notifications)
        assert shown.severity == "error"
        assert str(shown.message).startswith("audit: row 5 does not match the anchor written ")
        rounds = app.anchor_rounds
        await wait_for(pilot, lambda: app.anchor_rounds >= rounds + 3, "three more rounds")
        # The same refusal, round after round, is said once.
        assert len(app._notifications) == 1
        assert isinstance(app.anchor_outcome, AnchorOutcome) and app.anchor_outcome.problem
