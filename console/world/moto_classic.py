"""moto's classic ELBs given AWS's timeline: registering, in or out of service, draining."""

from __future__ import annotations

from typing import Any

from moto.core.responses import ActionResult
from moto.ec2.exceptions import InvalidInstanceIdError
from moto.ec2.models import ec2_backends
from moto.elb.exceptions import NoActiveLoadBalancerFoundError
from moto.elb.models import ELBBackend, LoadBalancer
from moto.elb.responses import ELBResponse

from console.world import moto_state
from console.world.moto_state import CLASSIC_DRAINING, CLASSIC_NOT_REGISTERED, CLASSIC_REGISTERING

# moto's own methods, kept by patch() for the patched ones to call.
_original: dict[str, Any] = {}


def patch() -> None:
    """Install the classic ELB patches (once: moto_patches.apply)."""
    _original.update(
        register=ELBBackend.register_instances, deregister=ELBBackend.deregister_instances
    )
    ELBBackend.register_instances = _register_instances  # type: ignore[method-assign]
    ELBBackend.deregister_instances = _deregister_instances  # type: ignore[method-assign]
    ELBBackend.describe_instance_health = _describe_instance_health  # type: ignore[method-assign]
    ELBResponse.describe_instance_health = _describe_instance_health_response  # type: ignore[method-assign]


def _draining_seconds(balancer: LoadBalancer) -> float:
    """The connection-draining timeout if draining is enabled, else 0."""
    setting: dict[str, Any] = balancer.attributes.get("connection_draining") or {}
    enabled = setting.get("Enabled", setting.get("enabled", False))
    if str(enabled).lower() != "true":
        return 0.0
    return float(setting.get("Timeout", setting.get("timeout", 300)))


def _health_check_path(balancer: LoadBalancer) -> str | None:
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


def _register_instances(
    self: ELBBackend, load_balancer_name: str, instance_ids: Any, from_autoscaling: bool = False
) -> LoadBalancer:
    balancer = self.get_load_balancer(load_balancer_name)
    known = set(balancer.instance_ids)
    fresh = list(dict.fromkeys(i for i in instance_ids if i not in known))
    until = moto_state.registration_until(moto_state.clock())
    with moto_state.lock:
        memory = moto_state.timeline(balancer)
        for instance_id in fresh:
            memory.draining.pop(instance_id, None)
            memory.deregistered.discard(instance_id)
            if until is not None:
                memory.initial_until[instance_id] = until
    # Stock moto appends an instance registered twice twice; AWS keeps one.
    result: LoadBalancer = _original["register"](self, load_balancer_name, fresh, from_autoscaling)
    return result


def _deregister_instances(
    self: ELBBackend, load_balancer_name: str, instance_ids: Any, from_autoscaling: bool = False
) -> LoadBalancer:
    balancer = self.get_load_balancer(load_balancer_name)
    leaving = [i for i in instance_ids if i in set(balancer.instance_ids)]
    seconds = _draining_seconds(balancer)
    now = moto_state.clock()
    with moto_state.lock:
        memory = moto_state.timeline(balancer)
        for instance_id in leaving:
            memory.initial_until.pop(instance_id, None)
            if seconds > 0:
                memory.draining[instance_id] = (now + seconds, {"InstanceId": instance_id})
            else:
                memory.deregistered.add(instance_id)
    result: LoadBalancer = _original["deregister"](
        self, load_balancer_name, list(instance_ids), from_autoscaling
    )
    return result


def _describe_instance_health(
    self: ELBBackend, lb_name: str, instances: list[dict[str, str]]
) -> list[dict[str, Any]]:
    balancer = self.get_load_balancer(lb_name)
    if balancer is None:
        raise NoActiveLoadBalancerFoundError(name=lb_name)
    registered = list(balancer.instance_ids)
    now = moto_state.clock()
    with moto_state.lock:
        memory = moto_state.timeline(balancer)
        for instance_id, (until, _) in list(memory.draining.items()):
            if until <= now:
                del memory.draining[instance_id]
                memory.deregistered.add(instance_id)
        draining = set(memory.draining)
        deregistered = set(memory.deregistered)
        initial = {i for i, until in memory.initial_until.items() if until > now}
    path = _health_check_path(balancer)
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
            state = _registered_state(instance, instance_id in initial, path)
        states.append(
            {
                "InstanceId": instance_id,
                "State": state[0],
                "ReasonCode": state[1],
                "Description": state[2],
            }
        )
    return states


def _registered_state(instance: Any, initial: bool, path: str | None) -> tuple[str, str, str]:
    """(State, ReasonCode, Description) of a registered instance."""
    if not instance.is_running():
        return ("OutOfService", "Instance", f"Instance is in {instance.state} state.")
    if initial:
        return ("OutOfService", "ELB", CLASSIC_REGISTERING)
    failing = moto_state.verdict(instance.id, path)
    if failing is None:
        return ("InService", "N/A", "N/A")
    return ("OutOfService", "Instance", failing.classic_description)


def _describe_instance_health_response(self: ELBResponse) -> Any:
    # Stock moto answers "N/A" for every reason; keep the ones computed above.
    states = self.elb_backend.describe_instance_health(
        self._get_param("LoadBalancerName"), self._get_param("Instances", [])
    )
    return ActionResult({"InstanceStates": states})
