-- The audit trail of API.md's events, for the admin event log.
CREATE TABLE events (
    id         CHAR(36)    NOT NULL PRIMARY KEY,
    event      VARCHAR(64) NOT NULL,
    user_id    CHAR(36)    NULL,
    session_id CHAR(36)    NULL,
    created_at BIGINT      NOT NULL,
    body       TEXT        NOT NULL,
    KEY ix_events_created (created_at, id),
    KEY ix_events_event (event, created_at, id),
    KEY ix_events_user (user_id, created_at, id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
