-- What the driver says each GPU is (gpus.ids = "auto", or telemetry on):
-- NULL where nothing was discovered.
ALTER TABLE gpu_devices ADD COLUMN uuid VARCHAR(96) NULL,
    ADD COLUMN name VARCHAR(255) NULL,
    ADD COLUMN memory_total_bytes BIGINT NULL,
    ADD CONSTRAINT ck_gpu_devices_memory CHECK (memory_total_bytes >= 0);

-- Telemetry charged to a session, one row per session and UTC day
-- (day_start: Unix milliseconds of that day's 00:00 UTC). The sampler
-- writes whole values (not increments), so a rewrite is harmless.
-- utilization_ms / sampled_ms is the mean utilisation.
CREATE TABLE session_gpu_usage (
    session_id        CHAR(36) NOT NULL,
    day_start         BIGINT   NOT NULL,
    gpu_id            BIGINT   NOT NULL CHECK (gpu_id >= 0),
    sampled_ms        BIGINT   NOT NULL CHECK (sampled_ms >= 0),
    busy_ms           BIGINT   NOT NULL CHECK (busy_ms >= 0),
    utilization_ms    BIGINT   NOT NULL CHECK (utilization_ms >= 0),
    peak_memory_bytes BIGINT   NOT NULL CHECK (peak_memory_bytes >= 0),
    PRIMARY KEY (session_id, day_start),
    KEY ix_session_gpu_usage_day (day_start),
    CONSTRAINT fk_session_gpu_usage_session FOREIGN KEY (session_id) REFERENCES sessions (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- The usage report reads sessions that overlap a period.
CREATE INDEX ix_sessions_stopped ON sessions (stopped_at);
