"""moto's CloudFormation made to keep what the fleet needs, and to update resources in place.

Stock moto creates a target group without its TargetGroupAttributes (deregistration_delay
stays 300) or tags, a classic ELB without its subnets, security groups, tags or
ConnectionDrainingPolicy, and "updates" a classic ELB, a security group or an Auto Scaling
group by deleting and re-creating it (an ELB forgets its instances), a target group or an ALB
not at all (the stack then holds nothing for it). These patches create each resource with
what its template says, and update it as CloudFormation does: in place, or, where a property
that AWS cannot change in place changed, by creating the replacement and deleting the old one
unless the resource's UpdateReplacePolicy is Retain. A change set that fails to execute
leaves the stack UPDATE_ROLLBACK_COMPLETE (or ROLLBACK_COMPLETE) with the resource's failure
among its events, as AWS does, instead of an internal error.
Applied once per process by moto_patches.apply.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from moto.autoscaling.models import FakeAutoScalingGroup, autoscaling_backends
from moto.cloudformation import parsing
from moto.cloudformation.models import ChangeSet, CloudFormationBackend, Event, Stack
from moto.ec2.models import ec2_backends
from moto.ec2.models.security_groups import SecurityGroup
from moto.elb.models import LoadBalancer, elb_backends
from moto.elbv2.models import FakeListener, FakeLoadBalancer, FakeTargetGroup, elbv2_backends
from moto.route53.models import RecordSet, route53_backends

__all__ = ["patch"]

_original: dict[str, Any] = {}
CREATE, UPDATE = "create_from_cloudformation_json", "update_from_cloudformation_json"
# The resource a change set's execution was creating or updating last (in this thread): the
# one that failed, when the execution fails.
_attempt = threading.local()


def patch() -> None:
    """Install the CloudFormation patches (once: moto_patches.apply)."""
    _original.update(
        execute=CloudFormationBackend.execute_change_set,
        group_update=FakeAutoScalingGroup.update_from_cloudformation_json,
        listener_update=FakeListener.update_from_cloudformation_json,
        update_resource=parsing.parse_and_update_resource,
        create_resource=parsing.parse_and_create_resource,
        record_create=RecordSet.create_from_cloudformation_json,
        parse_template=Stack.parse_template,
    )
    Stack.parse_template = staticmethod(_parse_template)  # type: ignore[method-assign]
    ChangeSet._parse_template = _parse_change_set_template  # type: ignore[method-assign]
    parsing.parse_and_create_resource = _create_resource
    # ResourceMap.update calls the module's function: a replaced resource's dependents follow.
    parsing.parse_and_update_resource = _update_resource
    for model, method, function in (
        (FakeListener, UPDATE, _listener_update),
        (FakeTargetGroup, CREATE, _target_group_create),
        (FakeTargetGroup, UPDATE, _target_group_update),
        (FakeLoadBalancer, CREATE, _alb_create),
        (FakeLoadBalancer, UPDATE, _alb_update),
        (LoadBalancer, CREATE, _classic_create),
        (LoadBalancer, UPDATE, _classic_update),
        (SecurityGroup, UPDATE, _group_update),
        (FakeAutoScalingGroup, UPDATE, _scaling_update),
        (RecordSet, CREATE, _record_create),
    ):
        setattr(model, method, classmethod(function))
    CloudFormationBackend.execute_change_set = _execute_change_set  # type: ignore[method-assign]


def _parse_template(template: str) -> dict[str, Any]:
    """JSON first (a JSON template is YAML too, but moto's pure-Python YAML parser takes
    6 ms for one of the console's; json 0.02 ms), else moto's way."""
    try:
        parsed = json.loads(template)
    except (TypeError, ValueError):
        parsed = None
    if isinstance(parsed, dict):
        return parsed
    result: dict[str, Any] = _original["parse_template"](template)
    return result


def _parse_change_set_template(self: ChangeSet) -> None:
    self.template_dict = _parse_template(self.template)


def _retained(template: dict[str, Any]) -> bool:
    return template.get("UpdateReplacePolicy") == "Retain"


def _tag_list(properties: dict[str, Any]) -> list[dict[str, str]]:
    return [{"Key": str(t["Key"]), "Value": str(t["Value"])} for t in properties.get("Tags", [])]


# -- target groups ----------------------------------------------------------------------------


def _target_group_create(
    cls: type, resource_name: str, template: dict[str, Any], account_id: str, region: str,
    **kwargs: Any,
) -> FakeTargetGroup:  # fmt: skip
    properties = template["Properties"]
    backend = elbv2_backends[account_id][region]
    group = backend.create_target_group(
        name=properties.get("Name", resource_name),
        vpc_id=properties.get("VpcId"),
        protocol=properties.get("Protocol"),
        port=properties.get("Port"),
        healthcheck_protocol=properties.get("HealthCheckProtocol"),
        healthcheck_port=properties.get("HealthCheckPort"),
        healthcheck_path=properties.get("HealthCheckPath"),
        healthcheck_interval_seconds=properties.get("HealthCheckIntervalSeconds"),
        healthcheck_timeout_seconds=properties.get("HealthCheckTimeoutSeconds"),
        healthy_threshold_count=properties.get("HealthyThresholdCount"),
        unhealthy_threshold_count=properties.get("UnhealthyThresholdCount"),
        matcher=properties.get("Matcher"),
        target_type=properties.get("TargetType"),
    )
    _target_group_settle(backend, group, properties)
    return group


def _target_group_settle(backend: Any, group: FakeTargetGroup, properties: dict[str, Any]) -> None:
    """The attributes and tags a target group's template gives it."""
    attributes = {
        str(a["Key"]): str(a["Value"]) for a in properties.get("TargetGroupAttributes", [])
    }
    if attributes:
        backend.modify_target_group_attributes(group.arn, attributes)
    tags = _tag_list(properties)
    if tags:
        backend.tagging_service.tag_resource(group.arn, tags)


def _target_group_update(
    cls: type, original_resource: FakeTargetGroup, new_resource_name: str,
    cloudformation_json: dict[str, Any], account_id: str, region_name: str,
) -> FakeTargetGroup:  # fmt: skip
    properties = cloudformation_json["Properties"]
    backend = elbv2_backends[account_id][region_name]
    group = original_resource
    fixed = (
        (properties.get("Name", new_resource_name), group.name),
        (properties.get("VpcId"), group.vpc_id),
        (properties.get("Protocol"), group.protocol),
        (int(properties.get("Port") or 0), int(group.port or 0)),
        (properties.get("TargetType", "instance"), group.target_type),
    )
    if any(new != old for new, old in fixed):
        replacement = _target_group_create(
            cls, new_resource_name, cloudformation_json, account_id, region_name
        )
        if not _retained(cloudformation_json):
            backend.delete_target_group(group.arn)
        return replacement
    matcher = properties.get("Matcher") or {}
    backend.modify_target_group(
        group.arn,
        health_check_proto=properties.get("HealthCheckProtocol"),
        health_check_port=properties.get("HealthCheckPort"),
        health_check_path=properties.get("HealthCheckPath"),
        health_check_interval=properties.get("HealthCheckIntervalSeconds"),
        health_check_timeout=properties.get("HealthCheckTimeoutSeconds"),
        healthy_threshold_count=properties.get("HealthyThresholdCount"),
        unhealthy_threshold_count=properties.get("UnhealthyThresholdCount"),
        http_codes=matcher.get("HttpCode"),
    )
    _target_group_settle(backend, group, properties)
    return group


# -- application load balancers ---------------------------------------------------------------


def _alb_create(
    cls: type, resource_name: str, template: dict[str, Any], account_id: str, region: str,
    **kwargs: Any,
) -> FakeLoadBalancer:  # fmt: skip
    properties = template["Properties"]
    backend = elbv2_backends[account_id][region]
    balancer: FakeLoadBalancer = backend.create_load_balancer(
        name=properties.get("Name", resource_name),
        security_groups=properties.get("SecurityGroups") or [],
        subnet_ids=properties.get("Subnets") or [],
        scheme=properties.get("Scheme", "internet-facing"),
        loadbalancer_type=properties.get("Type", "application"),
        tags=_tag_list(properties) or None,
    )
    return balancer


def _alb_update(
    cls: type, original_resource: FakeLoadBalancer, new_resource_name: str,
    cloudformation_json: dict[str, Any], account_id: str, region_name: str,
) -> FakeLoadBalancer:  # fmt: skip
    properties = cloudformation_json["Properties"]
    backend = elbv2_backends[account_id][region_name]
    balancer = original_resource
    fixed = (
        (properties.get("Name", new_resource_name), balancer.name),
        (properties.get("Scheme", "internet-facing"), balancer.scheme),
        (properties.get("Type", "application"), balancer.type),
    )
    if any(new != old for new, old in fixed):
        replacement = _alb_create(
            cls, new_resource_name, cloudformation_json, account_id, region_name
        )
        if not _retained(cloudformation_json):
            backend.delete_load_balancer(balancer.arn)
        return replacement
    backend.set_subnets(balancer.arn, list(properties.get("Subnets") or []), [])
    backend.set_security_groups(balancer.arn, list(properties.get("SecurityGroups") or []))
    tags = _tag_list(properties)
    if tags:
        backend.tagging_service.tag_resource(balancer.arn, tags)
    return balancer


def _listener_update(
    cls: type, original_resource: FakeListener, new_resource_name: str,
    cloudformation_json: dict[str, Any], account_id: str, region_name: str,
) -> FakeListener:  # fmt: skip
    """In place, unless its load balancer was replaced: then a new one on the new balancer."""
    properties = cloudformation_json["Properties"]
    if properties.get("LoadBalancerArn") == original_resource.load_balancer_arn:
        updated: FakeListener = _original["listener_update"].__func__(
            cls, original_resource, new_resource_name, cloudformation_json, account_id,
            region_name,
        )  # fmt: skip
        return updated
    replacement: FakeListener = FakeListener.create_from_cloudformation_json(
        new_resource_name, cloudformation_json, account_id, region_name
    )
    backend = elbv2_backends[account_id][region_name]
    if original_resource.load_balancer_arn in backend.load_balancers:
        backend.delete_listener(original_resource.arn)
    return replacement


# -- classic load balancers -------------------------------------------------------------------


def _classic_create(
    cls: type, resource_name: str, template: dict[str, Any], account_id: str, region: str,
    **kwargs: Any,
) -> LoadBalancer:  # fmt: skip
    properties = template["Properties"]
    backend = elb_backends[account_id][region]
    balancer: LoadBalancer = backend.create_load_balancer(
        name=properties.get("LoadBalancerName", resource_name),
        zones=properties.get("AvailabilityZones", []),
        ports=properties["Listeners"],
        scheme=properties.get("Scheme", "internet-facing"),
        subnets=list(properties.get("Subnets") or []) or None,
        security_groups=list(properties.get("SecurityGroups") or []) or None,
    )
    for instance_id in properties.get("Instances", []):
        backend.register_instances(balancer.name, [instance_id])
    _classic_settle(backend, balancer, properties)
    return balancer


def _classic_settle(backend: Any, balancer: LoadBalancer, properties: dict[str, Any]) -> None:
    """The health check, connection draining and tags a classic ELB's template gives it."""
    check = properties.get("HealthCheck")
    if check:
        backend.configure_health_check(
            load_balancer_name=balancer.name,
            timeout=check["Timeout"],
            healthy_threshold=check["HealthyThreshold"],
            unhealthy_threshold=check["UnhealthyThreshold"],
            interval=check["Interval"],
            target=check["Target"],
        )
    draining = properties.get("ConnectionDrainingPolicy")
    if draining is not None:
        enabled = str(draining.get("Enabled", False)).lower() == "true"
        backend.modify_load_balancer_attributes(
            balancer.name,
            connection_draining={"Enabled": enabled, "Timeout": int(draining.get("Timeout", 300))},
        )
    balancer.tags = {}
    for tag in _tag_list(properties):
        balancer.add_tag(tag["Key"], tag["Value"])


def _listener_key(listener: Any) -> tuple[str, int, str, int]:
    if isinstance(listener, dict):
        return (
            str(listener["Protocol"]).upper(),
            int(listener["LoadBalancerPort"]),
            str(listener.get("InstanceProtocol", listener["Protocol"])).upper(),
            int(listener["InstancePort"]),
        )
    return (
        str(listener.protocol).upper(),
        int(listener.load_balancer_port),
        str(listener.instance_protocol or listener.protocol).upper(),
        int(listener.instance_port),
    )


def _classic_update(
    cls: type, original_resource: LoadBalancer, new_resource_name: str,
    cloudformation_json: dict[str, Any], account_id: str, region_name: str,
) -> LoadBalancer:  # fmt: skip
    properties = cloudformation_json["Properties"]
    backend = elb_backends[account_id][region_name]
    balancer = original_resource
    name = properties.get("LoadBalancerName", new_resource_name)
    if name != balancer.name or properties.get("Scheme", "internet-facing") != balancer.scheme:
        replacement = _classic_create(
            cls, new_resource_name, cloudformation_json, account_id, region_name
        )
        if not _retained(cloudformation_json):
            backend.delete_load_balancer(balancer.name)
        return replacement
    wanted = sorted(_listener_key(listener) for listener in properties["Listeners"])
    if wanted != sorted(_listener_key(listener) for listener in balancer.listeners):
        ports = [str(listener.load_balancer_port) for listener in balancer.listeners]
        backend.delete_load_balancer_listeners(balancer.name, ports)
        backend.create_load_balancer_listeners(balancer.name, properties["Listeners"])
    if properties.get("Subnets"):
        balancer.subnets = list(properties["Subnets"])
    if properties.get("SecurityGroups"):
        backend.apply_security_groups_to_load_balancer(
            balancer.name, list(properties["SecurityGroups"])
        )
    _classic_settle(backend, balancer, properties)
    return balancer


# -- security groups and Auto Scaling groups --------------------------------------------------


def _group_update(
    cls: type, original_resource: SecurityGroup, new_resource_name: str,
    cloudformation_json: dict[str, Any], account_id: str, region_name: str,
) -> SecurityGroup:  # fmt: skip
    """In place (rules, tags) unless its name, description or VPC changed."""
    properties = cloudformation_json["Properties"]
    group = original_resource
    fixed = (
        (properties.get("GroupName", new_resource_name), group.name),
        (properties.get("GroupDescription"), group.description),
        (properties.get("VpcId"), group.vpc_id),
    )
    if any(new != old for new, old in fixed):
        replacement: SecurityGroup = SecurityGroup.create_from_cloudformation_json(
            new_resource_name, cloudformation_json, account_id, region_name
        )
        if not _retained(cloudformation_json):
            group.delete(account_id, region_name)
        return replacement
    backend = ec2_backends[account_id][region_name]
    group.ingress_rules = []
    for rule in properties.get("SecurityGroupIngress", []):
        backend.authorize_security_group_ingress(
            group_name_or_id=group.id,
            ip_protocol=rule["IpProtocol"],
            from_port=rule["FromPort"],
            to_port=rule["ToPort"],
            ip_ranges=rule.get("CidrIp", []),
            vpc_id=group.vpc_id,
        )
    for tag in _tag_list(properties):
        group.add_tag(tag["Key"], tag["Value"])
    return group


def _scaling_update(
    cls: type, original_resource: FakeAutoScalingGroup, new_resource_name: str,
    cloudformation_json: dict[str, Any], account_id: str, region_name: str,
) -> FakeAutoScalingGroup:  # fmt: skip
    """In place (capacity, launch template, subnets), unless its name changed."""
    properties = cloudformation_json["Properties"]
    if properties.get("AutoScalingGroupName", new_resource_name) != original_resource.name:
        replaced: FakeAutoScalingGroup = _original["group_update"].__func__(
            cls, original_resource, new_resource_name, cloudformation_json, account_id,
            region_name,
        )  # fmt: skip
        return replaced
    backend = autoscaling_backends[account_id][region_name]
    updated: FakeAutoScalingGroup = backend.update_auto_scaling_group(
        name=original_resource.name,
        availability_zones=properties.get("AvailabilityZones", []),
        desired_capacity=_optional_int(properties.get("DesiredCapacity")),
        max_size=_optional_int(properties.get("MaxSize")),
        min_size=_optional_int(properties.get("MinSize")),
        launch_config_name=properties.get("LaunchConfigurationName"),
        launch_template=properties.get("LaunchTemplate", {}),
        vpc_zone_identifier=",".join(properties.get("VPCZoneIdentifier", [])),
        health_check_period=_optional_int(properties.get("HealthCheckGracePeriod")),  # type: ignore[arg-type]
        health_check_type=properties.get("HealthCheckType"),
    )
    return updated


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _record_create(
    cls: type, resource_name: str, template: dict[str, Any], account_id: str, region: str,
    **kwargs: Any,
) -> RecordSet:  # fmt: skip
    """A record, written in its zone's change journal too: moto lets a DELETE through only for
    a record the journal holds (in AWS, anyone may delete a stack's record by hand)."""
    record: RecordSet = _original["record_create"].__func__(
        cls, resource_name, template, account_id, region, **kwargs
    )
    properties = template["Properties"]
    backend = route53_backends[account_id]["aws"]
    zone_name = properties.get("HostedZoneName")
    zone = backend.get_hosted_zone_by_name(zone_name) if zone_name else None
    zone = zone or backend.get_hosted_zone(properties["HostedZoneId"])
    entry: dict[str, Any] = {"Name": properties["Name"], "Type": properties["Type"]}
    if "TTL" in properties:
        entry["TTL"] = int(properties["TTL"])
    if "ResourceRecords" in properties:
        entry["ResourceRecords"] = [{"Value": str(v)} for v in properties["ResourceRecords"]]
    zone.rr_changes.append({"Action": "UPSERT", "ResourceRecordSet": entry})
    return record


# -- replacements and change sets ---


def _refers_to(value: Any, logical_id: str) -> bool:
    """Whether a resource's template names `logical_id` (Ref, Fn::GetAtt, DependsOn)."""
    if isinstance(value, dict):
        if value.get("Ref") == logical_id:
            return True
        attribute = value.get("Fn::GetAtt")
        if isinstance(attribute, list) and attribute and attribute[0] == logical_id:
            return True
        return any(_refers_to(item, logical_id) for item in value.values())
    if isinstance(value, list):
        return any(_refers_to(item, logical_id) for item in value)
    return False


def _update_resource(
    logical_id: str, resource_json: dict[str, Any], resources_map: Any, account_id: str,
    region_name: str,
) -> Any:  # fmt: skip
    """Update one resource; when that replaced it (a new physical id), update the resources
    that refer to it, as CloudFormation does (moto diffs only their unchanged JSON)."""
    before = resources_map._parsed_resources.get(logical_id)
    _attempt.logical_id = logical_id
    updated = _original["update_resource"](
        logical_id, resource_json, resources_map, account_id, region_name
    )
    old_id = getattr(before, "physical_resource_id", None)
    if updated is None or old_id is None or updated.physical_resource_id == old_id:
        return updated
    resources_map._parsed_resources[logical_id] = updated
    for other, other_json in resources_map._resource_json_map.items():
        if other == logical_id or other not in resources_map._parsed_resources:
            continue
        if _refers_to(other_json.get("Properties", {}), logical_id):
            resources_map._parsed_resources[other] = _update_resource(
                other, other_json, resources_map, account_id, region_name
            )
    return updated


def _create_resource(
    logical_id: str, resource_json: dict[str, Any], resources_map: Any, account_id: str,
    region_name: str,
) -> Any:  # fmt: skip
    _attempt.logical_id = logical_id
    return _original["create_resource"](
        logical_id, resource_json, resources_map, account_id, region_name
    )


# -- change sets ------------------------------------------------------------------------------


def _execute_change_set(
    self: CloudFormationBackend, change_set_name: str, stack_name: str | None = None
) -> None:
    """Execute; a resource that fails leaves the stack rolled back with the failure among its
    events (moto would answer an internal error and leave the stack half changed)."""
    change_set = self.change_sets.get(change_set_name) or next(
        (c for c in self.change_sets.values() if c.change_set_name == change_set_name), None
    )
    stack = self.stacks.get(change_set.stack_id) if change_set is not None else None
    kept = (
        (stack.template, stack.resource_map._template, stack.resource_map._resource_json_map)
        if stack is not None
        else None
    )
    _attempt.logical_id = None
    try:
        _original["execute"](self, change_set_name, stack_name)
    except Exception as error:
        if change_set is None or stack is None or kept is None:
            raise
        # Rolled back: the next change set is diffed against the template that ran before.
        template, stack.resource_map._template, stack.resource_map._resource_json_map = kept
        stack.template = template if isinstance(template, str) else json.dumps(template)
        creating = change_set.change_set_type == "CREATE"
        failed = "CREATE_FAILED" if creating else "UPDATE_FAILED"
        reason = str(getattr(error, "message", "") or error).splitlines()[0][:400]
        logical_id: str | None = getattr(_attempt, "logical_id", None)
        stack.events.append(
            Event(
                stack_id=stack.stack_id,
                stack_name=stack.name,
                logical_resource_id=logical_id or stack.name,
                physical_resource_id="",
                resource_type=_resource_type(change_set.changes, logical_id),
                resource_status=failed,
                resource_status_reason=reason,
                resource_properties=None,
            )
        )
        final = "ROLLBACK_COMPLETE" if creating else "UPDATE_ROLLBACK_COMPLETE"
        stack._add_stack_event(final, resource_status_reason=f"{logical_id}: {reason}")
        stack.status = final
        change_set.execution_status = "EXECUTE_FAILED"
        change_set.status_reason = reason


def _resource_type(changes: list[Any], logical_id: str | None) -> str:
    for change in changes:
        if change.logical_resource_id == logical_id:
            return str(change.resource_type)
    return "AWS::CloudFormation::Stack"
