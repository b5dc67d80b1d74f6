"""Where the dashboard's `:` goes: a typed name matched fuzzily to a project, a cluster or both."""

from __future__ import annotations

import pytest

from console.fleet.jump import Jump, closest, fuzzy_score, ranked, resolve, split_query

PROJECTS = (
    "storefront",
    "checkout-api",
    "search-api",
    "admin-portal",
    "media-service",
    "partner-gateway",
    "marketing-site",
    "notifications-worker",
    "billing-worker",
)
CLUSTERS = ("staging", "qaprod1", "prod1", "prod2")


def test_the_whole_name_beats_a_start_beats_a_piece_beats_scattered_letters() -> None:
    scores = [fuzzy_score(q, "search-api") for q in ("search-api", "sear", "api", "srch")]
    assert all(score is not None for score in scores)
    assert scores == sorted(scores, reverse=True)  # type: ignore[type-var]
    assert fuzzy_score("SEAR", "search-api") == fuzzy_score("sear", "search-api")
    assert fuzzy_score("xyz", "search-api") is None
    assert fuzzy_score("ipa", "search-api") is None  # letters out of order
    assert fuzzy_score("", "search-api") is None


def test_letters_that_start_words_rank_a_name_first() -> None:
    # n…w: notifications-worker has both at word starts; marketing-site has them scattered.
    assert ranked("nw", PROJECTS)[0] == "notifications-worker"
    assert ranked("ca", PROJECTS)[0] == "checkout-api"
    assert ranked("bw", PROJECTS) == ["billing-worker"]


def test_one_word_goes_to_the_best_project_or_cluster() -> None:
    assert resolve("store", PROJECTS, CLUSTERS) == Jump("storefront", None)
    assert resolve("qa", PROJECTS, CLUSTERS) == Jump(None, "qaprod1")
    assert resolve("prod2", PROJECTS, CLUSTERS) == Jump(None, "prod2")
    # Several match: the best is where Enter goes, the next ones are named beside it.
    jump = resolve("work", PROJECTS, CLUSTERS)
    assert jump is not None
    assert (jump.project, jump.others) == ("billing-worker", ("notifications-worker",))


def test_a_project_and_a_cluster_by_a_space_or_a_slash() -> None:
    expected = Jump("media-service", "prod1", others=("marketing-site",))
    assert resolve("me prod1", PROJECTS, CLUSTERS) == expected
    assert resolve("me/prod1", PROJECTS, CLUSTERS) == expected
    assert resolve("  media / p1 ", PROJECTS, CLUSTERS) == Jump("media-service", "prod1")
    assert resolve("/stag", PROJECTS, CLUSTERS) == Jump(None, "staging")
    assert resolve("storefront/", PROJECTS, CLUSTERS) == Jump("storefront", None)


def test_two_words_of_one_name_are_that_name() -> None:
    assert resolve("check api", PROJECTS, CLUSTERS) == Jump("checkout-api", None)


def test_no_match_names_the_closest() -> None:
    jump = resolve("stroefornt", PROJECTS, CLUSTERS)
    assert jump is not None and not jump.found
    assert jump.closest[0] == "storefront"
    assert len(jump.closest) == 3
    # A cluster part that matches nothing: the closest clusters.
    jump = resolve("storefront/prdo3", PROJECTS, CLUSTERS)
    assert jump is not None and not jump.found
    assert set(jump.closest) <= set(CLUSTERS) and jump.closest[0] in ("prod1", "prod2")


def test_nothing_typed_is_no_jump_yet() -> None:
    assert resolve("", PROJECTS, CLUSTERS) is None
    assert resolve("   ", PROJECTS, CLUSTERS) is None


@pytest.mark.parametrize(
    ("typed", "parts"),
    [
        ("web", ("web", None)),
        ("web prod1", ("web", "prod1")),
        ("web/prod1", ("web", "prod1")),
        ("web/", ("web", None)),
    ],
)
def test_split(typed: str, parts: tuple[str, str | None]) -> None:
    assert split_query(typed) == parts


def test_closest_is_by_likeness_even_when_nothing_is_close() -> None:
    assert closest("zzz", ["a", "b", "c", "d"], 2) == ["a", "b"]
    assert closest("stagin", CLUSTERS, 1) == ["staging"]


def test_describe() -> None:
    assert Jump("web", "prod1").describe() == "web · prod1"
    assert Jump(None, "prod1").describe() == "prod1"
