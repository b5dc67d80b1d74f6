"""The retry settings AWS calls use: the user's own (AWS_RETRY_MODE, AWS_MAX_ATTEMPTS, the
profile's retry_mode / max_attempts), as the AWS CLI and SDKs read them, else the console's.

A call made during a wait still ends by the wait's deadline (console.aws.gateway's bounded
clients): the user's attempts are an upper bound there, never a reason to overrun it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import botocore.config
import botocore.exceptions
import botocore.session

from console.errors import AwsError

CONNECT_TIMEOUT = 3
READ_TIMEOUT = 30
# When the user set nothing: 4 attempts in all, each up to CONNECT_TIMEOUT + READ_TIMEOUT
# (with backoff, the 121 s a silent endpoint once took).
DEFAULT_MODE = "standard"
DEFAULT_ATTEMPTS = 4
MODES = ("legacy", "standard", "adaptive")
MAX_ATTEMPTS = 50  # more is a typo, not a policy
# Bounded concurrency for health calls; botocore's pool must be at least as large.
MAX_CONCURRENT_CALLS = 16


@dataclass(frozen=True)
class RetrySettings:
    mode: str
    attempts: int  # in all, the first included (the AWS CLI's max_attempts)
    source: str  # where they come from, for `config check`

    def config(self) -> botocore.config.Config:
        """The client config for calls made outside any wait."""
        return botocore.config.Config(
            retries={"mode": self.mode, "total_max_attempts": self.attempts},
            connect_timeout=CONNECT_TIMEOUT,
            read_timeout=READ_TIMEOUT,
            max_pool_connections=MAX_CONCURRENT_CALLS,
        )

    def describe(self) -> str:
        return f"{self.mode}, {self.attempts} attempts ({self.source})"


DEFAULT_RETRIES = RetrySettings(DEFAULT_MODE, DEFAULT_ATTEMPTS, "console default")


def _where(core: botocore.session.Session, env: str, key: str) -> str | None:
    if os.environ.get(env):
        return env
    try:
        scoped = core.get_scoped_config()
    except botocore.exceptions.ProfileNotFound:
        return None
    if key in scoped:
        profile = core.get_config_variable("profile") or "default"
        return f"profile {profile}"
    return None


def retry_settings(core: botocore.session.Session) -> RetrySettings:
    """The retry settings of a session (its profile, the environment), checked: a value
    AWS would reject is one line naming where it was set."""
    mode_from = _where(core, "AWS_RETRY_MODE", "retry_mode")
    attempts_from = _where(core, "AWS_MAX_ATTEMPTS", "max_attempts")
    if mode_from is None and attempts_from is None:
        return DEFAULT_RETRIES
    mode = DEFAULT_MODE
    if mode_from is not None:
        mode = str(core.get_config_variable("retry_mode")).strip().lower()
        if mode not in MODES:
            raise AwsError(
                f"retry_mode {mode!r} (from {mode_from}) is not one of {', '.join(MODES)}"
            )
    attempts = DEFAULT_ATTEMPTS
    if attempts_from is not None:
        try:
            attempts = int(core.get_config_variable("max_attempts"))
        except (TypeError, ValueError):
            raise AwsError(f"max_attempts (from {attempts_from}) is not a whole number") from None
        if not 1 <= attempts <= MAX_ATTEMPTS:
            raise AwsError(
                f"max_attempts {attempts} (from {attempts_from}) is not "
                f"between 1 and {MAX_ATTEMPTS}"
            )
    sources = dict.fromkeys(source for source in (mode_from, attempts_from) if source)
    return RetrySettings(mode, attempts, ", ".join(sources))


# Read timeouts a call made during a wait may get: the largest that fits the time left. Few
# values, so that a client per value (made once) serves every wait.
BOUNDED_READ_TIMEOUTS = (1, 2, 3, 5, 10, 20, READ_TIMEOUT)


def bounded_settings(left: float, most: int = DEFAULT_ATTEMPTS) -> tuple[int, int, int]:
    """(connect timeout, read timeout, attempts in all) for a call that must end within
    `left` s, making at most `most` attempts: a deadline wins over the retry settings."""
    read = max((t for t in BOUNDED_READ_TIMEOUTS if t <= left), default=1)
    connect = min(CONNECT_TIMEOUT, read)
    attempts = max(1, min(most, int(left // (connect + read))))
    return connect, read, attempts
