//! The MySQL/MariaDB store, for deployments that already run a database
//! server or want one outside the MedForge process.

use std::time::Duration;

use sqlx::error::DatabaseError;
use sqlx::migrate::Migrator;
use sqlx::mysql::{MySqlDatabaseError, MySqlPoolOptions};
use sqlx::{Executor, MySql};

use super::StoreError;
use super::sql::{DbFailure, Dialect, SqlStore, UniqueKey, user_columns};

/// The MySQL/MariaDB store. Allocation locks the user row and then every GPU
/// row (`FOR UPDATE`), in that order, so allocations queue instead of
/// racing; connections run at READ COMMITTED so that each statement after a
/// lock sees what the previous holder committed.
pub type MySqlStore = SqlStore<MySql>;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/mysql");

const ER_DUP_ENTRY: u16 = 1062;
const ER_LOCK_WAIT_TIMEOUT: u16 = 1205;
const ER_LOCK_DEADLOCK: u16 = 1213;

impl Dialect for MySql {
    const BACKEND: &'static str = "mysql";
    const BEGIN_ALLOCATION: &'static str = "BEGIN";
    const LOCK_USER: &'static str = concat!("SELECT ", user_columns!(), " FROM users u WHERE u.id = ? FOR UPDATE");
    const LOCK_GPUS: Option<&'static str> = Some("SELECT id FROM gpu_devices ORDER BY id FOR UPDATE");
    const INSERT_GPU_IF_MISSING: &'static str = "INSERT IGNORE INTO gpu_devices (id, enabled) VALUES (?, TRUE)";
    const INSERT_DEPLOYMENT_IF_MISSING: &'static str = "INSERT IGNORE INTO deployment (singleton, id) VALUES (1, ?)";
    const INSERT_PACK_IF_MISSING: &'static str = "INSERT IGNORE INTO packs \
         (id, name, exposure, image_ref, image_digest, created_at) VALUES (?, ?, ?, ?, ?, ?)";
    // VALUES(col), not MySQL 8's row alias: MariaDB has only the former.
    const UPSERT_GPU_USAGE: &'static str = "INSERT INTO session_gpu_usage \
         (session_id, day_start, gpu_id, sampled_ms, busy_ms, utilization_ms, peak_memory_bytes) \
         VALUES (?, ?, ?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE \
         gpu_id = VALUES(gpu_id), sampled_ms = VALUES(sampled_ms), busy_ms = VALUES(busy_ms), \
         utilization_ms = VALUES(utilization_ms), peak_memory_bytes = VALUES(peak_memory_bytes)";

    fn migrator() -> &'static Migrator {
        &MIGRATOR
    }

    fn rows_affected(result: &sqlx::mysql::MySqlQueryResult) -> u64 {
        result.rows_affected()
    }

    fn classify(err: &(dyn DatabaseError + 'static)) -> DbFailure {
        let Some(my) = err.try_downcast_ref::<MySqlDatabaseError>() else {
            return DbFailure::Other;
        };
        match my.number() {
            // "Duplicate entry '3-1' for key 'uq_sessions_gpu_active'"
            ER_DUP_ENTRY => {
                let msg = my.message();
                let key = if msg.contains("uq_users_email") {
                    UniqueKey::Email
                } else if msg.contains("uq_sessions_slug") {
                    UniqueKey::Slug
                } else if msg.contains("uq_sessions_gpu_active") {
                    UniqueKey::GpuActive
                } else if msg.contains("uq_auth_sessions_token_hash") {
                    UniqueKey::TokenHash
                } else {
                    UniqueKey::Other
                };
                DbFailure::Unique(key)
            }
            ER_LOCK_WAIT_TIMEOUT | ER_LOCK_DEADLOCK => DbFailure::Retryable,
            _ => DbFailure::Other,
        }
    }
}

impl SqlStore<MySql> {
    /// Connects to `mysql://user:pass@host:port/db` and runs the migrations.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with_pool_size(url, 16).await
    }

    pub async fn connect_with_pool_size(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        Self::from_pool(Self::pool_for(url, max_connections).await?).await
    }

    /// A small pool on `url` without running migrations: for tools that
    /// administer the server (the test harness creates databases with it).
    pub async fn connect_without_migrations(url: &str) -> Result<sqlx::MySqlPool, StoreError> {
        Self::pool_for(url, 2).await
    }

    async fn pool_for(url: &str, max_connections: u32) -> Result<sqlx::MySqlPool, StoreError> {
        MySqlPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(30))
            .after_connect(|conn, _meta| {
                Box::pin(async move {
                    conn.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED").await?;
                    Ok(())
                })
            })
            .connect(url)
            .await
            .map_err(|e| StoreError::Database(Box::new(e)))
    }
}
