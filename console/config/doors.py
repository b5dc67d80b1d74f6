"""The [access], [sshd] and [audit] tables: who may do what, log in, and where audit is anchored."""

from __future__ import annotations

import ipaddress
import re

from console.config.reader import DAY, MAX_PORT, Table
from console.config.schema import (
    DEFAULT_ANCHOR_KEY,
    AccessSettings,
    AuditSettings,
    SshdKey,
    SshdSettings,
)

ROLE_LISTS = {"viewers": "viewer", "deployers": "deployer", "admins": "admin"}
SSHD_USER_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@-]{0,63}$")
ANCHOR_LOCK_MODES = ("governance", "compliance")
# S3 Object Lock takes a retention of at most 100 years.
MAX_ANCHOR_RETENTION_DAYS = 36500
# S3's rules for a bucket name (no dots next to each other, checked apart).
S3_BUCKET_PATTERN = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def _role_lists(table: Table) -> dict[str, str]:
    roles: dict[str, str] = {}
    for key, role in ROLE_LISTS.items():
        for user in table.strings(key):
            name = user[1:] if user.startswith("@") else user
            if user != "*" and not SSHD_USER_PATTERN.match(name):
                table.fail(
                    f"{user!r}: a user, @group or * (letters, digits and . _ @ -, at most 64)", key
                )
            if user in roles:
                table.fail(f"{user!r} is named twice: {roles[user]} and {role}", key)
            roles[user] = role
    return roles


def parse_access(
    table: Table, cluster_names: tuple[str, ...], project_names: tuple[str, ...]
) -> AccessSettings:
    users = _role_lists(table)
    scoped: dict[str, dict[str, dict[str, str]]] = {"clusters": {}, "projects": {}}
    for scope, known in (("clusters", cluster_names), ("projects", project_names)):
        unknown = f"unknown {scope[:-1]} (known: {', '.join(known)})"
        for name, sub in table.named_tables(scope, known, unknown):
            scoped[scope][name] = _role_lists(sub)
            sub.done()
    table.done()
    return AccessSettings(users=users, clusters=scoped["clusters"], projects=scoped["projects"])


def parse_audit(table: Table, cluster_names: tuple[str, ...]) -> AuditSettings:
    defaults = AuditSettings()
    bucket = table.string("anchor_bucket")
    if bucket is not None and (not S3_BUCKET_PATTERN.match(bucket) or ".." in bucket):
        table.fail(
            f"{bucket!r} is not an S3 bucket name (3-63 lower-case letters, digits, dots "
            "and dashes)",
            "anchor_bucket",
        )
    key: str = table.string("anchor_key", default=defaults.anchor_key)
    if key.startswith("/") or key.endswith("/") or len(key.encode()) > 1000:
        table.fail(
            f"must be an S3 object key like {DEFAULT_ANCHOR_KEY!r}, not {key!r}", "anchor_key"
        )
    cluster = table.string("anchor_cluster")
    if cluster is not None and cluster not in cluster_names:
        table.fail(
            f"unknown cluster {cluster!r} (known: {', '.join(cluster_names)})", "anchor_cluster"
        )
    every = table.number(
        "anchor_every_seconds", defaults.anchor_every_seconds, minimum=1.0, maximum=DAY
    )
    lock_mode: str = table.string("anchor_lock_mode", default=defaults.anchor_lock_mode)
    if lock_mode not in ANCHOR_LOCK_MODES:
        table.fail(f"choose governance or compliance, not {lock_mode!r}", "anchor_lock_mode")
    retention = table.integer(
        "anchor_retention_days",
        defaults.anchor_retention_days,
        minimum=1,
        maximum=MAX_ANCHOR_RETENTION_DAYS,
    )
    if bucket is None:
        for name in (
            "anchor_key",
            "anchor_cluster",
            "anchor_every_seconds",
            "anchor_lock_mode",
            "anchor_retention_days",
        ):
            if name in table.data:
                table.fail("needs anchor_bucket (the S3 bucket the anchor is written to)", name)
    elif cluster is None:
        table.fail(
            "is required with anchor_bucket: the cluster whose region and credentials reach "
            "the bucket",
            "anchor_cluster",
        )
    table.done()
    return AuditSettings(
        anchor_bucket=bucket,
        anchor_key=key,
        anchor_cluster=cluster,
        anchor_every_seconds=every,
        anchor_lock_mode=lock_mode,
        anchor_retention_days=retention,
    )


def parse_sshd(table: Table) -> SshdSettings:
    listen: str = table.string("listen", default=SshdSettings.listen)
    try:
        ipaddress.ip_address(listen)
    except ValueError:
        table.fail(f"must be an IP address such as 127.0.0.1, not {listen!r}", "listen")
    port = table.integer("port", SshdSettings.port, minimum=1, maximum=MAX_PORT)
    keys: list[SshdKey] = []
    for key_table in table.tables("keys"):
        user: str = key_table.string("user", required=True)
        if not SSHD_USER_PATTERN.fullmatch(user):  # match: $ lets a final newline in
            key_table.fail(f"{user!r} must be letters, digits and . _ @ - (at most 64)", "user")
        key: str = key_table.string("key", required=True)
        if not _is_public_key(key):
            key_table.fail(
                "must be one OpenSSH public key line (ssh-ed25519 AAAA... comment)", "key"
            )
        groups = tuple(key_table.strings("groups"))
        for group in groups:
            if not SSHD_USER_PATTERN.match(group):
                key_table.fail(
                    f"{group!r} must be letters, digits and . _ @ - (at most 64)", "groups"
                )
        key_table.done()
        keys.append(SshdKey(user=user, key=key.strip(), groups=groups))
    authorized_keys = table.file_path("authorized_keys")
    per_user = table.count("max_sessions_per_user", SshdSettings.max_sessions_per_user)
    sessions = table.count("max_sessions", SshdSettings.max_sessions)
    startups = table.count("max_startups", SshdSettings.max_startups)
    grace = table.number(
        "login_grace_seconds", SshdSettings.login_grace_seconds, minimum=0.1, maximum=3600
    )
    table.done()
    return SshdSettings(
        listen=listen,
        port=port,
        keys=tuple(keys),
        authorized_keys=authorized_keys,
        max_sessions_per_user=per_user,
        max_sessions=sessions,
        max_startups=startups,
        login_grace_seconds=grace,
    )


def _is_public_key(line: str) -> bool:
    # Checked by parsing it: a key asyncssh cannot read would never let anyone in. Imported
    # here: only a config with [sshd] keys pays for loading asyncssh.
    import asyncssh

    try:
        asyncssh.import_public_key(line.strip())
    except (asyncssh.KeyImportError, ValueError):
        return False
    return "\n" not in line.strip()
