"""The embedded world's knobs and memory on the moto side: health verdicts, throttles, counts."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from moto.core.exceptions import ServiceException

# serving(instance id, health check path or None for a TCP/SSL check) -> passes, fails, or
# None (no opinion).
Serving = Callable[[str, str | None], bool | None]


@dataclass(frozen=True)
class FailingCheck:
    """A health check that fails, as a target group and a classic ELB describe it."""

    target_reason: str = "Target.FailedHealthChecks"
    target_description: str = "Health checks failed"
    classic_description: str = (
        "Instance has failed at least the UnhealthyThreshold number of health checks consecutively."
    )


# What a load balancer says of an instance whose service answers, but not with a 200.
NOT_SERVING = FailingCheck(
    target_reason="Target.ResponseCodeMismatch",
    target_description="Health checks failed with these codes: [503]",
)
REGISTERING_TARGET = ("Elb.RegistrationInProgress", "Target registration is in progress")
DRAINING_TARGET = ("Target.DeregistrationInProgress", "Target deregistration is in progress")
CLASSIC_REGISTERING = "Instance registration is still in progress."
CLASSIC_DRAINING = "Instance deregistration currently in progress."
CLASSIC_NOT_REGISTERED = "Instance is not currently registered with the LoadBalancer."


@dataclass
class Timeline:
    """A load balancer's memory of recent (de)registrations, kept on moto's own model so that
    a moto reset forgets it too. Times are time.monotonic() deadlines."""

    initial_until: dict[str, float] = field(default_factory=dict)  # instance -> end of `initial`
    draining: dict[str, tuple[float, dict[str, Any]]] = field(
        default_factory=dict
    )  # -> (end, target)
    deregistered: set[str] = field(default_factory=set)  # classic ELB: once registered, now not


lock = threading.Lock()
_failing: dict[str, FailingCheck] = {}
_throttled: dict[str, int | None] = {}  # action -> how many more calls to refuse (None: all)
_serving: Serving | None = None
_registration_seconds = 0.0  # 0 while seeding: the seeded fleet is in service at once
clock = time.monotonic

THROTTLING_CODES = {"ec2": "RequestLimitExceeded"}
TIMELINE_ATTRIBUTE = "_world_timeline"


class Throttled(ServiceException):
    """A throttling error (moto serialises an exception by the module it comes from:
    defined outside moto, it takes the model of the service that raised it)."""


def throttle(action: str, times: int | None = None) -> None:
    """Refuse the next `times` calls of an API action (all of them if None) as throttled."""
    with lock:
        _throttled[action] = times


def unthrottle(action: str) -> None:
    with lock:
        _throttled.pop(action, None)


def take_throttle(action: str) -> bool:
    with lock:
        if action not in _throttled:
            return False
        remaining = _throttled[action]
        if remaining is None:
            return True
        if remaining <= 1:
            del _throttled[action]
        else:
            _throttled[action] = remaining - 1
        return True


def fail_health_checks(instance_id: str, check: FailingCheck | None = None) -> None:
    """From now on, every load balancer reports this instance as failing its health check
    (unless the serving hook has an opinion about it)."""
    with lock:
        _failing[instance_id] = check or FailingCheck()


def set_serving(serving: Serving | None) -> None:
    """Who decides whether an instance passes a load balancer's health check:
    `serving(instance_id, path)` returns True/False, or None for no opinion (the failing marks
    apply; others pass while running). `path` is the check's HTTP path (a target group's
    HealthCheckPath, the path of a classic ELB's `HTTP:80/health` target), None for a TCP or
    SSL check. Called on every health read: it must be cheap and must not call the AWS API."""
    global _serving
    with lock:
        _serving = serving


def set_registration_seconds(seconds: float) -> None:
    """How long a newly registered instance stays `initial` / "registration in progress"."""
    global _registration_seconds
    with lock:
        _registration_seconds = max(0.0, seconds)


_requests: Counter[str] = Counter()


def request_counts() -> dict[str, int]:
    """The requests answered so far, by "service:Action" (every client, every process)."""
    with lock:
        return dict(_requests)


def reset() -> None:
    """Forget the failing marks, throttles, serving hook, registration period (seeding mode)."""
    global _serving, _registration_seconds
    with lock:
        _failing.clear()
        _throttled.clear()
        _serving = None
        _registration_seconds = 0.0


def timeline(model: Any) -> Timeline:
    """The timeline kept on a target group or classic ELB (call with lock held)."""
    found: Timeline | None = model.__dict__.get(TIMELINE_ATTRIBUTE)
    if found is None:
        found = model.__dict__[TIMELINE_ATTRIBUTE] = Timeline()
    return found


def verdict(instance_id: str, path: str | None) -> FailingCheck | None:
    """Why the instance fails a health check of `path` now, or None if it passes (while
    running)."""
    with lock:
        serving = _serving
        failing = _failing.get(instance_id)
    opinion = serving(instance_id, path) if serving is not None else None
    if opinion is None:
        return failing
    return None if opinion else NOT_SERVING


def registration_until(now: float) -> float | None:
    """When a target registered `now` leaves `initial`; None while seeding (in service at once)."""
    with lock:
        return now + _registration_seconds if _registration_seconds > 0 else None


def count_request(name: str) -> None:
    """Count a request answered ("service:Action")."""
    with lock:
        _requests[name] += 1
