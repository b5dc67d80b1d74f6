"""botocore's service models for the console's clients: one loader per process, and for the
fleet's read calls models cut to those operations, cached on disk per botocore version.

A new process spends most of a cold `status` loading models: ec2's alone is a 3 MB JSON
document (0.23 s to parse) of which a refresh uses one operation. A reading client (made under
`reading()`) gets a model holding only READ_OPERATIONS and the shapes they reach, written
once to the user cache directory and read back in milliseconds; every other client (deploys,
waits) gets the full model. An unwritable cache only costs the time it would have saved.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore
import botocore.loaders

# The calls a fleet refresh and the project screen make, per service (botocore's names).
READ_OPERATIONS: dict[str, tuple[str, ...]] = {
    "ec2": ("DescribeInstances",),
    "elb": (
        "DescribeLoadBalancers",
        "DescribeInstanceHealth",
        "DescribeLoadBalancerAttributes",
    ),
    "elbv2": (
        "DescribeTargetGroups",
        "DescribeTargetHealth",
        "DescribeTargetGroupAttributes",
        "DescribeLoadBalancers",  # (dns) the ALBs' DNS names a record is matched against
    ),
    # (dns) Route 53 is global: its client is the account's us-east-1 one (AwsGateway).
    "route53": ("ListHostedZones", "ListResourceRecordSets"),
}
CACHE_ENV = "DEPLOY_CONSOLE_CACHE_DIR"
# Cut models, and the endpoint rules read back whole (no scan of botocore's 400 services).
_CUT_TYPES = ("service-2", "paginators-1", "endpoint-rule-set-1")

_reading = threading.local()


@contextlib.contextmanager
def reading() -> Iterator[None]:
    """Clients made in this block (in this thread) get the cut models."""
    _reading.on = True
    try:
        yield
    finally:
        _reading.on = False


def read_operation(service: str, operation: str) -> bool:
    """Whether `operation` (a client method name or an API name) is in the cut model."""
    wanted = READ_OPERATIONS.get(service, ())
    return operation in wanted or any(botocore.xform_name(op) == operation for op in wanted)


def cache_dir() -> Path:
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "deploy-console"


def cut_model(model: dict[str, Any], operations: tuple[str, ...]) -> dict[str, Any]:
    """A service model with only `operations` and the shapes they reach (no documentation)."""
    shapes: dict[str, Any] = model["shapes"]
    kept: dict[str, Any] = {}
    pending: list[str] = []
    ops = {name: _undocumented(model["operations"][name]) for name in operations}
    for op in ops.values():
        for key in ("input", "output"):
            if key in op:
                pending.append(op[key]["shape"])
        pending.extend(error["shape"] for error in op.get("errors", ()))
    while pending:
        name = pending.pop()
        if name in kept:
            continue
        shape = kept[name] = _undocumented(shapes[name])
        for member in shape.get("members", {}).values():
            pending.append(member["shape"])
        for key in ("member", "key", "value"):
            if key in shape:
                pending.append(shape[key]["shape"])
    return {**model, "operations": ops, "shapes": kept, "documentation": ""}


def _undocumented(item: dict[str, Any]) -> dict[str, Any]:
    """A model entry without its documentation strings (top level and members')."""
    cleaned = {key: value for key, value in item.items() if key != "documentation"}
    if "members" in cleaned:
        cleaned["members"] = {
            name: {key: value for key, value in member.items() if key != "documentation"}
            for name, member in cleaned["members"].items()
        }
    return cleaned


class ConsoleLoader(botocore.loaders.Loader):  # type: ignore[misc]
    """botocore's loader, serving cut models to clients made under `reading()`."""

    def __init__(self) -> None:
        super().__init__()
        self._cut: dict[tuple[str, str, str | None], Any] = {}
        self._cut_lock = threading.Lock()

    def load_service_model(
        self, service_name: str, type_name: str, api_version: str | None = None
    ) -> Any:
        if (
            not getattr(_reading, "on", False)
            or service_name not in READ_OPERATIONS
            or type_name not in _CUT_TYPES
        ):
            return super().load_service_model(service_name, type_name, api_version)
        key = (service_name, type_name, api_version)
        with self._cut_lock:
            if key not in self._cut:
                self._cut[key] = self._load_cut(service_name, type_name, api_version)
            return self._cut[key]

    def _load_cut(self, service: str, type_name: str, api_version: str | None) -> Any:
        operations = READ_OPERATIONS[service]
        tag = hashlib.sha256(
            json.dumps([service, type_name, api_version, operations]).encode()
        ).hexdigest()[:16]
        path = (
            cache_dir() / f"botocore-{botocore.__version__}" / f"{service}.{type_name}.{tag}.json"
        )
        with contextlib.suppress(OSError, ValueError):
            return json.loads(path.read_bytes())
        full = super().load_service_model(service, type_name, api_version)
        if type_name == "service-2":
            cut = cut_model(full, operations)
        elif type_name == "endpoint-rule-set-1":
            cut = full
        else:
            cut = {
                **full,
                "pagination": {
                    op: page for op, page in full["pagination"].items() if op in operations
                },
            }
        _write(path, cut)
        return cut


def _write(path: Path, data: Any) -> None:
    """Atomically, or not at all (another process may write the same file meanwhile)."""
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".model-")
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump(data, handle, separators=(",", ":"))
            os.replace(temp, path)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(temp)


_LOADER: ConsoleLoader | None = None
_LOADER_LOCK = threading.Lock()


def shared_loader() -> ConsoleLoader:
    """The process's one loader: every session shares it, so each model is parsed once."""
    global _LOADER
    with _LOADER_LOCK:
        if _LOADER is None:
            # As botocore.loaders.create_loader(): ~/.aws/models, then botocore's own data.
            _LOADER = ConsoleLoader()
        return _LOADER
