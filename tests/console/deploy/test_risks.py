"""Release warnings: what a person is told before deploying a release, from the fleet and the
store alone (no AWS)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from console.deploy.risks import (
    RECENT_DAYS,
    RiskKind,
    release_warnings,
    short_reason,
    warnings_text,
)
from console.model import Release
from console.store import DeployRecord

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
RELEASES = [
    Release(version, f"ami-{index:017d}", NOW - timedelta(days=index + 1))
    for index, version in enumerate(["2.16.0", "2.15.0", "2.14.1", "2.14.0"])
]
BY_VERSION = {release.version: release for release in RELEASES}


def record(
    deploy_id: str,
    cluster: str,
    version: str,
    state: str,
    *,
    days_ago: float = 1.0,
    reason: str = "",
    rollback_of: str | None = None,
    previous: str | None = None,
) -> DeployRecord:
    finished = NOW - timedelta(days=days_ago)
    return DeployRecord(
        id=deploy_id,
        project="storefront",
        cluster=cluster,
        release=version,
        actor="alice",
        image_id=BY_VERSION[version].image_id,
        state=state,
        created_at=finished - timedelta(minutes=5),
        finished_at=finished,
        reason=reason,
        rollback_of=rollback_of,
        previous_release=previous,
    )


def texts(version: str, running: tuple[str, ...], recent: list[DeployRecord]) -> list[str]:
    found = release_warnings(BY_VERSION[version], "staging", running, RELEASES, recent, NOW)
    return [warning.text for warning in found]


def test_a_newer_release_with_a_clean_past_has_no_warning() -> None:
    ok = record("d-1", "qaprod1", "2.16.0", "succeeded")
    assert texts("2.16.0", ("2.15.0",), [ok]) == []


def test_the_release_already_running_warns_and_says_if_others_run_beside_it() -> None:
    assert texts("2.15.0", ("2.15.0",), []) == [
        "already runs in staging (a redeploy: new instances)"
    ]
    assert texts("2.15.0", ("2.14.1", "2.15.0"), []) == ["already runs in staging (beside 2.14.1)"]


def test_an_older_release_than_the_newest_running_is_a_downgrade() -> None:
    assert texts("2.14.0", ("2.14.1", "2.15.0"), []) == ["is older than 2.15.0 (a downgrade)"]
    # Running versions the release list does not know (a deleted AMI) are left out.
    assert texts("2.14.0", ("?", "0.1"), []) == []


def test_a_failed_or_rolled_back_deploy_anywhere_within_the_window_warns() -> None:
    failed = record(
        "d-1", "qaprod1", "2.16.0", "failed", days_ago=2, reason="configure: exit 3; kept"
    )
    rolled = record(
        "d-2", "prod1", "2.16.0", "rolled_back", days_ago=1, reason="health gate: 0/3 healthy"
    )
    old = record("d-3", "prod2", "2.16.0", "failed", days_ago=RECENT_DAYS + 1)
    assert texts("2.16.0", ("2.15.0",), [failed, rolled, old]) == [
        "was rolled back in prod1 on 2026-11-25 12:00 (health gate: 0/3 healthy)",
        "failed in qaprod1 on 2026-11-24 12:00 (configure: exit 3)",
    ]


def test_a_later_success_in_the_same_cluster_clears_a_failure_and_others_never_warn() -> None:
    failed = record("d-1", "qaprod1", "2.16.0", "failed", days_ago=3, reason="timeout")
    fixed = record("d-2", "qaprod1", "2.16.0", "succeeded", days_ago=2)
    cancelled = record("d-3", "prod1", "2.16.0", "cancelled", reason="cancelled by bob")
    interrupted = record("d-4", "prod2", "2.16.0", "interrupted")
    other = record("d-5", "prod1", "2.15.0", "failed")
    assert texts("2.16.0", ("2.15.0",), [failed, fixed, cancelled, interrupted, other]) == []


def test_a_release_put_back_by_a_rollback_warns_with_who_did_it() -> None:
    deployed = record("d-1", "prod1", "2.16.0", "succeeded", days_ago=2)
    back = record(
        "d-2", "prod1", "2.15.0", "succeeded", rollback_of="d-1", previous="2.16.0", days_ago=1
    )
    [warning] = release_warnings(
        BY_VERSION["2.16.0"], "staging", ("2.15.0",), RELEASES, [deployed, back], NOW
    )
    assert warning.kind is RiskKind.ROLLED_BACK
    assert (warning.text, warning.deploy_id) == (
        "was rolled back in prod1 on 2026-11-25 12:00 (by alice)",
        "d-2",
    )
    # The release it put back is not the one to warn about.
    assert texts("2.15.0", ("2.16.0",), [deployed, back]) == ["is older than 2.16.0 (a downgrade)"]


def test_every_kind_at_once_and_the_lines_for_a_terminal() -> None:
    failed = record("d-1", "qaprod1", "2.14.1", "failed", reason="x" * 60)
    found = release_warnings(
        BY_VERSION["2.14.1"], "staging", ("2.14.1", "2.15.0"), RELEASES, [failed], NOW
    )
    assert [w.kind for w in found] == [RiskKind.RUNNING, RiskKind.DOWNGRADE, RiskKind.FAILED]
    lines = warnings_text(BY_VERSION["2.14.1"], found)
    assert (
        lines[0]
        == f"WARNING: release 2.14.1 ({BY_VERSION['2.14.1'].image_id}): 3 warnings (times in UTC)"
    )
    assert lines[1:] == [
        "  ! already runs in staging (beside 2.15.0)",
        "  ! is older than 2.15.0 (a downgrade)",
        f"  ! failed in qaprod1 on 2026-11-25 12:00 ({'x' * 31}…)",
    ]
    assert warnings_text(BY_VERSION["2.16.0"], []) == []
    assert short_reason("") == "no reason given"
