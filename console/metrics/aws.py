"""The AWS call and error counters, fed by botocore's events on the gateway's clients."""

from __future__ import annotations

from functools import partial
from typing import Any

from console.metrics.current import installed


def count_call(model: Any) -> None:
    """One API operation (a `before-call`: retries are not counted), if metrics are on."""
    metrics = installed()
    if metrics is not None:
        metrics.aws_call(model.service_model.service_name, model.name)


def count_outcomes(client: Any) -> None:
    """Count the operations of `client` that end in an error: an error answer (its AWS error
    code) or no answer at all (the exception's name: a timeout, a refused connection)."""
    client.meta.events.register("after-call", _after_call)
    service = client.meta.service_model.service_name
    client.meta.events.register("after-call-error", partial(_after_call_error, service))


def _after_call(http_response: Any, parsed: Any, model: Any, **_: Any) -> None:
    metrics = installed()
    if metrics is None or http_response is None or http_response.status_code < 300:
        return
    error = parsed.get("Error", {}) if isinstance(parsed, dict) else {}
    code = str(error.get("Code") or f"HTTP{http_response.status_code}")
    metrics.aws_error(model.service_model.service_name, model.name, code)


def _after_call_error(service: str, exception: BaseException, event_name: str, **_: Any) -> None:
    metrics = installed()
    if metrics is None:
        return
    # after-call-error.<service id>.<Operation>: botocore passes no operation model here.
    operation = event_name.rpartition(".")[2]
    metrics.aws_error(service, operation, type(exception).__name__)
