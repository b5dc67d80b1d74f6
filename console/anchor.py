"""The audit chain's head kept outside the store in S3, written on demand and on a schedule."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from console.config import AuditSettings
from console.errors import AwsError, ConsoleError
from console.store import AuditCheck, Store, utc_now

if TYPE_CHECKING:
    # Only the type: `audit verify` without an anchor never imports boto3.
    from console.aws import AwsGateway

HASH_PATTERN = re.compile(r"^[0-9a-f]{64}$")
# An anchor is a few hundred bytes; more than this is not one.
MAX_ANCHOR_BYTES = 64 * 1024


class AnchorUnreadable(ConsoleError):
    """The anchor object is there but is not an anchor: verifying against it fails (exit 1)."""


@dataclass(frozen=True)
class Anchor:
    """The chain's head when it was anchored: row `rows` (the chain's length) had hash `head`."""

    rows: int
    head: str
    at: datetime
    store: str

    def to_json(self) -> bytes:
        values = {
            "rows": self.rows,
            "head": self.head,
            "at": self.at.astimezone(UTC).isoformat(timespec="microseconds"),
            "store": self.store,
        }
        return (json.dumps(values, indent=2) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes, where: str) -> Anchor:
        try:
            values = json.loads(data)
            rows, head, at = values["rows"], values["head"], values["at"]
            store = values.get("store", "")
            moment = datetime.fromisoformat(at)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise AnchorUnreadable(f"{where} is not an audit anchor ({_reason(exc)})") from None
        if type(rows) is not int or rows < 1:
            raise AnchorUnreadable(f"{where} is not an audit anchor (rows is {rows!r})")
        if not isinstance(head, str) or not HASH_PATTERN.match(head):
            raise AnchorUnreadable(f"{where} is not an audit anchor (head is {head!r})")
        if moment.tzinfo is None or not isinstance(store, str):
            raise AnchorUnreadable(f"{where} is not an audit anchor (at has no time zone)")
        return cls(rows=rows, head=head, at=moment, store=store)

    @property
    def written(self) -> str:
        """For messages: the anchor written 2026-11-27 10:15:00 UTC."""
        return f"the anchor written {self.at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"


def _reason(exc: Exception) -> str:
    if isinstance(exc, KeyError):
        return f"no {exc.args[0]!r}"
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


class S3Anchors:
    """The anchors in one bucket: the latest at `key`, and each one also kept under
    `<key without .json>/history/<time>-row<N>.json`, so that a deleted latest shows."""

    def __init__(self, gateway: Callable[[], AwsGateway], bucket: str, key: str) -> None:
        # Made on first use, in a thread: creating boto3 clients takes a moment.
        self._make_gateway = gateway
        self._gateway: AwsGateway | None = None
        self.bucket = bucket
        self.key = key
        self.location = f"s3://{bucket}/{key}"
        stem = key.removesuffix(".json")
        self.history_prefix = f"{stem}/history/"

    async def _client(self) -> AwsGateway:
        if self._gateway is None:
            try:
                self._gateway = await asyncio.to_thread(self._make_gateway)
            except AwsError as error:
                raise self._error(error) from None
        return self._gateway

    def _error(self, error: AwsError) -> AwsError:
        return AwsError(f"audit anchor {self.location}: {error.message}")

    async def latest(self) -> Anchor | None:
        """The latest anchor, None when none was written; AwsError when S3 cannot be read."""
        gateway = await self._client()
        try:
            data = await gateway.s3_object(self.bucket, self.key, limit=MAX_ANCHOR_BYTES)
        except AwsError as error:
            raise self._error(error) from None
        return None if data is None else Anchor.from_json(data, self.location)

    async def has_history(self) -> bool:
        """Whether any anchor was ever written here (kept under the history prefix)."""
        gateway = await self._client()
        try:
            listing = await gateway.call(
                "s3", "list_objects_v2", Bucket=self.bucket, Prefix=self.history_prefix, MaxKeys=1
            )
        except AwsError as error:
            raise self._error(error) from None
        return int(listing.get("KeyCount", 0)) > 0

    async def write(self, anchor: Anchor) -> None:
        """The latest first, then its copy in the history (a failure in between loses no
        anchor: the latest is the one verify reads)."""
        gateway = await self._client()
        body = anchor.to_json()
        moment = anchor.at.astimezone(UTC)
        history_key = f"{self.history_prefix}{moment:%Y%m%dT%H%M%S%fZ}-row{anchor.rows}.json"
        try:
            for key in (self.key, history_key):
                await gateway.call(
                    "s3",
                    "put_object",
                    Bucket=self.bucket,
                    Key=key,
                    Body=body,
                    ContentType="application/json",
                )
        except AwsError as error:
            raise self._error(error) from None


def s3_anchors(settings: AuditSettings, gateway: Callable[[str], AwsGateway]) -> S3Anchors | None:
    """The anchors of the config's [audit] table, None when no anchor is configured.

    `gateway` gives a cluster's AwsGateway by name (Fleet.gateway, or one made for the CLI).
    """
    bucket, cluster = settings.anchor_bucket, settings.anchor_cluster
    if bucket is None or cluster is None:
        return None
    return S3Anchors(lambda: gateway(cluster), bucket, settings.anchor_key)


@dataclass(frozen=True)
class LatestAnchor:
    """The latest anchor (None: none written yet), or why there is none to trust."""

    anchor: Anchor | None
    problem: str | None = None


async def read_latest(anchors: S3Anchors) -> LatestAnchor:
    """The latest anchor; a problem when it is unreadable or was deleted (earlier ones remain)."""
    try:
        anchor = await anchors.latest()
    except AnchorUnreadable as error:
        return LatestAnchor(None, error.message)
    if anchor is None and await anchors.has_history():
        return LatestAnchor(
            None,
            f"the anchor {anchors.location} is gone, but earlier anchors are kept under "
            f"s3://{anchors.bucket}/{anchors.history_prefix}: it was deleted",
        )
    return LatestAnchor(anchor)


async def mismatch(store: Store, anchor: Anchor) -> str | None:
    """How the store contradicts the anchor, in one sentence; None when it holds the anchored
    row with the anchored hash (rows written since are the chain's to check)."""
    found = await store.audit_page(after=anchor.rows - 1, limit=1)
    if found and found[0].id == anchor.rows:
        if found[0].hash == anchor.head:
            return None
        return (
            f"row {anchor.rows} does not match {anchor.written} (anchored hash "
            f"{anchor.head[:16]}…, the store's {found[0].hash[:16]}…): the history up to "
            f"row {anchor.rows} was rewritten"
        )
    last = await store.audit_rows(limit=1)
    count = last[0].id if last else 0
    where = ": rows were removed from the end" if count < anchor.rows else ""
    return (
        f"row {anchor.rows} is missing: {anchor.written} covers {anchor.rows} rows "
        f"(head {anchor.head[:16]}…), the store's last row is {count}{where}"
    )


def chain_problem(check: AuditCheck) -> str | None:
    if check.problem is None:
        return None
    return f"row {check.problem.id} {check.problem.kind}: {check.problem.detail}"


@dataclass(frozen=True)
class AnchorOutcome:
    """One anchoring: `written` (the new anchor), or the latest unchanged, or refused with
    `problem` (the store does not extend the latest anchor, or its chain breaks)."""

    anchor: Anchor | None
    written: bool = False
    problem: str | None = None


class AnchorWriter:
    """Anchors the store's head, but only a head that extends the latest anchor.

    An anchor must never bless a rewritten history: the store is first checked against the
    latest anchor (its row and hash) and only the rows after it are recomputed, so anchoring
    a store of a million rows costs the rows written since the last anchor. With no anchor
    yet, the whole chain is recomputed once.
    """

    def __init__(
        self, store: Store, anchors: S3Anchors, clock: Callable[[], datetime] = utc_now
    ) -> None:
        self.store = store
        self.anchors = anchors
        self._clock = clock

    async def write(self, *, only_if_moved: bool = False) -> AnchorOutcome:
        """Write the head (with only_if_moved, only when it moved since the latest anchor);
        AwsError when S3 cannot be reached."""
        latest = await read_latest(self.anchors)
        if latest.problem is not None:
            return AnchorOutcome(None, problem=latest.problem)
        previous = latest.anchor
        if previous is None:
            check = await self.store.check_audit()
        else:
            problem = await mismatch(self.store, previous)
            if problem is not None:
                return AnchorOutcome(previous, problem=problem)
            check = await self.store.check_audit_after(previous.rows, previous.head)
        problem = chain_problem(check)
        if problem is not None:
            return AnchorOutcome(previous, problem=problem)
        if check.rows == 0:
            return AnchorOutcome(None)
        if only_if_moved and previous is not None and previous.rows == check.rows:
            return AnchorOutcome(previous)
        anchor = Anchor(check.rows, check.head, self._clock(), str(self.store.path))
        await self.anchors.write(anchor)
        return AnchorOutcome(anchor, written=True)


AnchorReport = Callable[[AnchorOutcome | ConsoleError], object]


class AnchorSchedule:
    """Anchors the head every `every` seconds when it moved; the next round is armed only when
    this one ended. Each outcome, or the error that stopped a round (S3 unreachable), goes to
    `report`; the schedule goes on until cancelled."""

    def __init__(self, writer: AnchorWriter, every: float) -> None:
        self.writer = writer
        self.every = every

    async def run(self, report: AnchorReport | None = None) -> None:
        while True:
            outcome: AnchorOutcome | ConsoleError
            try:
                outcome = await self.writer.write(only_if_moved=True)
            except ConsoleError as error:
                outcome = error
            if report is not None:
                report(outcome)
            await asyncio.sleep(self.every)


def anchor_schedule(
    settings: AuditSettings, store: Store, gateway: Callable[[str], AwsGateway]
) -> AnchorSchedule | None:
    """The schedule of the config's [audit] anchor for an open store (the console and a runner
    start it), None when no anchor is configured."""
    anchors = s3_anchors(settings, gateway)
    if anchors is None:
        return None
    return AnchorSchedule(AnchorWriter(store, anchors), settings.anchor_every_seconds)
