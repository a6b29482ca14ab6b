# Shared helpers for the scripts in scripts/. Source, don't run.
# Every helper is idempotent: it installs or starts only what is missing.

log() { printf '[%s] %s\n' "$(basename "$0")" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Debian/Ubuntu packages, installed only when a command is missing.
# Usage: ensure_packages CMD PACKAGE [CMD PACKAGE ...]
_apt_updated=""
ensure_packages() {
  local missing=()
  while [ $# -ge 2 ]; do
    command -v "$1" >/dev/null 2>&1 || [ -x "$1" ] || missing+=("$2")
    shift 2
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null 2>&1 || die "need ${missing[*]} but apt-get is not available: install them by hand"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  if [ -z "$_apt_updated" ]; then
    log "apt-get update"
    $sudo apt-get update -qq || die "apt-get update failed"
    _apt_updated=1
  fi
  log "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || die "apt-get install ${missing[*]} failed"
}

# Waits up to $2 seconds for the command $1 (a string) to succeed.
wait_for() {
  local what=$1 secs=$2 i
  for ((i = 0; i < secs * 4; i++)); do
    if eval "$what" >/dev/null 2>&1; then return 0; fi
    sleep 0.25
  done
  return 1
}

# A TCP port on 127.0.0.1 that nothing listens on now.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
