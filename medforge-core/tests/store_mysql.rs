//! The `Store` contract against a real MariaDB server (started by
//! scripts/test.sh, URL in `MEDFORGE_TEST_MYSQL_URL`): a fresh database per case.

use medforge_core::testing::{StoreHarness, mysql_harness};

async fn harness() -> StoreHarness {
    mysql_harness().await
}

medforge_core::store_contract_tests!(harness);
