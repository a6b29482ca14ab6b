//! The `Store` contract against SQLite: a fresh database file per case.

use medforge_core::testing::{StoreHarness, sqlite_file_harness};

async fn harness() -> StoreHarness {
    sqlite_file_harness().await
}

medforge_core::store_contract_tests!(harness);

/// The in-memory variant (one connection) honours the contract too.
#[tokio::test]
async fn in_memory_store_allocates_and_refuses() {
    use medforge_core::model::{self, Exposure};
    use medforge_core::store::{AllocationError, AllocationRequest, NewUser, Seed, SqliteStore, Store};
    let store = SqliteStore::in_memory().await.expect("open");
    store.seed(&Seed::default()).await.expect("seed");
    let user =
        store.create_user(NewUser::new("m@example.org".parse().expect("email"), "h".into())).await.expect("user");
    let req = AllocationRequest {
        user_id: user.id,
        exposure: Exposure::External,
        pack_id: None,
        now: model::now(),
        expires_at: None,
    };
    store.allocate_session(req.clone()).await.expect("first");
    let second = store.allocate_session(req).await;
    assert!(matches!(second, Err(AllocationError::LimitReached { limit: 1 })), "{second:?}");
}

/// A first start: the data directory does not exist yet; a second open of
/// the same file finds the data (migrations are not re-run destructively).
#[tokio::test]
async fn open_creates_the_data_directory_and_keeps_data() {
    use medforge_core::store::{NewUser, SqliteStore, Store};
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}/fresh/data/medforge.db", dir.path().display());
    let store = SqliteStore::open(&url).await.expect("open");
    store.create_user(NewUser::new("keep@example.org".parse().expect("email"), "h".into())).await.expect("user");
    store.pool().close().await;
    let again = SqliteStore::open(&url).await.expect("reopen");
    assert_eq!(again.count_users().await.expect("count"), 1);
}
