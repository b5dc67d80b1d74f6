"""The drift findings' table (console/store/drift.py), as the migration that creates it."""

from __future__ import annotations

# (drift) Appended to the store's MIGRATIONS (console/store/schema.py).
MIGRATION: tuple[str, ...] = (
    # One row per finding ever recorded: open (seen, told), baselined or acknowledged.
    """CREATE TABLE drift_findings (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        project TEXT NOT NULL,
        cluster TEXT NOT NULL,
        subject TEXT NOT NULL,
        what TEXT NOT NULL,
        first_seen TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('open', 'baseline', 'acknowledged')),
        known_by TEXT,
        known_at TEXT,
        reason TEXT NOT NULL DEFAULT ''
    )""",
)
