# shellcheck shell=bash
# Docker Compose: `docker compose` (v2) when the docker CLI has it, else
# `docker-compose`, installed from Debian (1.29.2) when neither works.
# Source after common.sh; sets COMPOSE to the working command (a string
# to split: `$COMPOSE -f ... config`). infra/compose/docker-compose.yml
# works with both.

_compose_works() {
  # shellcheck disable=SC2086 # $1 is a command line to split
  $1 version >/dev/null 2>&1
}

# Every working Compose command, one a line: `docker compose` first.
compose_commands() {
  local c
  for c in "docker compose" "docker-compose"; do
    if _compose_works "$c"; then echo "$c"; fi
  done
}

ensure_compose() {
  if [ -n "${COMPOSE:-}" ] && _compose_works "$COMPOSE"; then return 0; fi
  COMPOSE=""
  local c
  for c in "docker compose" "docker-compose"; do
    if _compose_works "$c"; then COMPOSE=$c; break; fi
  done
  if [ -z "$COMPOSE" ]; then
    ensure_packages docker-compose docker-compose
    _compose_works docker-compose || die "docker-compose was installed but does not work (docker-compose version)"
    COMPOSE=docker-compose
  fi
  export COMPOSE
}
