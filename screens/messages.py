"""Messages the screens post, named for what already happened; only their handlers touch widgets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from textual.message import Message

from console.audit.anchor import AnchorOutcome
from console.errors import ConsoleError
from console.events import DeployEvent
from console.model import DeployPlan, FleetSnapshot, LoadBalancerSettings, Release

if TYPE_CHECKING:
    from console.fleet.inventory import FleetSource
    from console.queue.release_queue import QueueEntry, QueueView


@dataclass
class FleetRefreshed(Message):
    """The refresh worker read a new snapshot of the fleet."""

    snapshot: FleetSnapshot


@dataclass
class ReadFailed(Message):
    """A worker's read raised: `error` is what a person is told, in one line. Each screen
    posts its own kind (what was shown stays)."""

    error: str


class FleetRefreshFailed(ReadFailed):
    """The refresh worker raised; the last snapshot stays on screen."""


def error_text(error: BaseException) -> str:
    """An error as a screen says it, in one line: a ConsoleError's own message, else its type
    and text."""
    if isinstance(error, ConsoleError):
        return error.message
    return f"{type(error).__name__}: {error}"


async def read_fleet(fleet: FleetSource) -> FleetRefreshed | FleetRefreshFailed:
    """One refresh of the fleet as the message the app posts (an error is one line)."""
    try:
        return FleetRefreshed(await fleet.refresh())
    except Exception as error:
        return FleetRefreshFailed(error_text(error))


class RefreshRequested(Message):
    """A person asked for a refresh now (key or command palette); the app runs it."""


@dataclass
class ProjectChosen(Message):
    """A person picked a project on the dashboard; `cluster` is the column the cursor was in."""

    project: str
    cluster: str | None


@dataclass
class LoadBalancerSettingsLoaded(Message):
    """The settings of a project's load balancers in one cluster arrived (or failed: `error`)."""

    cluster: str
    settings: tuple[LoadBalancerSettings, ...] = ()
    error: str | None = None


@dataclass
class DeployAsked(Message):
    """A person asked to deploy a project to a cluster (key or palette); the app opens a dialog."""

    project: str
    cluster: str | None


@dataclass
class ReleasesLoaded(Message):
    """The deploy dialog's list of releases arrived (or failed: `error`)."""

    releases: tuple[Release, ...] = ()
    error: str | None = None


@dataclass
class PlanLoaded(Message):
    """The plan of deploying `release` arrived (or failed: `error`)."""

    release: str
    plan: DeployPlan | None = None
    error: str | None = None


@dataclass
class DeployProgressed(Message):
    """The deploy engine reported an event of the deploy the console tracks as `key`."""

    key: int
    event: DeployEvent


@dataclass
class DeployBroke(Message):
    """Following a deploy raised: refused before it began (pair busy) or the stream broke."""

    key: int
    error: str


@dataclass
class DeployCancelAsked(Message):
    """A person confirmed cancelling the deploy the console tracks as `key`."""

    key: int


@dataclass
class AuditAnchorChecked(Message):
    """A round of the audit anchor's schedule ended: it wrote, found the head unchanged,
    refused (the store contradicts the latest anchor) or failed (S3 unreachable)."""

    outcome: AnchorOutcome | ConsoleError


class QueueAsked(Message):
    """A person asked for the release queue (key or palette); the app opens its screen."""


@dataclass
class QueueRead(Message):
    """The queue screen's poll read the queue: its holds (freezes, locks) and its deploys."""

    view: QueueView
    entries: list[QueueEntry]


class QueueReadFailed(ReadFailed):
    """The queue screen's poll could not read the store; the last rows stay on screen."""


@dataclass
class QueueActed(Message):
    """A queue action (cancel, move, freeze, lock...) ended: what it did, or why it was refused."""

    done: str = ""
    error: str | None = None


@dataclass
class QueuedDeployChosen(Message):
    """A person pressed Enter on a deploy of the queue; the app opens it if it follows it."""

    deploy_id: str


@dataclass
class HistoryAsked(Message):
    """A person asked for the deploy history, narrowed to a project (and cluster) or not."""

    project: str | None = None
    cluster: str | None = None
