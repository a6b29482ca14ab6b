-- This database's deployment id, made once (one row): container labels
-- carry it, so boot reconciliation only removes this deployment's orphans.
CREATE TABLE deployment (
    singleton TINYINT  NOT NULL PRIMARY KEY,
    id        CHAR(36) NOT NULL,
    CONSTRAINT ck_deployment_singleton CHECK (singleton = 1)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
