#!/usr/bin/env bash
# Applies (or checks, or removes) MedForge's session isolation rules on
# this host, with the `medforge` binary and the same config as the server.
# `medforge serve` applies them itself at start and keeps them in place;
# this is for putting them in place before the first start, for checking
# them from a monitoring job, and for taking them out.
#
# Usage: infra/firewall/setup.sh [apply|check|remove] [--config FILE]
#   The backend is `firewall.kind` in the config: "nftables" (a table
#   `inet medforge` of MedForge's own) or "iptables" (chains jumped to from
#   DOCKER-USER and INPUT). Needs root, dockerd running, and nft or
#   iptables installed.
set -euo pipefail

action=${1:-apply}
shift || true
case $action in
  apply | check | remove) ;;
  -h | --help) sed -n 's/^# \{0,1\}//;2,12p' "$0"; exit 0 ;;
  *) echo "setup.sh: unknown action $action (apply, check or remove)" >&2; exit 2 ;;
esac

root=$(cd "$(dirname "$0")/../.." && pwd)
medforge=${MEDFORGE_BIN:-}
if [ -z "$medforge" ]; then
  if command -v medforge >/dev/null; then
    medforge=$(command -v medforge)
  elif [ -x "$root/target/release/medforge" ]; then
    medforge=$root/target/release/medforge
  elif [ -x "$root/target/debug/medforge" ]; then
    medforge=$root/target/debug/medforge
  else
    echo "setup.sh: no medforge binary: build it (cargo build --release -p medforge-server) or set MEDFORGE_BIN" >&2
    exit 1
  fi
fi
exec "$medforge" "$@" firewall "$action"
