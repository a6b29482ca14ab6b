//! `sessions`: reads, listings and the conditional transitions of the
//! state machine. Allocation, the one write that picks a GPU, is in
//! `allocation.rs`.

use std::time::Duration;

use sqlx::{Pool, QueryBuilder};
use time::OffsetDateTime;

use super::backend::{
    Dialect, active_statuses, check_limit, db_error, page_of, push_cursor, retry_contention, session_columns, sql_impl,
};
use super::rows::SessionRow;
use crate::model::{self, Session, SessionId, SessionStatus, Slug, Warning};
use crate::store::{Cursor, Extension, Page, PageRequest, SessionFilter, StoreError, Transition};

/// The sessions table of one pool.
pub(super) struct Sessions<'p, DB: sqlx::Database>(pub &'p Pool<DB>);

fn models(rows: Vec<SessionRow>) -> Result<Vec<Session>, StoreError> {
    rows.into_iter().map(SessionRow::into_model).collect()
}

sql_impl! {
impl Sessions<'p> {
    async fn one_where(&self, sql: &'static str, key: String) -> Result<Option<Session>, StoreError> {
        let row: Option<SessionRow> = sqlx::query_as(sql).bind(key).fetch_optional(self.0).await.map_err(db_error)?;
        row.map(SessionRow::into_model).transpose()
    }

    pub async fn by_id(&self, id: SessionId) -> Result<Option<Session>, StoreError> {
        self.one_where(concat!("SELECT ", session_columns!(), " FROM sessions s WHERE s.id = ?"), id.to_string()).await
    }

    pub async fn by_slug(&self, slug: &Slug) -> Result<Option<Session>, StoreError> {
        self.one_where(concat!("SELECT ", session_columns!(), " FROM sessions s WHERE s.slug = ?"), slug.to_string())
            .await
    }

    pub async fn list(&self, filter: &SessionFilter, page: PageRequest) -> Result<Page<Session>, StoreError> {
        let fetch = check_limit(&page)?;
        let mut qb = QueryBuilder::<DB>::new(concat!("SELECT ", session_columns!(), " FROM sessions s WHERE 1 = 1"));
        if let Some(user) = filter.user_id {
            qb.push(" AND s.user_id = ").push_bind(user.to_string());
        }
        if let Some(exposure) = filter.exposure {
            qb.push(" AND s.exposure = ").push_bind(exposure.as_str().to_owned());
        }
        if !filter.statuses.is_empty() {
            qb.push(" AND s.status IN (");
            let mut list = qb.separated(", ");
            for status in &filter.statuses {
                list.push_bind(status.as_str().to_owned());
            }
            qb.push(")");
        }
        push_cursor(&mut qb, "s", &page.after);
        qb.push(" ORDER BY s.created_at DESC, s.id DESC LIMIT ").push_bind(fetch);
        let rows: Vec<SessionRow> = qb.build_query_as().fetch_all(self.0).await.map_err(db_error)?;
        Ok(page_of(models(rows)?, page.limit, |s| Cursor {
            created_at_ms: model::to_unix_ms(s.created_at),
            id: s.id.to_string(),
        }))
    }

    pub async fn counts(&self) -> Result<Vec<(SessionStatus, u64)>, StoreError> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT status, COUNT(*) AS n FROM sessions GROUP BY status ORDER BY status")
                .fetch_all(self.0)
                .await
                .map_err(db_error)?;
        rows.into_iter()
            .map(|(status, n)| {
                let status = status.parse().map_err(|e| super::rows::corrupt("sessions", e))?;
                Ok((status, n.unsigned_abs()))
            })
            .collect()
    }

    pub async fn active(&self) -> Result<Vec<Session>, StoreError> {
        let rows: Vec<SessionRow> = sqlx::query_as(concat!(
            "SELECT ",
            session_columns!(),
            " FROM sessions s WHERE s.status IN ",
            active_statuses!(),
            " ORDER BY s.created_at, s.id"
        ))
        .fetch_all(self.0)
        .await
        .map_err(db_error)?;
        models(rows)
    }

    pub async fn transition(&self, id: SessionId, t: Transition) -> Result<bool, StoreError> {
        if !t.from.can_become(t.to) {
            tracing::warn!(session_id = %id, from = %t.from, to = %t.to, "refused a transition the state machine forbids");
            return Ok(false);
        }
        let at = model::to_unix_ms(t.at);
        let started_at = (t.to == SessionStatus::Running).then_some(at);
        let stopped_at = t.to.is_terminal().then_some(at);
        // InnoDB may pick this statement as a deadlock victim against a
        // concurrent allocation (gap locks on uq_sessions_gpu_active); the
        // update is conditional, so running it again is always safe.
        let done = retry_contention::<DB, _, _, _>(|| {
            sqlx::query(
                "UPDATE sessions SET status = ?, container_id = COALESCE(?, container_id), \
                 workspace_zfs = COALESCE(?, workspace_zfs), error_message = COALESCE(?, error_message), \
                 started_at = COALESCE(?, started_at), stopped_at = COALESCE(?, stopped_at), \
                 stop_reason = COALESCE(stop_reason, ?), \
                 warning = CASE WHEN ? THEN NULL ELSE warning END \
                 WHERE id = ? AND status = ?",
            )
            .bind(t.to.as_str().to_owned())
            .bind(t.container_id.clone())
            .bind(t.workspace.clone())
            .bind(t.error_message.clone())
            .bind(started_at)
            .bind(stopped_at)
            .bind(t.stop_reason.map(|r| r.as_str().to_owned()))
            // A warning stands only while the session runs.
            .bind(t.to != SessionStatus::Running)
            .bind(id.to_string())
            .bind(t.from.as_str().to_owned())
            .execute(self.0)
        })
        .await
        .map_err(db_error)?;
        Ok(DB::rows_affected(&done) == 1)
    }

    pub async fn record_activity(&self, seen: &[(SessionId, OffsetDateTime)]) -> Result<(), StoreError> {
        for (id, at) in seen {
            let at = model::to_unix_ms(*at);
            sqlx::query(concat!(
                "UPDATE sessions SET last_activity_at = ? WHERE id = ? AND status IN ",
                active_statuses!(),
                " AND (last_activity_at IS NULL OR last_activity_at < ?)"
            ))
            .bind(at)
            .bind(id.to_string())
            .bind(at)
            .execute(self.0)
            .await
            .map_err(db_error)?;
        }
        Ok(())
    }

    pub async fn set_warning(&self, id: SessionId, warning: Option<Warning>) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE sessions SET warning = ?, warning_stops_at = ?, warning_given_at = ? \
             WHERE id = ? AND status = 'running'",
        )
        .bind(warning.map(|w| w.kind.as_str().to_owned()))
        .bind(warning.map(|w| model::to_unix_ms(w.stops_at)))
        .bind(warning.map(|w| model::to_unix_ms(w.given_at)))
        .bind(id.to_string())
        .execute(self.0)
        .await
        .map_err(db_error)?;
        Ok(DB::rows_affected(&done) == 1)
    }

    pub async fn extend(&self, id: SessionId, by: Duration, max: u32) -> Result<Extension, StoreError> {
        let by_ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        let done = sqlx::query(
            "UPDATE sessions SET expires_at = expires_at + ?, extensions = extensions + 1, \
             warning = CASE WHEN warning = 'lifetime' THEN NULL ELSE warning END \
             WHERE id = ? AND status = 'running' AND expires_at IS NOT NULL AND extensions < ?",
        )
        .bind(by_ms)
        .bind(id.to_string())
        .bind(i64::from(max))
        .execute(self.0)
        .await
        .map_err(db_error)?;
        let Some(session) = self.by_id(id).await? else { return Ok(Extension::NotRunning) };
        Ok(if DB::rows_affected(&done) == 1 {
            Extension::Extended(Box::new(session))
        } else if session.status == SessionStatus::Running && session.expires_at.is_some() {
            Extension::LimitReached
        } else {
            Extension::NotRunning
        })
    }

    pub async fn set_runtime(
        &self,
        id: SessionId,
        container_id: Option<&str>,
        workspace: Option<&str>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(concat!(
            "UPDATE sessions SET container_id = COALESCE(?, container_id), ",
            "workspace_zfs = COALESCE(?, workspace_zfs) WHERE id = ? AND status IN ",
            active_statuses!()
        ))
        .bind(container_id.map(str::to_owned))
        .bind(workspace.map(str::to_owned))
        .bind(id.to_string())
        .execute(self.0)
        .await
        .map_err(db_error)?;
        Ok(DB::rows_affected(&done) == 1)
    }
}
}
