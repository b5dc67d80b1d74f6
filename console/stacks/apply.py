"""Applying a stack change: its change set executed, the stack waited for, its events told."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from console.errors import AwsError

if TYPE_CHECKING:
    from console.aws.gateway import AwsGateway
    from console.config import Config
    from console.stacks.plan import StackPlan
    from console.store.adoptions import Adoption
    from console.store.interface import ConsoleStore

__all__ = [
    "ApplyOutcome",
    "PlannedChange",
    "StackCalls",
    "apply_change",
    "event_line",
    "failure_lines",
    "plan_change",
    "plan_lines",
    "template_text",
]

# A stack in one of these states is done moving; the first two are a success.
SUCCEEDED = ("CREATE_COMPLETE", "UPDATE_COMPLETE", "IMPORT_COMPLETE")
NO_CHANGES = ("didn't contain changes", "No updates are to be performed")


class StackCalls(Protocol):
    """What applying needs of console.aws's gateway (its `call`)."""

    async def call(self, service: str, operation: str, **kwargs: Any) -> dict[str, Any]: ...


@dataclass(frozen=True)
class ApplyOutcome:
    """How a change ended: the stack's last status, the change set executed, and for a failure
    the events that caused it ("LogicalId STATUS: reason")."""

    succeeded: bool
    status: str
    change_set: str
    summary: str
    failures: tuple[str, ...] = ()


@dataclass
class _Applying:
    gateway: StackCalls
    stack: str
    note: Callable[[str], None]
    poll_seconds: float
    deadline: float
    seen: set[str]


async def apply_change(
    gateway: StackCalls,
    stack_name: str,
    template: str,
    *,
    change_set: str,
    note: Callable[[str], None],
    executing: Callable[[str], Awaitable[None]] | None = None,
    timeout: float = 1800.0,
    poll_seconds: float = 1.0,
) -> ApplyOutcome:
    """Execute `change_set` of `stack_name` (the plan's); one made now from `template` (JSON
    text) when the plan's is gone or was never made. `note` hears each stack event as a line;
    `executing(change_set)` is awaited just before the change set is executed."""
    work = _Applying(gateway, stack_name, note, poll_seconds, time.monotonic() + timeout, set())
    exists = await _stack_status(work) not in (None, "REVIEW_IN_PROGRESS")
    name, ready = await _usable_change_set(work, change_set)
    if not ready:
        name = await _create_change_set(work, template, exists)
        state, why = await _wait_change_set(work, name)
        if state == "FAILED" and any(text in why for text in NO_CHANGES):
            note(f"{stack_name}: nothing to change")
            status = await _stack_status(work) or "NONE"
            return ApplyOutcome(True, status, name, "nothing to change: the stack is as asked")
        if state != "CREATE_COMPLETE":
            return ApplyOutcome(False, "NONE", name, f"change set {name} {state}: {why}", (why,))
    await _remember_events(work)
    if executing is not None:
        await executing(name)
    note(f"executing change set {name} on {stack_name}")
    try:
        await gateway.call("cloudformation", "execute_change_set", StackName=stack_name,
                           ChangeSetName=name)  # fmt: skip
    except AwsError as error:
        await _tell_events(work)
        return ApplyOutcome(
            False, await _stack_status(work) or "NONE", name, error.message, (error.message,)
        )
    return await _wait_stack(work, name)


async def _stack_status(work: _Applying) -> str | None:
    try:
        found = await work.gateway.call("cloudformation", "describe_stacks", StackName=work.stack)
    except AwsError as error:
        if "does not exist" in error.message:
            return None
        raise
    stacks = found.get("Stacks", [])
    return str(stacks[0]["StackStatus"]) if stacks else None


async def _usable_change_set(work: _Applying, name: str) -> tuple[str, bool]:
    """The plan's change set, and whether it can still be executed."""
    if not name:
        return name, False
    try:
        found = await work.gateway.call(
            "cloudformation", "describe_change_set", StackName=work.stack, ChangeSetName=name
        )
    except AwsError:
        return name, False
    usable = (
        found.get("Status") == "CREATE_COMPLETE"
        and found.get("ExecutionStatus", "AVAILABLE") == "AVAILABLE"
    )
    return name, usable


async def _create_change_set(work: _Applying, template: str, exists: bool) -> str:
    name = f"deploy-console-{time.time_ns() // 1_000_000}"
    await work.gateway.call(
        "cloudformation",
        "create_change_set",
        StackName=work.stack,
        ChangeSetName=name,
        ChangeSetType="UPDATE" if exists else "CREATE",
        TemplateBody=template,
        Description="deploy-console stack apply",
    )
    work.note(f"change set {name} made from the stored template")
    return name


async def _wait_change_set(work: _Applying, name: str) -> tuple[str, str]:
    """The change set's status once it is made (CREATE_COMPLETE or FAILED) and why."""
    while True:
        found = await work.gateway.call(
            "cloudformation", "describe_change_set", StackName=work.stack, ChangeSetName=name
        )
        status = str(found.get("Status", ""))
        if status in ("CREATE_COMPLETE", "FAILED"):
            return status, str(found.get("StatusReason", ""))
        if time.monotonic() > work.deadline:
            return "TIMED_OUT", f"still {status} when the wait ended"
        await asyncio.sleep(work.poll_seconds)


async def _wait_stack(work: _Applying, name: str) -> ApplyOutcome:
    """Waits until the stack stops moving, telling each new event; the outcome."""
    failures: list[str] = []
    while True:
        failures += await _tell_events(work)
        status = await _stack_status(work) or "NONE"
        if not status.endswith("_IN_PROGRESS"):
            failures += await _tell_events(work)
            break
        if time.monotonic() > work.deadline:
            return ApplyOutcome(
                False, status, name, f"the stack was still {status} when the wait ended"
            )
        await asyncio.sleep(work.poll_seconds)
    if status in SUCCEEDED:
        return ApplyOutcome(True, status, name, f"{work.stack} {status}")
    why = "; ".join(failures) or "no event said why"
    return ApplyOutcome(False, status, name, f"{work.stack} {status}: {why}", tuple(failures))


async def _events(work: _Applying) -> list[dict[str, Any]]:
    """The stack's newest events (one page: the ones a change makes), oldest first."""
    found = await work.gateway.call("cloudformation", "describe_stack_events", StackName=work.stack)
    return list(reversed(found.get("StackEvents", [])))


async def _remember_events(work: _Applying) -> None:
    """The events before this change: never told as its own."""
    try:
        work.seen.update(str(event.get("EventId")) for event in await _events(work))
    except AwsError:
        return  # a stack not made yet has none


async def _tell_events(work: _Applying) -> list[str]:
    """Tells the events not told yet; those that say why something failed."""
    try:
        events = await _events(work)
    except AwsError:
        return []
    failed: list[str] = []
    for event in events:
        key = str(event.get("EventId"))
        if key in work.seen:
            continue
        work.seen.add(key)
        work.note(event_line(event))
        failed += failure_lines([event])
    return failed


def event_line(event: dict[str, Any]) -> str:
    """One stack event as a line: the resource, its status and the reason given."""
    reason = str(event.get("ResourceStatusReason") or "")
    kind = str(event.get("ResourceType") or "")
    what = f"{event.get('LogicalResourceId', '?')}"
    if kind and kind != "AWS::CloudFormation::Stack":
        what = f"{what} ({kind.removeprefix('AWS::')})"
    return f"{what} {event.get('ResourceStatus', '?')}" + (f": {reason}" if reason else "")


def failure_lines(events: list[dict[str, Any]]) -> list[str]:
    """The events that say why a change failed: a resource's *_FAILED status with its reason."""
    return [
        f"{event.get('LogicalResourceId', '?')} {event['ResourceStatus']}: "
        f"{event.get('ResourceStatusReason') or 'no reason given'}"
        for event in events
        if str(event.get("ResourceStatus", "")).endswith("_FAILED")
    ]


def template_text(template: dict[str, Any]) -> str:
    """A template as stored with its change and sent to CloudFormation: readable JSON."""
    return json.dumps(template, indent=2, sort_keys=False)


@dataclass(frozen=True)
class PlannedChange:
    """What a plan gives `stack apply`: the stack, the template (JSON text), the plan's
    summary (its lines), the change set it made ("" if none) and how many resources change."""

    stack_name: str
    template: str
    summary: str
    change_set: str = ""
    changes: int = 0


async def plan_change(
    gateway: AwsGateway,
    config: Config,
    project: str,
    cluster: str,
    lines: Callable[[StackPlan], list[str]] | None = None,
    store: ConsoleStore | None = None,
    adoption: Adoption | None = None,
) -> PlannedChange:
    """The pair's plan (console/stacks/plan.py: a change set made from the config's template)
    as `stack apply` stores and shows it: its summary one line per resource and property
    (`lines` tells it, else plan_lines); `store`: where a `stack adopt` baseline is kept."""
    from console.stacks.plan import plan_stack
    from console.store import Store
    from console.store.adoptions import adoptions_of

    # The SQLite store keeps baselines (another engine: none yet).
    known = adoptions_of(store) if isinstance(store, Store) else None
    if adoption is None and known is not None:
        adoption = await known.get(project, cluster)
    plan = await plan_stack(gateway, config, project, cluster, adoption)
    said = (lines or plan_lines)(plan)
    summary = "\n".join(said) if plan.resources else "no change: the stack is as the config asks"
    return PlannedChange(
        plan.stack_name, plan.template_body, summary, plan.change_set_name or "",
        len(plan.resources),
    )  # fmt: skip


SIGNS = {"add": "+", "modify": "~", "replace": "-/+", "remove": "-"}


def plan_lines(plan: StackPlan) -> list[str]:
    """A plan as text: each resource with its action, then its property changes and notes."""
    lines: list[str] = []
    for resource in plan.resources:
        change = resource.change
        kind = change.resource_type.removeprefix("AWS::")
        action = change.action.value
        lines.append(f"{SIGNS.get(action, '?')} {action} {change.logical_id} ({kind})")
        for prop in change.properties:
            replaces = " (replaces it)" if prop.replacement.value == "yes" else ""
            lines.append(f"    {prop.describe()}{replaces}")
        lines += [f"    {note}" for note in change.notes]
    return lines
