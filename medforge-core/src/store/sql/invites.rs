//! `invites`: an admin's invitations to sign up, by the hash of their
//! token. Using one creates the account in the same transaction, so an
//! invite makes one account at most, however many try at once.

use sqlx::{Pool, QueryBuilder};
use time::OffsetDateTime;

use super::backend::{Dialect, check_limit, db_error, page_of, push_cursor, sql_impl};
use super::rows::InviteRow;
use super::users::Users;
use crate::model::{self, Invite, InviteId, User};
use crate::store::{Cursor, NewInvite, NewUser, Page, PageRequest, StoreError};

/// The columns `InviteRow` reads.
macro_rules! invite_columns {
    () => {
        "i.id, i.email, i.token_hash, i.created_by, i.created_at, i.expires_at, i.used_at, i.used_by, i.revoked_at"
    };
}

/// The invites table of one pool.
pub(super) struct Invites<'p, DB: sqlx::Database>(pub &'p Pool<DB>);

sql_impl! {
impl Invites<'p> {
    pub async fn create(&self, invite: NewInvite) -> Result<Invite, StoreError> {
        sqlx::query(
            "INSERT INTO invites (id, email, token_hash, created_by, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(invite.id.to_string())
        .bind(invite.email.to_string())
        .bind(invite.token_hash.clone())
        .bind(invite.created_by.to_string())
        .bind(model::to_unix_ms(invite.created_at))
        .bind(model::to_unix_ms(invite.expires_at))
        .execute(self.0)
        .await
        .map_err(db_error)?;
        Ok(Invite {
            id: invite.id,
            email: invite.email,
            token_hash: invite.token_hash,
            created_by: invite.created_by,
            created_at: model::from_unix_ms(model::to_unix_ms(invite.created_at)),
            expires_at: model::from_unix_ms(model::to_unix_ms(invite.expires_at)),
            used_at: None,
            used_by: None,
            revoked_at: None,
        })
    }

    pub async fn by_token_hash(&self, token_hash: &str) -> Result<Option<Invite>, StoreError> {
        let row: Option<InviteRow> =
            sqlx::query_as(concat!("SELECT ", invite_columns!(), " FROM invites i WHERE i.token_hash = ?"))
                .bind(token_hash.to_owned())
                .fetch_optional(self.0)
                .await
                .map_err(db_error)?;
        row.map(InviteRow::into_model).transpose()
    }

    pub async fn list(&self, page: PageRequest) -> Result<Page<Invite>, StoreError> {
        let fetch = check_limit(&page)?;
        let mut qb = QueryBuilder::<DB>::new(concat!("SELECT ", invite_columns!(), " FROM invites i WHERE 1 = 1"));
        push_cursor(&mut qb, "i", &page.after);
        qb.push(" ORDER BY i.created_at DESC, i.id DESC LIMIT ").push_bind(fetch);
        let rows: Vec<InviteRow> = qb.build_query_as().fetch_all(self.0).await.map_err(db_error)?;
        let items = rows.into_iter().map(InviteRow::into_model).collect::<Result<Vec<_>, _>>()?;
        Ok(page_of(items, page.limit, |i| Cursor { created_at_ms: model::to_unix_ms(i.created_at), id: i.id.to_string() }))
    }

    pub async fn revoke(&self, id: InviteId, at: OffsetDateTime) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE invites SET revoked_at = ? WHERE id = ? AND used_at IS NULL AND revoked_at IS NULL")
            .bind(model::to_unix_ms(at))
            .bind(id.to_string())
            .execute(self.0)
            .await
            .map_err(db_error)?;
        Ok(DB::rows_affected(&done) > 0)
    }

    /// The account first (the invite names it as its user), then the
    /// claim, which only an open invite matches; either failing rolls both
    /// back.
    pub async fn create_user(&self, user: NewUser, token_hash: &str, at: OffsetDateTime) -> Result<User, StoreError> {
        let mut tx = self.0.begin().await.map_err(db_error)?;
        let result = Users::<DB>::insert(&user).execute(&mut *tx).await;
        let id = user.id;
        let created = Users::<DB>::inserted(user, result)?;
        let claimed = sqlx::query(
            "UPDATE invites SET used_at = ?, used_by = ? \
             WHERE token_hash = ? AND used_at IS NULL AND revoked_at IS NULL AND expires_at > ?",
        )
        .bind(model::to_unix_ms(at))
        .bind(id.to_string())
        .bind(token_hash.to_owned())
        .bind(model::to_unix_ms(at))
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        if DB::rows_affected(&claimed) == 0 {
            return Err(StoreError::InviteUnusable);
        }
        tx.commit().await.map_err(db_error)?;
        Ok(created)
    }
}
}
