#!/usr/bin/env bash
# Runs every check MedForge has: formatting, clippy, and all tests against
# the real services they need (MariaDB, dockerd, Podman's API service, a locally built test
# pack image, ZFS through zfs-fuse, Caddy 2.11.7, the real code-server pack,
# Chromium and ChromeDriver, axe-core), which it installs and starts
# when missing. Safe to run again and again. Usage: scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# The tests' copy of the code-server pack has a tag of its own: the
# production tag (medforge-pack-default:latest, run.sh's) is left as
# run.sh built it. An image with the same build hash is tagged, not rebuilt.
export DEFAULT_PACK_IMAGE=medforge-pack-default:test
. scripts/lib/common.sh
. scripts/lib/stages.sh
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
stage "install: packages, services (MariaDB, dockerd, Podman, zfs-fuse), test images, Caddy, Chromium"
ensure_packages cc gcc pkg-config pkg-config nft nftables iptables-restore iptables systemd-analyze systemd \
  python3 python3 curl curl git git
ensure_mariadb
ensure_docker
ensure_bridge_netfilter
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
ensure_compose

stage "cargo fmt --check"
cargo fmt --all -- --check
stage "cargo clippy"
cargo clippy --workspace --all-targets --all-features -- -D warnings
# --all-targets leaves out test targets with `test = false`: the README tour's driver.
cargo clippy -p medforge-server --all-features --test readme_tour -- -D warnings
stage "no import cycle between the modules of any crate (scripts/tests/modules.sh)"
bash scripts/tests/modules.sh
# Before this script builds the pack itself: on a fresh machine the README's
# run.sh must build its base and pack from nothing (later steps reuse them).
stage "README check: scripts/run.sh in a fresh clone, the tour in Chromium (scripts/tests/run-sh.sh)"
bash scripts/tests/run-sh.sh
stage "install: the code-server pack for the browser test (built above by run.sh when the hash matches)"
ensure_base_image
ensure_default_pack
# The benchmark must keep running (it once found an InnoDB deadlock the
# tests had not): a short smoke run, which does not touch BENCHMARKS.md.
# In the test profile (`cargo test --bench`): it shares the tests' build
# instead of building every dependency again for release; scripts/bench.sh
# measures in release.
stage "benchmark smoke run"
cargo test -p medforge-core --all-features --bench allocation -- --clients 8 --secs 1
stage "API fuzzing (schemathesis against the live server's OpenAPI document)"
cargo build -p medforge-server
fuzz_api
stage "infra/compose validates (every Compose here) and matches the architecture"
bash scripts/tests/compose.sh
stage "scripts/gpu-check.sh, the parts that need no GPU (stand-in libnvidia-ml)"
bash scripts/tests/gpu-check.sh target/debug/medforge
stage "the docs cover every CLI command, UI page and API route once; links resolve"
bash scripts/tests/docs.sh target/debug/medforge
stage_rows "cargo test (MariaDB at ${MEDFORGE_TEST_MYSQL_URL%%:*}://...@127.0.0.1:${MARIADB_PORT})"
cargo test --workspace --all-features 2>&1 | python3 scripts/lib/test_times.py "$STAGE_TIMES"
stage "examples/: the core embedded with a runtime of its own (sessions as local processes)"
cargo run -p medforge-example-process-runtime
