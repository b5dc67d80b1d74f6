"""The drift rules as pure functions of a snapshot, the deploy history and the config: what
counts as proven (a version passed the stage before, whatever its AMI in another region), what
does not (a failed deploy), a count left alone while a deploy runs, and stable ids."""

from __future__ import annotations

from datetime import UTC, datetime

from console.config import load_config
from console.drift.findings import COUNT, PROVENANCE, Deployed, find, finding_id
from console.model import EnvStatus, FleetSnapshot, Health, Instance
from tests.conftest import DEMO_CONFIG

NOW = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)
CONFIG = load_config(DEMO_CONFIG)


def snapshot(project: str, cluster: str, image: str, version: str, count: int) -> FleetSnapshot:
    """One pair read, `count` managed instances of one image; nothing else read."""
    instances = tuple(
        Instance(f"i-{n}", "running", image, version, NOW, "10.0.0.1", managed_by="deploy-console")
        for n in range(count)
    )
    env = EnvStatus(project, cluster, Health.HEALTHY, instances, fetched_at=NOW)
    return FleetSnapshot(NOW, (), CONFIG.project_names, {(project, cluster): env})


def test_a_version_that_passed_the_stage_before_is_proven_a_failed_deploy_is_not() -> None:
    prod2 = snapshot("storefront", "prod2", "ami-west", "2.14.1", 2)
    # prod2's stage comes after qaprod1: the same version there, as another region's AMI.
    passed = Deployed("storefront", "qaprod1", "2.14.1", "ami-east", "succeeded")
    assert find(CONFIG, prod2, [passed]) == []
    failed = Deployed("storefront", "qaprod1", "2.14.1", "ami-east", "rolled_back")
    elsewhere = Deployed("storefront", "staging", "2.14.1", "ami-east", "succeeded")
    (finding,) = find(CONFIG, prod2, [failed, elsewhere])  # staging is two stages back
    assert (finding.kind, finding.subject, finding.instances) == (
        PROVENANCE,
        "ami-west",
        ("i-0", "i-1"),
    )
    assert "never deployed successfully to qaprod1" in finding.what


def test_a_count_against_desired_waits_while_a_deploy_of_the_pair_runs() -> None:
    staging = snapshot("storefront", "staging", "ami-1", "2.15.0", 4)
    desired = {("storefront", "staging"): 2}
    (finding,) = find(CONFIG, staging, [], desired)
    assert (finding.kind, finding.subject) == (COUNT, "above")
    assert finding.what == "4 instances running, 2 desired (above)"
    running = Deployed("storefront", "staging", "2.15.0", None, "running")
    assert find(CONFIG, staging, [running], desired) == []
    assert find(CONFIG, staging, []) == []  # the demo configures no desired count


def test_a_finding_id_is_its_kind_pair_and_subject() -> None:
    same = finding_id("count", "storefront", "staging", "above")
    assert same == finding_id("count", "storefront", "staging", "above")
    assert same != finding_id("count", "storefront", "staging", "below")
    assert same.startswith("d-") and len(same) == 12
