//! Session start on Docker: `medforge_core::testing::bench::session_start`
//! against `docker run`. Run by `scripts/bench.sh`.
//!
//! Usage: cargo bench -p medforge-runtime-docker --bench session_start -- [--starts N]

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;

use medforge_core::testing::bench::{SessionStartBench, session_start, starts_from_args};

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let starts = starts_from_args(20);
    let (run, containers) = common::run_config();
    let bench = SessionStartBench {
        runtime: Arc::new(common::runtime().await),
        cli: "docker",
        image: common::test_pack_image(),
        run_label: format!("{}={run}", common::RUN_LABEL),
        containers: containers.clone(),
    };
    let table = session_start(bench, starts).await;
    common::cleanup_run(&run, &containers);
    print!("{table}");
}
