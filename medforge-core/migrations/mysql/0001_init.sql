-- MedForge schema, MySQL/MariaDB flavour (InnoDB, utf8mb4). Timestamps are
-- Unix milliseconds (UTC), ids are uuids as text; see docs/decisions.md.

CREATE TABLE users (
    id                      CHAR(36)     NOT NULL PRIMARY KEY,
    email                   VARCHAR(254) NOT NULL,
    password_hash           VARCHAR(255) NOT NULL,
    role                    VARCHAR(16)  NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
    can_use_internal        BOOLEAN      NOT NULL DEFAULT FALSE,
    max_concurrent_sessions BIGINT       NOT NULL DEFAULT 1 CHECK (max_concurrent_sessions >= 0),
    created_at              BIGINT       NOT NULL,
    UNIQUE KEY uq_users_email (email),
    KEY ix_users_created (created_at, id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE auth_sessions (
    id           CHAR(36)     NOT NULL PRIMARY KEY,
    user_id      CHAR(36)     NOT NULL,
    token_hash   CHAR(64)     NOT NULL,
    created_at   BIGINT       NOT NULL,
    expires_at   BIGINT       NOT NULL,
    last_seen_at BIGINT       NOT NULL,
    revoked_at   BIGINT       NULL,
    ip           VARCHAR(64)  NULL,
    user_agent   VARCHAR(512) NULL,
    UNIQUE KEY uq_auth_sessions_token_hash (token_hash),
    KEY ix_auth_sessions_user (user_id),
    CONSTRAINT fk_auth_sessions_user FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE packs (
    id            CHAR(36)     NOT NULL PRIMARY KEY,
    name          VARCHAR(255) NOT NULL,
    exposure      VARCHAR(16)  NOT NULL CHECK (exposure IN ('external', 'internal', 'both')),
    image_ref     VARCHAR(512) NOT NULL,
    image_digest  VARCHAR(255) NULL,
    created_at    BIGINT       NOT NULL,
    deprecated_at BIGINT       NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE gpu_devices (
    id      BIGINT  NOT NULL PRIMARY KEY CHECK (id >= 0),
    enabled BOOLEAN NOT NULL DEFAULT TRUE
) ENGINE = InnoDB;

CREATE TABLE sessions (
    id            CHAR(36)     NOT NULL PRIMARY KEY,
    user_id       CHAR(36)     NOT NULL,
    exposure      VARCHAR(16)  NOT NULL CHECK (exposure IN ('external', 'internal')),
    pack_id       CHAR(36)     NOT NULL,
    status        VARCHAR(16)  NOT NULL CHECK (status IN ('starting', 'running', 'stopping', 'stopped', 'error')),
    container_id  VARCHAR(128) NULL,
    gpu_id        BIGINT       NOT NULL,
    slug          CHAR(8)      NOT NULL,
    workspace_zfs VARCHAR(512) NULL,
    created_at    BIGINT       NOT NULL,
    started_at    BIGINT       NULL,
    stopped_at    BIGINT       NULL,
    error_message TEXT         NULL,
    -- 1 while the session holds its GPU, NULL after. NULLs never collide in a
    -- unique key, so uq_sessions_gpu_active allows any number of finished
    -- sessions per GPU and at most one active one: the database itself, not
    -- only the allocator, forbids two active sessions on one GPU.
    gpu_active    TINYINT GENERATED ALWAYS AS (
        CASE WHEN status IN ('starting', 'running', 'stopping') THEN 1 ELSE NULL END
    ) STORED,
    UNIQUE KEY uq_sessions_slug (slug),
    UNIQUE KEY uq_sessions_gpu_active (gpu_id, gpu_active),
    KEY ix_sessions_user_created (user_id, created_at, id),
    KEY ix_sessions_created (created_at, id),
    KEY ix_sessions_status (status),
    CONSTRAINT fk_sessions_user FOREIGN KEY (user_id) REFERENCES users (id),
    CONSTRAINT fk_sessions_pack FOREIGN KEY (pack_id) REFERENCES packs (id),
    CONSTRAINT fk_sessions_gpu FOREIGN KEY (gpu_id) REFERENCES gpu_devices (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
