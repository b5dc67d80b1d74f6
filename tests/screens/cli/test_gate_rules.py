"""The gates' reading of the queue, pure: why a new deploy would wait, what holds a pair."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from console.model import DeployRequest
from console.queue.rules import QueueView
from console.store import DeployRecord, Freeze, LockInfo, ManualLock
from screens.cli.gate import pair_holds, why_waiting

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
MINE = DeployRequest("storefront", "staging", "2.15.0", "ci")


def view(
    *deploys: DeployRecord,
    locks: tuple[LockInfo, ...] = (),
    manual: tuple[ManualLock, ...] = (),
    freezes: tuple[Freeze, ...] = (),
    parallel: int = 4,
) -> QueueView:
    return QueueView(deploys, locks, manual, freezes, {}, NOW, parallel)


def queued(deploy_id: str, project: str = "storefront", cluster: str = "staging") -> DeployRecord:
    return DeployRecord.new(deploy_id, DeployRequest(project, cluster, "2.14.1", "alice"), NOW)


def lock(owner: str, *, warning: bool = False, expires: datetime | None = None) -> ManualLock:
    return ManualLock(1, "storefront", None, owner, "db migration", warning, NOW, expires)


def test_an_idle_pair_is_not_blocked() -> None:
    assert why_waiting(view(), MINE, newest_wins=False) == ""
    assert pair_holds(view(), "storefront", "staging", "ci") == []


def test_another_pairs_deploys_and_the_global_limit_do_not_block() -> None:
    others = [queued(f"d-{n}", "checkout-api") for n in range(3)]
    running = [DeployRecord.new(f"r-{n}", MINE, NOW, running=True) for n in range(2)]
    busy = view(*others, parallel=1)
    assert why_waiting(busy, MINE, newest_wins=False) == ""
    assert pair_holds(busy, "storefront", "staging", "ci") == []
    assert pair_holds(view(*running), "storefront", "staging", "ci") == [
        "deploy r-0 running",
        "deploy r-1 running",
    ]


def test_a_deploy_of_the_pair_blocks_unless_the_newest_wins() -> None:
    ahead = view(queued("d-1"))
    assert why_waiting(ahead, MINE, newest_wins=False) == (
        "behind d-1 (queued) on storefront in staging"
    )
    assert why_waiting(ahead, MINE, newest_wins=True) == ""  # d-1 would be superseded
    held = view(locks=(LockInfo("storefront", "staging", "d-0", "bob", NOW, NOW),))
    assert why_waiting(held, MINE, newest_wins=True) == (
        "behind d-0 (running) on storefront in staging"
    )
    assert pair_holds(held, "storefront", "staging", "ci") == ["deploy d-0 running"]


def test_freezes_and_locks_block_but_not_a_warning_or_ones_own() -> None:
    frozen = view(freezes=(Freeze("staging", "dave", "sale", NOW),))
    assert why_waiting(frozen, MINE, newest_wins=False).startswith("staging frozen by dave")
    assert pair_holds(frozen, "storefront", "staging", "ci") == ["frozen by dave: sale"]
    assert pair_holds(frozen, "storefront", "prod1", "ci") == []
    locked = view(manual=(lock("dave"),))
    assert why_waiting(locked, MINE, newest_wins=False).startswith("locked on project storefront")
    assert len(pair_holds(locked, "storefront", "staging", "ci")) == 1
    for harmless in (lock("dave", warning=True), lock("ci"), lock("dave", expires=NOW)):
        assert why_waiting(view(manual=(harmless,)), MINE, newest_wins=False) == ""
        assert pair_holds(view(manual=(harmless,)), "storefront", "staging", "ci") == []
    later = NOW + timedelta(hours=1)
    assert pair_holds(view(manual=(lock("dave", expires=later),)), "storefront", "staging", "ci")
