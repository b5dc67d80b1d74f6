"""The checks a deploy passes before it is queued: the ticket's `check` and `require_build`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from console.config import Config
from console.errors import ConsoleError
from console.gates.probe import Answer, probe
from console.model import DeployRequest

__all__ = ["GateRefused", "Passed", "needs_image", "queue_checks"]


class GateRefused(ConsoleError):
    """A check outside the console said no (a ticket not approved, a build that did not
    pass): a refusal, not bad input; nothing was queued."""

    def __init__(self, message: str, *, project: str = "", cluster: str = "") -> None:
        super().__init__(message)
        self.project = project
        self.cluster = cluster


@dataclass(frozen=True)
class Passed:
    """The answers of the checks a deploy passed, said on its queue audit row."""

    answers: tuple[str, ...] = ()

    def text(self) -> str:
        return "; ".join(self.answers)


def needs_image(config: Config, cluster: str) -> bool:
    """Whether a check of `cluster` names {image_id} (the release is resolved to fill it)."""
    settings = config.cluster(cluster)
    probes = [settings.require_build, settings.ticket.check if settings.ticket else None]
    return any(p is not None and p.uses_image for p in probes)


def values(config: Config, request: DeployRequest, image_id: str) -> Mapping[str, str]:
    return {
        "project": request.project,
        "cluster": request.cluster,
        "release": request.release,
        "image_id": image_id,
        "ticket": request.ticket or "",
        "config": str(config.source),
    }


async def queue_checks(config: Config, request: DeployRequest, image_id: str = "") -> Passed:
    """Ask the cluster's checks about `request`: the ticket's check (when a ticket is given)
    and require_build (not for a rollback: that release served here before). GateRefused with
    the answer, in one line, when one says no."""
    cluster = config.cluster(request.cluster)
    filled = values(config, request, image_id)
    answers: list[str] = []
    check = cluster.ticket.check if cluster.ticket else None
    if check is not None and request.ticket:
        answer = await probe(check, filled)
        _refuse_unless(answer, f"ticket {request.ticket} check of {request.cluster}", request)
        answers.append(f"ticket {request.ticket} check passed ({answer.text})")
    # Not for a rollback (that release served here before), nor a scale or a stack change
    # (`release` is then no release: a count, a change id).
    if (
        cluster.require_build is not None
        and request.rollback_of is None
        and request.kind == "deploy"
    ):
        answer = await probe(cluster.require_build, filled)
        what = f"release gate of {request.cluster} ({request.project} {request.release})"
        _refuse_unless(answer, what, request)
        answers.append(f"build passed ({answer.text})")
    return Passed(tuple(answers))


def _refuse_unless(answer: Answer, what: str, request: DeployRequest) -> None:
    if not answer.passed:
        raise GateRefused(
            f"{what} said no: {answer.text}; nothing queued",
            project=request.project,
            cluster=request.cluster,
        )
