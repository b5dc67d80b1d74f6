"""The console's store: execution locks, deploys and their steps, the queue's locks and
freezes, the fleet poller's lease, and the hash-chained audit. The only SQL in the tree.

Parts: `records` (the rows as dataclasses), `schema` (migrations), `connection` (the SQLite
dialect: pragmas, BEGIN IMMEDIATE, busy retries), one repository per table family (`locks`,
`deploys`, `queue_order`, `audit_log`, `poller`, `approvals`), `chain` (the audit hash, pure),
`interface` (what the core needs, for a second engine) and `sqlite_store` (Store, the SQLite
engine).
"""

from __future__ import annotations

from console.store import records
from console.store.chain import AUDIT_HASHED, GENESIS_HASH, OPTIONAL_HASHED, audit_hash
from console.store.connection import BUSY_TIMEOUT
from console.store.files import filesystem_type
from console.store.interface import (
    AuditStore,
    ConsoleStore,
    DeployStore,
    PollerStore,
    QueueStore,
    QueueTransaction,
)
from console.store.records import *  # noqa: F403 (the names in records.__all__)
from console.store.schema import MIGRATIONS, SCHEMA_VERSION
from console.store.sqlite_store import Store, Transaction

__all__ = [
    "AUDIT_HASHED",
    "BUSY_TIMEOUT",
    "GENESIS_HASH",
    "MIGRATIONS",
    "OPTIONAL_HASHED",
    "SCHEMA_VERSION",
    "AuditStore",
    "ConsoleStore",
    "DeployStore",
    "PollerStore",
    "QueueStore",
    "QueueTransaction",
    "Store",
    "Transaction",
    "audit_hash",
    "filesystem_type",
]
__all__ += records.__all__


def _conforms(store: Store) -> ConsoleStore:
    """mypy checks here that the SQLite store implements the whole interface."""
    return store
