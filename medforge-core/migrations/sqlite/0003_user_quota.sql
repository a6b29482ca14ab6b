-- A per-user workspace quota (bytes) that overrides storage.quota_bytes;
-- NULL: the configured default. 0: no quota.
ALTER TABLE users ADD COLUMN workspace_quota_bytes INTEGER CHECK (workspace_quota_bytes >= 0);
