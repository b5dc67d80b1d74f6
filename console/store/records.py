"""The store's records: the rows of each table as frozen dataclasses, and the states they hold."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import NotRequired, TypedDict

from console.model import DeployRequest, DeployState, StepState

# console.store exports all of these: listed here once.
__all__ = [
    "APPROVE",
    "BREAK_GLASS",
    "CANCELLED",
    "DEPLOY_STATES",
    "INTERRUPTED",
    "QUEUED",
    "REJECT",
    "RUNNING",
    "STEP_STATES",
    "SUCCEEDED",
    "UNFINISHED_STATES",
    "AnchorRecord",
    "Approval",
    "AuditCheck",
    "AuditFields",
    "AuditFilters",
    "AuditProblem",
    "AuditRow",
    "DeployFilters",
    "DeployRecord",
    "Freeze",
    "LockInfo",
    "LogLine",
    "ManualLock",
    "NewApproval",
    "NewManualLock",
    "PollerLease",
    "StepRecord",
    "utc_now",
]

# The states as the store writes them: the values of console.model's enums, spelled there once.
QUEUED, RUNNING = DeployState.QUEUED.value, DeployState.RUNNING.value
INTERRUPTED, CANCELLED = DeployState.INTERRUPTED.value, DeployState.CANCELLED.value
SUCCEEDED = DeployState.SUCCEEDED.value
DEPLOY_STATES = frozenset(state.value for state in DeployState)
UNFINISHED_STATES = (QUEUED, RUNNING)
STEP_STATES = frozenset(state.value for state in StepState)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class LockInfo:
    """Who holds the execution lock of one project in one cluster."""

    project: str
    cluster: str
    deploy_id: str
    actor: str
    acquired_at: datetime
    heartbeat_at: datetime


@dataclass(frozen=True)
class ManualLock:
    """A lock a person put on the global fleet, a cluster, a project or one pair.

    A warning lock only warns; no lock blocks its owner; an expired lock is gone.
    """

    id: int
    project: str | None
    cluster: str | None
    owner: str
    reason: str
    warning: bool
    created_at: datetime
    expires_at: datetime | None

    @property
    def scope(self) -> str:
        if self.project and self.cluster:
            return f"{self.project} in {self.cluster}"
        if self.project:
            return f"project {self.project}"
        if self.cluster:
            return f"cluster {self.cluster}"
        return "everything"

    def covers(self, project: str, cluster: str) -> bool:
        return self.project in (None, project) and self.cluster in (None, cluster)

    def active(self, now: datetime) -> bool:
        return self.expires_at is None or self.expires_at > now

    def describe(self) -> str:
        until = f"until {self.expires_at:%Y-%m-%d %H:%M} UTC" if self.expires_at else "no expiry"
        kind = "warning lock" if self.warning else "locked"
        return f"{kind} on {self.scope} by {self.owner}: {self.reason} ({until})"


@dataclass(frozen=True)
class Freeze:
    """A cluster where queued deploys wait until someone unfreezes it."""

    cluster: str
    actor: str
    reason: str
    created_at: datetime

    def describe(self) -> str:
        return (
            f"{self.cluster} frozen by {self.actor} since {self.created_at:%Y-%m-%d %H:%M} UTC: "
            f"{self.reason}"
        )


# An approval's verdicts, as the approvals table and the audit's actions spell them.
APPROVE, REJECT, BREAK_GLASS = "approve", "reject", "break-glass"


@dataclass(frozen=True)
class Approval:
    """One person's verdict on a queued deploy: approve (for one image, until it expires),
    reject (with the reason), or break-glass (an admin's rollback that waits for no one)."""

    id: int
    deploy_id: str
    project: str
    cluster: str
    image_id: str | None
    actor: str
    verdict: str
    comment: str
    created_at: datetime
    expires_at: datetime | None

    def active(self, now: datetime) -> bool:
        return self.expires_at is None or self.expires_at > now


class NewApproval(TypedDict):
    """An approval to add (its id and time are the store's)."""

    deploy_id: str
    project: str
    cluster: str
    image_id: str | None
    actor: str
    verdict: str
    comment: str
    expires_at: datetime | None


@dataclass(frozen=True)
class PollerLease:
    """Who polls the fleet for every console on the store, and what they last wrote."""

    holder: str  # "" once released
    renewed_at: datetime
    generation: int  # snapshots written so far; 0: none yet
    written_at: datetime | None
    error: str | None  # the holder's last poll failed with this (its snapshot stays)

    def fresh(self, now: datetime, stale_after: float) -> bool:
        """Held, and renewed within stale_after seconds."""
        return bool(self.holder) and self.renewed_at > now - timedelta(seconds=stale_after)


@dataclass(frozen=True, kw_only=True)
class DeployRecord:
    id: str
    project: str
    cluster: str
    release: str
    actor: str
    image_id: str | None = None
    state: str = QUEUED
    created_at: datetime = field(default_factory=utc_now)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    reason: str = ""
    rollback_of: str | None = None
    previous_release: str | None = None
    # The queue's: order within the pair (lower runs first), the deploy that must succeed
    # first (a promotion), the console running it, who asked a running deploy to cancel, and
    # when an interrupted deploy was put right against AWS.
    position: float | None = None
    after_deploy: str | None = None
    runner: str | None = None
    cancel_requested: str | None = None
    reconciled_at: datetime | None = None
    # The change ticket it goes with (since schema 7); its audit rows carry it too.
    ticket: str | None = None
    # Not started before this time (`deploy --at`); an admin's reason to start it outside its
    # cluster's deploy windows, and who gave it (a `window-override` audit row says so too).
    not_before: datetime | None = None
    window_override: str | None = None
    window_override_by: str | None = None
    # (provisioning, schema 12) deploy | stack | scale: see DeployRequest.kind.
    kind: str = "deploy"

    @classmethod
    def new(
        cls,
        deploy_id: str,
        request: DeployRequest,
        at: datetime,
        *,
        running: bool = False,
        after_deploy: str | None = None,
    ) -> DeployRecord:
        """A new deploy of `request`, made at `at`: queued (behind `after_deploy`, if any), or
        running since `at` (a deploy that bypasses the queue)."""
        return cls(
            id=deploy_id,
            state=RUNNING if running else QUEUED,
            created_at=at,
            started_at=at if running else None,
            after_deploy=after_deploy,
            # project, cluster, release, actor, rollback_of, ticket, not_before, window_override
            **asdict(request),
            window_override_by=request.actor if request.window_override else None,
        )


@dataclass(frozen=True)
class LogLine:
    """One line of a deploy's output (secrets already masked by the engine)."""

    at: datetime
    source: str
    stream: str
    line: str


@dataclass(frozen=True)
class StepRecord:
    deploy_id: str
    step: str
    state: str
    started_at: datetime
    finished_at: datetime | None
    seconds: float | None
    detail: str


@dataclass(frozen=True)
class AuditRow:
    id: int
    at: datetime
    actor: str
    action: str
    project: str | None
    cluster: str | None
    deploy_id: str | None
    image_id: str | None
    instance_ids: tuple[str, ...]
    step: str | None
    outcome: str | None
    reason: str
    ticket: str | None
    prev_hash: str
    hash: str
    config: str | None = None  # since schema 5; hashed only when set (older rows keep theirs)


@dataclass(frozen=True)
class AnchorRecord:
    """The store's own note of its last anchor at `location`: row `rows` had hash `head`."""

    location: str
    rows: int
    head: str
    anchored_at: datetime


@dataclass(frozen=True)
class AuditProblem:
    """The first audit row that does not match: its id, what is wrong (changed, missing,
    out of order) and a sentence saying how."""

    id: int
    kind: str
    detail: str


@dataclass(frozen=True)
class AuditCheck:
    """The result of walking the audit chain: rows verified, the head hash, the first problem."""

    rows: int
    head: str
    problem: AuditProblem | None


class DeployFilters(TypedDict, total=False):
    """What Store.deploys narrows by: since (inclusive) and until (exclusive) bound created_at;
    before, a deploy id, pages back (only the deploys recorded before that one)."""

    project: str | None
    cluster: str | None
    actor: str | None  # the user, whatever the door (console.identity)
    state: str | None
    since: datetime | None
    until: datetime | None
    before: str | None


class AuditFilters(TypedDict, total=False):
    """What Store.audit_page narrows by: since is inclusive, until exclusive."""

    project: str | None
    cluster: str | None
    actor: str | None
    outcome: str | None
    since: datetime | None
    until: datetime | None


class NewManualLock(TypedDict):
    """A manual lock to add: whose it is and why, its scope (absent or None: every project,
    every cluster), whether it only warns, and when it ends by itself (absent or None: never)."""

    owner: str
    reason: str
    project: NotRequired[str | None]
    cluster: NotRequired[str | None]
    warning: NotRequired[bool]
    expires_at: NotRequired[datetime | None]


class AuditFields(TypedDict, total=False):
    """An audit row's fields besides its action and actor (no secrets: say only that one
    changed)."""

    project: str | None
    cluster: str | None
    deploy_id: str | None
    image_id: str | None
    instance_ids: Iterable[str]
    step: str | None
    outcome: str | None
    reason: str
    ticket: str | None
    config: str | None
