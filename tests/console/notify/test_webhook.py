"""The outbox and the webhook channel, against a loopback aiohttp receiver: each event's row
commits with its audit row; the body, its headers and idempotency key; retries after 500s and
timeouts with the same key; routing; secrets of the URL never in what is stored."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from console.config.notify import AUDIT_EVENTS, event_of
from console.notify.delivery import Notifier
from console.store import Store
from tests.console.notify.receiver import Receiver
from tests.console.notify.support import deploy_that_ends, notify_config, settle


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = await Receiver().start()
    yield server
    await server.stop()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with await Store.open(tmp_path / "store.db") as opened:
        yield opened


def hook(receiver: Receiver, name: str = "ops", path: str = "/hook", **extra: str) -> str:
    lines = [f"[notify.channels.{name}]", 'type = "webhook"', f'url = "{receiver.url}{path}"']
    lines += [f'{key} = "{value}"' for key, value in extra.items()]
    return "\n".join(lines) + "\n\n"


def route(*channels: str, clusters: str = "", events: str = "") -> str:
    lines = ["[[notify.routes]]", f"channels = {list(channels)!r}".replace("'", '"')]
    if clusters:
        lines.append(f"clusters = {clusters}")
    if events:
        lines.append(f"events = {events}")
    return "\n".join(lines) + "\n\n"


async def test_an_event_row_commits_with_its_audit_row_and_only_then(store: Store) -> None:
    await store.audit("queue.freeze", actor="alice", cluster="prod1", outcome="frozen")
    await store.audit("denied", actor="mallory", cluster="prod1", outcome="refused")
    with pytest.raises(RuntimeError):
        async with store.transaction() as tx:
            await tx.audit("queue.unfreeze", actor="alice", cluster="prod1", outcome="unfrozen")
            raise RuntimeError("the change fails: its audit row and its event go with it")
    unrouted = await store.outbox.counts()
    assert unrouted["unrouted"] == 1  # the freeze; a denial is no event; the rollback left none


async def test_a_deploys_events_are_posted_as_json_with_the_key_and_the_ticket(
    tmp_path: Path, store: Store, receiver: Receiver
) -> None:
    config = notify_config(tmp_path, hook(receiver) + route("ops"))
    record = await deploy_that_ends(store, "failed")
    notifier = Notifier(store.outbox, config.notify, holder="test")
    await settle(notifier)
    assert [r.body["event"] for r in receiver.requests] == ["queued", "started", "failed"]
    failed = receiver.requests[-1]
    assert failed.path == "/hook"
    assert failed.headers["Content-Type"] == "application/json"
    assert failed.headers["Idempotency-Key"] == failed.body["idempotency_key"]
    assert len(failed.body["idempotency_key"]) == 32
    assert failed.headers["X-Deploy-Console-Event"] == "failed"
    assert {key: failed.body[key] for key in ("project", "cluster", "deploy_id", "release")} == {
        "project": "storefront",
        "cluster": "prod1",
        "deploy_id": record.id,
        "release": "2.15.0",
    }
    assert failed.body["ticket"] == "CHG-7"
    assert failed.body["actor"] == "alice" and failed.body["outcome"] == "failed"
    assert failed.body["schema"] == "deploy-console.notification/1"
    assert f"deploy {record.id} storefront → prod1 2.15.0: failed" in failed.body["text"]
    assert "ticket CHG-7" in failed.body["text"]
    keys = {r.body["idempotency_key"] for r in receiver.requests}
    assert len(keys) == 3  # one key per event
    assert (await store.outbox.counts())["delivered"] == 3


async def test_text_format_is_a_slack_compatible_text_field(
    tmp_path: Path, store: Store, receiver: Receiver
) -> None:
    config = notify_config(tmp_path, hook(receiver, format="text") + route("ops"))
    await store.audit("queue.freeze", actor="alice", cluster="prod1", reason="incident 42")
    await settle(Notifier(store.outbox, config.notify, holder="test"))
    (request,) = receiver.requests
    assert request.body["text"] == "cluster prod1: freeze-set (by alice) — incident 42"
    assert request.headers["Idempotency-Key"] == request.body["idempotency_key"]


async def test_a_500_is_retried_with_backoff_and_the_same_key_until_it_is_taken(
    tmp_path: Path, store: Store, receiver: Receiver
) -> None:
    config = notify_config(tmp_path, hook(receiver) + route("ops", events='["lock-taken"]'))
    receiver.fail = 3
    await store.audit("lock.add", actor="alice", project="storefront", outcome="locked")
    notifier = Notifier(store.outbox, config.notify, holder="test")
    await notifier.once()
    await notifier.settle()
    (pending,) = await store.outbox.unsettled()
    assert pending.state == "pending" and pending.attempts == 1
    assert pending.last_error.startswith("HTTP 500 Internal Server Error: receiver says no")
    await settle(notifier)
    assert len(receiver.requests) == 4
    assert len({r.headers["Idempotency-Key"] for r in receiver.requests}) == 1
    assert receiver.requests[-1].body["event"] == "lock-taken"
    assert await store.outbox.unsettled() == []


async def test_a_receiver_that_never_answers_times_out_and_is_retried(
    tmp_path: Path, store: Store, receiver: Receiver
) -> None:
    config = notify_config(
        tmp_path,
        hook(receiver, timeout="0.3").replace('timeout = "0.3"', "timeout = 0.3") + route("ops"),
    )
    receiver.stall = 1.5
    await store.audit("queue.unfreeze", actor="alice", cluster="prod1", outcome="unfrozen")
    notifier = Notifier(store.outbox, config.notify, holder="test")
    await notifier.once()
    await notifier.settle()
    (pending,) = await store.outbox.unsettled()
    assert pending.last_error == "no answer within 0.3s"
    await settle(notifier)
    assert [r.body["event"] for r in receiver.delivered] == ["freeze-lifted"]


async def test_routes_send_each_cluster_and_event_where_it_belongs(
    tmp_path: Path, store: Store, receiver: Receiver
) -> None:
    channels = hook(receiver, "oncall", "/oncall") + hook(receiver, "staging", "/staging")
    routes = route("oncall", clusters='["prod1"]', events='["failed", "rolled-back"]')
    routes += route("staging", clusters='["staging"]')
    config = notify_config(tmp_path, channels + routes)
    await deploy_that_ends(store, "failed", cluster="prod1")
    await deploy_that_ends(store, "succeeded", cluster="prod1")
    await deploy_that_ends(store, "rolled_back", cluster="staging")
    await store.audit("queue.freeze", actor="alice", cluster="prod1")
    await settle(Notifier(store.outbox, config.notify, holder="test"))
    got = sorted((r.path, r.body["event"], r.body["cluster"]) for r in receiver.requests)
    assert got == [
        ("/oncall", "failed", "prod1"),
        ("/staging", "queued", "staging"),
        ("/staging", "rolled-back", "staging"),
        ("/staging", "started", "staging"),
    ]


async def test_the_urls_token_is_never_in_an_error_kept_or_logged(
    tmp_path: Path, store: Store, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    token = "/services/T0SECRET/B0SECRET/XyZzyTokenValue?sig=QuerySecret99"
    dead = f"http://127.0.0.1:9{token}"  # nothing listens on port 9
    channels = hook(receiver, "ops", token) + (
        f'[notify.channels.dead]\ntype = "webhook"\nurl = "{dead}"\n\n'
    )
    config = notify_config(tmp_path, channels + route("ops", "dead"), attempts=1)
    receiver.down = True
    await store.audit("queue.freeze", actor="alice", cluster="prod1")
    await settle(Notifier(store.outbox, config.notify, holder="test"))
    failed = await store.outbox.unsettled()
    assert {d.channel: d.state for d in failed} == {"ops": "failed", "dead": "failed"}
    errors = " ".join(d.last_error for d in failed) + caplog.text
    assert "HTTP 500" in errors and "ClientConnectorError" in errors
    for secret in ("T0SECRET", "B0SECRET", "XyZzyTokenValue", "QuerySecret99"):
        assert secret not in errors
    assert receiver.requests[0].path == token  # it was sent where the config said


async def test_every_mapped_audit_action_writes_its_event(store: Store) -> None:
    """The trigger and the one table agree, the other parts' actions (approvals, bake)
    included: their rows reach the outbox as soon as those parts write them."""
    wanted: dict[int, str] = {}
    for action, outcome, event in AUDIT_EVENTS:
        row_id = await store.audit(action, actor="alice", cluster="prod1", outcome=outcome or "x")
        wanted[row_id] = event
        assert event_of(action, outcome or "x") == event
    await store.audit("deploy.finished", actor="alice", outcome="running")  # no event
    await store.audit("deploy.step", actor="alice", outcome="failed")  # no event
    seen: dict[int, str] = {}
    await store.outbox.route(lambda e: seen.update({e.audit_id: e.event}) or [])
    assert seen == wanted
