-- This database's deployment id, made once (one row): container labels
-- carry it, so boot reconciliation only removes this deployment's orphans.
CREATE TABLE deployment (
    singleton INTEGER NOT NULL PRIMARY KEY CHECK (singleton = 1),
    id        TEXT    NOT NULL
);
