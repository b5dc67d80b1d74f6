"""Small extensions of moto that make the embedded world behave like a real account.

Stock moto reports every registered target healthy at once and forgets a deregistered one at
once; a classic ELB instance is InService while it runs. These patches give target health its
timeline: `initial` for the world's registration period after RegisterTargets, then `healthy`
or `unhealthy` by what the instance serves on the load balancer's own health check path (the
world's `serving` hook, asked with the target group's HealthCheckPath or the path of a classic
ELB's `HTTP:80/health` target; or the failing marks of the seeded fleet), `draining` for the
target group's deregistration delay after a DeregisterTargets (or a termination), then gone.
A classic ELB reports "registration still in progress", then InService/OutOfService, and
honours its connection-draining timeout. The world can also throttle an API action, as AWS
does under load, and counts the requests it answers (tests measure AWS calls with it).
Applied once per process, only by the world; pinned to the moto version in pyproject.
Here: the EC2 side and the throttles; target groups in moto_target_groups, classic ELBs in
moto_classic, CloudFormation (what stacks keep, updates in place) in moto_stacks, the knobs
and memory they share in moto_state.
"""

from __future__ import annotations

import threading
import warnings
from datetime import datetime
from typing import Any

from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.core.responses import BaseResponse
from moto.core.utils import camelcase_to_underscores
from moto.ec2.models import ec2_backends

from console.world import moto_classic, moto_target_groups
from console.world.moto_state import (
    THROTTLING_CODES,
    FailingCheck,
    Serving,
    Throttled,
    count_request,
    fail_health_checks,
    request_counts,
    reset,
    set_registration_seconds,
    set_serving,
    take_throttle,
    throttle,
    unthrottle,
)

__all__ = [
    "FailingCheck",
    "Serving",
    "apply",
    "fail_health_checks",
    "instance_for_address",
    "instance_tags",
    "request_counts",
    "reset",
    "set_launch_time",
    "set_registration_seconds",
    "set_serving",
    "throttle",
    "unthrottle",
]

_applied = False
_applying = threading.Lock()
_stacks_patched = False


def _patch_stacks() -> None:
    """The CloudFormation patches, installed before the first CloudFormation request: moto's
    CloudFormation imports most of moto (0.25 s of CPU), which a world without stacks never
    pays."""
    global _stacks_patched
    with _applying:
        if _stacks_patched:
            return
        from console.world import moto_stacks

        moto_stacks.patch()
        _stacks_patched = True


def set_launch_time(instance_id: str, region: str, launched_at: datetime) -> None:
    """Backdate an instance: a demo fleet was not all launched a second ago."""
    backend = ec2_backends[DEFAULT_ACCOUNT_ID][region]
    backend.get_instance(instance_id).launch_time = launched_at


def _instances() -> list[Any]:
    """Every instance of every region (moto keeps one backend per region)."""
    found: list[Any] = []
    for region in list(ec2_backends[DEFAULT_ACCOUNT_ID].keys()):
        backend = ec2_backends[DEFAULT_ACCOUNT_ID][region]
        for _attempt in range(3):
            try:
                found.extend(backend.all_instances())
                break
            except RuntimeError:  # a dict changed size: the server is launching instances
                continue
    return found


def instance_for_address(address: str) -> str | None:
    """The live instance whose private address this is (how the world's SSH jump host knows
    which instance a connection is for)."""
    for instance in _instances():
        if instance.private_ip == address and instance.state not in ("terminated",):
            return str(instance.id)
    return None


def instance_tags(instance_id: str) -> dict[str, str] | None:
    """The instance's tags, None for an instance the world does not know (or never tagged):
    a lookup by id in each region's tag index, not a scan of every instance."""
    for region in list(ec2_backends[DEFAULT_ACCOUNT_ID].keys()):
        tags = ec2_backends[DEFAULT_ACCOUNT_ID][region].tags.get(instance_id)
        if tags:
            return dict(tags)
    for instance in _instances():
        if instance.id == instance_id:
            return {}
    return None


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


def _patch_throttling() -> None:
    original_call_action = BaseResponse.call_action
    # AWS's throttling codes are not modelled error shapes; moto warns about each one.
    warnings.filterwarnings("ignore", message=r"Exception\(Throttled\)")

    def call_action(self: BaseResponse) -> Any:
        action = self._get_action()
        count_request(f"{self.service_name}:{action}")
        if self.service_name == "cloudformation" and not _stacks_patched:
            _patch_stacks()
        if action and take_throttle(action):
            code = THROTTLING_CODES.get(self.service_name or "", "Throttling")

            def refuse() -> Any:
                raise Throttled(code, "Rate exceeded")

            # The instance attribute shadows the action's method for this one request.
            setattr(self, camelcase_to_underscores(action), refuse)
        return original_call_action(self)

    BaseResponse.call_action = call_action  # type: ignore[method-assign]


def apply() -> None:
    """Install the patches (idempotent)."""
    global _applied
    with _applying:
        if _applied:
            return
        _applied = True
    _patch_throttling()
    _index_ec2_tags()
    moto_target_groups.patch()
    moto_classic.patch()
