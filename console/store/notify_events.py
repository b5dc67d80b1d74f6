"""The notification outbox's tables and the trigger that fills it from the audit: an audit row
whose action is an event (console.config.notify.AUDIT_EVENTS) gets its outbox row in the same
INSERT, so in the same transaction, whatever write path appended it."""

from __future__ import annotations

from console.config.notify import AUDIT_EVENTS


def _quoted(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def event_case(row: str = "NEW") -> str:
    """A SQL CASE giving the event of an audit row (NULL: not an event)."""
    whens = []
    for action, outcome, event in AUDIT_EVENTS:
        test = f"{row}.action = {_quoted(action)}"
        if outcome is not None:
            test += f" AND {row}.outcome = {_quoted(outcome)}"
        whens.append(f"WHEN {test} THEN {_quoted(event)}")
    return f"CASE {' '.join(whens)} ELSE NULL END"


def notify_outbox_trigger() -> str:
    """The trigger that writes an outbox row for each audit row that is an event."""
    case = event_case()
    return f"""CREATE TRIGGER audit_notify AFTER INSERT ON audit
        WHEN ({case}) IS NOT NULL
        BEGIN
            INSERT INTO notify_outbox (audit_id, event) VALUES (NEW.id, {case});
        END"""


MIGRATION: tuple[str, ...] = (
    # One row per audit row that is an event; `routed` once its deliveries exist.
    """CREATE TABLE notify_outbox (
        id INTEGER PRIMARY KEY,
        audit_id INTEGER NOT NULL UNIQUE REFERENCES audit (id),
        event TEXT NOT NULL,
        routed INTEGER NOT NULL DEFAULT 0
    )""",
    "CREATE INDEX notify_outbox_unrouted ON notify_outbox (routed, id)",
    # One row per event and channel: pending (retried at next_at), delivered, or failed.
    # last_error is masked before it is stored (no URL token, no password).
    """CREATE TABLE notify_deliveries (
        id INTEGER PRIMARY KEY,
        outbox_id INTEGER NOT NULL REFERENCES notify_outbox (id),
        channel TEXT NOT NULL,
        state TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL,
        next_at TEXT NOT NULL,
        claimed_by TEXT,
        claimed_until TEXT,
        delivered_at TEXT,
        last_error TEXT NOT NULL DEFAULT '',
        UNIQUE (outbox_id, channel)
    )""",
    "CREATE INDEX notify_deliveries_due ON notify_deliveries (state, next_at)",
    notify_outbox_trigger(),
)
