//! `session_gpu_usage`, and the reads of the usage report.

use sqlx::Pool;
use time::OffsetDateTime;

use super::backend::{Dialect, db_error, session_columns, sql_impl};
use super::rows::{GpuUsageRow, UsageSessionRow};
use crate::model::{self, SessionId, UserId};
use crate::store::StoreError;
use crate::usage::{GpuUsageDay, UsageRecords};

/// The telemetry aggregates of one pool.
pub(super) struct Usage<'p, DB: sqlx::Database>(pub &'p Pool<DB>);

fn day_start(row: &GpuUsageDay) -> i64 {
    model::to_unix_ms(row.day.with_time(time::Time::MIDNIGHT).assume_utc())
}

fn db_int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

const USAGE_COLUMNS: &str =
    "u.session_id, u.day_start, u.gpu_id, u.sampled_ms, u.busy_ms, u.utilization_ms, u.peak_memory_bytes";

sql_impl! {
impl Usage<'p> {
    pub async fn record(&self, rows: &[GpuUsageDay]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut tx = self.0.begin().await.map_err(db_error)?;
        for row in rows {
            sqlx::query(DB::UPSERT_GPU_USAGE)
                .bind(row.session_id.to_string())
                .bind(day_start(row))
                .bind(i64::from(row.gpu_id.0))
                .bind(db_int(row.sampled_ms))
                .bind(db_int(row.busy_ms))
                .bind(db_int(row.utilization_ms))
                .bind(db_int(row.peak_memory_bytes))
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)
    }

    pub async fn of_session(&self, id: SessionId) -> Result<Vec<GpuUsageDay>, StoreError> {
        let sql = "SELECT u.session_id, u.day_start, u.gpu_id, u.sampled_ms, u.busy_ms, u.utilization_ms, \
                   u.peak_memory_bytes FROM session_gpu_usage u WHERE u.session_id = ? ORDER BY u.day_start";
        let rows: Vec<GpuUsageRow> = sqlx::query_as(sql).bind(id.to_string()).fetch_all(self.0).await.map_err(db_error)?;
        rows.into_iter().map(GpuUsageRow::into_model).collect()
    }

    pub async fn records(
        &self,
        from: OffsetDateTime,
        to: OffsetDateTime,
        user: Option<UserId>,
    ) -> Result<UsageRecords, StoreError> {
        let (from, to) = (model::to_unix_ms(from), model::to_unix_ms(to));
        // Overlaps [from, to): allocated before its end, not ended before its start.
        let mut qb = sqlx::QueryBuilder::<DB>::new(concat!(
            "SELECT ",
            session_columns!(),
            ", e.email FROM sessions s JOIN users e ON e.id = s.user_id WHERE s.created_at < "
        ));
        qb.push_bind(to).push(" AND (s.stopped_at IS NULL OR s.stopped_at > ").push_bind(from).push(")");
        if let Some(user) = user {
            qb.push(" AND s.user_id = ").push_bind(user.to_string());
        }
        qb.push(" ORDER BY s.created_at, s.id");
        let sessions: Vec<UsageSessionRow> = qb.build_query_as().fetch_all(self.0).await.map_err(db_error)?;

        let mut qb = sqlx::QueryBuilder::<DB>::new("SELECT ");
        qb.push(USAGE_COLUMNS)
            .push(" FROM session_gpu_usage u JOIN sessions s ON s.id = u.session_id WHERE u.day_start >= ")
            .push_bind(from)
            .push(" AND u.day_start < ")
            .push_bind(to);
        if let Some(user) = user {
            qb.push(" AND s.user_id = ").push_bind(user.to_string());
        }
        qb.push(" ORDER BY u.session_id, u.day_start");
        let usage: Vec<GpuUsageRow> = qb.build_query_as().fetch_all(self.0).await.map_err(db_error)?;
        Ok(UsageRecords {
            sessions: sessions.into_iter().map(UsageSessionRow::into_model).collect::<Result<_, _>>()?,
            gpu_usage: usage.into_iter().map(GpuUsageRow::into_model).collect::<Result<_, _>>()?,
        })
    }
}
}
