//! Contract test suites, for every implementation of a core trait to run
//! against its real backend (feature `testing`).
//!
//! A store implementation's test file provides a harness and expands
//! [`store_contract_tests!`](crate::store_contract_tests), which turns every
//! case of [`store`] into a `#[tokio::test]`:
//!
//! ```text
//! async fn harness() -> medforge_core::testing::StoreHarness { ... }
//! medforge_core::store_contract_tests!(harness);
//! ```

pub mod bench;
pub mod bridge_netfilter;
pub mod engine;
pub mod lifecycle;
pub mod outside;
pub mod runtime;
pub mod storage;
pub mod store;
pub mod telemetry;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use sqlx::{AssertSqlSafe, MySql, Row, Sqlite};

use crate::store::{DbFailure, SqlStore, Store};

/// Raw SQL against the store's database, for checks that must bypass the
/// [`Store`] API: what the tables really hold, and what the schema refuses.
#[async_trait]
pub trait RawSql: Send + Sync {
    /// Runs a statement; `Err` carries the database's message.
    async fn execute(&self, sql: &str) -> Result<u64, String>;
    /// The first column of every row, as text.
    async fn strings(&self, sql: &str) -> Result<Vec<String>, String>;
    /// Runs a statement that should fail and says how the store's dialect
    /// classifies the failure (`None` if it succeeded): the allocator's
    /// retry decisions rest on this reading.
    async fn failure(&self, sql: &str) -> Option<DbFailure>;
}

macro_rules! raw_sql_for {
    ($db:ty) => {
        #[async_trait]
        impl RawSql for SqlStore<$db> {
            async fn execute(&self, sql: &str) -> Result<u64, String> {
                sqlx::query(AssertSqlSafe(sql.to_owned()))
                    .execute(self.pool())
                    .await
                    .map(|r| r.rows_affected())
                    .map_err(|e| e.to_string())
            }

            async fn strings(&self, sql: &str) -> Result<Vec<String>, String> {
                let rows = sqlx::query(AssertSqlSafe(sql.to_owned()))
                    .fetch_all(self.pool())
                    .await
                    .map_err(|e| e.to_string())?;
                rows.iter().map(|r| r.try_get::<String, _>(0).map_err(|e| e.to_string())).collect()
            }

            async fn failure(&self, sql: &str) -> Option<DbFailure> {
                match sqlx::query(AssertSqlSafe(sql.to_owned())).execute(self.pool()).await {
                    Ok(_) => None,
                    Err(e) => Some(crate::store::sql::classify::<$db>(&e)),
                }
            }
        }
    };
}
raw_sql_for!(Sqlite);
raw_sql_for!(MySql);

/// Runs `program args` (no shell): its stdout, or its stderr as the error.
/// For tests that drive host tools (docker, nft, iptables, zfs).
pub fn sh(program: &str, args: &[&str]) -> Result<String, String> {
    let out = std::process::Command::new(program)
        .args(args)
        .env("LC_ALL", "C")
        .output()
        .map_err(|e| format!("`{program} {}`: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "`{program} {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Clean-up for a contract case, run by the harness's `finish` once the
/// case has passed (a failed case leaves its state behind for inspection;
/// the test scripts clear leftovers).
#[derive(Default)]
pub struct Teardown(Option<Pin<Box<dyn Future<Output = ()> + Send>>>);

impl std::fmt::Debug for Teardown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "Teardown(pending)" } else { "Teardown(none)" })
    }
}

impl Teardown {
    pub fn new(f: impl Future<Output = ()> + Send + 'static) -> Self {
        Self(Some(Box::pin(f)))
    }

    pub async fn run(self) {
        if let Some(f) = self.0 {
            f.await;
        }
    }
}

/// A fresh, empty, migrated store for one test case, and how to clean up.
pub struct StoreHarness {
    pub store: Arc<dyn Store>,
    pub raw: Arc<dyn RawSql>,
    teardown: Teardown,
}

impl std::fmt::Debug for StoreHarness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreHarness").field("store", &self.store).finish_non_exhaustive()
    }
}

impl StoreHarness {
    pub fn new<S: Store + RawSql + 'static>(store: S) -> Self {
        let store = Arc::new(store);
        Self { store: store.clone(), raw: store, teardown: Teardown::default() }
    }

    pub fn with_teardown(mut self, teardown: impl Future<Output = ()> + Send + 'static) -> Self {
        self.teardown = Teardown::new(teardown);
        self
    }

    pub async fn finish(self) {
        self.teardown.run().await;
    }
}

/// A harness on a fresh SQLite file in its own temporary directory (a file,
/// not memory, so that the pool has several connections that really race).
pub async fn sqlite_file_harness() -> StoreHarness {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("medforge.db");
    let store = SqlStore::<Sqlite>::open(path.to_str().expect("utf-8 path")).await.expect("open SQLite store");
    StoreHarness::new(store).with_teardown(async move { drop(dir) })
}

/// A harness on a fresh database of the MariaDB/MySQL server named by
/// `MEDFORGE_TEST_MYSQL_URL` (a URL whose user may create `mftest_%`
/// databases). Fails loudly when the variable is unset: the test script
/// starts the server, and a missing server is a failure, not a skip.
pub async fn mysql_harness() -> StoreHarness {
    let (url, teardown) = mysql_test_database().await;
    let store = SqlStore::<MySql>::connect(&url).await.expect("open MySQL store");
    let pool = store.pool().clone();
    StoreHarness::new(store).with_teardown(async move {
        pool.close().await;
        teardown.run().await;
    })
}

/// A fresh, empty database on the server of `MEDFORGE_TEST_MYSQL_URL`: its
/// URL, and the teardown that drops it. Panics when the variable is unset.
pub async fn mysql_test_database() -> (String, Teardown) {
    let url = std::env::var("MEDFORGE_TEST_MYSQL_URL").unwrap_or_else(|_| {
        panic!("MEDFORGE_TEST_MYSQL_URL is not set: run scripts/test.sh, which starts MariaDB and sets it")
    });
    let (server, _) = url.rsplit_once('/').expect("MEDFORGE_TEST_MYSQL_URL must end in /<database>");
    let name = format!("mftest_{}", uuid::Uuid::new_v4().simple());
    let admin = SqlStore::<MySql>::connect_without_migrations(&format!("{server}/"))
        .await
        .expect("connect to the MariaDB test server");
    sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&admin)
        .await
        .expect("create a test database");
    let url = format!("{server}/{name}");
    let teardown = Teardown::new(async move {
        let _ = sqlx::query(AssertSqlSafe(format!("DROP DATABASE {name}"))).execute(&admin).await;
        admin.close().await;
    });
    (url, teardown)
}

/// Turns contract cases `$crate::testing::<module>::<case>(&harness)` into
/// `#[tokio::test]`s, each on a fresh harness that is finished after a pass.
/// The public entry points are the `*_contract_tests!` macros.
#[doc(hidden)]
#[macro_export]
macro_rules! __contract_cases {
    ($module:ident, $harness:path; $($case:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let harness = $harness().await;
                $crate::testing::$module::$case(&harness).await;
                harness.finish().await;
            }
        )+
    };
}

/// Runs a chosen subset of one contract's cases, for an implementation
/// that cannot honour all of them (a runtime without containers, say):
/// `contract_cases!(lifecycle, harness; case_a, case_b);`. Say in the test
/// file why each left-out case does not apply.
#[macro_export]
macro_rules! contract_cases {
    ($($cases:tt)+) => {
        $crate::__contract_cases!($($cases)+);
    };
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    /// The cases a contract module defines (`pub async fn name(h: &XHarness)`)
    /// and the ones its `*_contract_tests!` macro runs: the same, so that a
    /// case written but left out of the list cannot silently never run.
    fn defined_and_listed(source: &str, harness: &str) -> (BTreeSet<String>, BTreeSet<String>) {
        let defined = source
            .lines()
            .filter_map(|l| l.strip_prefix("pub async fn "))
            .filter(|l| l.contains(&format!("(h: &{harness})")))
            .filter_map(|l| l.split('(').next())
            .map(str::to_owned)
            .collect();
        let list =
            source.split("__contract_cases!(").nth(1).and_then(|rest| rest.split(')').next()).unwrap_or_default();
        let listed = list
            .split_once(';')
            .map(|(_, names)| names)
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_owned)
            .collect();
        (defined, listed)
    }

    #[test]
    fn every_contract_case_is_run_by_its_macro() {
        for (module, source, harness) in [
            ("store", include_str!("store.rs"), "StoreHarness"),
            ("storage", include_str!("storage.rs"), "StorageHarness"),
            ("runtime", include_str!("runtime.rs"), "RuntimeHarness"),
            ("lifecycle", include_str!("lifecycle.rs"), "LifecycleHarness"),
        ] {
            let (defined, listed) = defined_and_listed(source, harness);
            assert!(defined.len() >= 4, "{module}: found only {defined:?}");
            assert_eq!(defined, listed, "{module}: the cases defined and the cases its macro runs differ");
        }
    }
}
