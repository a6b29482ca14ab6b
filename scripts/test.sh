#!/usr/bin/env bash
# Runs every check MedForge has: formatting, clippy, and all tests against
# the real services they need (MariaDB, dockerd, Podman's API service, a locally built test
# pack image, ZFS through zfs-fuse, Caddy 2.11.7, the real code-server pack,
# Chromium and ChromeDriver, axe-core), which it installs and starts
# when missing. Safe to run again and again. Usage: scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/common.sh
. scripts/lib/mariadb.sh
. scripts/lib/docker.sh
. scripts/lib/zfs.sh
. scripts/lib/caddy.sh
. scripts/lib/podman.sh
. scripts/lib/pack.sh
. scripts/lib/browser.sh
. scripts/lib/medforge-server.sh
. scripts/lib/fuzz.sh
. scripts/lib/compose.sh

# The tests build the pack on the small Debian base, registry or not.
export MEDFORGE_PACK_BASE=${MEDFORGE_PACK_BASE:-debootstrap}
command -v cargo >/dev/null || die "cargo not found: install Rust (https://rustup.rs) first"
ensure_packages cc gcc pkg-config pkg-config nft nftables iptables-restore iptables systemd-analyze systemd
ensure_mariadb
ensure_docker
ensure_test_pack
clean_docker_test_leftovers
ensure_podman
ensure_podman_test_pack
clean_podman_test_leftovers
ensure_zfs
clean_zfs_test_leftovers
ensure_caddy
ensure_browser
ensure_axe
ensure_base_image
ensure_default_pack
ensure_compose

log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy"
cargo clippy --workspace --all-targets --all-features -- -D warnings
# The benchmark must keep running (it once found an InnoDB deadlock the
# tests had not): a short smoke run, which does not touch BENCHMARKS.md.
log "benchmark smoke run (before the tests, so their summary closes the output)"
cargo bench -p medforge-core --features testing --bench allocation -- --clients 8 --secs 1
log "API fuzzing (schemathesis against the live server's OpenAPI document)"
cargo build -p medforge-server
fuzz_api
log "infra/compose validates (every Compose here) and matches the architecture"
bash scripts/tests/compose.sh
log "the docs cover every CLI command, UI page and API route once; links resolve"
bash scripts/tests/docs.sh target/debug/medforge
log "cargo test (MariaDB at ${MEDFORGE_TEST_MYSQL_URL%%:*}://...@127.0.0.1:${MARIADB_PORT})"
cargo test --workspace --all-features
log "examples/: the core embedded with a runtime of its own (sessions as local processes)"
cargo run -p medforge-example-process-runtime
log "the README's first command (scripts/run.sh) from a fresh-like state: no binary, no images, no database"
bash scripts/tests/run-sh.sh
