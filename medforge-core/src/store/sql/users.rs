//! `users`: accounts, their credentials and limits.

use sqlx::{Pool, QueryBuilder};

use super::backend::{
    DbFailure, Dialect, UniqueKey, active_statuses, check_limit, classify, db_error, page_of, push_cursor, sql_impl,
    user_columns,
};
use super::rows::{CredentialsRow, UserRow, UserSummaryRow};
use crate::model::{self, Email, User, UserId, UserSummary};
use crate::store::{Cursor, NewUser, Page, PageRequest, StoreError, UserUpdate};

/// The users table of one pool.
pub(super) struct Users<'p, DB: sqlx::Database>(pub &'p Pool<DB>);

sql_impl! {
impl Users<'p> {
    /// The insert of `user`, on the pool or in a transaction.
    pub(super) fn insert(user: &NewUser) -> sqlx::query::Query<'static, DB, DB::Arguments> {
        sqlx::query(
            "INSERT INTO users (id, email, password_hash, role, can_use_internal, max_concurrent_sessions, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(user.id.to_string())
        .bind(user.email.to_string())
        .bind(user.password_hash.clone())
        .bind(user.role.as_str().to_owned())
        .bind(user.can_use_internal)
        .bind(i64::from(user.max_concurrent_sessions))
        .bind(model::to_unix_ms(user.created_at))
    }

    /// What [`Self::insert`] made, or why it could not.
    pub(super) fn inserted(user: NewUser, result: Result<DB::QueryResult, sqlx::Error>) -> Result<User, StoreError> {
        match result {
            Ok(_) => Ok(User {
                id: user.id,
                email: user.email,
                role: user.role,
                can_use_internal: user.can_use_internal,
                max_concurrent_sessions: user.max_concurrent_sessions,
                created_at: model::from_unix_ms(model::to_unix_ms(user.created_at)),
                workspace_quota_bytes: None,
                max_lifetime_secs: None,
            }),
            Err(e) if classify::<DB>(&e) == DbFailure::Unique(UniqueKey::Email) => Err(StoreError::EmailTaken),
            Err(e) => Err(db_error(e)),
        }
    }

    pub async fn create(&self, user: NewUser) -> Result<User, StoreError> {
        let result = Self::insert(&user).execute(self.0).await;
        Self::inserted(user, result)
    }

    async fn one_where(&self, sql: &'static str, key: String) -> Result<Option<User>, StoreError> {
        let row: Option<UserRow> = sqlx::query_as(sql).bind(key).fetch_optional(self.0).await.map_err(db_error)?;
        row.map(UserRow::into_model).transpose()
    }

    pub async fn by_id(&self, id: UserId) -> Result<Option<User>, StoreError> {
        self.one_where(concat!("SELECT ", user_columns!(), " FROM users u WHERE u.id = ?"), id.to_string()).await
    }

    pub async fn by_email(&self, email: &Email) -> Result<Option<User>, StoreError> {
        self.one_where(concat!("SELECT ", user_columns!(), " FROM users u WHERE u.email = ?"), email.to_string()).await
    }

    pub async fn credentials(&self, email: &Email) -> Result<Option<(User, String)>, StoreError> {
        let row: Option<CredentialsRow> =
            sqlx::query_as(concat!("SELECT ", user_columns!(), ", u.password_hash FROM users u WHERE u.email = ?"))
                .bind(email.to_string())
                .fetch_optional(self.0)
                .await
                .map_err(db_error)?;
        row.map(|r| Ok((r.user.into_model()?, r.password_hash))).transpose()
    }

    pub async fn password_hash(&self, id: UserId) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar("SELECT password_hash FROM users WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(self.0)
            .await
            .map_err(db_error)
    }

    pub async fn update(&self, id: UserId, update: UserUpdate) -> Result<Option<User>, StoreError> {
        let result = sqlx::query(
            "UPDATE users SET email = COALESCE(?, email), password_hash = COALESCE(?, password_hash), \
             role = COALESCE(?, role), can_use_internal = COALESCE(?, can_use_internal), \
             max_concurrent_sessions = COALESCE(?, max_concurrent_sessions), \
             workspace_quota_bytes = CASE WHEN ? THEN ? ELSE workspace_quota_bytes END, \
             max_lifetime_secs = CASE WHEN ? THEN ? ELSE max_lifetime_secs END WHERE id = ?",
        )
        .bind(update.email.map(String::from))
        .bind(update.password_hash)
        .bind(update.role.map(|r| r.as_str().to_owned()))
        .bind(update.can_use_internal)
        .bind(update.max_concurrent_sessions.map(i64::from))
        .bind(update.workspace_quota_bytes.is_some())
        .bind(update.workspace_quota_bytes.flatten().map(|q| i64::try_from(q).unwrap_or(i64::MAX)))
        .bind(update.max_lifetime_secs.is_some())
        .bind(update.max_lifetime_secs.flatten().map(|q| i64::try_from(q).unwrap_or(i64::MAX)))
        .bind(id.to_string())
        .execute(self.0)
        .await;
        match result {
            Ok(done) if DB::rows_affected(&done) == 0 => Ok(None),
            Ok(_) => self.by_id(id).await,
            Err(e) if classify::<DB>(&e) == DbFailure::Unique(UniqueKey::Email) => Err(StoreError::EmailTaken),
            Err(e) => Err(db_error(e)),
        }
    }

    pub async fn list(&self, page: PageRequest) -> Result<Page<UserSummary>, StoreError> {
        let fetch = check_limit(&page)?;
        let mut qb = QueryBuilder::<DB>::new(concat!(
            "SELECT ",
            user_columns!(),
            ", (SELECT COUNT(*) FROM sessions s WHERE s.user_id = u.id AND s.status IN ",
            active_statuses!(),
            ") AS active_session_count FROM users u WHERE 1 = 1"
        ));
        push_cursor(&mut qb, "u", &page.after);
        qb.push(" ORDER BY u.created_at DESC, u.id DESC LIMIT ").push_bind(fetch);
        let rows: Vec<UserSummaryRow> = qb.build_query_as().fetch_all(self.0).await.map_err(db_error)?;
        let items = rows.into_iter().map(UserSummaryRow::into_model).collect::<Result<Vec<_>, _>>()?;
        Ok(page_of(items, page.limit, |u| Cursor {
            created_at_ms: model::to_unix_ms(u.user.created_at),
            id: u.user.id.to_string(),
        }))
    }

    pub async fn count(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users").fetch_one(self.0).await.map_err(db_error)?;
        Ok(n.unsigned_abs())
    }
}
}
