"""A marked cell of the dashboard keeps its release readable in 20 columns: the word gives way."""

from __future__ import annotations

import pytest

from console.model import EnvStatus, Health, Instance
from console.queue.marks import Mark, PairMark
from screens.dashboard.fleet_matrix import MIN_CELL_WIDTH, fit_mark, marked_text, shorten_words


def env(health: Health, *versions: str) -> EnvStatus:
    instances = tuple(
        Instance(f"i-{n}", "running", "ami-1", version, None, "10.0.0.1")
        for n, version in enumerate(versions)
    )
    return EnvStatus("storefront", "prod1", health, instances)


@pytest.mark.parametrize(
    ("mark", "release", "shown"),
    [
        # The bug: `↶ rolled back 2.1…` cut the release. The word gives way, at a word's end.
        (Mark.ROLLED_BACK, "2.16.0", "↶ rolled… 2.16.0   ●"),
        (Mark.ROLLED_BACK, "24.11.0", "↶ rolled… 24.11.0  ●"),
        (Mark.ROLLED_BACK, "2.0", "↶ rolled back 2.0  ●"),  # fits whole: not cut
        (Mark.DEPLOYING, "2.16.0", "⟳ deploying 2.16.0 ●"),
        (Mark.DEPLOYING, "24.11.0", "⟳ deployi… 24.11.0 ●"),
        (Mark.FAILED, "2.16.0", "✗ failed 2.16.0    ●"),
        # A release too long for any word beside it: the glyph, then the release.
        (Mark.FAILED, "10.12.3-rc.1+b5", "✗ 10.12.3-rc.1+b5  ●"),
        (Mark.QUEUED, "b7e0d13a9f4c2e18d0a1", "◷ b7e0d13a9f4c2e1… ●"),
    ],
)
def test_a_marked_cell_keeps_the_release_whole(mark: Mark, release: str, shown: str) -> None:
    text = marked_text(PairMark(mark, release, "why"), env(Health.HEALTHY, "1.0.0"), 20)
    assert text == shown
    assert len(text) == MIN_CELL_WIDTH


def test_a_freeze_or_lock_names_the_version_running() -> None:
    frozen = PairMark(Mark.FROZEN, None, "prod1 frozen by erin")
    assert marked_text(frozen, env(Health.DEGRADED, "24.11.0", "24.11.0", "24.10.2"), 20) == (
        "❄ froz… 24.11.0 +1 ◐"
    )
    # Before the cluster is read: no version, no health glyph.
    assert marked_text(frozen, None, 20) == "❄ frozen"


def test_fit_mark_and_shorten_words() -> None:
    assert fit_mark("↶", "rolled back", "2.16.0", 30) == "↶ rolled back 2.16.0"
    assert fit_mark("⊘", "locked", "", 4) == "⊘ l…"
    assert shorten_words("rolled back", 9) == "rolled…"
    assert shorten_words("deploying", 6) == "deplo…"
    assert shorten_words("queued", 6) == "queued"
