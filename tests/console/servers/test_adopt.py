"""Which deploys a restore hands to the reconcile, and which way: the pure rule over what AWS
shows of a pair (its live instances, oldest launch first, and which of them serve)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from console.deploy.planner import Source
from console.servers.adopt import _pair_adoptions
from console.store import DeployRecord

T0 = datetime(2026, 12, 5, 3, 0, tzinfo=UTC)


def instance(instance_id: str, deploy_id: str | None, minutes: int) -> dict[str, Any]:
    tags = [{"Key": "Version", "Value": "1"}]
    if deploy_id is not None:
        tags.append({"Key": "DeployId", "Value": deploy_id})
    return {"InstanceId": instance_id, "Tags": tags, "LaunchTime": T0 + timedelta(minutes=minutes)}


def record(deploy_id: str, state: str) -> DeployRecord:
    return DeployRecord(
        id=deploy_id, project="storefront", cluster="staging", release="1", actor="a", state=state
    )


def decided(source: Source, known: dict[str, DeployRecord]) -> dict[str, bool]:
    return {deploy_id: forward for deploy_id, _, forward in _pair_adoptions(source, known)}


def test_a_lost_deploy_whose_old_instances_still_serve_is_rolled_back() -> None:
    raws = [instance("i-old", None, 0), instance("i-new", "d-lost", 10)]
    assert decided(Source(raws, ["i-old", "i-new"], []), {}) == {"d-lost": False}
    assert decided(Source(raws, ["i-old"], []), {}) == {"d-lost": False}


def test_a_lost_deploy_that_serves_alone_goes_forward() -> None:
    raws = [instance("i-old", "d-before", 0), instance("i-new", "d-lost", 10)]
    known = {"d-before": record("d-before", "succeeded")}
    # The old instance is out of the load balancers (draining): the new one serves alone.
    assert decided(Source(raws, ["i-new"], []), known) == {"d-lost": True}


def test_a_deploy_the_copy_knew_running_that_ended_before_a_lost_one_goes_forward() -> None:
    """The copy was taken during d-known; it then succeeded, and d-lost was cut short: rolling
    d-known back would terminate what serves."""
    raws = [instance("i-a", "d-known", 0), instance("i-b", "d-lost", 10)]
    known = {"d-known": record("d-known", "running")}
    assert decided(Source(raws, ["i-a", "i-b"], []), known) == {
        "d-known": True,
        "d-lost": False,
    }


def test_settled_deploys_are_left_alone() -> None:
    raws = [instance("i-a", "d-done", 0)]
    assert decided(Source(raws, ["i-a"], []), {"d-done": record("d-done", "succeeded")}) == {}
    interrupted = record("d-int", "interrupted")
    assert decided(Source([instance("i-b", "d-int", 0)], ["i-b"], []), {"d-int": interrupted}) == {
        "d-int": True
    }
