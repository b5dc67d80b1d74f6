"""Checks a store against every anchor S3 retains of it and against the store's own note."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from console.audit.anchor import (
    HISTORY_NAME,
    AnchorUnreadable,
    RetainedAnchors,
    S3Anchors,
    behind_record,
    mismatch,
)
from console.store import AuditStore


@dataclass(frozen=True)
class Claim:
    """What one retained anchor says: row `rows` had hash `head`; `where` names it."""

    rows: int
    head: str
    where: str


@dataclass(frozen=True)
class AnchorVerdict:
    """The store against its anchors: `problem` (verify fails) or `note` (what held)."""

    problem: str | None = None
    note: str = ""


async def verify_anchors(store: AuditStore, anchors: S3Anchors) -> AnchorVerdict:
    """The store against the anchor's newest version, every version S3 retains of its history
    and the store's note of its last anchor there.

    A store that has anchored needs its anchor: gone, or older than what the store anchored
    (an earlier anchor put back), fails. No retained anchor may name a row the store does not
    hold with that hash: deleting or overwriting the latest anchor hides none of them.
    AwsError when S3 cannot be read.
    """
    location = anchors.location
    record = await store.anchor_record(location)
    protection = await anchors.protection()
    retained = await anchors.retained()
    if not retained.versions and not retained.history:
        problem = behind_record(location, None, record)
        return AnchorVerdict(problem, f"no anchor written yet to {location}")
    if retained.deleted or not retained.versions:
        return AnchorVerdict(
            f"the anchor {location} is gone, but S3 keeps {_count(retained.versions, 'version')}"
            f" of it and {_count(retained.history, 'anchor')} under s3://{anchors.bucket}/"
            f"{anchors.history_prefix}: it was deleted"
        )
    try:
        newest = await anchors.read_version(retained.versions[0], location)
        claims = await _history_claims(anchors, retained)
    except AnchorUnreadable as error:
        return AnchorVerdict(error.message)
    problem = await mismatch(store, newest)
    if problem is None:
        problem = _rolled_back(location, newest.rows, newest.written, claims)
    if problem is None:
        problem = behind_record(location, newest, record)
    if problem is None:
        if record is not None:
            claims.append(Claim(record.rows, record.head, "the store's note of its last anchor"))
        problem = await _contradiction(store, claims)
    note = (
        f"row {newest.rows} matches {newest.written} ({location}; "
        f"{_count(retained.versions, 'version')} kept, none contradicts the store; "
        f"{protection.described})"
    )
    return AnchorVerdict(problem, note)


async def _history_claims(anchors: S3Anchors, retained: RetainedAnchors) -> list[Claim]:
    """What each retained history version claims: read from its key's name, or from its body
    where the name does not hold the head (anchors written before names did)."""
    claims: dict[tuple[int, str], Claim] = {}
    for version in retained.history:
        where = f"the anchor kept at s3://{anchors.bucket}/{version.key}"
        named = HISTORY_NAME.search(version.key)
        if named is not None and named.group(2) is not None:
            claim = Claim(int(named.group(1)), named.group(2), where)
        else:
            anchor = await anchors.read_version(version)
            claim = Claim(anchor.rows, anchor.head, where)
        claims.setdefault((claim.rows, claim.head), claim)
    return list(claims.values())


def _rolled_back(location: str, rows: int, written: str, claims: list[Claim]) -> str | None:
    if not claims:
        return None
    top = max(claims, key=lambda claim: claim.rows)
    if top.rows <= rows:
        return None
    return (
        f"{location} holds {written} (row {rows}), older than {top.where} (row {top.rows}): "
        "an older anchor was put over the newest"
    )


async def _contradiction(store: AuditStore, claims: list[Claim]) -> str | None:
    """The first claim, by row, that the store does not hold; None when it holds them all."""
    hashes = await store.audit_hashes(claim.rows for claim in claims)
    for claim in sorted(claims, key=lambda claim: claim.rows):
        found = hashes.get(claim.rows)
        if found == claim.head:
            continue
        if found is None:
            ending = await store.audit_rows(limit=1)
            count = ending[0].id if ending else 0
            return (
                f"row {claim.rows} is missing: {claim.where} covers {claim.rows} rows "
                f"(head {claim.head[:16]}…), the store's last row is {count}"
                + (": rows were removed from the end" if count < claim.rows else "")
            )
        return (
            f"row {claim.rows} does not match {claim.where} (anchored hash {claim.head[:16]}…, "
            f"the store's {found[:16]}…): the history up to row {claim.rows} was rewritten"
        )
    return None


def _count(items: list[Any], noun: str) -> str:
    return f"{len(items)} {noun}{'' if len(items) == 1 else 's'}"
