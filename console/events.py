"""Past-tense events a deploy reports as it runs: the UI and the CLI only listen to these."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from console.model import DeployState, Step, StepState


@dataclass(frozen=True)
class _Event:
    """What every event carries: the deploy it is about."""

    deploy_id: str


@dataclass(frozen=True)
class DeployStarted(_Event):
    project: str
    cluster: str
    release: str
    image_id: str
    actor: str
    at: datetime


@dataclass(frozen=True)
class StepStarted(_Event):
    step: Step
    at: datetime
    detail: str = ""


@dataclass(frozen=True)
class StepFinished(_Event):
    step: Step
    state: StepState
    seconds: float
    detail: str = ""


@dataclass(frozen=True)
class OutputLine(_Event):
    """One line a remote command printed (secrets already masked)."""

    source: str  # an instance id, or "console" for the engine's own notes
    text: str
    stream: str = "stdout"


@dataclass(frozen=True)
class DeployFinished(_Event):
    state: DeployState
    reason: str
    seconds: float
    # Time the console itself worked: total minus waiting on AWS, SSH and timers.
    own_seconds: float


@dataclass(frozen=True)
class DeployWaiting(_Event):
    """A queued deploy's reason to wait changed ("" once nothing holds it back)."""

    reason: str


DeployEvent = (
    DeployWaiting | DeployStarted | StepStarted | StepFinished | OutputLine | DeployFinished
)


def event_json(event: DeployEvent) -> dict[str, Any]:
    """One event as JSON-ready data, `event` naming its kind (for `deploy --json`)."""
    data = asdict(event)
    for key, value in data.items():
        if isinstance(value, datetime):
            data[key] = value.isoformat()
    return {"event": type(event).__name__, **data}


EVENT_TYPES = {
    cls.__name__: cls
    for cls in (DeployWaiting, DeployStarted, StepStarted, StepFinished, OutputLine, DeployFinished)
}


def event_from_json(data: dict[str, Any]) -> DeployEvent:
    """The event event_json wrote (for a deploy followed through the runner service)."""
    values = dict(data)
    cls = EVENT_TYPES[str(values.pop("event"))]
    if "at" in values:
        values["at"] = datetime.fromisoformat(values["at"])
    if "step" in values:
        values["step"] = Step(values["step"])
    if "state" in values:
        values["state"] = (DeployState if cls is DeployFinished else StepState)(values["state"])
    event: DeployEvent = cls(**values)
    return event
