"""The dashboard's rows in order: the config's, by name, or by one cluster's health, version or
age of last deploy; rows with nothing to sort by go last either way."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from console.fleet.order import RowOrder, SortKey, sort_projects, version_key
from console.model import ClusterStatus, EnvStatus, FleetSnapshot, Health, Instance

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
PROJECTS = ("web", "api", "Batch", "docs", "cron")


def env(project: str, health: Health, *versions: str) -> EnvStatus:
    instances = tuple(
        Instance(
            id=f"i-{project}-{index}",
            state="running",
            image_id="ami-1",
            version=version,
            launched_at=NOW,
            private_address="10.0.0.1",
        )
        for index, version in enumerate(versions)
    )
    return EnvStatus(project, "prod1", health, instances)


SNAPSHOT = FleetSnapshot(
    NOW,
    (ClusterStatus("prod1", True),),
    PROJECTS,
    {
        ("web", "prod1"): env("web", Health.HEALTHY, "2.14.1"),
        ("api", "prod1"): env("api", Health.DOWN, "2.9.0"),
        ("Batch", "prod1"): env("Batch", Health.DEGRADED, "2.14.0"),
        ("docs", "prod1"): EnvStatus("docs", "prod1", Health.UNKNOWN, error="timed out"),
        # cron is not in prod1.
    },
)
LAST = {
    ("web", "prod1"): NOW - timedelta(hours=3),
    ("api", "prod1"): NOW - timedelta(minutes=5),
    ("docs", "prod1"): NOW - timedelta(days=2),
}


def order(key: SortKey, reverse: bool = False) -> list[str]:
    return sort_projects(PROJECTS, RowOrder(key, "prod1", reverse), SNAPSHOT, LAST)


def test_the_config_order_by_default_and_by_name_regardless_of_case() -> None:
    assert sort_projects(PROJECTS, RowOrder(), SNAPSHOT, LAST) == list(PROJECTS)
    assert sort_projects(PROJECTS, RowOrder(SortKey.NAME), None, {}) == [
        "api",
        "Batch",
        "cron",
        "docs",
        "web",
    ]
    assert sort_projects(PROJECTS, RowOrder(SortKey.NAME, reverse=True), None, {})[0] == "web"


def test_by_health_worst_first_and_unknown_or_absent_last_either_way() -> None:
    assert order(SortKey.HEALTH) == ["api", "Batch", "web", "docs", "cron"]
    assert order(SortKey.HEALTH, reverse=True) == ["web", "Batch", "api", "docs", "cron"]


def test_by_version_numbers_compare_as_numbers() -> None:
    assert order(SortKey.VERSION) == ["api", "Batch", "web", "docs", "cron"]
    assert order(SortKey.VERSION, reverse=True) == ["web", "Batch", "api", "docs", "cron"]
    assert version_key("2.9.1") < version_key("2.14.0") < version_key("24.11.0")
    assert version_key("1.0.0") < version_key("1.0.0-rc1")
    assert sorted(["b7e0d13", "2.0", "a1"], key=version_key) == ["2.0", "a1", "b7e0d13"]


def test_by_last_deploy_most_recent_first_never_deployed_last() -> None:
    assert order(SortKey.LAST_DEPLOY) == ["api", "web", "docs", "Batch", "cron"]
    assert order(SortKey.LAST_DEPLOY, reverse=True) == ["docs", "web", "api", "Batch", "cron"]


def test_before_the_first_read_only_the_name_and_the_last_deploys_can_sort() -> None:
    assert sort_projects(PROJECTS, RowOrder(SortKey.HEALTH, "prod1"), None, {}) == list(PROJECTS)


def test_ties_keep_the_config_order() -> None:
    snapshot = FleetSnapshot(
        NOW,
        (ClusterStatus("prod1", True),),
        PROJECTS,
        {(p, "prod1"): env(p, Health.HEALTHY, "1.0.0") for p in PROJECTS},
    )
    for reverse in (False, True):
        got = sort_projects(PROJECTS, RowOrder(SortKey.HEALTH, "prod1", reverse), snapshot, {})
        assert got == list(PROJECTS)


def test_s_cycles_the_keys_and_the_words_say_the_order() -> None:
    steps = [RowOrder()]
    for _ in range(5):
        steps.append(steps[-1].next_key("prod1"))
    assert [step.describe() for step in steps] == [
        "config order",
        "name A→Z",
        "health in prod1, worst first",
        "version in prod1, oldest first",
        "last deploy in prod1, most recent first",
        "config order",
    ]
    assert steps[2].reversed().describe() == "health in prod1, best first"
    assert RowOrder().reversed().describe() == "config order, reversed"
    assert RowOrder().is_default and not RowOrder().reversed().is_default
