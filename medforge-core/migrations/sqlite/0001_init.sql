-- MedForge schema, SQLite flavour. Timestamps are Unix milliseconds (UTC),
-- ids are uuids as text; see docs/decisions.md.

CREATE TABLE users (
    id                      TEXT    NOT NULL PRIMARY KEY,
    email                   TEXT    NOT NULL,
    password_hash           TEXT    NOT NULL,
    role                    TEXT    NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
    can_use_internal        INTEGER NOT NULL DEFAULT 0 CHECK (can_use_internal IN (0, 1)),
    max_concurrent_sessions INTEGER NOT NULL DEFAULT 1 CHECK (max_concurrent_sessions >= 0),
    created_at              INTEGER NOT NULL
);
CREATE UNIQUE INDEX uq_users_email ON users (email);
CREATE INDEX ix_users_created ON users (created_at, id);

CREATE TABLE auth_sessions (
    id           TEXT    NOT NULL PRIMARY KEY,
    user_id      TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash   TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    revoked_at   INTEGER,
    ip           TEXT,
    user_agent   TEXT
);
CREATE UNIQUE INDEX uq_auth_sessions_token_hash ON auth_sessions (token_hash);
CREATE INDEX ix_auth_sessions_user ON auth_sessions (user_id);

CREATE TABLE packs (
    id            TEXT    NOT NULL PRIMARY KEY,
    name          TEXT    NOT NULL,
    exposure      TEXT    NOT NULL CHECK (exposure IN ('external', 'internal', 'both')),
    image_ref     TEXT    NOT NULL,
    image_digest  TEXT,
    created_at    INTEGER NOT NULL,
    deprecated_at INTEGER
);

CREATE TABLE gpu_devices (
    id      INTEGER NOT NULL PRIMARY KEY CHECK (id >= 0),
    enabled INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1))
);

CREATE TABLE sessions (
    id            TEXT    NOT NULL PRIMARY KEY,
    user_id       TEXT    NOT NULL REFERENCES users (id),
    exposure      TEXT    NOT NULL CHECK (exposure IN ('external', 'internal')),
    pack_id       TEXT    NOT NULL REFERENCES packs (id),
    status        TEXT    NOT NULL CHECK (status IN ('starting', 'running', 'stopping', 'stopped', 'error')),
    container_id  TEXT,
    gpu_id        INTEGER NOT NULL REFERENCES gpu_devices (id),
    slug          TEXT    NOT NULL CHECK (length(slug) = 8),
    workspace_zfs TEXT,
    created_at    INTEGER NOT NULL,
    started_at    INTEGER,
    stopped_at    INTEGER,
    error_message TEXT,
    -- 1 while the session holds its GPU, NULL after. NULLs never collide in a
    -- unique index, so uq_sessions_gpu_active allows any number of finished
    -- sessions per GPU and at most one active one: the database itself, not
    -- only the allocator, forbids two active sessions on one GPU.
    gpu_active    INTEGER GENERATED ALWAYS AS (
        CASE WHEN status IN ('starting', 'running', 'stopping') THEN 1 ELSE NULL END
    ) VIRTUAL
);
CREATE UNIQUE INDEX uq_sessions_slug ON sessions (slug);
CREATE UNIQUE INDEX uq_sessions_gpu_active ON sessions (gpu_id, gpu_active);
CREATE INDEX ix_sessions_user_created ON sessions (user_id, created_at, id);
CREATE INDEX ix_sessions_created ON sessions (created_at, id);
CREATE INDEX ix_sessions_status ON sessions (status);
