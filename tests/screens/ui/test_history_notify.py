"""A deploy's notifications on the history screen's detail: a delivery that failed says to
which channel, why and after how many attempts (at 80x24 too)."""

from __future__ import annotations

from pathlib import Path

from console.config import load_config
from console.notify.delivery import Notifier
from console.store import Store
from tests.console.notify.receiver import Receiver
from tests.console.notify.support import CLUSTERS, settle
from tests.screens.ui import text_of
from tests.screens.ui.test_history import (
    ALICE_ROLLED_BACK,
    header_text,
    history_open,
    no_refresh,
    seeded_file,
    shown_detail,
    store_path,
)

__all__ = ["no_refresh", "seeded_file", "store_path"]  # the fixtures of the history tests


async def fail_notifications(store_path: Path, tmp_path: Path) -> None:
    """Deliver the seeded deploys' rollbacks to a receiver that answers 500, once."""
    receiver = await Receiver(down=True).start()
    try:
        source = tmp_path / "notify.toml"
        source.write_text(
            CLUSTERS.format(attempts=1)
            + f'[notify.channels.ops]\ntype = "webhook"\nurl = "{receiver.url}/x/TOKEN99"\n\n'
            + '[[notify.routes]]\nchannels = ["ops"]\nevents = ["rolled-back"]\n'
        )
        async with await Store.open(store_path, create=False) as store:
            await settle(Notifier(store.outbox, load_config(source).notify, holder="test"))
    finally:
        await receiver.stop()


async def test_a_failed_notification_shows_in_the_deploys_detail_at_80x24(
    store_path: Path, tmp_path: Path
) -> None:
    await fail_notifications(store_path, tmp_path)
    async with history_open(store_path, size=(80, 24)) as (_screen, pilot):
        detail = await shown_detail(pilot, "down", "down", "down", "enter")
        header = header_text(detail)
        assert detail.record is not None and detail.record.id == ALICE_ROLLED_BACK.id
        assert (
            "notified ✖ failed rolled-back to ops: HTTP 500 Internal Server Error: receiver "
            "says no (1 attempts, gave up)" in header
        ), header
        assert "TOKEN99" not in header
        # On screen at 80x24, not only in the widget: the value's region is inside the screen.
        (shown,) = [s for s in detail.query("#detail-header Static") if "✖ failed" in text_of(s)]
        assert shown.region.height >= 1 and shown.region.bottom <= 24, shown.region


async def test_a_deploy_without_notifications_has_no_such_line(store_path: Path) -> None:
    async with history_open(store_path, size=(80, 24)) as (_screen, pilot):
        detail = await shown_detail(pilot, "down", "down", "down", "enter")
        assert "notified" not in header_text(detail)
