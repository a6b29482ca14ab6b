-- What the driver says each GPU is (gpus.ids = "auto", or telemetry on):
-- NULL where nothing was discovered.
ALTER TABLE gpu_devices ADD COLUMN uuid TEXT;
ALTER TABLE gpu_devices ADD COLUMN name TEXT;
ALTER TABLE gpu_devices ADD COLUMN memory_total_bytes INTEGER CHECK (memory_total_bytes >= 0);

-- Telemetry charged to a session, one row per session and UTC day
-- (day_start: Unix milliseconds of that day's 00:00 UTC). The sampler
-- writes whole values (not increments), so a rewrite is harmless.
-- utilization_ms / sampled_ms is the mean utilisation.
CREATE TABLE session_gpu_usage (
    session_id        TEXT    NOT NULL REFERENCES sessions (id),
    day_start         INTEGER NOT NULL,
    gpu_id            INTEGER NOT NULL CHECK (gpu_id >= 0),
    sampled_ms        INTEGER NOT NULL CHECK (sampled_ms >= 0),
    busy_ms           INTEGER NOT NULL CHECK (busy_ms >= 0),
    utilization_ms    INTEGER NOT NULL CHECK (utilization_ms >= 0),
    peak_memory_bytes INTEGER NOT NULL CHECK (peak_memory_bytes >= 0),
    PRIMARY KEY (session_id, day_start)
);
CREATE INDEX ix_session_gpu_usage_day ON session_gpu_usage (day_start);
-- The usage report reads sessions that overlap a period.
CREATE INDEX ix_sessions_stopped ON sessions (stopped_at);
