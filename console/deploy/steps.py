"""A deploy's steps on record: each step row commits with its audit row, before it acts."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator

from console.deploy.deployment import Deployment, message
from console.errors import StoreError
from console.events import StepFinished, StepStarted
from console.model import Step, StepState
from console.store import Store


@contextlib.asynccontextmanager
async def recorded(
    store: Store, deployment: Deployment, step: Step, detail: str = ""
) -> AsyncIterator[list[str]]:
    """Records a step before it acts and its end after; the body may append a closing detail.

    The step's row and its "deploy.step" audit row are one store transaction, at its start and
    at its end: a crash leaves both or neither. A write that fails is raised: a step that did
    not start on record never acts, and a step whose success is not on record stops the
    deploy (a failed step's own error goes on, the unrecorded end said in its output)."""
    request = deployment.request
    detail = deployment.masker.mask(detail)
    audit = {
        "action": "deploy.step",
        "actor": request.actor,
        "project": request.project,
        "cluster": request.cluster,
        "deploy_id": deployment.deploy_id,
        "step": step.value,
    }
    await store.step_started(
        deployment.deploy_id,
        step.value,
        detail=detail,
        audit={**audit, "outcome": "started", "reason": detail},
    )
    deployment.emit(StepStarted(deployment.deploy_id, step, deployment.clock(), detail))
    began = time.perf_counter()
    closing: list[str] = []
    outcome = StepState.FAILED
    try:
        yield closing
        outcome = StepState.SUCCEEDED
    except BaseException as error:
        closing.append(message(error))
        raise
    finally:
        text = deployment.masker.mask("; ".join(closing))
        seconds = round(time.perf_counter() - began, 3)
        try:
            await store.step_finished(
                deployment.deploy_id,
                step.value,
                outcome.value,
                detail=text,
                audit={
                    **audit,
                    "outcome": outcome.value,
                    "reason": text,
                    "instance_ids": tuple(deployment.new_ids),
                },
            )
        except StoreError as error:
            unrecorded = f"the store did not record the end of {step.value}: {error.message}"
            deployment.unrecorded.append(unrecorded)
            deployment.note(unrecorded)
            if outcome is StepState.SUCCEEDED:
                raise  # an unrecorded step must not let the deploy go on
        deployment.emit(StepFinished(deployment.deploy_id, step, outcome, seconds, text))
