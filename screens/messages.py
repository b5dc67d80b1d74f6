"""Messages the screens post, named for what already happened; only their handlers touch widgets."""

from __future__ import annotations

from textual.message import Message

from console.model import FleetSnapshot, LoadBalancerSettings


class FleetRefreshed(Message):
    """The refresh worker read a new snapshot of the fleet."""

    def __init__(self, snapshot: FleetSnapshot) -> None:
        super().__init__()
        self.snapshot = snapshot


class FleetRefreshFailed(Message):
    """The refresh worker raised; the last snapshot stays on screen."""

    def __init__(self, error: str) -> None:
        super().__init__()
        self.error = error


class RefreshRequested(Message):
    """A person asked for a refresh now (key or command palette); the app runs it."""


class ProjectChosen(Message):
    """A person picked a project on the dashboard; `cluster` is the column the cursor was in."""

    def __init__(self, project: str, cluster: str | None) -> None:
        super().__init__()
        self.project = project
        self.cluster = cluster


class LoadBalancerSettingsLoaded(Message):
    """The settings of a project's load balancers in one cluster arrived (or failed: `error`)."""

    def __init__(
        self,
        cluster: str,
        settings: tuple[LoadBalancerSettings, ...] = (),
        error: str | None = None,
    ) -> None:
        super().__init__()
        self.cluster = cluster
        self.settings = settings
        self.error = error
