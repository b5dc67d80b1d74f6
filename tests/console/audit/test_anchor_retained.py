"""The anchor S3 retains: versions under Object Lock, the store's note of its last anchor, and
`audit verify` (the real command) failing when anchors are deleted, rolled back or forged."""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
import tomllib
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest
import tomli_w

from console.world.server import World
from tests.screens.cli.test_cli_audit import (
    BUCKET,
    ROWS,
    Anchored,
    _append,
    anchored,
    anchored_config,
    cli,
    head_of,
    one_line,
    rewrite_chain,
    store,
    tamper,
)

__all__ = ["anchored", "store"]  # fixtures, used by name

ERROR_PREFIX = "deploy-console: error: "


def versions(s3: Any, bucket: str, prefix: str) -> list[dict[str, Any]]:
    """Every version and delete marker under `prefix`, each with its key and version id."""
    listing = s3.list_object_versions(Bucket=bucket, Prefix=prefix)
    return [*listing.get("Versions", []), *listing.get("DeleteMarkers", [])]


def stem(anchored: Anchored) -> str:
    return anchored.key.removesuffix(".json")


def delete_every_anchor(anchored: Anchored, how: str) -> None:
    """As someone holding the console's S3 credentials would: `markers` deletes the anchor and
    its history the plain way (S3 keeps the versions behind delete markers); `versions` also
    deletes each version, as only a principal allowed to bypass governance retention can."""
    s3 = anchored.s3
    if how == "markers":
        for item in versions(s3, BUCKET, stem(anchored)):
            s3.delete_object(Bucket=BUCKET, Key=item["Key"])
        return
    for item in versions(s3, BUCKET, stem(anchored)):
        s3.delete_object(
            Bucket=BUCKET,
            Key=item["Key"],
            VersionId=item["VersionId"],
            BypassGovernanceRetention=True,
        )
    assert versions(s3, BUCKET, stem(anchored)) == []


def failed(result: Any) -> str:
    assert (result.returncode, result.stdout) == (1, ""), result
    return one_line(result.stderr)


@pytest.mark.parametrize("how", ["markers", "versions"])
def test_deleting_every_anchor_fails_verify_once_the_store_has_anchored(
    anchored: Anchored, how: str
) -> None:
    delete_every_anchor(anchored, how)
    line = failed(anchored.verify())
    location = f"s3://{BUCKET}/{anchored.key}"
    if how == "markers":
        assert line.startswith(f"deploy-console: audit: the anchor {location} is gone, "), line
        assert ", but S3 keeps 1 version of it and 1 anchor under " in line, line
        assert line.endswith(f"s3://{BUCKET}/{stem(anchored)}/history/: it was deleted"), line
    else:
        # Nothing left in S3: the store's own note says an anchor of row 8 was written there.
        assert line.startswith(
            f"deploy-console: audit: the store anchored row {ROWS} at {location} on "
        ), line
        assert line.endswith("but no anchor is there: every anchor was deleted"), line
    # Nor does the next anchor paper over it.
    result = anchored.anchor()
    assert (result.returncode, result.stdout) == (1, ""), result
    assert one_line(result.stderr).endswith("; not anchored")


@pytest.mark.parametrize("history", ["kept", "deleted"])
def test_an_older_anchor_put_over_the_newest_fails_verify(anchored: Anchored, history: str) -> None:
    older = json.dumps(anchored.latest()).encode()
    asyncio.run(_append(anchored.store, 3))
    assert anchored.anchor().returncode == 0
    assert anchored.latest()["rows"] == ROWS + 3
    # The older anchor still matches the store (its row 8 is untouched): only its age shows.
    anchored.s3.put_object(Bucket=BUCKET, Key=anchored.key, Body=older)
    location = f"s3://{BUCKET}/{anchored.key}"
    if history == "deleted":
        for item in versions(anchored.s3, BUCKET, f"{stem(anchored)}/history/"):
            if f"-row{ROWS + 3}-" in item["Key"]:
                anchored.s3.delete_object(
                    Bucket=BUCKET,
                    Key=item["Key"],
                    VersionId=item["VersionId"],
                    BypassGovernanceRetention=True,
                )
        expected = f"older than row {ROWS + 3} that this store anchored there on "
    else:
        expected = f"older than the anchor kept at s3://{BUCKET}/{stem(anchored)}/history/"
    line = failed(anchored.verify())
    assert line.startswith(f"deploy-console: audit: {location} holds the anchor written "), line
    assert f"(row {ROWS}), {expected}" in line, line
    assert line.endswith("an older anchor was put over the newest"), line


def test_a_forged_anchor_over_a_rewritten_store_fails_verify(anchored: Anchored) -> None:
    """Someone with write access to the store and the console's S3 credentials rewrites a row,
    recomputes the chain, removes the store's note of its anchor and puts an anchor of the
    rewritten head: the anchor kept in the history still names the real row 8."""
    rewrite_chain(anchored.store, "UPDATE audit SET actor = 'mallory' WHERE id = 3")
    tamper(anchored.store, "DROP TABLE IF EXISTS audit_anchors")
    rows, forged_head = head_of(anchored.store)
    forged = anchored.latest() | {"rows": rows, "head": forged_head}
    anchored.s3.put_object(Bucket=BUCKET, Key=anchored.key, Body=json.dumps(forged).encode())
    line = failed(anchored.verify())
    assert line.startswith(
        f"deploy-console: audit: row {ROWS} does not match the anchor kept at "
        f"s3://{BUCKET}/{stem(anchored)}/history/"
    ), line
    assert line.endswith(f"the history up to row {ROWS} was rewritten"), line


def test_a_locked_anchor_version_cannot_be_deleted(anchored: Anchored) -> None:
    """The world's bucket has Object Lock: the anchor and its history are locked (governance,
    365 days by default), and a delete of a version is refused."""
    kept = versions(anchored.s3, BUCKET, stem(anchored))
    assert len(kept) == 2
    # The store notes what it anchored where (what verify then requires to be there).
    with closing(sqlite3.connect(anchored.store)) as db:
        note = db.execute("SELECT location, rows, head FROM audit_anchors").fetchall()
    assert note == [(f"s3://{BUCKET}/{anchored.key}", *head_of(anchored.store))]
    for item in kept:
        head = anchored.s3.head_object(Bucket=BUCKET, Key=item["Key"], VersionId=item["VersionId"])
        assert head["ObjectLockMode"] == "GOVERNANCE"
        until = head["ObjectLockRetainUntilDate"]
        assert abs(until - (datetime.now(UTC) + timedelta(days=365))) < timedelta(minutes=5)
        with pytest.raises(botocore.exceptions.ClientError) as refused:
            anchored.s3.delete_object(Bucket=BUCKET, Key=item["Key"], VersionId=item["VersionId"])
        assert refused.value.response["Error"]["Code"] == "AccessDenied"
    assert versions(anchored.s3, BUCKET, stem(anchored)) == kept
    result = anchored.verify()
    assert result.returncode == 0, result.stderr
    assert one_line(result.stdout).endswith(
        "; 1 version kept, none contradicts the store; object lock on)"
    )


def test_compliance_mode_locks_even_against_a_governance_bypass(
    anchored: Anchored, world_config_path: Path, tmp_path: Path
) -> None:
    config = anchored_config(
        world_config_path,
        tmp_path / "compliance.toml",
        anchored.store,
        anchor_key=f"tests/{tmp_path.name}/compliance.json",
        anchor_lock_mode="compliance",
        anchor_retention_days=2,
    )
    result = cli("audit", "anchor", "--config", str(config))
    assert result.returncode == 0, result.stderr
    line = one_line(result.stdout)
    shown = re.search(r"; locked \(compliance\) until ([0-9-]+ [0-9:]+) UTC\)$", line)
    assert shown is not None, line
    until = datetime.strptime(shown.group(1), "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    assert abs(until - (datetime.now(UTC) + timedelta(days=2))) < timedelta(minutes=5)
    key = f"tests/{tmp_path.name}/compliance.json"
    [item] = [v for v in versions(anchored.s3, BUCKET, key) if v["Key"] == key]
    head = anchored.s3.head_object(Bucket=BUCKET, Key=key, VersionId=item["VersionId"])
    assert (head["ObjectLockMode"], head["ObjectLockRetainUntilDate"]) == ("COMPLIANCE", until)
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        anchored.s3.delete_object(
            Bucket=BUCKET, Key=key, VersionId=item["VersionId"], BypassGovernanceRetention=True
        )
    assert refused.value.response["Error"]["Code"] == "AccessDenied"


def other_bucket(world: World, name: str, versioned: bool) -> str:
    s3 = world.client("s3", "us-east-1")
    existing = {bucket["Name"] for bucket in s3.list_buckets()["Buckets"]}
    if name not in existing:
        s3.create_bucket(Bucket=name)
        if versioned:
            s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return name


def test_an_unversioned_bucket_is_refused_and_a_versioned_one_anchors_unlocked(
    world: World, world_config_path: Path, tmp_path: Path
) -> None:
    store_path = tmp_path / "s.db"
    asyncio.run(_append(store_path, 2))
    plain = other_bucket(world, "deploy-console-audit-unversioned", versioned=False)
    config = anchored_config(
        world_config_path, tmp_path / "p.toml", store_path, anchor_bucket=plain
    )
    result = cli("audit", "anchor", "--config", str(config))
    assert (result.returncode, result.stdout) == (2, ""), result
    assert one_line(result.stderr) == (
        f"{ERROR_PREFIX}audit anchor s3://{plain}/deploy-console/audit-anchor.json: the bucket's "
        "versioning is off, so an anchor could be overwritten or deleted without a trace: enable "
        "versioning and Object Lock on it (see README, Audit anchor)"
    )
    listing = world.client("s3", "us-east-1").list_objects_v2(Bucket=plain)
    assert listing.get("KeyCount", 0) == 0
    versioned = other_bucket(world, "deploy-console-audit-versioned", versioned=True)
    data = tomllib.loads(config.read_text())
    data["audit"] |= {"anchor_bucket": versioned, "anchor_key": f"t/{tmp_path.name}/a.json"}
    config.write_text(tomli_w.dumps(data))
    result = cli("audit", "anchor", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert one_line(result.stdout).endswith("; not locked: the bucket has no Object Lock)")
    result = cli("audit", "verify", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert one_line(result.stdout).endswith(
        "; 1 version kept, none contradicts the store; versioned, no object lock: versions "
        "can be deleted)"
    )
