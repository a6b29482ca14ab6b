#!/usr/bin/env bash
# The README's first command, scripts/run.sh, from a state like a fresh
# machine's: no medforge binary, no base image, no pack image, no
# database. It must build what is missing (the base image from Debian's
# packages through debootstrap: no registry), serve, answer /healthz, let
# the first admin it created sign in and start a session, and shut down
# cleanly on SIGTERM.
#
# Fresh, yet harmless to the machine: the images get tags of their own
# (removed afterwards), the data directory is new, and only the release
# binary is deleted (cargo links it again; on a fresh clone it builds all).
# Needs dockerd (scripts/lib/docker.sh); takes minutes (debootstrap, the
# pack's npm install, a release build).
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib/common.sh

work=$(mktemp -d "${TMPDIR:-/tmp}/medforge-run-sh.XXXXXX")
port=$(free_port)
host="medforge.localhost:$port"
base_tag="medforge-base-fresh-check:$$"
pack_tag="medforge-pack-fresh-check:$$"
pid=""

cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  docker ps -aq --filter "ancestor=$pack_tag" | xargs -r docker rm -f >/dev/null 2>&1 || true
  docker rmi "$pack_tag" "$base_tag" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

fail() {
  echo "--- scripts/run.sh output (last 40 lines) ---" >&2
  tail -n 40 "$work/run.log" >&2 || true
  die "run.sh check: $*"
}

docker image inspect "$base_tag" >/dev/null 2>&1 && die "$base_tag exists already"
rm -f target/release/medforge

log "run.sh check: scripts/run.sh with a new data dir, no binary, no base or pack image (minutes)"
# run.sh execs medforge, so $pid is the server once it runs.
# MEDFORGE_PACK_BASE unset, as for a user: the registry's CUDA base if one
# answers, else debootstrap.
env -u MEDFORGE_PACK_BASE MEDFORGE_DATA_DIR="$work/data" MEDFORGE_LISTEN="127.0.0.1:$port" \
  MEDFORGE_PACK__IMAGE="$pack_tag" BASE_IMAGE_TAG="$base_tag" PACK_BUILD_LOG="$work/pack-build.log" \
  scripts/run.sh >"$work/run.log" 2>&1 &
pid=$!

# Up to 40 minutes: a fresh clone builds every crate in release mode.
for _ in $(seq 2400); do
  grep -q "medforge: listening on" "$work/run.log" && break
  kill -0 "$pid" 2>/dev/null || fail "run.sh exited before serving"
  sleep 1
done
grep -q "medforge: listening on" "$work/run.log" || fail "not serving after 40 minutes"
# Either branch, but a whole one: the CUDA base from a registry, or (none
# answered) the Debian base from debootstrap.
pack_base=$(docker image inspect -f '{{ index .Config.Labels "medforge.build_hash" }}' "$pack_tag" 2>/dev/null || true)
[ -n "$pack_base" ] || fail "$pack_tag carries no build hash label"
if grep -q "no registry answers" "$work/run.log"; then
  grep -q "debootstrap bookworm" "$work/run.log" || fail "no registry, yet no debootstrap base was built"
  log "run.sh check: no registry here: the pack was built on a debootstrap base"
else
  docker image inspect "${CUDA_BASE_IMAGE:-nvidia/cuda:12.4.1-runtime-ubuntu22.04}" >/dev/null 2>&1 \
    || fail "neither the CUDA base nor the debootstrap fallback was used"
  log "run.sh check: the pack was built on the registry's CUDA base"
fi
docker image inspect "$pack_tag" >/dev/null || fail "the pack $pack_tag was not built"
[ -x target/release/medforge ] || fail "no release binary"

api() { curl -sS --resolve "$host:127.0.0.1" "$@"; }
health=$(api -w ' %{http_code}' "http://$host/healthz") || fail "/healthz unreachable"
case "$health" in *'"status":"ok"'*' 200') ;; *) fail "/healthz answered: $health" ;; esac
log "run.sh check: /healthz: $health"

grep -q "medforge: the web UI is at http://$host" "$work/run.log" || fail "no URL printed"
grep -q "created the first admin account" "$work/run.log" || fail "no first admin announced"
creds="$work/data/first-admin.txt"
[ "$(stat -c %a "$creds")" = 600 ] || fail "$creds is not mode 600"
email=$(sed -n 's/^email = //p' "$creds")
password=$(sed -n 's/^password = //p' "$creds")
[ -n "$email" ] && [ -n "$password" ] || fail "no credentials in $creds"
# Not a terminal here: the password must stay out of the output.
if grep -qF "$password" "$work/run.log"; then fail "the password was printed to a non-terminal"; fi

jar="$work/cookies"
origin=(-H "Origin: http://$host" -H "Content-Type: application/json")
login=$(api -c "$jar" "${origin[@]}" -w ' %{http_code}' -d "{\"email\":\"$email\",\"password\":\"$password\"}" \
  "http://$host/api/v2/auth/login") || fail "login request failed"
case "$login" in *'"role":"admin"'*' 200') ;; *) fail "the first admin could not sign in: $login" ;; esac
log "run.sh check: $email signed in as admin"

# The short tour: start a session on the pack run.sh built, see it running, stop it.
started=$(api -b "$jar" "${origin[@]}" -d '{}' "http://$host/api/v2/external/sessions") || fail "start failed"
id=$(printf '%s' "$started" | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["session"]["id"])') \
  || fail "no session in: $started"
# Waits up to $2 seconds for session $id to reach status $1 (or a terminal
# one); prints the status it ended at.
await_status() {
  local status=""
  for _ in $(seq "$2"); do
    status=$(api -b "$jar" "http://$host/api/v2/external/sessions/$id" \
      | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["status"])')
    case "$status" in "$1" | error | stopped) break ;; esac
    sleep 1
  done
  printf '%s' "$status"
}
status=$(await_status running 120)
[ "$status" = running ] || fail "session $id is $status, not running"
api -b "$jar" "${origin[@]}" -X POST "http://$host/api/v2/external/sessions/$id/stop" >/dev/null || fail "stop failed"
status=$(await_status stopped 60)
[ "$status" = stopped ] || fail "session $id is $status after stop"
log "run.sh check: a session started on the fresh pack, ran and stopped"

kill -TERM "$pid"
for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
kill -0 "$pid" 2>/dev/null && fail "still running 30 s after SIGTERM"
rc=0
wait "$pid" || rc=$?
pid=""
[ "$rc" = 0 ] || fail "exit status $rc after SIGTERM"
grep -q "shutting down" "$work/run.log" || fail "no graceful shutdown logged"
log "run.sh check: passed (clean exit after SIGTERM)"
