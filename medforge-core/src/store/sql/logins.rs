//! `auth_sessions` (the table keeps its first name): browser logins, by
//! the hash of their token.

use sqlx::Pool;
use time::OffsetDateTime;

use super::backend::{Dialect, db_error, sql_impl, user_columns};
use super::rows::LoginRow;
use crate::model::{self, Login, LoginId, User, UserId};
use crate::store::{NewLogin, StoreError};

/// The logins table of one pool.
pub(super) struct Logins<'p, DB: sqlx::Database>(pub &'p Pool<DB>);

sql_impl! {
impl Logins<'p> {
    pub async fn create(&self, login: NewLogin) -> Result<Login, StoreError> {
        sqlx::query(
            "INSERT INTO auth_sessions (id, user_id, token_hash, created_at, expires_at, last_seen_at, ip, user_agent) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(login.id.to_string())
        .bind(login.user_id.to_string())
        .bind(login.token_hash.clone())
        .bind(model::to_unix_ms(login.created_at))
        .bind(model::to_unix_ms(login.expires_at))
        .bind(model::to_unix_ms(login.created_at))
        .bind(login.ip.clone())
        .bind(login.user_agent.clone())
        .execute(self.0)
        .await
        .map_err(db_error)?;
        Ok(Login {
            id: login.id,
            user_id: login.user_id,
            token_hash: login.token_hash,
            created_at: login.created_at,
            expires_at: login.expires_at,
            last_seen_at: login.created_at,
            revoked_at: None,
            ip: login.ip,
            user_agent: login.user_agent,
        })
    }

    pub async fn by_token_hash(&self, token_hash: &str) -> Result<Option<(Login, User)>, StoreError> {
        let row: Option<LoginRow> = sqlx::query_as(concat!(
            "SELECT a.id AS login_id, a.user_id AS login_user_id, a.token_hash, a.created_at AS login_created_at, \
             a.expires_at, a.last_seen_at, a.revoked_at, a.ip, a.user_agent, ",
            user_columns!(),
            " FROM auth_sessions a JOIN users u ON u.id = a.user_id WHERE a.token_hash = ?"
        ))
        .bind(token_hash.to_owned())
        .fetch_optional(self.0)
        .await
        .map_err(db_error)?;
        row.map(LoginRow::into_model).transpose()
    }

    pub async fn touch(&self, id: LoginId, at: OffsetDateTime) -> Result<(), StoreError> {
        // `?2` would be neater, but MySQL has no numbered placeholders.
        let ms = model::to_unix_ms(at);
        sqlx::query("UPDATE auth_sessions SET last_seen_at = ? WHERE id = ? AND last_seen_at < ?")
            .bind(ms)
            .bind(id.to_string())
            .bind(ms)
            .execute(self.0)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    pub async fn revoke(&self, id: LoginId, at: OffsetDateTime) -> Result<bool, StoreError> {
        let sql = "UPDATE auth_sessions SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL";
        Ok(self.revoke_where(sql, at, id.to_string()).await? == 1)
    }

    pub async fn revoke_all_of(&self, user_id: UserId, at: OffsetDateTime) -> Result<u64, StoreError> {
        let sql = "UPDATE auth_sessions SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL";
        self.revoke_where(sql, at, user_id.to_string()).await
    }

    /// Runs `sql` with a time and a key bound, in that order; rows matched.
    async fn revoke_where(&self, sql: &'static str, at: OffsetDateTime, key: String) -> Result<u64, StoreError> {
        let done =
            sqlx::query(sql).bind(model::to_unix_ms(at)).bind(key).execute(self.0).await.map_err(db_error)?;
        Ok(DB::rows_affected(&done))
    }
}
}
