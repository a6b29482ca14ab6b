-- Fair sharing (the queue, idle and lifetime limits). New: the status
-- `reserved` (a GPU the queue offered to a user and keeps for them; it
-- holds its GPU like an active session, so the unique key on
-- (gpu_id, gpu_active) covers reservations too), and the limits' columns.
ALTER TABLE sessions
    MODIFY status VARCHAR(16) NOT NULL
        CHECK (status IN ('reserved', 'starting', 'running', 'stopping', 'stopped', 'error')),
    MODIFY gpu_active TINYINT GENERATED ALWAYS AS (
        CASE WHEN status IN ('reserved', 'starting', 'running', 'stopping') THEN 1 ELSE NULL END
    ) STORED,
    -- When the lifetime ends (for `reserved`: when the offer lapses); NULL: never.
    ADD COLUMN expires_at BIGINT NULL,
    ADD COLUMN last_activity_at BIGINT NULL,
    ADD COLUMN extensions INT NOT NULL DEFAULT 0 CHECK (extensions >= 0),
    -- The warning its owner was given, while it stands.
    ADD COLUMN warning VARCHAR(16) NULL CHECK (warning IN ('idle', 'lifetime')),
    ADD COLUMN warning_stops_at BIGINT NULL,
    ADD COLUMN warning_given_at BIGINT NULL,
    ADD COLUMN stop_reason VARCHAR(32) NULL
        CHECK (stop_reason IN ('user', 'admin', 'idle', 'lifetime', 'container_death', 'start_failed'));
UPDATE sessions SET last_activity_at = COALESCE(started_at, created_at);

-- An admin's per-user lifetime (seconds; 0: none); NULL: the config's.
ALTER TABLE users ADD COLUMN max_lifetime_secs BIGINT NULL CHECK (max_lifetime_secs >= 0);

-- The wait queue: one entry per user and exposure. `offered` entries name
-- the `reserved` session that keeps their GPU until `offered_until`.
CREATE TABLE queue_entries (
    id            CHAR(36)    NOT NULL PRIMARY KEY,
    user_id       CHAR(36)    NOT NULL,
    exposure      VARCHAR(16) NOT NULL CHECK (exposure IN ('external', 'internal')),
    pack_id       CHAR(36)    NULL,
    auto_start    TINYINT     NOT NULL DEFAULT 0 CHECK (auto_start IN (0, 1)),
    joined_at     BIGINT      NOT NULL,
    state         VARCHAR(16) NOT NULL CHECK (state IN ('waiting', 'offered')),
    session_id    CHAR(36)    NULL,
    offered_at    BIGINT      NULL,
    offered_until BIGINT      NULL,
    UNIQUE KEY uq_queue_entries_user (user_id, exposure),
    KEY ix_queue_entries_joined (joined_at, id),
    CONSTRAINT fk_queue_entries_user FOREIGN KEY (user_id) REFERENCES users (id),
    CONSTRAINT fk_queue_entries_pack FOREIGN KEY (pack_id) REFERENCES packs (id),
    CONSTRAINT fk_queue_entries_session FOREIGN KEY (session_id) REFERENCES sessions (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
