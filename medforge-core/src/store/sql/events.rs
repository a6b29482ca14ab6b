//! `events` (the admin event log) and `deployment` (this database's id).

use sqlx::{Pool, QueryBuilder};

use super::backend::{Dialect, check_limit, db_error, page_of, push_cursor, sql_impl};
use super::rows::{EventRow, corrupt};
use crate::model::{self, DeploymentId};
use crate::store::{Cursor, EventFilter, Page, PageRequest, StoreError, StoredEvent};

/// The event and deployment tables of one pool.
pub(super) struct Events<'p, DB: sqlx::Database>(pub &'p Pool<DB>);

sql_impl! {
impl Events<'p> {
    pub async fn record(&self, e: &StoredEvent) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO events (id, event, user_id, actor_id, session_id, created_at, body) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(e.id.clone())
        .bind(e.event.clone())
        .bind(e.user_id.map(|u| u.to_string()))
        .bind(e.actor_id.map(|u| u.to_string()))
            .bind(e.session_id.map(|s| s.to_string()))
            .bind(model::to_unix_ms(e.created_at))
            .bind(e.data.to_string())
            .execute(self.0)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    pub async fn list(&self, filter: &EventFilter, page: PageRequest) -> Result<Page<StoredEvent>, StoreError> {
        let fetch = check_limit(&page)?;
        let mut qb = QueryBuilder::<DB>::new(
            "SELECT e.id, e.event, e.user_id, e.actor_id, e.session_id, e.created_at, e.body FROM events e WHERE 1 = 1",
        );
        if let Some(event) = &filter.event {
            qb.push(" AND e.event = ").push_bind(event.clone());
        }
        if let Some(user) = filter.user_id {
            qb.push(" AND e.user_id = ").push_bind(user.to_string());
        }
        if let Some(actor) = filter.actor_id {
            qb.push(" AND e.actor_id = ").push_bind(actor.to_string());
        }
        push_cursor(&mut qb, "e", &page.after);
        qb.push(" ORDER BY e.created_at DESC, e.id DESC LIMIT ").push_bind(fetch);
        let rows: Vec<EventRow> = qb.build_query_as().fetch_all(self.0).await.map_err(db_error)?;
        let items = rows.into_iter().map(EventRow::into_model).collect::<Result<Vec<_>, _>>()?;
        Ok(page_of(items, page.limit, |e| Cursor { created_at_ms: model::to_unix_ms(e.created_at), id: e.id.clone() }))
    }

    pub async fn deployment_id(&self) -> Result<DeploymentId, StoreError> {
        sqlx::query(DB::INSERT_DEPLOYMENT_IF_MISSING)
            .bind(DeploymentId::new_random().to_string())
            .execute(self.0)
            .await
            .map_err(db_error)?;
        let id: String = sqlx::query_scalar("SELECT id FROM deployment WHERE singleton = 1")
            .fetch_one(self.0)
            .await
            .map_err(db_error)?;
        id.parse().map_err(|e| corrupt("deployment", e))
    }
}
}
