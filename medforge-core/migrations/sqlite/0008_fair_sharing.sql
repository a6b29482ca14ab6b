-- no-transaction
-- Fair sharing (the queue, idle and lifetime limits). SQLite cannot change
-- a CHECK or a generated column in place, so `sessions` is rebuilt (the
-- documented way: foreign keys off, one transaction, checked before the
-- commit). New: the status `reserved` (a GPU the queue offered to a user
-- and keeps for them; it holds its GPU like an active session, so the
-- unique index on (gpu_id, gpu_active) covers reservations too), and the
-- limits' columns.
PRAGMA foreign_keys = OFF;
BEGIN;
CREATE TABLE sessions_0008 (
    id               TEXT    NOT NULL PRIMARY KEY,
    user_id          TEXT    NOT NULL REFERENCES users (id),
    exposure         TEXT    NOT NULL CHECK (exposure IN ('external', 'internal')),
    pack_id          TEXT    NOT NULL REFERENCES packs (id),
    status           TEXT    NOT NULL
                     CHECK (status IN ('reserved', 'starting', 'running', 'stopping', 'stopped', 'error')),
    container_id     TEXT,
    gpu_id           INTEGER NOT NULL REFERENCES gpu_devices (id),
    slug             TEXT    NOT NULL CHECK (length(slug) = 8),
    workspace_zfs    TEXT,
    created_at       INTEGER NOT NULL,
    started_at       INTEGER,
    stopped_at       INTEGER,
    error_message    TEXT,
    -- When the lifetime ends (for `reserved`: when the offer lapses); NULL: never.
    expires_at       INTEGER,
    last_activity_at INTEGER,
    extensions       INTEGER NOT NULL DEFAULT 0 CHECK (extensions >= 0),
    -- The warning its owner was given, while it stands.
    warning          TEXT CHECK (warning IN ('idle', 'lifetime')),
    warning_stops_at INTEGER,
    warning_given_at INTEGER,
    stop_reason      TEXT CHECK (stop_reason IN
                     ('user', 'admin', 'idle', 'lifetime', 'container_death', 'start_failed')),
    -- 1 while the session holds its GPU, NULL after. NULLs never collide in a
    -- unique index, so uq_sessions_gpu_active allows any number of finished
    -- sessions per GPU and at most one holder: the database itself, not
    -- only the allocator, forbids two sessions (or a session and a
    -- reservation) on one GPU.
    gpu_active       INTEGER GENERATED ALWAYS AS (
        CASE WHEN status IN ('reserved', 'starting', 'running', 'stopping') THEN 1 ELSE NULL END
    ) VIRTUAL
);
INSERT INTO sessions_0008 (id, user_id, exposure, pack_id, status, container_id, gpu_id, slug, workspace_zfs,
                           created_at, started_at, stopped_at, error_message, last_activity_at)
    SELECT id, user_id, exposure, pack_id, status, container_id, gpu_id, slug, workspace_zfs,
           created_at, started_at, stopped_at, error_message, COALESCE(started_at, created_at)
    FROM sessions;
DROP TABLE sessions;
ALTER TABLE sessions_0008 RENAME TO sessions;
CREATE UNIQUE INDEX uq_sessions_slug ON sessions (slug);
CREATE UNIQUE INDEX uq_sessions_gpu_active ON sessions (gpu_id, gpu_active);
CREATE INDEX ix_sessions_user_created ON sessions (user_id, created_at, id);
CREATE INDEX ix_sessions_created ON sessions (created_at, id);
CREATE INDEX ix_sessions_status ON sessions (status);
CREATE INDEX ix_sessions_stopped ON sessions (stopped_at);

-- An admin's per-user lifetime (seconds; 0: none); NULL: the config's.
ALTER TABLE users ADD COLUMN max_lifetime_secs INTEGER CHECK (max_lifetime_secs >= 0);

-- The wait queue: one entry per user and exposure. `offered` entries name
-- the `reserved` session that keeps their GPU until `offered_until`.
CREATE TABLE queue_entries (
    id            TEXT    NOT NULL PRIMARY KEY,
    user_id       TEXT    NOT NULL REFERENCES users (id),
    exposure      TEXT    NOT NULL CHECK (exposure IN ('external', 'internal')),
    pack_id       TEXT    REFERENCES packs (id),
    auto_start    INTEGER NOT NULL DEFAULT 0 CHECK (auto_start IN (0, 1)),
    joined_at     INTEGER NOT NULL,
    state         TEXT    NOT NULL CHECK (state IN ('waiting', 'offered')),
    session_id    TEXT    REFERENCES sessions (id),
    offered_at    INTEGER,
    offered_until INTEGER
);
CREATE UNIQUE INDEX uq_queue_entries_user ON queue_entries (user_id, exposure);
CREATE INDEX ix_queue_entries_joined ON queue_entries (joined_at, id);
COMMIT;
PRAGMA foreign_keys = ON;
