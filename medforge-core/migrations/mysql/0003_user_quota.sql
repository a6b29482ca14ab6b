-- A per-user workspace quota (bytes) that overrides storage.quota_bytes;
-- NULL: the configured default. 0: no quota.
ALTER TABLE users ADD COLUMN workspace_quota_bytes BIGINT NULL,
    ADD CONSTRAINT ck_users_workspace_quota CHECK (workspace_quota_bytes >= 0);
