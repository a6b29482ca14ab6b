#!/usr/bin/env bash
# Runs MedForge on this machine with the built-in defaults (SQLite under
# ./medforge-data, Docker, plain directories, http://medforge.localhost:8080):
# installs and starts dockerd when missing, builds the default code-server
# pack (from Debian's packages through debootstrap when it is not built yet:
# no registry needed) and the binary, serves.
# Extra arguments go to `medforge` before `serve` (e.g. --config FILE).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/common.sh
. scripts/lib/docker.sh
. scripts/lib/pack.sh

command -v cargo >/dev/null || die "cargo not found: install Rust (https://rustup.rs) first"
ensure_docker
if [ -z "${MEDFORGE_RUNTIME__GPU_MODE:-}" ] && ! docker info -f '{{json .Runtimes}}' 2>/dev/null | grep -q nvidia; then
  log "warning: this host has no NVIDIA container runtime; sessions start without a GPU (gpu_mode = none)"
  export MEDFORGE_RUNTIME__GPU_MODE=none
fi
log "building the default pack (medforge-pack-default:latest; minutes the first time)"
ensure_base_image
ensure_default_pack
log "building medforge"
cargo build --release -p medforge-server
exec target/release/medforge "$@" serve
