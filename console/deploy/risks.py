"""Release warnings: already running, a downgrade, or failed or rolled back lately."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING

from console.config import Config
from console.deploy.releases import list_releases
from console.model import DeployPlan, DeployState, Release
from console.store import DeployRecord, DeployStore

if TYPE_CHECKING:
    from console.aws.gateway import AwsGateway

# How far back a failed or rolled-back deploy of a release still warns.
RECENT_DAYS = 7
RECENT_WINDOW = timedelta(days=RECENT_DAYS)
# The store's deploys read for it: a project rarely deploys this often in a week.
RECENT_LIMIT = 500
# A failure's reason, shortened to stay on one line of an 80-column terminal.
REASON_WIDTH = 32


class RiskKind(StrEnum):
    RUNNING = "running"
    DOWNGRADE = "downgrade"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"


@dataclass(frozen=True)
class ReleaseWarning:
    """One reason to think twice before deploying a release, in words."""

    kind: RiskKind
    text: str
    cluster: str | None = None
    at: datetime | None = None
    deploy_id: str | None = None


def release_warnings(
    release: Release,
    cluster: str,
    running: Sequence[str],
    releases: Sequence[Release],
    recent: Iterable[DeployRecord],
    now: datetime,
    window: timedelta = RECENT_WINDOW,
) -> list[ReleaseWarning]:
    """The warnings of deploying `release` to `cluster`, which runs `running` now.

    `releases` is the project's list, newest first (by AMI creation): a release after the
    newest one running is a downgrade. `recent` are the project's deploys from the store (any
    cluster): in each cluster, the last finished deploy of the release within `window` decides
    (failed, rolled back, or put back by a rollback warn; a later success clears them).
    Cancelled and interrupted deploys say nothing of the release, so they never warn.
    """
    warnings: list[ReleaseWarning] = []
    if release.version in running:
        others = [v for v in running if v != release.version]
        beside = f" (beside {', '.join(others)})" if others else " (a redeploy: new instances)"
        warnings.append(
            ReleaseWarning(RiskKind.RUNNING, f"already runs in {cluster}{beside}", cluster=cluster)
        )
    newer = _newest_running_above(release, running, releases)
    if newer is not None:
        warnings.append(
            ReleaseWarning(
                RiskKind.DOWNGRADE, f"is older than {newer} (a downgrade)", cluster=cluster
            )
        )
    warnings.extend(_bad_outcomes(release, recent, now - window))
    return warnings


def _newest_running_above(
    release: Release, running: Sequence[str], releases: Sequence[Release]
) -> str | None:
    order = [r.version for r in releases]
    if release.version not in order:
        return None
    picked = order.index(release.version)
    above = [order.index(v) for v in running if v in order and order.index(v) < picked]
    return order[min(above)] if above else None


def _concerns(release: Release, record: DeployRecord) -> bool:
    """Whether the record deployed this release (asked by version or by AMI id)."""
    if record.image_id is not None:
        return record.image_id == release.image_id
    return record.release in (release.version, release.image_id)


def _outcome(release: Release, record: DeployRecord) -> ReleaseWarning | bool | None:
    """What one finished deploy says of the release: a warning, False (it went well), or
    None (nothing)."""
    finished = record.finished_at
    if finished is None:
        return None
    when = f"on {finished:%Y-%m-%d %H:%M}"  # UTC, as every time the console shows
    rolled_back = record.rollback_of and record.state == DeployState.SUCCEEDED
    if rolled_back and record.previous_release == release.version:
        return ReleaseWarning(
            RiskKind.ROLLED_BACK,
            f"was rolled back in {record.cluster} {when} (by {record.actor})",
            record.cluster,
            finished,
            record.id,
        )
    if not _concerns(release, record):
        return None
    if record.state == DeployState.SUCCEEDED:
        return False
    if record.state not in (DeployState.FAILED, DeployState.ROLLED_BACK):
        return None
    kind = RiskKind.FAILED if record.state == DeployState.FAILED else RiskKind.ROLLED_BACK
    verb = "failed" if kind is RiskKind.FAILED else "was rolled back"
    return ReleaseWarning(
        kind,
        f"{verb} in {record.cluster} {when} ({short_reason(record.reason)})",
        record.cluster,
        finished,
        record.id,
    )


def _bad_outcomes(
    release: Release, recent: Iterable[DeployRecord], since: datetime
) -> list[ReleaseWarning]:
    last: dict[str, tuple[datetime, ReleaseWarning | bool]] = {}
    for record in recent:
        if record.finished_at is None or record.finished_at < since:
            continue
        outcome = _outcome(release, record)
        if outcome is None:
            continue
        seen = last.get(record.cluster)
        if seen is None or record.finished_at > seen[0]:
            last[record.cluster] = (record.finished_at, outcome)
    found = [outcome for _, outcome in last.values() if isinstance(outcome, ReleaseWarning)]
    return sorted(found, key=lambda w: w.at or since, reverse=True)


def short_reason(reason: str) -> str:
    """A deploy's reason, its first clause, at most REASON_WIDTH characters."""
    first = reason.split(";")[0].strip() or "no reason given"
    return first if len(first) <= REASON_WIDTH else first[: REASON_WIDTH - 1] + "…"


def recent_since(now: datetime, window: timedelta = RECENT_WINDOW) -> datetime:
    """Store.deploys(since=...) for the warnings: deploys created from here on (a deploy that
    waited long in the queue before it finished in the window is read too)."""
    return now - window - timedelta(days=1)


def warnings_text(release: Release, warnings: Sequence[ReleaseWarning]) -> list[str]:
    """The warnings as lines for a terminal (the CLI's stderr), readable without colour."""
    if not warnings:
        return []
    count = f"{len(warnings)} warning{'s' if len(warnings) != 1 else ''}"
    return [
        f"WARNING: release {release.version} ({release.image_id}): {count} (times in UTC)",
        *(f"  ! {warning.text}" for warning in warnings),
    ]


async def plan_warnings(
    config: Config,
    gateway: AwsGateway,
    plan: DeployPlan,
    store: DeployStore | None,
    now: datetime,
) -> list[ReleaseWarning]:
    """The warnings of a planned deploy: the project's releases read through `gateway`, its
    recent deploys from `store` (None: no store yet, so no deploy on record)."""
    releases = await list_releases(config, gateway, plan.project)
    recent: list[DeployRecord] = []
    if store is not None:
        recent = await store.deploys(
            project=plan.project, since=recent_since(now), limit=RECENT_LIMIT
        )
    return release_warnings(
        plan.release, plan.cluster, plan.current_versions, releases, recent, now
    )
