"""Scheduled deploys and window overrides, pure: `--at` parsed (each form, each mistake in one
line), and the queue's rules: a schedule holds, an override skips the windows and nothing else."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from console.config.windows import parse_window
from console.inputs import InputError
from console.queue.rules import QueueEntry, QueueView, waiting_reasons
from console.queue.schedule import parse_at, scheduled_for, waits_for_time
from console.store import DeployRecord, Freeze, ManualLock

# Friday 2026-11-27 11:50 UTC (12:50 in Berlin).
NOW = datetime(2026, 11, 27, 11, 50, tzinfo=UTC)
BERLIN = ZoneInfo("Europe/Berlin")
WINDOW = parse_window("Mon-Fri 09:00-12:00 Europe/Berlin")  # closed at NOW
CLOSED = "outside deploy windows of prod1 until Mon 09:00 Europe/Berlin (08:00 UTC)"


def record(deploy_id: str = "d-1", **changes: object) -> DeployRecord:
    base = DeployRecord(
        id=deploy_id,
        project="storefront",
        cluster="prod1",
        release="2.15.0",
        actor="alice",
        created_at=NOW - timedelta(minutes=1),
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def view(*records: DeployRecord, **changes: object) -> QueueView:
    base = QueueView(
        deploys=records,
        locks=(),
        manual_locks=(),
        freezes=(),
        prerequisites={},
        now=NOW,
        parallel=5,
        windows={"prod1": (WINDOW,)},
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


# -- --at ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-27T14:00+01:00", datetime(2026, 11, 27, 13, 0, tzinfo=UTC)),
        ("2026-11-27T14:00:30Z", datetime(2026, 11, 27, 14, 0, 30, tzinfo=UTC)),
        ("+30m", NOW + timedelta(minutes=30)),
        ("+2h", NOW + timedelta(hours=2)),
        ("+45s", NOW + timedelta(seconds=45)),
        # HH:MM: the next such time in the caller's zone (Berlin here): today, else tomorrow.
        ("14:00", datetime(2026, 11, 27, 13, 0, tzinfo=UTC)),
        ("12:50", datetime(2026, 11, 28, 11, 50, tzinfo=UTC)),
        ("09:05", datetime(2026, 11, 28, 8, 5, tzinfo=UTC)),
    ],
)
def test_at_forms(text: str, expected: datetime) -> None:
    assert parse_at(text, NOW, BERLIN) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tomorrow", "--at 'tomorrow': an ISO 8601 time with an offset"),
        ("+30", "--at '+30': an ISO 8601 time with an offset"),
        ("25:00", "--at '25:00' is not a time of day (00:00 to 23:59)"),
        ("2026-11-27T14:00", "--at '2026-11-27T14:00' names no zone: add its offset"),
        ("2026-11-27T11:00Z", "--at '2026-11-27T11:00Z' is already past (2026-11-27 11:00:00 UTC;"),
        ("+100d", "--at '+100d': more than 90 days ahead"),
        ("+99999999999d", "--at '+99999999999d': more than 90 days ahead"),
        ("2027-06-01T00:00Z", "--at '2027-06-01T00:00Z': more than 90 days ahead"),
    ],
)
def test_at_mistakes_are_one_line(text: str, message: str) -> None:
    with pytest.raises(InputError) as raised:
        parse_at(text, NOW)
    assert raised.value.message.startswith(message)
    assert "\n" not in raised.value.message


def test_hh_mm_without_a_zone_is_the_systems_local_time() -> None:
    at = parse_at("14:00", NOW)
    local = at.astimezone()
    assert (local.hour, local.minute) == (14, 0)
    assert timedelta(0) < at - NOW <= timedelta(days=1)


def test_scheduled_for_says_when_and_how_long() -> None:
    assert scheduled_for(datetime(2026, 11, 27, 14, 0, tzinfo=UTC), NOW) == (
        "scheduled for Fri 14:00 UTC (in 2h 10m)"
    )
    assert scheduled_for(NOW + timedelta(seconds=5), NOW) == (
        "scheduled for Fri 11:50:05 UTC (in 5s)"
    )
    assert scheduled_for(NOW + timedelta(days=8), NOW) == (
        "scheduled for Sat 2026-12-05 11:50 UTC (in 8d 00h)"
    )


# -- the rules ----------------------------------------------------------------------------------


def test_a_scheduled_deploy_waits_for_its_time_then_starts() -> None:
    at = NOW + timedelta(hours=2, minutes=10)
    scheduled = record(cluster="staging", not_before=at)
    assert waiting_reasons(view(scheduled)) == {"d-1": "scheduled for Fri 14:00 UTC (in 2h 10m)"}
    assert waiting_reasons(view(scheduled, now=at)) == {"d-1": ""}
    # The deploy queued behind it on the pair waits behind it, not for its time.
    behind = record("d-2", cluster="staging")
    assert waiting_reasons(view(scheduled, behind))["d-2"] == (
        "behind d-1 (queued) on storefront in staging"
    )


def test_a_schedule_and_a_window_wait_for_both() -> None:
    at = NOW + timedelta(hours=2)
    both = record(not_before=at)
    assert waiting_reasons(view(both))["d-1"] == (
        f"scheduled for Fri 13:50 UTC (in 2h 00m), then {CLOSED}"
    )
    assert waiting_reasons(view(both, now=at))["d-1"] == CLOSED
    monday = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    assert waiting_reasons(view(both, now=monday))["d-1"] == ""


def test_an_override_skips_the_window_and_is_shown() -> None:
    overridden = record(window_override="hotfix for the checkout bug", window_override_by="carol")
    assert waiting_reasons(view(record())) == {"d-1": CLOSED}
    assert waiting_reasons(view(overridden)) == {"d-1": ""}
    entry = QueueEntry(overridden, "")
    assert entry.status == "starts next · outside its window by carol: hotfix for the checkout bug"


def test_an_override_does_not_skip_a_freeze_a_lock_or_the_schedule() -> None:
    overridden = record(window_override="hotfix", window_override_by="carol")
    freeze = Freeze("prod1", "dave", "sale", NOW - timedelta(hours=1))
    assert waiting_reasons(view(overridden, freezes=(freeze,)))["d-1"] == freeze.describe()
    lock = ManualLock(1, None, "prod1", "dave", "db migration", False, NOW, None)
    assert waiting_reasons(view(overridden, manual_locks=(lock,)))["d-1"] == lock.describe()
    later = dataclasses.replace(overridden, not_before=NOW + timedelta(minutes=30))
    # Scheduled: its time holds, the closed window at that time does not.
    assert waits_for_time(later, (WINDOW,), NOW) == "scheduled for Fri 12:20 UTC (in 30m 00s)"
    assert waiting_reasons(view(later, now=NOW + timedelta(minutes=30)))["d-1"] == ""
