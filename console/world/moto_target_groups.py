"""moto's target groups (ELBv2) given AWS's timeline: initial, healthy or unhealthy, draining."""

from __future__ import annotations

from typing import Any

from moto.elbv2.models import ELBv2Backend, FakeHealthStatus, FakeTargetGroup

from console.world import moto_state
from console.world.moto_state import DRAINING_TARGET, REGISTERING_TARGET, FailingCheck

# moto's own methods, kept by patch() for the patched ones to call.
_original: dict[str, Any] = {}


def patch() -> None:
    """Install the target group patches (once: moto_patches.apply)."""
    _original.update(
        register=FakeTargetGroup.register,
        deregister=FakeTargetGroup.deregister,
        health_for=FakeTargetGroup.health_for,
        describe_target_health=ELBv2Backend.describe_target_health,
    )
    FakeTargetGroup.register = _register  # type: ignore[method-assign]
    FakeTargetGroup.deregister = _deregister  # type: ignore[method-assign]
    FakeTargetGroup.deregister_terminated_instances = _deregister_terminated  # type: ignore[method-assign]
    FakeTargetGroup.health_for = _health_for  # type: ignore[method-assign]
    ELBv2Backend.describe_target_health = _describe_target_health  # type: ignore[method-assign]


def _drain_target(group: FakeTargetGroup, target: dict[str, Any], now: float) -> None:
    """Move a registered target to draining for the group's deregistration delay (lock held)."""
    memory = moto_state.timeline(group)
    memory.initial_until.pop(target["Id"], None)
    delay = int(str(group.attributes.get("deregistration_delay.timeout_seconds", 300)))
    if delay > 0:
        memory.draining[target["Id"]] = (now + delay, target)
    else:
        group.deregistered_targets[target["Id"]] = target


def _expire_draining(group: FakeTargetGroup, now: float) -> dict[str, dict[str, Any]]:
    """Finish the drains whose delay is over; returns the targets still draining (lock held)."""
    memory = moto_state.timeline(group)
    for target_id, (until, target) in list(memory.draining.items()):
        if until <= now:
            del memory.draining[target_id]
            group.deregistered_targets[target_id] = target
    return {target_id: target for target_id, (_, target) in memory.draining.items()}


def _health_check_path(group: FakeTargetGroup) -> str | None:
    """The path a target group's health check asks for; None for a TCP check."""
    protocol = str(group.health_check_protocol or group.protocol or "HTTP").upper()
    if not protocol.startswith("HTTP"):
        return None
    return str(group.health_check_path or "/")


def _register(self: FakeTargetGroup, targets: list[dict[str, Any]]) -> None:
    fresh = [t["Id"] for t in targets if t["Id"] not in self.targets]
    _original["register"](self, targets)  # checks that each instance runs
    until = moto_state.registration_until(moto_state.clock())
    with moto_state.lock:
        memory = moto_state.timeline(self)
        for target_id in fresh:
            memory.draining.pop(target_id, None)
            if until is not None:
                memory.initial_until[target_id] = until


def _deregister(self: FakeTargetGroup, targets: list[dict[str, Any]]) -> None:
    now = moto_state.clock()
    unknown: list[dict[str, Any]] = []
    with moto_state.lock:
        memory = moto_state.timeline(self)
        for target in targets:
            registered = self.targets.pop(target["Id"], None)
            if registered is not None:
                _drain_target(self, registered, now)
            elif (
                target["Id"] not in memory.draining
                and target["Id"] not in self.deregistered_targets
                and self.ec2_backend.get_instance_by_id(target["Id"]) is None
            ):
                unknown.append(target)
    if unknown:
        # DeregisterTargets is idempotent for a known instance; an unknown one is an error.
        _original["deregister"](self, unknown)


def _deregister_terminated(self: FakeTargetGroup, instance_ids: list[str]) -> None:
    # AWS deregisters a terminated instance: it drains, then is gone (moto: draining forever).
    now = moto_state.clock()
    with moto_state.lock:
        for target_id in instance_ids:
            registered = self.targets.pop(target_id, None)
            if registered is not None:
                _drain_target(self, registered, now)


def _health_for(self: FakeTargetGroup, target: dict[str, Any], ec2_backend: Any) -> Any:
    target_id = target["Id"]
    now = moto_state.clock()
    with moto_state.lock:
        memory = moto_state.timeline(self)
        draining = memory.draining.get(target_id)
        if draining is not None and draining[0] <= now:
            del memory.draining[target_id]
            self.deregistered_targets[target_id] = draining[1]
            draining = None
        registered = self.targets.get(target_id)
        initial = memory.initial_until.get(target_id, 0.0) > now
        if not initial:
            memory.initial_until.pop(target_id, None)
    if draining is not None and registered is None:
        port = draining[1]["Port"]
        return FakeHealthStatus(
            target_id, port, self.health_check_port, "draining", *DRAINING_TARGET
        )
    if registered is None or not target_id.startswith("i-"):
        return _original["health_for"](self, target, ec2_backend)
    instance = ec2_backend.get_instance_by_id(target_id)
    if instance is None or instance.state == "stopped":
        return _original["health_for"](self, target, ec2_backend)  # unused, Target.InvalidState
    port = registered["Port"]
    if initial:
        return FakeHealthStatus(
            target_id, port, self.health_check_port, "initial", *REGISTERING_TARGET
        )
    failing = (
        moto_state.verdict(target_id, _health_check_path(self))
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


def _describe_target_health(
    self: ELBv2Backend, target_group_arn: str, targets: list[dict[str, Any]]
) -> list[FakeHealthStatus]:
    group = self.target_groups.get(target_group_arn)
    if not targets and group is not None:
        with moto_state.lock:
            draining = _expire_draining(group, moto_state.clock())
        # AWS lists the targets still draining along with the registered ones.
        targets = list(group.targets.values()) + [
            t for target_id, t in draining.items() if target_id not in group.targets
        ]
    result: list[FakeHealthStatus] = _original["describe_target_health"](
        self, target_group_arn, targets
    )
    return result
