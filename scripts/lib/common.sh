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

# Daemons the scripts start are recorded here by PID (/run: gone at a
# reboot, with the daemons), so that a later step or a test restarts only
# one of ours, never one the host runs for itself. Exported for the tests.
export MEDFORGE_TEST_PIDS=${MEDFORGE_TEST_PIDS:-/run/medforge-test}

# record_daemon NAME PID: daemon NAME is ours, running as PID.
record_daemon() {
  mkdir -p "$MEDFORGE_TEST_PIDS"
  echo "$2" >"$MEDFORGE_TEST_PIDS/$1.pid"
}

# our_daemon NAME COMM: prints the PID of daemon NAME when the scripts
# started it and it still runs as COMM (a PID reused since is not ours).
our_daemon() {
  local file=$MEDFORGE_TEST_PIDS/$1.pid pid
  [ -f "$file" ] || return 1
  pid=$(cat "$file")
  [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ] || return 1
  echo "$pid"
}

# stop_our_daemon NAME COMM: stops daemon NAME if it is ours (SIGTERM, then
# SIGKILL after 20 s) and says whether it was.
stop_our_daemon() {
  local pid i
  pid=$(our_daemon "$1" "$2") || return 1
  kill "$pid" 2>/dev/null || true
  for ((i = 0; i < 80; i++)); do [ -d "/proc/$pid" ] || break; sleep 0.25; done
  if [ -d "/proc/$pid" ]; then kill -9 "$pid" 2>/dev/null || true; sleep 0.5; fi
  rm -f "$MEDFORGE_TEST_PIDS/$1.pid"
}

# ensure_venv DIR: a Python virtualenv at DIR for tools from PyPI (pip uses
# the host's pip configuration). A fresh Debian has python3 without pip or
# venv: python3-venv brings both.
ensure_venv() {
  local venv=$1
  ensure_packages python3 python3
  if ! python3 -c "import ensurepip, venv" 2>/dev/null; then
    ensure_packages /nonexistent/python3-venv python3-venv
  fi
  if [ ! -x "$venv/bin/pip" ]; then
    rm -rf "$venv"
    python3 -m venv "$venv" || die "python3 -m venv $venv failed"
  fi
}
