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
Applied once per process, only by the world; pinned to the moto version in
pyproject.
"""

from __future__ import annotations

import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from moto.core.exceptions import ServiceException
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.core.responses import ActionResult, BaseResponse
from moto.core.utils import camelcase_to_underscores
from moto.ec2.exceptions import InvalidInstanceIdError
from moto.ec2.models import ec2_backends
from moto.elb.exceptions import NoActiveLoadBalancerFoundError
from moto.elb.models import ELBBackend, LoadBalancer
from moto.elb.responses import ELBResponse
from moto.elbv2.models import ELBv2Backend, FakeHealthStatus, FakeTargetGroup

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
class _Timeline:
    """A load balancer's memory of recent (de)registrations, kept on moto's own model so that
    a moto reset forgets it too. Times are time.monotonic() deadlines."""

    initial_until: dict[str, float] = field(default_factory=dict)  # instance -> end of `initial`
    draining: dict[str, tuple[float, dict[str, Any]]] = field(
        default_factory=dict
    )  # -> (end, target)
    deregistered: set[str] = field(default_factory=set)  # classic ELB: once registered, now not


_lock = threading.Lock()
_failing: dict[str, FailingCheck] = {}
_throttled: dict[str, int | None] = {}  # action -> how many more calls to refuse (None: all)
_serving: Serving | None = None
_registration_seconds = 0.0  # 0 while seeding: the seeded fleet is in service at once
_applied = False
_clock = time.monotonic

THROTTLING_CODES = {"ec2": "RequestLimitExceeded"}
TIMELINE_ATTRIBUTE = "_world_timeline"


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
    """From now on, every load balancer reports this instance as failing its health check
    (unless the serving hook has an opinion about it)."""
    with _lock:
        _failing[instance_id] = check or FailingCheck()


def pass_health_checks(instance_id: str) -> None:
    with _lock:
        _failing.pop(instance_id, None)


def set_serving(serving: Serving | None) -> None:
    """Who decides whether an instance passes a load balancer's health check:
    `serving(instance_id, path)` returns True/False, or None for no opinion (the failing marks
    apply; others pass while running). `path` is the check's HTTP path (a target group's
    HealthCheckPath, the path of a classic ELB's `HTTP:80/health` target), None for a TCP or
    SSL check. Called on every health read: it must be cheap and must not call the AWS API."""
    global _serving
    with _lock:
        _serving = serving


def set_registration_seconds(seconds: float) -> None:
    """How long a newly registered instance stays `initial` / "registration in progress"."""
    global _registration_seconds
    with _lock:
        _registration_seconds = max(0.0, seconds)


_requests: Counter[str] = Counter()


def request_counts() -> dict[str, int]:
    """The requests answered so far, by "service:Action" (every client, every process)."""
    with _lock:
        return dict(_requests)


def reset() -> None:
    """Forget the failing marks, throttles, serving hook, registration period (seeding mode)."""
    global _serving, _registration_seconds
    with _lock:
        _failing.clear()
        _throttled.clear()
        _serving = None
        _registration_seconds = 0.0


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


def _timeline(model: Any) -> _Timeline:
    """The timeline kept on a target group or classic ELB (call with _lock held)."""
    found: _Timeline | None = model.__dict__.get(TIMELINE_ATTRIBUTE)
    if found is None:
        found = model.__dict__[TIMELINE_ATTRIBUTE] = _Timeline()
    return found


def _verdict(instance_id: str, path: str | None) -> FailingCheck | None:
    """Why the instance fails a health check of `path` now, or None if it passes (while
    running)."""
    with _lock:
        serving = _serving
        failing = _failing.get(instance_id)
    opinion = serving(instance_id, path) if serving is not None else None
    if opinion is None:
        return failing
    return None if opinion else NOT_SERVING


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


# -- target groups (ELBv2) ---------------------------------------------------------------------


def _drain_target(group: FakeTargetGroup, target: dict[str, Any], now: float) -> None:
    """Move a registered target to draining for the group's deregistration delay (lock held)."""
    timeline = _timeline(group)
    timeline.initial_until.pop(target["Id"], None)
    delay = int(str(group.attributes.get("deregistration_delay.timeout_seconds", 300)))
    if delay > 0:
        timeline.draining[target["Id"]] = (now + delay, target)
    else:
        group.deregistered_targets[target["Id"]] = target


def _expire_draining(group: FakeTargetGroup, now: float) -> dict[str, dict[str, Any]]:
    """Finish the drains whose delay is over; returns the targets still draining (lock held)."""
    timeline = _timeline(group)
    for target_id, (until, target) in list(timeline.draining.items()):
        if until <= now:
            del timeline.draining[target_id]
            group.deregistered_targets[target_id] = target
    return {target_id: target for target_id, (_, target) in timeline.draining.items()}


def _target_group_path(group: FakeTargetGroup) -> str | None:
    """The path a target group's health check asks for; None for a TCP check."""
    protocol = str(group.health_check_protocol or group.protocol or "HTTP").upper()
    if not protocol.startswith("HTTP"):
        return None
    return str(group.health_check_path or "/")


def _patch_target_groups() -> None:
    original_register = FakeTargetGroup.register
    original_deregister = FakeTargetGroup.deregister
    original_health_for = FakeTargetGroup.health_for
    original_describe_target_health = ELBv2Backend.describe_target_health

    def register(self: FakeTargetGroup, targets: list[dict[str, Any]]) -> None:
        fresh = [t["Id"] for t in targets if t["Id"] not in self.targets]
        original_register(self, targets)  # checks that each instance runs
        now = _clock()
        with _lock:
            timeline = _timeline(self)
            for target_id in fresh:
                timeline.draining.pop(target_id, None)
                if _registration_seconds > 0:
                    timeline.initial_until[target_id] = now + _registration_seconds

    def deregister(self: FakeTargetGroup, targets: list[dict[str, Any]]) -> None:
        now = _clock()
        unknown: list[dict[str, Any]] = []
        with _lock:
            timeline = _timeline(self)
            for target in targets:
                registered = self.targets.pop(target["Id"], None)
                if registered is not None:
                    _drain_target(self, registered, now)
                elif (
                    target["Id"] not in timeline.draining
                    and target["Id"] not in self.deregistered_targets
                    and self.ec2_backend.get_instance_by_id(target["Id"]) is None
                ):
                    unknown.append(target)
        if unknown:
            # DeregisterTargets is idempotent for a known instance; an unknown one is an error.
            original_deregister(self, unknown)

    def deregister_terminated_instances(self: FakeTargetGroup, instance_ids: list[str]) -> None:
        # AWS deregisters a terminated instance: it drains, then is gone (moto: draining forever).
        now = _clock()
        with _lock:
            for target_id in instance_ids:
                registered = self.targets.pop(target_id, None)
                if registered is not None:
                    _drain_target(self, registered, now)

    def health_for(self: FakeTargetGroup, target: dict[str, Any], ec2_backend: Any) -> Any:
        target_id = target["Id"]
        now = _clock()
        with _lock:
            timeline = _timeline(self)
            draining = timeline.draining.get(target_id)
            if draining is not None and draining[0] <= now:
                del timeline.draining[target_id]
                self.deregistered_targets[target_id] = draining[1]
                draining = None
            registered = self.targets.get(target_id)
            initial = timeline.initial_until.get(target_id, 0.0) > now
            if not initial:
                timeline.initial_until.pop(target_id, None)
        if draining is not None and registered is None:
            port = draining[1]["Port"]
            return FakeHealthStatus(
                target_id, port, self.health_check_port, "draining", *DRAINING_TARGET
            )
        if registered is None or not target_id.startswith("i-"):
            return original_health_for(self, target, ec2_backend)
        instance = ec2_backend.get_instance_by_id(target_id)
        if instance is None or instance.state == "stopped":
            return original_health_for(self, target, ec2_backend)  # unused, Target.InvalidState
        port = registered["Port"]
        if initial:
            return FakeHealthStatus(
                target_id, port, self.health_check_port, "initial", *REGISTERING_TARGET
            )
        failing = (
            _verdict(target_id, _target_group_path(self))
            if instance.state == "running"
            else FailingCheck()
        )
        if failing is not None:
            return FakeHealthStatus(
                target_id,
                port,
                self.health_check_port,
                "unhealthy",
                failing.target_reason,
                failing.target_description,
            )
        return FakeHealthStatus(target_id, port, self.health_check_port, "healthy")

    def describe_target_health(
        self: ELBv2Backend, target_group_arn: str, targets: list[dict[str, Any]]
    ) -> list[FakeHealthStatus]:
        group = self.target_groups.get(target_group_arn)
        if not targets and group is not None:
            with _lock:
                draining = _expire_draining(group, _clock())
            # AWS lists the targets still draining along with the registered ones.
            targets = list(group.targets.values()) + [
                t for target_id, t in draining.items() if target_id not in group.targets
            ]
        return original_describe_target_health(self, target_group_arn, targets)

    FakeTargetGroup.register = register  # type: ignore[method-assign]
    FakeTargetGroup.deregister = deregister  # type: ignore[method-assign]
    FakeTargetGroup.deregister_terminated_instances = deregister_terminated_instances  # type: ignore[method-assign]
    FakeTargetGroup.health_for = health_for  # type: ignore[method-assign]
    ELBv2Backend.describe_target_health = describe_target_health  # type: ignore[method-assign]


# -- classic ELB -------------------------------------------------------------------------------


def _draining_seconds(balancer: LoadBalancer) -> float:
    """The connection-draining timeout if draining is enabled, else 0."""
    setting: dict[str, Any] = balancer.attributes.get("connection_draining") or {}
    enabled = setting.get("Enabled", setting.get("enabled", False))
    if str(enabled).lower() != "true":
        return 0.0
    return float(setting.get("Timeout", setting.get("timeout", 300)))


def _classic_path(balancer: LoadBalancer) -> str | None:
    """The path of a classic ELB's health check target (`HTTP:80/health` -> `/health`); None
    for a TCP or SSL target, or no health check configured (AWS's default is `TCP:80`)."""
    check = balancer.health_check
    if check is None:
        return None
    protocol, _, rest = str(check.target).partition(":")
    if not protocol.upper().startswith("HTTP"):
        return None
    _, slash, path = rest.partition("/")
    return "/" + path if slash else "/"


def _patch_classic() -> None:
    original_register = ELBBackend.register_instances
    original_deregister = ELBBackend.deregister_instances

    def register_instances(
        self: ELBBackend,
        load_balancer_name: str,
        instance_ids: Any,
        from_autoscaling: bool = False,
    ) -> LoadBalancer:
        balancer = self.get_load_balancer(load_balancer_name)
        known = set(balancer.instance_ids)
        fresh = list(dict.fromkeys(i for i in instance_ids if i not in known))
        now = _clock()
        with _lock:
            timeline = _timeline(balancer)
            for instance_id in fresh:
                timeline.draining.pop(instance_id, None)
                timeline.deregistered.discard(instance_id)
                if _registration_seconds > 0:
                    timeline.initial_until[instance_id] = now + _registration_seconds
        # Stock moto appends an instance registered twice twice; AWS keeps one.
        result: LoadBalancer = original_register(self, load_balancer_name, fresh, from_autoscaling)
        return result

    def deregister_instances(
        self: ELBBackend,
        load_balancer_name: str,
        instance_ids: Any,
        from_autoscaling: bool = False,
    ) -> LoadBalancer:
        balancer = self.get_load_balancer(load_balancer_name)
        leaving = [i for i in instance_ids if i in set(balancer.instance_ids)]
        seconds = _draining_seconds(balancer)
        now = _clock()
        with _lock:
            timeline = _timeline(balancer)
            for instance_id in leaving:
                timeline.initial_until.pop(instance_id, None)
                if seconds > 0:
                    timeline.draining[instance_id] = (now + seconds, {"InstanceId": instance_id})
                else:
                    timeline.deregistered.add(instance_id)
        result: LoadBalancer = original_deregister(
            self, load_balancer_name, list(instance_ids), from_autoscaling
        )
        return result

    def describe_instance_health(
        self: ELBBackend, lb_name: str, instances: list[dict[str, str]]
    ) -> list[dict[str, Any]]:
        balancer = self.get_load_balancer(lb_name)
        if balancer is None:
            raise NoActiveLoadBalancerFoundError(name=lb_name)
        registered = list(balancer.instance_ids)
        now = _clock()
        with _lock:
            timeline = _timeline(balancer)
            for instance_id, (until, _) in list(timeline.draining.items()):
                if until <= now:
                    del timeline.draining[instance_id]
                    timeline.deregistered.add(instance_id)
            draining = set(timeline.draining)
            deregistered = set(timeline.deregistered)
            initial = {i for i, until in timeline.initial_until.items() if until > now}
        path = _classic_path(balancer)
        asked = [i["InstanceId"] for i in instances]
        if not asked:
            asked = registered + sorted(draining - set(registered))
        ec2_backend = ec2_backends[self.account_id][self.region_name]
        states: list[dict[str, Any]] = []
        for instance_id in asked:
            if instance_id not in registered:
                if instance_id in draining:
                    state = ("InService", "N/A", CLASSIC_DRAINING)
                elif instance_id in deregistered:
                    state = ("OutOfService", "ELB", CLASSIC_NOT_REGISTERED)
                else:
                    state = ("Unknown", "ELB", "Instance is not registered.")
            else:
                try:
                    instance = ec2_backend.get_instance(instance_id)
                except InvalidInstanceIdError:
                    continue
                if not instance.is_running():
                    state = ("OutOfService", "Instance", f"Instance is in {instance.state} state.")
                elif instance_id in initial:
                    state = ("OutOfService", "ELB", CLASSIC_REGISTERING)
                else:
                    failing = _verdict(instance_id, path)
                    if failing is None:
                        state = ("InService", "N/A", "N/A")
                    else:
                        state = ("OutOfService", "Instance", failing.classic_description)
            states.append(
                {
                    "InstanceId": instance_id,
                    "State": state[0],
                    "ReasonCode": state[1],
                    "Description": state[2],
                }
            )
        return states

    def describe_instance_health_response(self: ELBResponse) -> Any:
        # Stock moto answers "N/A" for every reason; keep the ones computed above.
        states = self.elb_backend.describe_instance_health(
            self._get_param("LoadBalancerName"), self._get_param("Instances", [])
        )
        return ActionResult({"InstanceStates": states})

    ELBBackend.register_instances = register_instances  # type: ignore[method-assign]
    ELBBackend.deregister_instances = deregister_instances  # type: ignore[method-assign]
    ELBBackend.describe_instance_health = describe_instance_health  # type: ignore[method-assign]
    ELBResponse.describe_instance_health = describe_instance_health_response  # type: ignore[method-assign]


def _patch_throttling() -> None:
    original_call_action = BaseResponse.call_action
    # AWS's throttling codes are not modelled error shapes; moto warns about each one.
    warnings.filterwarnings("ignore", message=r"Exception\(Throttled\)")

    def call_action(self: BaseResponse) -> Any:
        action = self._get_action()
        with _lock:
            _requests[f"{self.service_name}:{action}"] += 1
        if action and _take_throttle(action):
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
    with _lock:
        if _applied:
            return
        _applied = True
    _patch_throttling()
    _index_ec2_tags()
    _patch_target_groups()
    _patch_classic()
