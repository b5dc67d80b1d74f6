"""The console's errors: each carries a one-line message fit for a person."""

from __future__ import annotations

from datetime import datetime


class ConsoleError(Exception):
    """An error the console reports as one line, without a traceback."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigError(ConsoleError):
    """The configuration is missing, malformed or inconsistent."""


class AwsError(ConsoleError):
    """An AWS endpoint failed or refused a call."""


class AwsNoAnswer(AwsError):
    """The AWS endpoint did not answer (unreachable, timed out, or the wait's deadline came)."""


class WorldError(ConsoleError):
    """The embedded world could not be started or seeded."""


class SshError(ConsoleError):
    """An instance could not be reached or a command on it failed to run."""


class HostKeyError(SshError):
    """An instance's host key did not verify: nothing was sent to it."""


class DeployError(ConsoleError):
    """A deploy cannot start or cannot go on (bad release, missing settings, refused)."""


class ReleaseWarned(DeployError):
    """A release with warnings (already running, a downgrade, failed lately) asked for
    without confirming it: the message says them in one line."""


class StoreError(ConsoleError):
    """The console's SQLite store cannot be opened, read or written."""


class LockBusy(StoreError):
    """Another live deploy holds the execution lock for this project and cluster."""

    def __init__(self, message: str, *, deploy_id: str = "") -> None:
        super().__init__(message)
        self.deploy_id = deploy_id  # the holder's, when known

    @classmethod
    def held_by(
        cls, project: str, cluster: str, deploy_id: str, actor: str, since: datetime
    ) -> LockBusy:
        """The pair is held by deploy_id, run by actor since then."""
        return cls(
            f"{project} in {cluster} is locked by deploy {deploy_id} "
            f"({actor}, since {since:%Y-%m-%d %H:%M:%S} UTC)",
            deploy_id=deploy_id,
        )
