"""Deploy windows, pure: specs parsed or refused, open or closed at an instant, when they open
next, across Europe/Berlin's DST changes."""

from __future__ import annotations

from datetime import UTC, datetime, time
from pathlib import Path

import pytest

from console.config import load_config
from console.config.windows import WindowSpecError, parse_window
from console.errors import ConfigError
from console.queue.windows import is_open, next_open, outside_windows

BERLIN = parse_window("Mon-Fri 09:00-16:00 Europe/Berlin")


def utc(year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def test_a_spec_with_ranges_lists_and_a_zone() -> None:
    window = parse_window("Mon-Wed,Fri,sat 10:00-24:00 UTC")
    assert window.days == frozenset({0, 1, 2, 4, 5})
    assert (window.start, window.end, window.zone) == (time(10), None, "UTC")
    assert BERLIN.days == frozenset(range(5))


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("weekdays 09:00-16:00 UTC", "unknown day 'weekdays'"),
        ("Mon-Fri 09:00-16:00 Mars/Olympus", "unknown time zone 'Mars/Olympus'"),
        ("Mon-Fri 16:00-09:00 UTC", "the end must be after the start"),
        ("Fri-Mon 09:00-16:00 UTC", "runs backwards"),
        ("Mon 25:00-26:00 UTC", "is not a time of day"),
        ("Mon 09:00 UTC", 'a window is "DAYS HH:MM-HH:MM ZONE"'),
    ],
)
def test_a_malformed_spec_says_what_is_wrong(spec: str, expected: str) -> None:
    with pytest.raises(WindowSpecError, match=expected):
        parse_window(spec)


def test_no_windows_is_always_open() -> None:
    now = utc(2026, 12, 6, 3, 0)  # a Sunday night
    assert is_open((), now) and next_open((), now) == now
    assert outside_windows("prod1", (), now) == ""


def test_open_inside_closed_outside_and_the_next_opening() -> None:
    # Thursday 2026-12-03, winter: Berlin is UTC+1.
    assert is_open([BERLIN], utc(2026, 12, 3, 8, 0))  # 09:00 Berlin
    assert not is_open([BERLIN], utc(2026, 12, 3, 7, 59))
    assert not is_open([BERLIN], utc(2026, 12, 3, 15, 0))  # 16:00 Berlin: the end is exclusive
    friday_evening = utc(2026, 12, 4, 17, 0)
    assert next_open([BERLIN], friday_evening) == utc(2026, 12, 7, 8, 0)  # Monday 09:00
    assert outside_windows("prod1", [BERLIN], friday_evening) == (
        "outside deploy windows of prod1 until Mon 09:00 Europe/Berlin (08:00 UTC)"
    )


def test_the_earliest_of_several_windows_opens_first() -> None:
    saturday = parse_window("Sat 10:00-12:00 UTC")
    friday_evening = utc(2026, 12, 4, 17, 0)
    assert next_open([BERLIN, saturday], friday_evening) == utc(2026, 12, 5, 10, 0)
    assert outside_windows("prod1", [BERLIN, saturday], friday_evening) == (
        "outside deploy windows of prod1 until Sat 10:00 UTC"
    )
    assert is_open([BERLIN, saturday], utc(2026, 12, 5, 11, 59))


def test_windows_follow_the_wall_clock_across_dst() -> None:
    # Berlin goes to summer time on Sunday 2026-03-29 (02:00 -> 03:00, UTC+1 -> UTC+2).
    friday_before = utc(2026, 3, 27, 15, 30)  # 16:30 Berlin: closed
    assert next_open([BERLIN], friday_before) == utc(2026, 3, 30, 7, 0)  # 09:00 CEST
    assert outside_windows("prod1", [BERLIN], friday_before).endswith(
        "until Mon 09:00 Europe/Berlin (07:00 UTC)"
    )
    assert is_open([BERLIN], utc(2026, 3, 30, 7, 0))
    assert not is_open([BERLIN], utc(2026, 3, 30, 14, 0))  # 16:00 CEST
    # And back on Sunday 2026-10-25: Monday 09:00 is 08:00 UTC again.
    assert next_open([BERLIN], utc(2026, 10, 23, 15, 0)) == utc(2026, 10, 26, 8, 0)


def test_a_window_starting_in_the_dst_gap_opens_after_it() -> None:
    night = parse_window("Sun 02:30-04:00 Europe/Berlin")
    # 02:30 does not exist on 2026-03-29: the window opens at 03:00 CEST (01:00 UTC).
    opens = next_open([night], utc(2026, 3, 28, 12, 0))
    assert opens == utc(2026, 3, 29, 1, 0)
    assert is_open([night], utc(2026, 3, 29, 1, 30))
    assert not is_open([night], utc(2026, 3, 29, 2, 0))  # 04:00 CEST


def test_a_malformed_window_in_a_config_is_one_line_with_file_and_line(tmp_path: Path) -> None:
    source = tmp_path / "console.toml"
    source.write_text(
        '[[clusters]]\nname = "prod1"\nregion = "us-east-1"\n'
        'windows = ["Mon-Fri 09:00-16:00 Europe/Berlin", "Sun 9-10 UTC"]\n'
    )
    with pytest.raises(ConfigError) as raised:
        load_config(source)
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"{source}:4: clusters[0].windows: 'Sun 9-10 UTC': a window is")
    source.write_text(source.read_text().replace(', "Sun 9-10 UTC"', ""))
    (cluster,) = load_config(source).clusters
    assert cluster.windows == (BERLIN,)


def test_a_window_lost_in_the_dst_gap_opens_the_week_after() -> None:
    gap = parse_window("Sun 02:10-02:50 Europe/Berlin")
    saturday = utc(2026, 3, 28, 12, 0)  # the Sunday after has no 02:10-02:50
    assert next_open([gap], saturday) == utc(2026, 4, 5, 0, 10)  # 02:10 CEST
    assert outside_windows("prod1", [gap], saturday).endswith(
        "until Sun 02:10 Europe/Berlin (00:10 UTC)"
    )
