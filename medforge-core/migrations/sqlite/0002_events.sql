-- The audit trail of API.md's events, for the admin event log.
CREATE TABLE events (
    id         TEXT    NOT NULL PRIMARY KEY,
    event      TEXT    NOT NULL,
    user_id    TEXT,
    session_id TEXT,
    created_at INTEGER NOT NULL,
    body       TEXT    NOT NULL
);
CREATE INDEX ix_events_created ON events (created_at, id);
CREATE INDEX ix_events_event ON events (event, created_at, id);
CREATE INDEX ix_events_user ON events (user_id, created_at, id);
