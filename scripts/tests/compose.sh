#!/usr/bin/env bash
# Validates the production compose stack (infra/compose/): every Compose
# found (`docker compose` v2, Debian's docker-compose 1.29.2; the latter is
# installed when neither works) must accept docker-compose.yml with
# .env.example, and the rendered result must pass scripts/tests/check_compose.py
# (services, networks, Caddy's fixed addresses and version, the firewall's
# proxy_addrs, mounts, ...). Then the checker is shown to fail: broken
# copies of the compose file and of Dockerfile.caddy must be rejected, each
# for the expected reason. Needs no Docker daemon.
# Usage: bash scripts/tests/compose.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib/common.sh
. scripts/lib/compose.sh

ROOT=$(pwd)
DIR=$ROOT/infra/compose
COMPOSE_FILE=$DIR/docker-compose.yml
ENV_FILE=$DIR/.env.example
CADDY_DOCKERFILE=$DIR/Dockerfile.caddy
CHECKER=$ROOT/scripts/tests/check_compose.py

for f in "$COMPOSE_FILE" "$ENV_FILE" "$CADDY_DOCKERFILE" "$DIR/Dockerfile.medforge" "$CHECKER"; do
  [ -f "$f" ] || die "missing ${f#"$ROOT"/}"
done

ensure_compose

# A python3 with PyYAML (python3-yaml from apt when none has it).
PY=""
for p in python3 /usr/bin/python3; do
  if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import yaml' 2>/dev/null; then PY=$p; break; fi
done
if [ -z "$PY" ]; then
  command -v apt-get >/dev/null 2>&1 || die "need PyYAML for python3 (apt-get install python3-yaml)"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  log "installing python3-yaml"
  $sudo apt-get update -qq || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends python3-yaml >/dev/null \
    || die "apt-get install python3-yaml failed"
  /usr/bin/python3 -c 'import yaml' || die "python3-yaml installed, but /usr/bin/python3 cannot import yaml"
  PY=/usr/bin/python3
fi

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

failures=0
fail() { log "FAIL: $*"; failures=$((failures + 1)); }

# render COMPOSE_CMD FILE OUT: `config` of FILE, relative paths resolved
# from infra/compose/ (so that copies elsewhere render the same).
render() {
  local cmd=$1 file=$2 out=$3
  # shellcheck disable=SC2086 # $cmd is a command line to split
  $cmd -f "$file" --project-directory "$DIR" --env-file "$ENV_FILE" config >"$out" 2>"$out.err"
}

# copy_with SRC DST OLD NEW: DST is SRC with OLD replaced by NEW (OLD must
# occur, else the negative case would prove nothing).
copy_with() {
  "$PY" - "$@" <<'PY'
import sys
src, dst, old, new = sys.argv[1:5]
text = open(src).read()
if old not in text:
    sys.exit(f"copy_with: {old!r} does not occur in {src}")
open(dst, "w").write(text.replace(old, new))
PY
}

mapfile -t commands < <(compose_commands)
[ ${#commands[@]} -gt 0 ] || commands=("$COMPOSE")

for cmd in "${commands[@]}"; do
  # shellcheck disable=SC2086
  version=$($cmd version --short 2>/dev/null || $cmd version 2>/dev/null | head -n 1)
  tag=$(echo "$cmd" | tr ' ' '-')
  if ! render "$cmd" "$COMPOSE_FILE" "$TMP/$tag.yml"; then
    cat "$TMP/$tag.yml.err" >&2
    fail "$cmd ($version) rejects infra/compose/docker-compose.yml"
    continue
  fi
  echo "ok $cmd ($version) accepts docker-compose.yml with .env.example"
  if grep -qi "variable is not set" "$TMP/$tag.yml.err"; then
    cat "$TMP/$tag.yml.err" >&2
    fail "$cmd: a variable the compose file uses is not set by .env.example"
  fi
  if "$PY" "$CHECKER" "$TMP/$tag.yml" "$CADDY_DOCKERFILE" --source "$COMPOSE_FILE" --env "$ENV_FILE" >"$TMP/$tag.out" 2>&1; then
    sed "s/^ok /ok [$cmd] /" "$TMP/$tag.out"
  else
    cat "$TMP/$tag.out" >&2
    fail "$cmd: the rendered compose file fails the checks above"
  fi
done

# Negative cases: NAME, what to break (compose or dockerfile), OLD, NEW, and
# the failure the checker must report.
negative() {
  local name=$1 target=$2 old=$3 new=$4 expect=$5
  local compose=$COMPOSE_FILE dockerfile=$CADDY_DOCKERFILE out=$TMP/neg-$name
  if [ "$target" = compose ]; then
    compose=$TMP/neg-$name-compose.yml
    copy_with "$COMPOSE_FILE" "$compose" "$old" "$new" || { fail "negative case $name: cannot make the broken copy"; return; }
  else
    dockerfile=$TMP/neg-$name-Dockerfile.caddy
    copy_with "$CADDY_DOCKERFILE" "$dockerfile" "$old" "$new" || { fail "negative case $name: cannot make the broken copy"; return; }
  fi
  if ! render "$COMPOSE" "$compose" "$out.yml"; then
    cat "$out.yml.err" >&2
    fail "negative case $name: $COMPOSE rejects the broken copy itself (the checker was not reached)"
    return
  fi
  if "$PY" "$CHECKER" "$out.yml" "$dockerfile" >"$out.txt" 2>&1; then
    fail "negative case $name: the checker accepted it"
  elif ! grep -qF -- "FAIL $expect" "$out.txt"; then
    cat "$out.txt" >&2
    fail "negative case $name: the checker failed, but not with \"FAIL $expect\""
  else
    echo "ok the checker rejects $name ($(grep -c '^FAIL' "$out.txt") failure(s), among them: $expect)"
  fi
}

negative "caddy without its fixed address on the external sessions network" compose \
  "ipv4_address: 172.30.0.2" "" \
  "caddy has a fixed ipv4_address on medforge-external-sessions"
negative "Caddy 2.6.2 in Dockerfile.caddy" dockerfile \
  "2.11.7" "2.6.2" \
  "Dockerfile.caddy FROM caddy:2.6.2 pins Caddy >= 2.11"
negative "an untagged (latest) caddy image in Dockerfile.caddy" dockerfile \
  "FROM caddy:2.11.7
" "FROM caddy
" \
  "Dockerfile.caddy FROM caddy pins Caddy >= 2.11"
negative "caddy's image tagged 2.6.2" compose \
  "image: medforge-caddy:2.11.7" "image: medforge-caddy:2.6.2" \
  "caddy's image is tagged with its version, >= 2.11"
negative "mariadb:latest" compose \
  "image: mariadb:11.4" "image: mariadb:latest" \
  "mariadb's image is pinned to a version"
negative "a published MariaDB port" compose \
  "    restart: unless-stopped
    environment:
      MARIADB_DATABASE" "    restart: unless-stopped
    ports:
      - \"3306:3306\"
    environment:
      MARIADB_DATABASE" \
  "mariadb publishes no port"
negative "proxy_addrs without caddy's internal address" compose \
  '["172.30.0.2","172.31.0.2",' '["172.30.0.2",' \
  "firewall.proxy_addrs holds caddy's fixed addresses"
negative "builtin routing" compose \
  "MEDFORGE_ROUTING: caddy" "MEDFORGE_ROUTING: builtin" \
  "medforge has MEDFORGE_ROUTING=caddy"
# shellcheck disable=SC2016 # the compose file's own ${...}, not the shell's
negative "the data dir at another path inside" compose \
  ':${MEDFORGE_DATA_DIR:-/var/lib/medforge}
' ':/data
' \
  "the data dir /var/lib/medforge is mounted at the same path on the host and in medforge"
negative "no Docker socket in medforge" compose \
  "      # The server starts session containers on the host's engine.
      - /var/run/docker.sock:/var/run/docker.sock" "" \
  "medforge mounts /var/run/docker.sock"
negative "an internal sessions network with egress" compose \
  "    internal: true" "" \
  "medforge-internal-sessions is internal (no egress)"

if [ "$failures" -gt 0 ]; then
  die "$failures failure(s)"
fi
echo "ok infra/compose: all checks passed"
