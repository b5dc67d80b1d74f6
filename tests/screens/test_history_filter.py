"""The history's filter words: what each one means, what is refused, and the text round trip."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from screens.history.filters import HistoryFilter, parse_filter

PROJECTS = ("storefront", "checkout-api")
CLUSTERS = ("staging", "prod1")
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def parse(text: str) -> tuple[HistoryFilter, list[str]]:
    return parse_filter(text, PROJECTS, CLUSTERS)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", HistoryFilter()),
        ("storefront", HistoryFilter(project="storefront")),
        ("prod1", HistoryFilter(cluster="prod1")),
        ("alice", HistoryFilter(actor="alice")),
        ("Failed", HistoryFilter(state="failed")),
        ("rolled-back", HistoryFilter(state="rolled_back")),
        ("24h", HistoryFilter(last="24h")),
        ("24h all", HistoryFilter()),
        ("2026-11-20", HistoryFilter(since="2026-11-20", until="2026-11-20")),
        ("2026-11-20..", HistoryFilter(since="2026-11-20")),
        ("..2026-11-22", HistoryFilter(until="2026-11-22")),
        ("7d 2026-11-20..2026-11-22", HistoryFilter(since="2026-11-20", until="2026-11-22")),
        ("2026-11-20.. 7d", HistoryFilter(last="7d")),
        # key:value names what the config does not know, or a word that would mean another field.
        ("project:legacy-app cluster:prod9", HistoryFilter(project="legacy-app", cluster="prod9")),
        ("by:staging o:cancelled", HistoryFilter(actor="staging", state="cancelled")),
        (
            "storefront prod1 bob succeeded since:2026-11-20T14:00",
            HistoryFilter("storefront", "prod1", "bob", "succeeded", since="2026-11-20T14:00"),
        ),
    ],
)
def test_each_word_is_read_by_what_it_names(text: str, expected: HistoryFilter) -> None:
    assert parse(text) == (expected, [])


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("outcome:great", "outcome:great: not an outcome"),
        ("since:monday", "since:monday: not a date"),
        ("2026-13-01", "2026-13-01: not a date"),
        ("last:0h", "last:0h: a time range is"),
        ("project:", "project:: say what it is after the colon"),
    ],
)
def test_a_word_that_cannot_be_used_is_named_and_left_out(text: str, problem: str) -> None:
    view, problems = parse(f"storefront {text}")
    assert view == HistoryFilter(project="storefront")
    assert len(problems) == 1 and problems[0].startswith(problem)


def test_the_text_reads_back_to_the_same_filter() -> None:
    for view in (
        HistoryFilter("storefront", "prod1", "bob", "rolled_back", last="7d"),
        HistoryFilter(actor="alice", since="2026-11-20T14:00+02:00", until="2026-11-21"),
    ):
        assert parse(view.text()) == (view, [])


def test_bounds_are_utc_and_a_typed_day_counts_whole() -> None:
    assert HistoryFilter(last="90m").bounds(NOW) == (NOW - timedelta(minutes=90), None)
    assert HistoryFilter(since="2026-11-20", until="2026-11-21").bounds(NOW) == (
        datetime(2026, 11, 20, tzinfo=UTC),
        datetime(2026, 11, 22, tzinfo=UTC),
    )
    since, until = HistoryFilter(since="2026-11-20T14:00+02:00", until="2026-11-21T08:30").bounds(
        NOW
    )
    assert since == datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    assert until == datetime(2026, 11, 21, 8, 30, tzinfo=UTC)


def test_t_steps_through_the_time_ranges() -> None:
    seen = []
    view = HistoryFilter(project="storefront", since="2026-11-20")
    for _ in range(5):
        view = view.next_time_range()
        seen.append((view.last, view.since))
    assert seen == [("1h", None), ("24h", None), ("7d", None), (None, None), ("1h", None)]
    assert view.project == "storefront"
