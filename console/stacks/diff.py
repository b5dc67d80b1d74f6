"""Two CloudFormation templates compared per resource: add, modify, replace or remove, and why."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = [
    "LOAD_BALANCER_TYPES",
    "REPLACING",
    "Action",
    "PropertyChange",
    "Replacement",
    "ResourceChange",
    "diff_templates",
    "flatten",
    "readable",
    "references",
    "replacement_of",
]

RECORD_TYPE = "AWS::Route53::RecordSet"
LOAD_BALANCER_TYPES = frozenset(
    {"AWS::ElasticLoadBalancingV2::LoadBalancer", "AWS::ElasticLoadBalancing::LoadBalancer"}
)
# Resource attributes compared beside the properties: changing them replaces nothing.
POLICIES = ("DeletionPolicy", "UpdateReplacePolicy")


class Action(StrEnum):
    ADD = "add"
    MODIFY = "modify"
    REPLACE = "replace"
    REMOVE = "remove"


class Replacement(StrEnum):
    """What a property change does to the running resource (AWS's "Update requires")."""

    NO = "no"  # no interruption
    INTERRUPTION = "interruption"  # some interruption (e.g. an instance restarts)
    CONDITIONAL = "conditional"  # depends on the values (or the type is not in the table)
    YES = "yes"  # replacement: a new resource, a new physical id (and DNS name)

    @property
    def rank(self) -> int:
        return list(Replacement).index(self)


Rule = Replacement | Callable[[Any, Any], Replacement]


def _emptied_or_filled(old: Any, new: Any) -> Replacement:
    """A classic ELB's Subnets or AvailabilityZones: replaced when the list goes from empty to
    set or from set to empty (from AZs to subnets, or back), else updated in place."""
    return Replacement.YES if bool(old) != bool(new) else Replacement.NO


# Per resource type, the properties whose change replaces the resource (AWS's resource
# reference, "Update requires: Replacement"), or interrupts it, or depends on the values.
# Properties not named here update without interruption.
REPLACING: dict[str, dict[str, Rule]] = {
    "AWS::ElasticLoadBalancingV2::TargetGroup": {
        "Name": Replacement.YES,
        "Port": Replacement.YES,
        "Protocol": Replacement.YES,
        "ProtocolVersion": Replacement.YES,
        "TargetType": Replacement.YES,
        "VpcId": Replacement.YES,
        "IpAddressType": Replacement.YES,
    },
    "AWS::ElasticLoadBalancingV2::LoadBalancer": {
        "Name": Replacement.YES,
        "Scheme": Replacement.YES,
        "Type": Replacement.YES,
        # A network load balancer's subnets can be added, not removed, in place.
        "SubnetMappings": Replacement.CONDITIONAL,
    },
    "AWS::ElasticLoadBalancingV2::Listener": {"LoadBalancerArn": Replacement.YES},
    "AWS::ElasticLoadBalancing::LoadBalancer": {
        "LoadBalancerName": Replacement.YES,
        "Scheme": Replacement.YES,
        "Subnets": _emptied_or_filled,
        "AvailabilityZones": _emptied_or_filled,
    },
    "AWS::EC2::SecurityGroup": {
        "GroupDescription": Replacement.YES,
        "GroupName": Replacement.YES,
        "VpcId": Replacement.YES,
    },
    "AWS::EC2::LaunchTemplate": {"LaunchTemplateName": Replacement.YES},
    "AWS::Route53::RecordSet": {
        "Name": Replacement.YES,
        "Type": Replacement.YES,
        "HostedZoneId": Replacement.YES,
        "HostedZoneName": Replacement.YES,
        "SetIdentifier": Replacement.YES,
    },
    "AWS::AutoScaling::AutoScalingGroup": {
        "AutoScalingGroupName": Replacement.YES,
        "InstanceId": Replacement.YES,
    },
    "AWS::EC2::Instance": {
        "AvailabilityZone": Replacement.YES,
        "ImageId": Replacement.YES,
        "KeyName": Replacement.YES,
        "SubnetId": Replacement.YES,
        "PrivateIpAddress": Replacement.YES,
        "LaunchTemplate": Replacement.YES,
        "NetworkInterfaces": Replacement.YES,
        "InstanceType": Replacement.INTERRUPTION,
        "UserData": Replacement.INTERRUPTION,
        "EbsOptimized": Replacement.INTERRUPTION,
    },
}


def replacement_of(resource_type: str, path: str, old: Any, new: Any) -> Replacement:
    """What changing `path` (a property, or a dotted path into one) from old to new does to a
    resource of this type; a type the table does not know is "conditional"."""
    if path in POLICIES:
        return Replacement.NO
    rules = REPLACING.get(resource_type)
    if rules is None:
        return Replacement.CONDITIONAL
    rule = rules.get(path.split(".", 1)[0], Replacement.NO)
    return rule if isinstance(rule, Replacement) else rule(old, new)


# -- readable values ---------------------------------------------------------------------------


def readable(value: Any) -> str:
    """A template value for a person: intrinsic functions as `Ref X` or `X.DNSName`, lists
    comma-separated, absent as `(none)`."""
    if value is None:
        return "(none)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping) and len(value) == 1:
        ((key, argument),) = value.items()
        if key == "Ref":
            return f"Ref {argument}"
        if key == "Fn::GetAtt":
            parts = argument if isinstance(argument, list) else str(argument).split(".", 1)
            return ".".join(str(part) for part in parts)
        if key == "Fn::Sub" and isinstance(argument, str):
            return argument
    if isinstance(value, list):
        return "[" + ", ".join(readable(item) for item in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{key}: {readable(item)}" for key, item in value.items()) + "}"
    return str(value)


def _key_value_list(value: Any) -> dict[str, Any] | None:
    """`[{"Key": k, "Value": v}, ...]` (tags, load balancer and target group attributes) as a
    mapping, so that one attribute's change shows as that attribute."""
    if not isinstance(value, list) or not value:
        return None
    if not all(isinstance(item, Mapping) and set(item) == {"Key", "Value"} for item in value):
        return None
    return {str(item["Key"]): item["Value"] for item in value}


def _is_intrinsic(value: Any) -> bool:
    return (
        isinstance(value, Mapping)
        and len(value) == 1
        and next(iter(value)).startswith(("Ref", "Fn::"))
    )


def flatten(properties: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A resource's properties as dotted paths to plain values: nested objects and key/value
    lists open up (`HealthCheck.Target`, `TargetGroupAttributes.deregistration_delay...`);
    other lists and intrinsic functions stay whole."""
    flat: dict[str, Any] = {}
    for key, value in properties.items():
        path = f"{prefix}{key}"
        pairs = _key_value_list(value)
        if pairs is not None:
            flat.update(flatten(pairs, f"{path}."))
        elif isinstance(value, Mapping) and value and not _is_intrinsic(value):
            flat.update(flatten(value, f"{path}."))
        else:
            flat[path] = value
    return flat


def _same(old: Any, new: Any) -> bool:
    """Equal as CloudFormation takes them: numbers and booleans may come back as strings."""
    if old == new:
        return True
    scalar = (str, int, float, bool)
    if isinstance(old, scalar) and isinstance(new, scalar):
        return readable(old).lower() == readable(new).lower() or _numbers_equal(old, new)
    return False


def _numbers_equal(old: Any, new: Any) -> bool:
    try:
        return float(old) == float(new)
    except (TypeError, ValueError):
        return False


# -- the diff ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PropertyChange:
    """One property path that changes, its values (None: absent) and what it does."""

    path: str
    old: Any
    new: Any
    replacement: Replacement
    # Why it changes when the template's text does not: a resource it refers to is replaced.
    because: str = ""

    def describe(self) -> str:
        if self.because and self.old == self.new:
            return f"{self.path}: {readable(self.new)} gets a new value ({self.because})"
        text = f"{self.path}: {readable(self.old)} -> {readable(self.new)}"
        if self.because:
            text += f" ({self.because})"
        return text

    def as_json(self) -> dict[str, Any]:
        return {
            "property": self.path,
            "old": self.old,
            "new": self.new,
            "replacement": self.replacement.value,
            "because": self.because or None,
        }


@dataclass(frozen=True)
class ResourceChange:
    """One resource of the stack and what the new template does to it."""

    logical_id: str
    resource_type: str
    action: Action
    properties: tuple[PropertyChange, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def replacement(self) -> Replacement:
        """The worst of its property changes ("yes" for a replace)."""
        if self.action is not Action.MODIFY and self.action is not Action.REPLACE:
            return Replacement.NO
        ranks = [change.replacement for change in self.properties]
        return max(ranks, key=lambda r: r.rank, default=Replacement.NO)

    def as_json(self) -> dict[str, Any]:
        return {
            "action": self.action.value,
            "logical_id": self.logical_id,
            "type": self.resource_type,
            "replacement": self.replacement.value,
            "properties": [change.as_json() for change in self.properties],
            "notes": list(self.notes),
        }


@dataclass
class _Resources:
    """A template's resources by logical id (an empty mapping for no template)."""

    resources: dict[str, Mapping[str, Any]] = field(default_factory=dict)

    @classmethod
    def of(cls, template: Mapping[str, Any] | str | None) -> _Resources:
        if template is None:
            return cls()
        if isinstance(template, str):
            template = json.loads(template)
        assert isinstance(template, Mapping)
        return cls(dict(template.get("Resources") or {}))

    def flat(self, logical_id: str) -> dict[str, Any]:
        resource = self.resources[logical_id]
        flat = flatten(resource.get("Properties") or {})
        for policy in POLICIES:
            if policy in resource:
                flat[policy] = resource[policy]
        return flat


def _property_changes(
    resource_type: str, old: dict[str, Any], new: dict[str, Any]
) -> list[PropertyChange]:
    changes = []
    for path in list(old) + [p for p in new if p not in old]:
        before, after = old.get(path), new.get(path)
        if not _same(before, after):
            rule = replacement_of(resource_type, path, before, after)
            changes.append(PropertyChange(path, before, after, rule))
    return changes


def references(value: Any) -> Iterator[tuple[str, str | None]]:
    """The (logical id, attribute or None for Ref) a value refers to."""
    if isinstance(value, Mapping):
        if set(value) == {"Ref"} and isinstance(value["Ref"], str):
            yield value["Ref"], None
            return
        if set(value) == {"Fn::GetAtt"}:
            argument = value["Fn::GetAtt"]
            parts = argument if isinstance(argument, list) else str(argument).split(".", 1)
            yield str(parts[0]), str(parts[1]) if len(parts) > 1 else None
            return
        for item in value.values():
            yield from references(item)
    elif isinstance(value, list):
        for item in value:
            yield from references(item)


def _moved_by_replacement(
    resource_type: str, flat: dict[str, Any], replaced: set[str], known: set[str]
) -> list[PropertyChange]:
    """The properties of a resource whose value changes because a resource they refer to is
    replaced (its new physical id, ARN or DNS name), though the template's text does not."""
    changes = []
    for path, value in flat.items():
        if path in known:
            continue
        targets = sorted({target for target, _ in references(value) if target in replaced})
        if targets:
            rule = replacement_of(resource_type, path, value, value)
            because = f"{', '.join(targets)} is replaced"
            changes.append(PropertyChange(path, value, value, rule, because))
    return changes


def diff_templates(
    old: Mapping[str, Any] | str | None, new: Mapping[str, Any] | str | None
) -> list[ResourceChange]:
    """What changing the stack's template from `old` (None: no stack yet) to `new` does, per
    resource, in the new template's order and then the removed ones. A replaced resource's
    new identity reaches the resources that refer to it (a listener on a replaced load
    balancer is replaced too; a DNS record pointing at it changes its value: it moves)."""
    before, after = _Resources.of(old), _Resources.of(new)
    changes: dict[str, tuple[str, Action, list[PropertyChange]]] = {}
    for logical_id, resource in after.resources.items():
        kind = str(resource.get("Type", ""))
        if logical_id not in before.resources:
            changes[logical_id] = (kind, Action.ADD, [])
            continue
        old_kind = str(before.resources[logical_id].get("Type", ""))
        if old_kind != kind:
            swap = PropertyChange("Type", old_kind, kind, Replacement.YES)
            changes[logical_id] = (kind, Action.REPLACE, [swap])
            continue
        found = _property_changes(kind, before.flat(logical_id), after.flat(logical_id))
        if found:
            changes[logical_id] = (kind, Action.MODIFY, found)
    # A replacement reaches what refers to the replaced resource, until nothing more changes.
    while True:
        replaced = {
            logical_id
            for logical_id, (_, action, found) in changes.items()
            if action is Action.REPLACE
            or any(change.replacement is Replacement.YES for change in found)
        }
        grown = False
        for logical_id, resource in after.resources.items():
            kind, action, found = changes.get(
                logical_id, (str(resource["Type"]), Action.MODIFY, [])
            )
            if action is Action.ADD:
                continue
            known = {change.path for change in found}
            more = _moved_by_replacement(kind, after.flat(logical_id), replaced, known)
            if more:
                changes[logical_id] = (kind, action, found + more)
                grown = True
        if not grown:
            break
    result = [
        _resource_change(logical_id, kind, action, found, before, after, replaced)
        for logical_id, (kind, action, found) in changes.items()
    ]
    for logical_id, resource in before.resources.items():
        if logical_id not in after.resources:
            notes = _removal_notes(resource)
            result.append(
                ResourceChange(logical_id, str(resource.get("Type", "")), Action.REMOVE, (), notes)
            )
    return result


def _resource_change(
    logical_id: str,
    kind: str,
    action: Action,
    found: list[PropertyChange],
    before: _Resources,
    after: _Resources,
    replaced: set[str],
) -> ResourceChange:
    if action is Action.MODIFY and logical_id in replaced:
        action = Action.REPLACE
    notes: list[str] = []
    if action is Action.REPLACE:
        if kind in LOAD_BALANCER_TYPES:
            records = _records_on(logical_id, after)
            where = ", ".join(records) if records else "a DNS record that points at it"
            notes.append(f"a new load balancer with a new DNS name: {where} moves to it")
        if before.resources[logical_id].get("UpdateReplacePolicy") == "Retain":
            notes.append("the old one is kept (UpdateReplacePolicy Retain): delete it by hand")
    if kind == RECORD_TYPE and action is not Action.ADD:
        moved = [
            change.because.removesuffix(" is replaced")
            for change in found
            if change.because and change.path.startswith(("ResourceRecords", "AliasTarget"))
        ]
        for balancer in moved:
            name = readable(after.flat(logical_id).get("Name"))
            notes.append(f"DNS moves: {name} will point at the new {balancer}'s DNS name")
    return ResourceChange(logical_id, kind, action, tuple(found), tuple(notes))


def _records_on(balancer: str, after: _Resources) -> list[str]:
    """The names of the template's DNS records that refer to `balancer`."""
    names = []
    for resource in after.resources.values():
        if resource.get("Type") == RECORD_TYPE:
            properties = resource.get("Properties") or {}
            if any(target == balancer for target, _ in references(properties)):
                names.append(readable(properties.get("Name")))
    return names


def _removal_notes(resource: Mapping[str, Any]) -> tuple[str, ...]:
    if resource.get("DeletionPolicy") == "Retain":
        return ("kept in AWS (DeletionPolicy Retain): the stack lets go of it",)
    return ()
