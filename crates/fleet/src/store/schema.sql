-- The detect-fleet SQLite schema (crates/fleet/src/store/sqlite.rs runs it at every open).
CREATE TABLE IF NOT EXISTS things (
    name TEXT PRIMARY KEY,
    registered INTEGER NOT NULL DEFAULT 0,
    groups TEXT NOT NULL DEFAULT '[]',
    last_report_id INTEGER,
    last_report_ms INTEGER,
    -- The record's version (issue #16); databases from before get it at open.
    version INTEGER NOT NULL DEFAULT 0
);
-- Issue #17: each thing's last rejected report, also for things never accepted.
CREATE TABLE IF NOT EXISTS rejections (
    thing TEXT PRIMARY KEY,
    time_ms INTEGER NOT NULL,
    code TEXT NOT NULL,
    message TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS reports (
    thing TEXT NOT NULL,
    report_id INTEGER NOT NULL,
    time_ms INTEGER NOT NULL,
    accepted INTEGER NOT NULL,
    answer TEXT NOT NULL,
    -- SHA-256 of the report's payload (issue #17); databases from before get it (NULL) at open.
    digest BLOB,
    PRIMARY KEY (thing, report_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS reports_time ON reports (time_ms);
CREATE TABLE IF NOT EXISTS states (
    thing TEXT NOT NULL,
    profile TEXT NOT NULL,
    state TEXT NOT NULL,
    PRIMARY KEY (thing, profile)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS violations (
    violation_id TEXT PRIMARY KEY,
    thing TEXT NOT NULL,
    profile TEXT NOT NULL,
    behavior TEXT NOT NULL,
    start_ms INTEGER NOT NULL,
    last_violation_ms INTEGER NOT NULL,
    last_value TEXT,
    end_ms INTEGER,
    end_type TEXT,
    suppressed INTEGER NOT NULL,
    verification_state TEXT NOT NULL DEFAULT 'UNKNOWN',
    verification_description TEXT
);
CREATE INDEX IF NOT EXISTS violations_end ON violations (end_ms);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    violation_id TEXT NOT NULL,
    time_ms INTEGER NOT NULL,
    event TEXT NOT NULL,
    suppressed INTEGER NOT NULL,
    sent INTEGER NOT NULL DEFAULT 0,
    webhook_sent INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS samples (
    profile TEXT NOT NULL,
    behavior TEXT NOT NULL,
    window_start_ms INTEGER NOT NULL,
    thing TEXT NOT NULL,
    value REAL NOT NULL,
    PRIMARY KEY (profile, behavior, window_start_ms, thing)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS events_unsent ON events (sent, suppressed, id);
-- Issue #16: the outbox's idempotent append looks events up by violation; the webhook
-- cursor moves like the MQTT one.
CREATE INDEX IF NOT EXISTS events_violation ON events (violation_id);
CREATE INDEX IF NOT EXISTS events_webhook_unsent ON events (webhook_sent, suppressed, id);
-- Issue #18: the broker counters of a thing's open cloud-side windows (part of its record),
-- and the last batch read from each broker integration.
CREATE TABLE IF NOT EXISTS witness (
    thing TEXT PRIMARY KEY,
    state TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS source_cursors (
    source TEXT PRIMARY KEY,
    instance TEXT NOT NULL,
    seq INTEGER NOT NULL
) WITHOUT ROWID;
-- Issue #21: the metric history, every datapoint of every thing (sqlite_history.rs). A thing
-- is a small integer here (its name is written once, in history_things); a row is one
-- accepted report (side 0, the report in short-key CBOR) or one closed broker window (side 1,
-- JSON), keyed for a thing's time range. Pruned thing by thing along the key (no time index).
CREATE TABLE IF NOT EXISTS history_things (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS history (
    thing INTEGER NOT NULL,
    side INTEGER NOT NULL,
    time_ms INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (thing, side, time_ms)
) WITHOUT ROWID;
-- Issue #21: ListViolationEvents reads events by time.
CREATE INDEX IF NOT EXISTS events_time ON events (time_ms, id);
-- Issue #21: the active alarms newest first, and a thing's alarms.
CREATE INDEX IF NOT EXISTS violations_active ON violations (start_ms, violation_id) WHERE end_ms IS NULL;
CREATE INDEX IF NOT EXISTS violations_thing ON violations (thing, start_ms, violation_id);
