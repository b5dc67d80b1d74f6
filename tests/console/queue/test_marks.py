"""What a dashboard cell says of a pair's deploys and holds, decided from one queue view."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from console.model import DeployState
from console.queue.marks import LastDeploy, Mark, last_deploys, pair_marks
from console.queue.rules import QueueView
from console.store import DeployRecord, Freeze, ManualLock

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
PAIRS = [
    (project, cluster)
    for project in ("storefront", "checkout-api", "search-api")
    for cluster in ("staging", "prod1")
]


def deploy(id: str, project: str, cluster: str, state: DeployState, **more: object) -> DeployRecord:
    return DeployRecord(  # type: ignore[arg-type]
        id=id,
        project=project,
        cluster=cluster,
        release="2.16.0",
        actor="alice",
        state=state.value,
        **more,
    )


def view(
    *deploys: DeployRecord, freezes: tuple[Freeze, ...] = (), locks: tuple[ManualLock, ...] = ()
) -> QueueView:
    return QueueView(deploys, (), locks, freezes, {}, NOW, 4)


def lock(
    project: str | None, cluster: str | None, *, warning: bool = False, expired: bool = False
) -> ManualLock:
    expires = NOW - timedelta(minutes=1) if expired else None
    return ManualLock(1, project, cluster, "dave", "AMI rebuild", warning, NOW, expires)


def test_each_state_has_its_mark_and_a_line_that_says_why() -> None:
    marks = pair_marks(
        view(
            deploy("d-run", "storefront", "staging", DeployState.RUNNING),
            deploy("d-wait", "checkout-api", "staging", DeployState.QUEUED),
            freezes=(Freeze("prod1", "erin", "sale weekend", NOW),),
            locks=(lock("search-api", None),),
        ),
        [
            deploy("d-bad", "storefront", "prod1", DeployState.FAILED, reason="health gate"),
            deploy("d-back", "checkout-api", "prod1", DeployState.ROLLED_BACK),
        ],
        PAIRS,
    )
    shown = {pair: (mark.mark, mark.words) for pair, mark in marks.items()}
    assert shown == {
        ("storefront", "staging"): (Mark.DEPLOYING, "deploying 2.16.0"),
        ("checkout-api", "staging"): (Mark.QUEUED, "queued 2.16.0"),
        # A freeze covers the cluster: it hides the failed deploys under it.
        ("storefront", "prod1"): (Mark.FROZEN, "frozen"),
        ("checkout-api", "prod1"): (Mark.FROZEN, "frozen"),
        ("search-api", "prod1"): (Mark.FROZEN, "frozen"),
        ("search-api", "staging"): (Mark.LOCKED, "locked"),
    }
    assert "erin" in marks[("storefront", "prod1")].why
    assert "sale weekend" in marks[("storefront", "prod1")].why
    assert "d-wait" in marks[("checkout-api", "staging")].why
    assert "starts next" in marks[("checkout-api", "staging")].why


def test_the_last_deploy_failed_or_rolled_back_until_a_later_one_succeeds() -> None:
    finished = [  # newest first
        deploy("d-4", "storefront", "prod1", DeployState.FAILED, reason="health gate: 0/3"),
        deploy("d-3", "checkout-api", "prod1", DeployState.SUCCEEDED),
        deploy("d-2", "checkout-api", "prod1", DeployState.ROLLED_BACK),
        deploy("d-1", "search-api", "prod1", DeployState.ROLLED_BACK),
        deploy("d-0", "search-api", "staging", DeployState.CANCELLED),
    ]
    marks = pair_marks(view(), finished, PAIRS)
    marked = {pair for pair, mark in marks.items() if mark.mark is not None}
    assert marked == {("storefront", "prod1"), ("search-api", "prod1")}
    failed = marks[("storefront", "prod1")]
    assert (failed.mark, failed.words) == (Mark.FAILED, "failed 2.16.0")
    assert "d-4" in failed.why and "health gate: 0/3" in failed.why
    assert marks[("search-api", "prod1")].mark is Mark.ROLLED_BACK


def test_a_warning_lock_or_an_expired_one_marks_nothing() -> None:
    locks = (lock(None, "staging", warning=True), lock("storefront", None, expired=True))
    assert pair_marks(view(locks=locks), [], PAIRS) == {}


def test_a_running_deploy_wins_over_a_queued_one_and_over_a_freeze() -> None:
    marks = pair_marks(
        view(
            deploy("d-q", "storefront", "prod1", DeployState.QUEUED),
            deploy("d-r", "storefront", "prod1", DeployState.RUNNING),
            freezes=(Freeze("prod1", "erin", "sale", NOW),),
        ),
        [],
        [("storefront", "prod1")],
    )
    assert marks[("storefront", "prod1")].mark is Mark.DEPLOYING
    assert "d-r" in marks[("storefront", "prod1")].why


def test_every_pair_deployed_to_knows_its_last_deploy_who_when_and_how_it_ended() -> None:
    ended = NOW - timedelta(hours=3)
    finished = [  # newest first
        deploy(
            "d-2",
            "storefront",
            "prod1",
            DeployState.SUCCEEDED,
            created_at=ended - timedelta(minutes=9),
            started_at=ended - timedelta(minutes=8),
            finished_at=ended,
        ),
        deploy("d-1", "storefront", "prod1", DeployState.FAILED, finished_at=ended),
        deploy("d-0", "checkout-api", "staging", DeployState.CANCELLED, created_at=ended),
    ]
    marks = pair_marks(
        view(freezes=(Freeze("staging", "erin", "sale weekend", NOW),)), finished, PAIRS
    )
    succeeded = marks[("storefront", "prod1")]
    assert succeeded.mark is None and succeeded.words == ""
    assert succeeded.last == LastDeploy("d-2", "2.16.0", "alice", DeployState.SUCCEEDED, ended, "")
    # A mark keeps the pair's last deploy beside it; a cancelled deploy ended too.
    frozen = marks[("checkout-api", "staging")]
    assert frozen.mark is Mark.FROZEN
    assert frozen.last is not None and frozen.last.outcome == "cancelled"
    assert frozen.last.at == ended  # asked for then, never started
    assert ("search-api", "prod1") not in marks  # never deployed, nothing held


def test_last_deploys_takes_each_pairs_newest_and_words_its_outcome() -> None:
    finished = [
        deploy("d-2", "storefront", "prod1", DeployState.ROLLED_BACK, reason="traffic guard"),
        deploy("d-1", "storefront", "prod1", DeployState.SUCCEEDED),
    ]
    last = last_deploys(finished)
    assert list(last) == [("storefront", "prod1")]
    assert last[("storefront", "prod1")].id == "d-2"
    assert last[("storefront", "prod1")].outcome == "rolled back"
    assert last[("storefront", "prod1")].reason == "traffic guard"
