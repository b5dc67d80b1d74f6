"""The store's schema: one tuple of statements per version (the migrations), and its version."""

from __future__ import annotations

from console.store import drift_tables, notify_events


def _actor_fields(table: str, order: str) -> tuple[str, ...]:
    """Generated columns that split a table's actor text ("alice (ssh SHA256:... from
    127.0.0.1:5000)", see console.identity) into user, door, key and source; indexed by user."""
    opened = "instr(actor, ' (')"
    inner = f"(CASE WHEN {opened} > 0 THEN rtrim(substr(actor, {opened} + 2), ')') ELSE '' END)"
    first = f"instr({inner}, ' ')"
    rest = f"(CASE WHEN {first} > 0 THEN substr({inner}, {first} + 1) ELSE '' END)"
    key_end = f"instr({rest}, ' ')"
    columns = {
        "actor_user": f"CASE WHEN {opened} > 0 THEN substr(actor, 1, {opened} - 1) ELSE actor END",
        "actor_door": f"CASE WHEN {opened} = 0 THEN 'local' WHEN {first} > 0 "
        f"THEN substr({inner}, 1, {first} - 1) ELSE {inner} END",
        "actor_key": f"CASE WHEN {rest} NOT LIKE 'SHA256:%' THEN '' WHEN {key_end} > 0 "
        f"THEN substr({rest}, 1, {key_end} - 1) ELSE {rest} END",
        "actor_source": f"CASE WHEN instr({inner}, ' from ') > 0 "
        f"THEN substr({inner}, instr({inner}, ' from ') + 6) ELSE '' END",
    }
    return (
        *(
            f"ALTER TABLE {table} ADD COLUMN {name} TEXT GENERATED ALWAYS AS ({expression}) VIRTUAL"
            for name, expression in columns.items()
        ),
        f"CREATE INDEX {table}_by_actor ON {table} (actor_user, {order})",
    )


# One tuple of statements per schema version; user_version is how many have run.
# (Statements one by one: sqlite3's executescript would commit the migration's transaction.)
MIGRATIONS: list[tuple[str, ...]] = [
    (
        """CREATE TABLE locks (
            project TEXT NOT NULL,
            cluster TEXT NOT NULL,
            deploy_id TEXT NOT NULL,
            actor TEXT NOT NULL,
            acquired_at TEXT NOT NULL,
            heartbeat_at TEXT NOT NULL,
            PRIMARY KEY (project, cluster)
        )""",
        # seq orders deploys newest first; the deploy id's time prefix has only second resolution.
        """CREATE TABLE deploys (
            seq INTEGER PRIMARY KEY,
            id TEXT NOT NULL UNIQUE,
            project TEXT NOT NULL,
            cluster TEXT NOT NULL,
            release TEXT NOT NULL,
            image_id TEXT,
            actor TEXT NOT NULL,
            state TEXT NOT NULL,
            created_at TEXT NOT NULL,
            started_at TEXT,
            finished_at TEXT,
            reason TEXT NOT NULL DEFAULT '',
            rollback_of TEXT
        )""",
        "CREATE INDEX deploys_by_key ON deploys (project, cluster, seq)",
        "CREATE INDEX deploys_by_state ON deploys (state, seq)",
        """CREATE TABLE steps (
            seq INTEGER PRIMARY KEY,
            deploy_id TEXT NOT NULL REFERENCES deploys (id),
            step TEXT NOT NULL,
            state TEXT NOT NULL,
            started_at TEXT NOT NULL,
            finished_at TEXT,
            seconds REAL,
            detail TEXT NOT NULL DEFAULT ''
        )""",
        "CREATE INDEX steps_by_deploy ON steps (deploy_id, seq)",
        """CREATE TABLE audit (
            id INTEGER PRIMARY KEY,
            at TEXT NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            project TEXT,
            cluster TEXT,
            deploy_id TEXT,
            image_id TEXT,
            instance_ids TEXT NOT NULL,
            step TEXT,
            outcome TEXT,
            reason TEXT NOT NULL,
            ticket TEXT,
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL
        )""",
        "CREATE INDEX audit_by_project ON audit (project, id)",
        "CREATE INDEX audit_by_deploy ON audit (deploy_id, id)",
        """CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
           BEGIN SELECT RAISE(ABORT, 'audit rows are append-only'); END""",
        """CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
           BEGIN SELECT RAISE(ABORT, 'audit rows are append-only'); END""",
    ),
    # 2: what a deploy replaced, so that rolling it back is a deploy of that release.
    ("ALTER TABLE deploys ADD COLUMN previous_release TEXT",),
    # 3: the release queue (console/queue/): order within a pair, promotion chains, who runs a
    # deploy, cancels asked from elsewhere, reconciled interruptions; manual locks, freezes,
    # and each deploy's output.
    (
        "ALTER TABLE deploys ADD COLUMN position REAL",
        "ALTER TABLE deploys ADD COLUMN after_deploy TEXT",
        "ALTER TABLE deploys ADD COLUMN runner TEXT",
        "ALTER TABLE deploys ADD COLUMN cancel_requested TEXT",
        "ALTER TABLE deploys ADD COLUMN reconciled_at TEXT",
        "UPDATE deploys SET position = seq",
        # AUTOINCREMENT: a removed lock's number is never given to another.
        """CREATE TABLE manual_locks (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            project TEXT,
            cluster TEXT,
            owner TEXT NOT NULL,
            reason TEXT NOT NULL,
            warning INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL,
            expires_at TEXT
        )""",
        """CREATE TABLE freezes (
            cluster TEXT PRIMARY KEY,
            actor TEXT NOT NULL,
            reason TEXT NOT NULL,
            created_at TEXT NOT NULL
        )""",
        """CREATE TABLE deploy_log (
            seq INTEGER PRIMARY KEY,
            deploy_id TEXT NOT NULL,
            at TEXT NOT NULL,
            source TEXT NOT NULL,
            stream TEXT NOT NULL,
            line TEXT NOT NULL
        )""",
        "CREATE INDEX deploy_log_by_deploy ON deploy_log (deploy_id, seq)",
    ),
    # 4: one fleet poller per host (console/fleet/share.py): who holds the poller lease (an
    # empty holder: released), and the last snapshot it wrote for every other console.
    (
        """CREATE TABLE fleet_poller (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            holder TEXT NOT NULL,
            renewed_at TEXT NOT NULL,
            generation INTEGER NOT NULL DEFAULT 0,
            written_at TEXT,
            error TEXT,
            snapshot BLOB
        )""",
    ),
    # 5: the actor's fields (console.identity), derived from the actor text the audit's hash
    # covers, so that they cannot drift from it: filters match the user whatever the door.
    (
        *_actor_fields("audit", "id"),
        *_actor_fields("deploys", "seq"),
        # The config's digest (console.config) on the rows it ruled: a deploy's queueing, and
        # a `config` row whenever a console starts on rules that changed.
        "ALTER TABLE audit ADD COLUMN config TEXT",
        "CREATE INDEX audit_by_action ON audit (action, id)",
    ),
    # 6 (audit anchor): the last head this store anchored at each anchor location, so that
    # `audit verify` knows an anchor must exist there and may not be older than this head.
    (
        """CREATE TABLE audit_anchors (
            location TEXT PRIMARY KEY,
            rows INTEGER NOT NULL,
            head TEXT NOT NULL,
            anchored_at TEXT NOT NULL
        )""",
    ),
    # 7 (change tickets): the ticket a deploy goes with; its audit rows' `ticket` copies it.
    ("ALTER TABLE deploys ADD COLUMN ticket TEXT",),
    # 8 (notify): the notification outbox, filled by a trigger on audit INSERT (the event commits
    # with its audit row), and each event's deliveries per channel (console/notify/).
    notify_events.MIGRATION,
    # 9 (bake): a decision on a baking deploy asked from any console ("end:alice" ends the bake
    # early, "rollback:alice" rolls back now); the engine that runs it reads it each round.
    ("ALTER TABLE deploys ADD COLUMN bake_request TEXT",),
    # 10 (schedule): when a deploy may start at the earliest (`deploy --at`, UTC), and an admin's
    # reason to start it outside its cluster's deploy windows, with who gave it.
    (
        "ALTER TABLE deploys ADD COLUMN not_before TEXT",
        "ALTER TABLE deploys ADD COLUMN window_override TEXT",
        "ALTER TABLE deploys ADD COLUMN window_override_by TEXT",
    ),
    # 11 (approvals): who approved or rejected a queued deploy, for which image, until when; a
    # break-glass rollback's reason (it waits for no approval). AUTOINCREMENT: ids never reused.
    (
        """CREATE TABLE approvals (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            deploy_id TEXT NOT NULL,
            project TEXT NOT NULL,
            cluster TEXT NOT NULL,
            image_id TEXT,
            actor TEXT NOT NULL,
            verdict TEXT NOT NULL CHECK (verdict IN ('approve', 'reject', 'break-glass')),
            comment TEXT NOT NULL DEFAULT '',
            created_at TEXT NOT NULL,
            expires_at TEXT
        )""",
        "CREATE INDEX approvals_by_deploy ON approvals (deploy_id, id)",
    ),
    # 12 (provisioning): what a queued entry runs: a deploy, a stack change or a scale.
    ("ALTER TABLE deploys ADD COLUMN kind TEXT NOT NULL DEFAULT 'deploy'",),
    # (i16-adopt): a hand-made pair's resources recorded by `stack adopt` as the baseline its
    # stack references and never touches (resources: JSON, each kind, logical and physical
    # id, described properties); the audit row that recorded it.
    (
        """CREATE TABLE stack_adoptions (
            project TEXT NOT NULL,
            cluster TEXT NOT NULL,
            mode TEXT NOT NULL CHECK (mode IN ('baseline')),
            resources TEXT NOT NULL,
            actor TEXT NOT NULL,
            adopted_at TEXT NOT NULL,
            audit_id INTEGER NOT NULL,
            PRIMARY KEY (project, cluster)
        )""",
    ),
    # (i16-drift): drift findings seen, baselined or acknowledged; the notify trigger made
    # again so that a new finding's audit row (`drift.found`) is a `drift` event.
    (*drift_tables.MIGRATION, "DROP TRIGGER audit_notify", notify_events.notify_outbox_trigger()),
    # (i16-scale): the desired count the last `scale` set per pair, with the config's value
    # then (console/store/desired.py: it holds until the config says something else).
    (
        """CREATE TABLE desired_counts (
            project TEXT NOT NULL,
            cluster TEXT NOT NULL,
            count INTEGER NOT NULL CHECK (count >= 1),
            config_count INTEGER,
            actor TEXT NOT NULL,
            deploy_id TEXT,
            changed_at TEXT NOT NULL,
            PRIMARY KEY (project, cluster)
        )""",
    ),
    # (i16-apply): stack changes: each change to a pair's stack, its template, plan and end.
    (
        """CREATE TABLE stack_changes (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        project TEXT NOT NULL,
        cluster TEXT NOT NULL,
        stack_name TEXT NOT NULL,
        change_set TEXT NOT NULL DEFAULT '',
        template TEXT NOT NULL,
        summary TEXT NOT NULL DEFAULT '',
        actor TEXT NOT NULL,
        state TEXT NOT NULL,
        deploy_id TEXT,
        created_at TEXT NOT NULL,
        finished_at TEXT,
        reason TEXT NOT NULL DEFAULT '',
        events TEXT NOT NULL DEFAULT '[]'
    )""",
        "CREATE INDEX stack_changes_by_pair ON stack_changes (project, cluster, seq)",
    ),
]

# The schema this console reads and writes (PRAGMA user_version: how many migrations ran).
SCHEMA_VERSION = len(MIGRATIONS)
