#!/usr/bin/env bash
# Runs MedForge on this machine with the built-in defaults (SQLite under
# ./medforge-data, Docker, plain directories, http://medforge.localhost:8080):
# installs and starts dockerd when missing, builds the default code-server
# pack when it is not built yet (on the CUDA base from the registry, or,
# where no registry answers, on a Debian base made from the distribution's
# packages with debootstrap; MEDFORGE_PACK_BASE=cuda|debootstrap forces
# one) and the binary, serves.
# Extra arguments go to `medforge` before `serve` (e.g. --config FILE).
# MEDFORGE_* variables configure it as usual; the pack is built under
# MEDFORGE_PACK__IMAGE's tag when set.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEFAULT_PACK_IMAGE="${MEDFORGE_PACK__IMAGE:-medforge-pack-default:latest}"
. scripts/lib/common.sh
. scripts/lib/docker.sh
. scripts/lib/pack.sh

command -v cargo >/dev/null || die "cargo not found: install Rust (https://rustup.rs) first"
ensure_docker
log "building the default pack ($DEFAULT_PACK_IMAGE; minutes the first time)"
ensure_default_pack
log "building medforge"
cargo build --release -p medforge-server
exec target/release/medforge "$@" serve
