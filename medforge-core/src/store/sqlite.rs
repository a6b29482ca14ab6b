//! The SQLite store: the embedded default, a file or an in-memory database.

use std::str::FromStr;
use std::time::Duration;

use sqlx::Sqlite;
use sqlx::error::DatabaseError;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::StoreError;
use super::sql::{DbFailure, Dialect, SqlStore, UniqueKey, user_columns};

/// The SQLite store. `BEGIN IMMEDIATE` makes every allocation take the
/// database's write lock first, so allocations never interleave.
pub type SqliteStore = SqlStore<Sqlite>;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

// Primary result codes (the low byte of an extended code).
const SQLITE_BUSY: i64 = 5;
const SQLITE_LOCKED: i64 = 6;

impl Dialect for Sqlite {
    const BACKEND: &'static str = "sqlite";
    const BEGIN_ALLOCATION: &'static str = "BEGIN IMMEDIATE";
    const LOCK_USER: &'static str = concat!("SELECT ", user_columns!(), " FROM users u WHERE u.id = ?");
    const LOCK_GPUS: Option<&'static str> = None;
    const INSERT_GPU_IF_MISSING: &'static str = "INSERT OR IGNORE INTO gpu_devices (id, enabled) VALUES (?, 1)";
    const INSERT_DEPLOYMENT_IF_MISSING: &'static str = "INSERT OR IGNORE INTO deployment (singleton, id) VALUES (1, ?)";
    const INSERT_PACK_IF_MISSING: &'static str = "INSERT OR IGNORE INTO packs \
         (id, name, exposure, image_ref, image_digest, created_at) VALUES (?, ?, ?, ?, ?, ?)";
    const UPSERT_GPU_USAGE: &'static str = "INSERT INTO session_gpu_usage \
         (session_id, day_start, gpu_id, sampled_ms, busy_ms, utilization_ms, peak_memory_bytes) \
         VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (session_id, day_start) DO UPDATE SET \
         gpu_id = excluded.gpu_id, sampled_ms = excluded.sampled_ms, busy_ms = excluded.busy_ms, \
         utilization_ms = excluded.utilization_ms, peak_memory_bytes = excluded.peak_memory_bytes";

    fn migrator() -> &'static Migrator {
        &MIGRATOR
    }

    fn rows_affected(result: &sqlx::sqlite::SqliteQueryResult) -> u64 {
        result.rows_affected()
    }

    fn classify(err: &(dyn DatabaseError + 'static)) -> DbFailure {
        if err.is_unique_violation() {
            // SQLite names the columns: "UNIQUE constraint failed: users.email".
            let msg = err.message();
            let key = if msg.contains("users.email") {
                UniqueKey::Email
            } else if msg.contains("sessions.slug") {
                UniqueKey::Slug
            } else if msg.contains("sessions.gpu_id, sessions.gpu_active") {
                UniqueKey::GpuActive
            } else if msg.contains("auth_sessions.token_hash") {
                UniqueKey::TokenHash
            } else {
                UniqueKey::Other
            };
            return DbFailure::Unique(key);
        }
        let primary = err.code().and_then(|c| c.parse::<i64>().ok()).map(|c| c & 0xff);
        match primary {
            Some(SQLITE_BUSY | SQLITE_LOCKED) => DbFailure::Retryable,
            _ => DbFailure::Other,
        }
    }
}

impl SqlStore<Sqlite> {
    /// Opens (creating if missing) a SQLite database from a `sqlite://` URL
    /// or a plain file path, and runs the migrations.
    pub async fn open(url_or_path: &str) -> Result<Self, StoreError> {
        let options = if url_or_path.starts_with("sqlite:") {
            SqliteConnectOptions::from_str(url_or_path).map_err(|e| StoreError::Database(Box::new(e)))?
        } else {
            SqliteConnectOptions::new().filename(url_or_path)
        };
        let in_memory = url_or_path.contains(":memory:") || url_or_path.contains("mode=memory");
        if in_memory {
            return Self::with_options(options, 1).await;
        }
        // A fresh data directory may not exist yet.
        if let Some(parent) = options.get_filename().parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| StoreError::Database(Box::new(e)))?;
        }
        let options = options
            .create_if_missing(true)
            // WAL lets readers (the gate, listings) run beside the one writer.
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal);
        Self::with_options(options, 8).await
    }

    /// A private in-memory database (one connection, so that every query
    /// sees the same database), for tests and trials.
    pub async fn in_memory() -> Result<Self, StoreError> {
        Self::with_options(SqliteConnectOptions::new().in_memory(true), 1).await
    }

    async fn with_options(options: SqliteConnectOptions, max_connections: u32) -> Result<Self, StoreError> {
        let options = options
            .foreign_keys(true)
            // Writers queue on the lock rather than fail at once.
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections)
            .min_connections(if max_connections == 1 { 1 } else { 0 })
            // An in-memory database lives as long as its connection.
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await
            .map_err(|e| StoreError::Database(Box::new(e)))?;
        Self::from_pool(pool).await
    }
}
