"""Small extensions of moto that make the embedded world behave like a real account.

Stock moto reports every registered target healthy and every classic ELB instance
InService while it runs. The world marks some instances as failing their health check;
these patches make the target group and the classic ELB report them as AWS would. The
world can also throttle an API action, as AWS does under load. Applied once per process,
only by the world; pinned to the moto version in pyproject.
"""

from __future__ import annotations

import threading
import warnings
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from moto.core.exceptions import ServiceException
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.core.responses import ActionResult, BaseResponse
from moto.core.utils import camelcase_to_underscores
from moto.ec2.models import ec2_backends
from moto.elb.models import ELBBackend
from moto.elb.responses import ELBResponse
from moto.elbv2.models import FakeHealthStatus, FakeTargetGroup


@dataclass(frozen=True)
class FailingCheck:
    """A health check that fails, as a target group and a classic ELB describe it."""

    target_reason: str = "Target.FailedHealthChecks"
    target_description: str = "Health checks failed"
    classic_description: str = (
        "Instance has failed at least the UnhealthyThreshold number of health checks consecutively."
    )


_lock = threading.Lock()
_failing: dict[str, FailingCheck] = {}
_throttled: dict[str, int | None] = {}  # action -> how many more calls to refuse (None: all)
_applied = False

THROTTLING_CODES = {"ec2": "RequestLimitExceeded"}


class Throttled(ServiceException):
    """A throttling error (moto serialises an exception by the module it comes from:
    defined outside moto, it takes the model of the service that raised it)."""


def throttle(action: str, times: int | None = None) -> None:
    """Refuse the next `times` calls of an API action (all of them if None) as throttled."""
    with _lock:
        _throttled[action] = times


def unthrottle(action: str) -> None:
    with _lock:
        _throttled.pop(action, None)


def _take_throttle(action: str) -> bool:
    with _lock:
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
    """From now on, every load balancer reports this instance as failing its health check."""
    with _lock:
        _failing[instance_id] = check or FailingCheck()


def pass_health_checks(instance_id: str) -> None:
    with _lock:
        _failing.pop(instance_id, None)


def reset() -> None:
    with _lock:
        _failing.clear()
        _throttled.clear()


def set_launch_time(instance_id: str, region: str, launched_at: datetime) -> None:
    """Backdate an instance: a demo fleet was not all launched a second ago."""
    backend = ec2_backends[DEFAULT_ACCOUNT_ID][region]
    backend.get_instance(instance_id).launch_time = launched_at


def _index_ec2_tags() -> None:
    """Look a resource's tags up by its id.

    Stock moto scans every tag of the region with a regular expression for each resource,
    so a DescribeInstances costs instances x tags: at 200 projects x 4 clusters one page took
    25 s, which no real endpoint does. Resource ids have a fixed length, so the lookup by
    key returns exactly what the scan's prefix match returned.
    """
    from moto.ec2.models.core import TaggedEC2Resource
    from moto.ec2.utils import EC2_PREFIX_TO_RESOURCE, get_prefix

    def get_tags(self: Any) -> list[dict[str, str]]:
        if not self.id:
            return []
        kind = EC2_PREFIX_TO_RESOURCE.get(get_prefix(self.id), "")
        return [
            {"resource_id": self.id, "key": key, "value": value, "resource_type": kind}
            for key, value in self.ec2_backend.tags.get(self.id, {}).items()
        ]

    TaggedEC2Resource.get_tags = get_tags  # type: ignore[method-assign]


def apply() -> None:
    """Install the patches (idempotent)."""
    global _applied
    with _lock:
        if _applied:
            return
        _applied = True
    original_health_for = FakeTargetGroup.health_for
    original_classic_health = ELBBackend.describe_instance_health

    def health_for(self: FakeTargetGroup, target: dict[str, Any], ec2_backend: Any) -> Any:
        status = original_health_for(self, target, ec2_backend)
        with _lock:
            failing = _failing.get(target["Id"])
        if failing is not None and status.status == "healthy":
            return FakeHealthStatus(
                status.instance_id,
                status.port,
                status.health_check_port,
                "unhealthy",
                failing.target_reason,
                failing.target_description,
            )
        return status

    def describe_instance_health(
        self: ELBBackend, lb_name: str, instances: list[dict[str, str]]
    ) -> list[dict[str, Any]]:
        states: list[dict[str, Any]] = original_classic_health(self, lb_name, instances)
        for state in states:
            with _lock:
                failing = _failing.get(state["InstanceId"])
            if state["State"] == "InService" and failing is not None:
                state.update(
                    State="OutOfService",
                    ReasonCode="Instance",
                    Description=failing.classic_description,
                )
            elif state["State"] == "InService":
                state.update(ReasonCode="N/A", Description="N/A")
            elif state["State"] == "OutOfService":
                state.update(
                    ReasonCode="Instance",
                    Description="Instance is in stopped state.",
                )
            else:
                state.update(ReasonCode="ELB", Description="Instance is not registered.")
        return states

    def describe_instance_health_response(self: ELBResponse) -> Any:
        # Stock moto answers "N/A" for every reason; keep the ones computed above.
        states = self.elb_backend.describe_instance_health(
            self._get_param("LoadBalancerName"), self._get_param("Instances", [])
        )
        return ActionResult({"InstanceStates": states})

    original_call_action = BaseResponse.call_action
    # AWS's throttling codes are not modelled error shapes; moto warns about each one.
    warnings.filterwarnings("ignore", message=r"Exception\(Throttled\)")

    def call_action(self: BaseResponse) -> Any:
        action = self._get_action()
        if action and _take_throttle(action):
            code = THROTTLING_CODES.get(self.service_name or "", "Throttling")

            def refuse() -> Any:
                raise Throttled(code, "Rate exceeded")

            # The instance attribute shadows the action's method for this one request.
            setattr(self, camelcase_to_underscores(action), refuse)
        return original_call_action(self)

    BaseResponse.call_action = call_action  # type: ignore[method-assign]
    _index_ec2_tags()
    FakeTargetGroup.health_for = health_for  # type: ignore[method-assign]
    ELBBackend.describe_instance_health = describe_instance_health  # type: ignore[method-assign]
    ELBResponse.describe_instance_health = describe_instance_health_response  # type: ignore[method-assign]
