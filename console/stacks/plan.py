"""A pair's stack plan: a CloudFormation change set from the config's template, told per
resource with the console's own diff (what replaces, which property, where DNS moves)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from console.aws.gateway import AwsGateway
from console.config import Config
from console.errors import AwsError, ConsoleError
from console.stacks.adopted import adopted_template
from console.stacks.diff import LOAD_BALANCER_TYPES, Action, ResourceChange, diff_templates
from console.stacks.live import READERS
from console.stacks.refs import pair_settings, resolve_refs
from console.stacks.template import build_template, render, stack_name, stack_tags
from console.store.adoptions import Adoption

__all__ = [
    "NO_CHANGES",
    "PlanError",
    "PlannedResource",
    "StackPlan",
    "StackState",
    "current_stack",
    "current_template",
    "desired_template",
    "plan_stack",
    "stack_state",
]

# CloudFormation's reasons for a change set with nothing to do (moto says the first).
NO_CHANGES = ("didn't contain changes", "No updates are to be performed")
# How long a change set may take to be computed, and how often it is asked after.
CHANGE_SET_SECONDS = 120.0
POLL_SECONDS = 1.0
# A stack in this state was only planned (a CREATE change set never executed).
REVIEW = "REVIEW_IN_PROGRESS"


class PlanError(ConsoleError):
    """A plan cannot be made (the stack is busy or broken, the change set failed)."""


@dataclass(frozen=True)
class PlannedResource:
    """One resource the plan changes: the console's diff with CloudFormation's physical id."""

    change: ResourceChange
    physical_id: str | None = None

    @property
    def action(self) -> Action:
        return self.change.action

    def as_json(self) -> dict[str, Any]:
        return {**self.change.as_json(), "physical_id": self.physical_id}


@dataclass(frozen=True)
class StackPlan:
    """What applying the config to the pair's stack would do. `change_set_id` (None when
    nothing changes) is the change set `stack apply` executes: exactly this plan."""

    project: str
    cluster: str
    stack_name: str
    change_set_type: str  # "CREATE" (no stack yet) or "UPDATE"
    stack_status: str | None  # None: no stack yet
    change_set_name: str | None
    change_set_id: str | None
    resources: tuple[PlannedResource, ...]
    template: dict[str, Any] = field(repr=False)
    last_updated: datetime | None = None

    @property
    def unchanged(self) -> bool:
        return not self.resources

    @property
    def template_body(self) -> str:
        return render(self.template)

    def counts(self) -> dict[str, int]:
        """How many resources each action touches ("add": 2, "replace": 1...)."""
        counts = {action.value: 0 for action in Action}
        for resource in self.resources:
            counts[resource.action.value] += 1
        return counts

    def dns_moves(self) -> list[str]:
        """The notes that say a DNS record moves (a replaced load balancer)."""
        return [
            note
            for resource in self.resources
            for note in resource.change.notes
            if note.startswith("DNS moves")
        ]

    def as_json(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "cluster": self.cluster,
            "stack": self.stack_name,
            "stack_status": self.stack_status,
            "last_updated": self.last_updated,
            "change_set_type": self.change_set_type,
            "change_set": self.change_set_name,
            "change_set_id": self.change_set_id,
            "unchanged": self.unchanged,
            "counts": self.counts(),
            "dns_moves": self.dns_moves(),
            "resources": [resource.as_json() for resource in self.resources],
        }


async def current_stack(gateway: AwsGateway, name: str) -> dict[str, Any] | None:
    """describe_stacks for one stack; None when there is none (or it was deleted)."""
    try:
        answer = await gateway.call("cloudformation", "describe_stacks", StackName=name)
    except AwsError as error:
        if "does not exist" in error.message and "ValidationError" in error.message:
            return None
        raise
    stacks: list[dict[str, Any]] = answer.get("Stacks", [])
    return stacks[0] if stacks else None


async def current_template(gateway: AwsGateway, name: str) -> dict[str, Any]:
    """The template the stack runs now (get_template, as parsed JSON)."""
    answer = await gateway.call(
        "cloudformation", "get_template", StackName=name, TemplateStage="Original"
    )
    body = answer.get("TemplateBody") or {}
    parsed = json.loads(body) if isinstance(body, str) else body
    if not isinstance(parsed, Mapping):
        raise PlanError(f"stack {name}: its template is not a JSON object")
    return dict(parsed)


async def desired_template(
    gateway: AwsGateway,
    config: Config,
    project: str,
    cluster: str,
    adoption: Adoption | None = None,
) -> dict[str, Any]:
    """The template the config asks for, its refs (VPC, subnets, zone, image) read from AWS;
    with the pair's `stack adopt` baseline, what it adopted referenced, never created."""
    refs = await resolve_refs(gateway, config, project, cluster)
    return adopted_template(build_template(config, project, cluster, refs), adoption)


def keep_image(desired: dict[str, Any], current: Mapping[str, Any] | None) -> dict[str, Any]:
    """The desired template with the image its stack's launch template has already (or none,
    as it has none): deploys choose images and launch with their own, so a stack does not
    change with each release; a new stack starts from what the pair runs."""
    if current is None:
        return desired
    try:
        now = current["Resources"]["LaunchTemplate"]["Properties"]["LaunchTemplateData"]
        data = desired["Resources"]["LaunchTemplate"]["Properties"]["LaunchTemplateData"]
    except (KeyError, TypeError):
        return desired
    if data.get("ImageId") == now.get("ImageId"):
        return desired
    kept: dict[str, Any] = json.loads(json.dumps(desired))  # a copy: the caller's stays as built
    kept_data = kept["Resources"]["LaunchTemplate"]["Properties"]["LaunchTemplateData"]
    if "ImageId" in now:
        kept_data["ImageId"] = now["ImageId"]
    else:
        kept_data.pop("ImageId", None)
    return kept


def _change_set_name(stack: str, body: str) -> str:
    """`dc-shop-staging-plan-20261205-061200-1a2b3c4d`: when, and which template."""
    digest = hashlib.sha256(body.encode()).hexdigest()[:8]
    return f"{stack}-plan-{datetime.now(UTC):%Y%m%d-%H%M%S}-{digest}"


def _stamp(stack: Mapping[str, Any] | None) -> datetime | None:
    if stack is None:
        return None
    moment = stack.get("LastUpdatedTime") or stack.get("CreationTime")
    return moment if isinstance(moment, datetime) else None


async def plan_stack(
    gateway: AwsGateway,
    config: Config,
    project: str,
    cluster: str,
    adoption: Adoption | None = None,
) -> StackPlan:
    """Plan the pair's stack: build the template from the config, create a change set
    (CREATE without a stack, else UPDATE), describe it and tell it per resource. A plan that
    changes nothing deletes its change set and says so."""
    template = await desired_template(gateway, config, project, cluster, adoption)
    name = stack_name(project, cluster)
    stack = await current_stack(gateway, name)
    status = None if stack is None else str(stack.get("StackStatus"))
    if status is not None and status.endswith("_IN_PROGRESS") and status != REVIEW:
        raise PlanError(f"stack {name} is {status}: plan again once it is done")
    if status == "ROLLBACK_COMPLETE":
        raise PlanError(f"stack {name} is ROLLBACK_COMPLETE (its creation failed): delete it first")
    if status == REVIEW:
        # Only planned before (never created): a new plan takes the old one's place.
        await gateway.call("cloudformation", "delete_stack", StackName=name)
        stack = status = None
    old = None if stack is None else await current_template(gateway, name)
    template = keep_image(template, old)
    body = render(template)
    kind = "CREATE" if stack is None else "UPDATE"
    change_set = _change_set_name(name, body)
    created = await gateway.call(
        "cloudformation", "create_change_set", StackName=name, ChangeSetName=change_set,
        TemplateBody=body, ChangeSetType=kind, Tags=stack_tags(config, project, cluster),
        Description=f"deploy-console plan for {project} in {cluster}",
    )  # fmt: skip
    change_set_id = str(created["Id"])
    described = await _described(gateway, name, change_set_id)
    reason = str(described.get("StatusReason") or "")
    resources: tuple[PlannedResource, ...] = ()
    if described.get("Status") != "FAILED":
        physical = {} if stack is None else await _physical_ids(gateway, name)
        resources = _combined(diff_templates(old, template), described, physical)
        resources = await _with_dns_now(gateway, resources)
    if not resources:  # nothing to execute: no change set kept
        await gateway.call(
            "cloudformation", "delete_change_set", StackName=name, ChangeSetName=change_set_id
        )
    if described.get("Status") == "FAILED" and not any(words in reason for words in NO_CHANGES):
        raise PlanError(f"stack {name}: the change set failed: {reason or 'no reason given'}")
    return StackPlan(
        project=project, cluster=cluster, stack_name=name, change_set_type=kind,
        stack_status=status, change_set_name=change_set if resources else None,
        change_set_id=change_set_id if resources else None, resources=resources,
        template=template, last_updated=_stamp(stack),
    )  # fmt: skip


async def _described(gateway: AwsGateway, stack: str, change_set_id: str) -> dict[str, Any]:
    """The change set once CloudFormation has computed it (CREATE_COMPLETE or FAILED)."""
    deadline = time.monotonic() + CHANGE_SET_SECONDS
    while True:
        described = await gateway.call(
            "cloudformation", "describe_change_set", StackName=stack, ChangeSetName=change_set_id
        )
        if described.get("Status") in ("CREATE_COMPLETE", "FAILED"):
            return described
        if time.monotonic() > deadline:
            raise PlanError(
                f"stack {stack}: the change set is still {described.get('Status')} "
                f"after {CHANGE_SET_SECONDS:.0f} s"
            )
        await asyncio.sleep(POLL_SECONDS)  # CloudFormation computes it in the background


async def _physical_ids(gateway: AwsGateway, name: str) -> dict[str, str]:
    answer = await gateway.call("cloudformation", "describe_stack_resources", StackName=name)
    return {
        str(item["LogicalResourceId"]): str(item.get("PhysicalResourceId") or "")
        for item in answer.get("StackResources", [])
    }


async def _with_dns_now(
    gateway: AwsGateway, resources: tuple[PlannedResource, ...]
) -> tuple[PlannedResource, ...]:
    """A DNS move says the name its record points at now: one describe per replaced load
    balancer (none when nothing moves)."""
    now: dict[str, str] = {}
    for resource in resources:
        change = resource.change
        if change.resource_type not in LOAD_BALANCER_TYPES or resource.action is not Action.REPLACE:
            continue
        if resource.physical_id:
            found = await READERS[change.resource_type](gateway, resource.physical_id, {})
            if found is not None and found[1].get("DNSName"):
                now[change.logical_id] = str(found[1]["DNSName"])

    def told(note: str) -> str:
        for logical_id, dns_name in now.items():
            if note.startswith("DNS moves") and f"new {logical_id}'s" in note:
                return f"{note}, away from {dns_name}"
        return note

    if not now:
        return resources
    return tuple(
        PlannedResource(
            ResourceChange(
                r.change.logical_id, r.change.resource_type, r.action, r.change.properties,
                tuple(told(note) for note in r.change.notes),
            ),
            r.physical_id,
        )
        for r in resources
    )  # fmt: skip


_ACTIONS = {"Add": Action.ADD, "Modify": Action.MODIFY, "Remove": Action.REMOVE}


def _combined(
    ours: list[ResourceChange], described: Mapping[str, Any], physical: Mapping[str, str]
) -> tuple[PlannedResource, ...]:
    """Our diff, with CloudFormation's word where it says more: a replacement it knows of
    (real AWS says "Replacement": "True"), or a resource our diff did not see change."""
    theirs: dict[str, dict[str, Any]] = {}
    for change in described.get("Changes", []):
        detail = change.get("ResourceChange") or {}
        if detail.get("LogicalResourceId"):
            theirs[str(detail["LogicalResourceId"])] = detail
    planned = []
    for change in ours:
        detail = theirs.pop(change.logical_id, {})
        if change.action is Action.MODIFY and detail.get("Replacement") == "True":
            change = ResourceChange(
                change.logical_id, change.resource_type, Action.REPLACE, change.properties,
                (*change.notes, "CloudFormation says it is replaced"),
            )  # fmt: skip
        physical_id = detail.get("PhysicalResourceId") or physical.get(change.logical_id) or None
        planned.append(PlannedResource(change, physical_id))
    for logical_id, detail in theirs.items():
        action = _ACTIONS.get(str(detail.get("Action")), Action.MODIFY)
        if detail.get("Replacement") == "True":
            action = Action.REPLACE
        note = "CloudFormation says so; no property of its template changes"
        change = ResourceChange(
            logical_id, str(detail.get("ResourceType", "")), action, (), (note,)
        )
        planned.append(PlannedResource(change, physical.get(logical_id) or None))
    return tuple(planned)


@dataclass(frozen=True)
class StackState:
    """A pair's stack as `stack status` tells it: not managed (no `stack` in the config), no
    stack yet, or its status and whether its template is what the config asks for."""

    project: str
    cluster: str
    stack_name: str
    managed: bool
    status: str | None = None  # None: no stack (or only planned)
    last_updated: datetime | None = None
    # The resources the config would change (0: in sync); None when not managed.
    changes: int | None = None

    @property
    def in_sync(self) -> bool:
        return not self.managed or (self.status is not None and self.changes == 0)

    def as_json(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "cluster": self.cluster,
            "managed": self.managed,
            "stack": self.stack_name if self.managed else None,
            "status": self.status,
            "last_updated": self.last_updated,
            "changes": self.changes,
            "in_sync": self.in_sync,
        }


async def stack_state(
    gateway: AwsGateway,
    config: Config,
    project: str,
    cluster: str,
    adoption: Adoption | None = None,
) -> StackState:
    """The pair's stack state; no AWS call for a pair the config leaves unmanaged. A stack
    only planned (REVIEW_IN_PROGRESS) counts as none."""
    name = stack_name(project, cluster)
    settings = config.project(project).clusters.get(cluster)
    if settings is None or settings.stack is None:
        return StackState(project, cluster, name, managed=False)
    pair_settings(config, project, cluster)  # a stack without launch settings: one line
    stack = await current_stack(gateway, name)
    desired = await desired_template(gateway, config, project, cluster, adoption)
    if stack is None or stack.get("StackStatus") == REVIEW:
        return StackState(project, cluster, name, True, changes=len(diff_templates(None, desired)))
    current = await current_template(gateway, name)
    changes = diff_templates(current, keep_image(desired, current))
    status = str(stack.get("StackStatus"))
    return StackState(project, cluster, name, True, status, _stamp(stack), len(changes))
