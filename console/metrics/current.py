"""The metrics a serving process installed, if any: what the hooks in the gateway, the fleet
and the runner report to. prometheus_client is not imported here (every command imports the
hooks; only a process that serves metrics pays for the library)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from console.metrics.registry import Metrics

_installed: Metrics | None = None


def install(metrics: Metrics | None) -> None:
    """Make `metrics` the process's (None: none): the hooks in the gateway, the fleet and the
    runner service report to it. Nothing is reported until a serving process installs one."""
    global _installed
    _installed = metrics


def installed() -> Metrics | None:
    return _installed


def observe_refresh(seconds: float) -> None:
    """A fleet refresh (a poll of AWS) took `seconds`, if metrics are on."""
    if _installed is not None:
        _installed.refresh_seconds.observe(seconds)


def count_sessions(door: str, count: Callable[[], int]) -> None:
    """Report `count()` (read at each scrape) as the sessions open through `door` (ssh, web,
    local), if metrics are on."""
    if _installed is not None:
        _installed.count_sessions(door, count)
