"""The audit chain's head kept outside the store in S3, written on demand and on a schedule."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from console.config import AuditSettings
from console.errors import AwsError, ConsoleError
from console.store import AnchorRecord, AuditCheck, AuditStore, utc_now

if TYPE_CHECKING:
    # Only the type: `audit verify` without an anchor never imports boto3.
    from console.aws.gateway import AwsGateway

HASH_PATTERN = re.compile(r"^[0-9a-f]{64}$")
# An anchor is a few hundred bytes; more than this is not one.
MAX_ANCHOR_BYTES = 64 * 1024


# A history key names the anchor it holds: <time>-row<N>-<head>.json (older ones: no head).
HISTORY_NAME = re.compile(r"-row([0-9]+)(?:-([0-9a-f]{64}))?\.json$")


class AnchorUnreadable(ConsoleError):
    """The anchor object is there but is not an anchor: verifying against it fails (exit 1)."""


class AnchorBucketUnsafe(ConsoleError):
    """The bucket keeps no versions: an anchor there could be overwritten without a trace."""


@dataclass(frozen=True)
class BucketProtection:
    """What the anchor bucket keeps: versions (S3's status: Enabled, Suspended or off) and
    whether Object Lock is on (then every anchor version is locked for its retention)."""

    versioning: str
    object_lock: bool

    @property
    def described(self) -> str:
        if self.object_lock:
            return "object lock on"
        if self.versioning == "Enabled":
            return "versioned, no object lock: versions can be deleted"
        return f"versioning {self.versioning}: anchors can be overwritten"


@dataclass(frozen=True)
class RetainedVersion:
    """One version of an object under the anchor's prefix, as S3 lists it."""

    key: str
    version_id: str
    modified: datetime
    latest: bool = False


@dataclass
class RetainedAnchors:
    """Every version S3 keeps of the anchor and of its history: the anchor's versions newest
    first, whether its current version is a delete marker, and each history key's versions."""

    versions: list[RetainedVersion] = field(default_factory=list)
    deleted: bool = False
    history: list[RetainedVersion] = field(default_factory=list)


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

    def __init__(
        self,
        gateway: Callable[[], AwsGateway],
        bucket: str,
        key: str,
        *,
        lock_mode: str = "governance",
        retention_days: int = 365,
    ) -> None:
        # Made on first use, in a thread: creating boto3 clients takes a moment.
        self._make_gateway = gateway
        self._gateway: AwsGateway | None = None
        self.bucket = bucket
        self.key = key
        self.location = f"s3://{bucket}/{key}"
        self.stem = key.removesuffix(".json")
        self.history_prefix = f"{self.stem}/history/"
        self.lock_mode = lock_mode
        self.retention_days = retention_days

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

    async def _call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        gateway = await self._client()
        try:
            return await gateway.call("s3", operation, Bucket=self.bucket, **kwargs)
        except AwsError as error:
            raise self._error(error) from None

    async def protection(self) -> BucketProtection:
        """Whether the bucket keeps versions and locks them (two calls; AwsError if unknown)."""
        versioning = await self._call("get_bucket_versioning")
        try:
            lock = await self._call("get_object_lock_configuration")
        except AwsError as error:
            if "ObjectLockConfigurationNotFoundError" not in error.message:
                raise
            lock = {}
        enabled = lock.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") == "Enabled"
        return BucketProtection(str(versioning.get("Status", "off")), enabled)

    def history_key(self, anchor: Anchor) -> str:
        moment = anchor.at.astimezone(UTC)
        return f"{self.history_prefix}{moment:%Y%m%dT%H%M%S%fZ}-row{anchor.rows}-{anchor.head}.json"

    async def write(self, anchor: Anchor, now: datetime | None = None) -> datetime | None:
        """The latest first, then its copy in the history (a failure in between loses no
        anchor: the latest is the one verify reads). Where the bucket has Object Lock, both are
        locked for the retention from `now`: the time they stay until (None: not locked).
        AnchorBucketUnsafe when the bucket keeps no versions."""
        protection = await self.protection()
        if protection.versioning != "Enabled":
            raise AnchorBucketUnsafe(
                f"audit anchor {self.location}: the bucket's versioning is "
                f"{protection.versioning}, so an anchor could be overwritten or deleted without "
                "a trace: enable versioning and Object Lock on it (see README, Audit anchor)"
            )
        lock: dict[str, object] = {}
        until = None
        if protection.object_lock:
            start = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
            until = start + timedelta(days=self.retention_days)
            lock = {"ObjectLockMode": self.lock_mode.upper(), "ObjectLockRetainUntilDate": until}
        body = anchor.to_json()
        for key in (self.key, self.history_key(anchor)):
            await self._call(
                "put_object", Key=key, Body=body, ContentType="application/json", **lock
            )
        return until

    async def retained(self) -> RetainedAnchors:
        """Every version S3 keeps of the anchor and of its history, delete markers seen
        through (list_object_versions, 1,000 a call)."""
        found = RetainedAnchors()
        markers: dict[str, str] = {}
        while True:
            page = await self._call("list_object_versions", Prefix=self.stem, **markers)
            for item in page.get("Versions", []):
                version = RetainedVersion(
                    item["Key"], item["VersionId"], item["LastModified"], bool(item.get("IsLatest"))
                )
                if item["Key"] == self.key:
                    found.versions.append(version)
                elif item["Key"].startswith(self.history_prefix):
                    found.history.append(version)
            for item in page.get("DeleteMarkers", []):
                if item["Key"] == self.key and item.get("IsLatest"):
                    found.deleted = True
            if not page.get("IsTruncated"):
                break
            markers = {
                "KeyMarker": page["NextKeyMarker"],
                "VersionIdMarker": page["NextVersionIdMarker"],
            }
        # S3 lists a key's versions newest first; the sort keeps that order within a second.
        found.versions.sort(key=lambda version: (version.latest, version.modified), reverse=True)
        return found

    async def read_version(self, version: RetainedVersion, where: str | None = None) -> Anchor:
        """The anchor one retained version holds (`where` names it in errors); AnchorUnreadable
        when it is not one."""
        gateway = await self._client()
        if where is None:
            where = f"s3://{self.bucket}/{version.key} (version {version.version_id})"
        try:
            data = await gateway.s3_object(
                self.bucket, version.key, limit=MAX_ANCHOR_BYTES, version_id=version.version_id
            )
        except AwsError as error:
            raise self._error(error) from None
        if data is None:
            raise AnchorUnreadable(f"{where} is not an audit anchor (it is gone)")
        return Anchor.from_json(data, where)


def s3_anchors(settings: AuditSettings, gateway: Callable[[str], AwsGateway]) -> S3Anchors | None:
    """The anchors of the config's [audit] table, None when no anchor is configured.

    `gateway` gives a cluster's AwsGateway by name (Fleet.gateway, or one made for the CLI).
    """
    bucket, cluster = settings.anchor_bucket, settings.anchor_cluster
    if bucket is None or cluster is None:
        return None
    return S3Anchors(
        lambda: gateway(cluster),
        bucket,
        settings.anchor_key,
        lock_mode=settings.anchor_lock_mode,
        retention_days=settings.anchor_retention_days,
    )


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


async def mismatch(store: AuditStore, anchor: Anchor) -> str | None:
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


def behind_record(location: str, latest: Anchor | None, record: AnchorRecord | None) -> str | None:
    """How the anchor at `location` falls short of the store's note of what it anchored there
    (gone, or older: someone put an earlier anchor back); None when it does not."""
    if record is None:
        return None
    when = f"{record.anchored_at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"
    if latest is None:
        return (
            f"the store anchored row {record.rows} at {location} on {when}, but no anchor is "
            "there: every anchor was deleted"
        )
    if latest.rows < record.rows:
        return (
            f"{location} holds {latest.written} (row {latest.rows}), older than row "
            f"{record.rows} that this store anchored there on {when}: an older anchor was put "
            "over the newest"
        )
    return None


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
    # Where the bucket has Object Lock: the time the written versions are locked until.
    locked_until: datetime | None = None


@dataclass
class AnchorWriter:
    """Anchors the store's head, but only a head that extends the latest anchor.

    An anchor must never bless a rewritten history: the store is first checked against the
    latest anchor (its row and hash) and only the rows after it are recomputed, so anchoring
    a store of a million rows costs the rows written since the last anchor. With no anchor
    yet, the whole chain is recomputed once.
    """

    store: AuditStore
    anchors: S3Anchors
    clock: Callable[[], datetime] = utc_now

    async def write(self, *, only_if_moved: bool = False) -> AnchorOutcome:
        """Write the head (with only_if_moved, only when it moved since the latest anchor);
        AwsError when S3 cannot be reached."""
        latest = await read_latest(self.anchors)
        if latest.problem is not None:
            return AnchorOutcome(None, problem=latest.problem)
        previous = latest.anchor
        location = self.anchors.location
        record = await self.store.anchor_record(location)
        problem = behind_record(location, previous, record)
        if problem is not None:
            return AnchorOutcome(previous, problem=problem)
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
            if record is None or record.rows < previous.rows:
                # A store anchored before it kept this note: the store matches the anchor.
                await self.store.record_anchor(location, previous.rows, previous.head, previous.at)
            return AnchorOutcome(previous)
        anchor = Anchor(check.rows, check.head, self.clock(), str(self.store.path))
        until = await self.anchors.write(anchor)
        # After the put: a note of an anchor that S3 never got would fail every verify.
        await self.store.record_anchor(location, anchor.rows, anchor.head, anchor.at)
        return AnchorOutcome(anchor, written=True, locked_until=until)


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
    settings: AuditSettings, store: AuditStore, gateway: Callable[[str], AwsGateway]
) -> AnchorSchedule | None:
    """The schedule of the config's [audit] anchor for an open store (the console and a runner
    start it), None when no anchor is configured."""
    anchors = s3_anchors(settings, gateway)
    if anchors is None:
        return None
    return AnchorSchedule(AnchorWriter(store, anchors), settings.anchor_every_seconds)
