"""An adopted pair's template: its baseline's resources referenced by id, never created."""

from __future__ import annotations

import copy
from typing import Any

from console.errors import ConfigError
from console.store.adoptions import AdoptedResource, Adoption

__all__ = ["adopted_template", "kept_ids"]

# What an adopted resource's Fn::GetAtt reads, from the properties AWS described.
ATTRIBUTES = {
    ("load_balancer", "DNSName"): ("DNSName",),
    ("load_balancer", "CanonicalHostedZoneID"): (
        "CanonicalHostedZoneId",
        "CanonicalHostedZoneNameID",
    ),
    ("load_balancer", "LoadBalancerName"): ("LoadBalancerName",),
    ("target_group", "TargetGroupName"): ("TargetGroupName",),
}


def kept_ids(adoption: Adoption) -> dict[str, AdoptedResource]:
    """The template's logical ids the baseline stands in for."""
    return {resource.logical_id: resource for resource in adoption.resources}


def adopted_template(template: dict[str, Any], adoption: Adoption | None) -> dict[str, Any]:
    """`template` (console/stacks/template.py's build_template) for a pair with a baseline:
    each adopted resource left out of Resources, and every Ref or Fn::GetAtt to it replaced
    by its id or described property, so that the stack never creates, changes, replaces or
    deletes it. The template as it was without an adoption."""
    if adoption is None:
        return template
    kept = kept_ids(adoption)
    built = copy.deepcopy(template)
    resources: dict[str, Any] = built.get("Resources", {})
    for logical_id in list(resources):
        if logical_id in kept:
            del resources[logical_id]
    result: dict[str, Any] = _substituted(built, kept)
    result["Description"] = (
        f"{result.get('Description', '')} Adopted by hand: "
        f"{', '.join(sorted(k for k in kept if k in template.get('Resources', {})))} "
        "kept as they are (deploy-console stack adopt)."
    ).strip()
    return result


def _substituted(value: Any, kept: dict[str, AdoptedResource]) -> Any:
    if isinstance(value, list):
        return [_substituted(item, kept) for item in value]
    if not isinstance(value, dict):
        return value
    if set(value) == {"Ref"} and value["Ref"] in kept:
        return kept[value["Ref"]].physical_id
    if set(value) == {"Fn::GetAtt"} and value["Fn::GetAtt"][0] in kept:
        logical_id, attribute = value["Fn::GetAtt"][:2]
        return _attribute(kept[logical_id], attribute)
    return {key: _substituted(item, kept) for key, item in value.items()}


def _attribute(resource: AdoptedResource, attribute: str) -> Any:
    if attribute in ("GroupId", "LoadBalancerArn", "TargetGroupArn", "ListenerArn"):
        return resource.physical_id
    for key in ATTRIBUTES.get((resource.kind, attribute), ()):
        if key in resource.properties:
            return resource.properties[key]
    raise ConfigError(
        f"the template reads {resource.logical_id}.{attribute}, which the adopted "
        f"{resource.kind} {resource.name} did not record: run `stack adopt --baseline` again"
    )
