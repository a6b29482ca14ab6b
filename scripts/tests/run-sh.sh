#!/usr/bin/env bash
# The README's path, exactly as a newcomer takes it: a fresh clone of this
# repository, `scripts/run.sh` typed at its root with no MEDFORGE_*
# variable, then the README's tour in a real browser
# (medforge-server/tests/readme_tour.rs: sign in as the first admin with
# the password from medforge-data/first-admin.txt, start a session, wait
# for VS Code on its own host, stop it, find the stop snapshot), then
# `target/release/medforge doctor`, then a clean exit on SIGTERM.
#
# What a newcomer lacks, the clone lacks: no medforge-data, no
# medforge.toml, nothing ignored by git (it holds this working tree's
# files, committed or not, so a developer tests what they changed). The
# environment is a login shell's (env -i: PATH, HOME and little more).
# Cached between runs on one machine, because each is rebuilt exactly when
# its inputs change: the clone's cargo target directory (kept in
# target/readme-check/cargo-target) and the base and pack images (their
# build-hash label). On a machine where nothing was built, run.sh builds
# all of it from nothing; scripts/test.sh runs this before it builds the
# pack itself, so that a fresh CI machine takes that path.
#
# Harmless to the machine: it stops only the server it started, and removes
# only the containers that server made, the networks it created and the
# isolation tables it wrote (`firewall.kind = "auto"` picks nftables here).
# Needs cargo, Chromium and ChromeDriver (installed here when missing),
# and root, as run.sh does; takes minutes on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib/common.sh
. scripts/lib/browser.sh

repo=$(pwd)
check=$repo/target/readme-check
clone=$check/medforge
cargo_cache=$check/cargo-target
run_log=$check/run.log
pid=""
networks=(medforge-external-sessions medforge-internal-sessions)

ensure_browser
log "README check: building the tour's browser driver"
cargo test -q -p medforge-server --test readme_tour --no-run

# A fresh clone, with the working tree's changes (CI's tree has none).
mkdir -p "$check"
if [ -d "$clone/target" ]; then rm -rf "$cargo_cache" && mv "$clone/target" "$cargo_cache"; fi
rm -rf "$clone" "$run_log"
git clone -q "$repo" "$clone"
git ls-files -z --deleted | (cd "$clone" && xargs -0 -r rm -f --)
git ls-files -z --modified --others --exclude-standard \
  | tar -C "$repo" --null --ignore-failed-read -T - -cf - 2>/dev/null | tar -C "$clone" -xf -
if [ -d "$cargo_cache" ]; then mv "$cargo_cache" "$clone/target"; fi

# The newcomer's environment: a login shell's, with the toolchain and any
# proxy it needs to reach the package registries.
newcomer=(env -i "PATH=$PATH" "HOME=${HOME:-/root}" "USER=${USER:-root}" "LANG=${LANG:-C.UTF-8}")
for var in CARGO_HOME RUSTUP_HOME TMPDIR http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY; do
  if [ -n "${!var:-}" ]; then newcomer+=("$var=${!var}"); fi
done
# The README's address is port 8080 (and the metrics' 9464). Only when
# something else holds one of them here (a developer's own server, say)
# does the check move it, with MEDFORGE_LISTEN or MEDFORGE_METRICS_LISTEN:
# the only variables it may set, and only for that reason.
port_free() { python3 -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', $1))" 2>/dev/null; }
port=8080
if ! port_free 8080; then
  port=$(free_port)
  log "README check: port 8080 is taken on this machine: the server listens on $port instead (MEDFORGE_LISTEN)"
  newcomer+=("MEDFORGE_LISTEN=127.0.0.1:$port")
fi
if ! port_free 9464; then
  log "README check: port 9464 is taken on this machine: the metrics listen elsewhere (MEDFORGE_METRICS_LISTEN)"
  newcomer+=("MEDFORGE_METRICS_LISTEN=127.0.0.1:0")
fi
ui="http://medforge.localhost:$port"

docker_up() { docker info >/dev/null 2>&1; }
# The networks on the engine before the server started, so that only those
# it made go. (When dockerd is not up yet, run.sh starts it: the look is
# taken then, minutes before the server serves.) Its containers are told
# apart by the deployment id they carry, which the server logs.
engine_seen=""
networks_before=""
look_at_the_engine() {
  if [ -z "$engine_seen" ] && docker_up; then
    networks_before=$(docker network ls --format '{{.Name}}' | sort)
    engine_seen=1
  fi
}
look_at_the_engine
# MedForge's nftables tables before the server started: it leaves its rules
# in place when it stops (the sessions stay isolated); only those it wrote go.
tables_before=$(nft list tables 2>/dev/null || true)

cleanup() {
  local net deployment
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  if [ -n "$engine_seen" ] && docker_up; then
    deployment=$(grep -o 'medforge\.deployment=[0-9a-f-]\{36\}' "$run_log" 2>/dev/null | head -n 1 || true)
    if [ -n "$deployment" ]; then
      docker ps -aq --filter "label=$deployment" | xargs -r docker rm -f >/dev/null 2>&1 || true
    fi
    for net in "${networks[@]}"; do
      printf '%s\n' "$networks_before" | grep -qx "$net" || docker network rm "$net" >/dev/null 2>&1 || true
    done
  fi
  for family in inet bridge; do
    if ! printf '%s\n' "$tables_before" | grep -qx "table $family medforge"; then
      nft delete table "$family" medforge >/dev/null 2>&1 || true
    fi
  done
  # The cargo target stays for the next run; the clone stays for a look
  # at what failed (its run.log, its medforge-data) until then.
  if [ -d "$clone/target" ]; then rm -rf "$cargo_cache" && mv "$clone/target" "$cargo_cache"; fi
}
trap cleanup EXIT

fail() {
  echo "--- scripts/run.sh output (last 40 lines; all of it in $run_log) ---" >&2
  tail -n 40 "$run_log" >&2 || true
  die "README check: $*"
}

log "README check: \`scripts/run.sh\` in a fresh clone ($clone), no MEDFORGE_* variable (minutes on a fresh machine)"
# run.sh execs medforge, so $pid is the server once it runs.
(cd "$clone" && exec "${newcomer[@]}" scripts/run.sh) >"$run_log" 2>&1 &
pid=$!

# Up to 40 minutes: on a fresh machine run.sh installs dockerd, makes the
# base image, builds the pack and every crate in release mode.
for _ in $(seq 2400); do
  grep -q "medforge: listening on" "$run_log" && break
  look_at_the_engine
  kill -0 "$pid" 2>/dev/null || fail "run.sh exited before serving"
  sleep 1
done
grep -q "medforge: listening on" "$run_log" || fail "not serving after 40 minutes"
base=$(sed -n "s/^\[run.sh\] the pack's base: //p" "$run_log" | tail -n 1)
[ -n "$base" ] || fail "run.sh did not say which base the pack is built on"
if grep -q "no registry answers" "$run_log"; then
  [ "$base" = medforge-base:bookworm ] || fail "no registry, yet the pack's base is $base"
fi
log "README check: serving; the pack's base is $base"

api() { curl -sS --resolve "medforge.localhost:$port:127.0.0.1" "$@"; }
health=$(api -w ' %{http_code}' "$ui/healthz") || fail "/healthz unreachable"
case "$health" in *'"status":"ok"'*' 200') ;; *) fail "/healthz answered: $health" ;; esac
grep -q "medforge: the web UI is at $ui" "$run_log" || fail "no URL printed"
grep -q "created the first admin account" "$run_log" || fail "no first admin announced"
creds="$clone/medforge-data/first-admin.txt"
[ -f "$creds" ] || fail "no $creds, where the README says the password is"
[ "$(stat -c %a "$creds")" = 600 ] || fail "$creds is not mode 600"
password=$(sed -n 's/^password = //p' "$creds")
[ -n "$password" ] || fail "no password in $creds"
# Not a terminal here: the password must stay out of the output.
if grep -qF "$password" "$run_log"; then fail "the password was printed to a non-terminal"; fi

log "README check: the README's tour in Chromium"
MEDFORGE_TEST_CHROMEDRIVER=$MEDFORGE_TEST_CHROMEDRIVER \
  cargo test -q -p medforge-server --test readme_tour -- "$ui" "$creds" "$clone/README.md" \
  || fail "the README's tour failed in the browser (screenshots in target/screenshots/readme-*.png)"

log "README check: target/release/medforge doctor, from the clone's root"
doctor_rc=0
doctor=$(cd "$clone" && "${newcomer[@]}" target/release/medforge doctor 2>&1) || doctor_rc=$?
printf '%s\n' "$doctor" | sed 's/^/  /' >&2
[ "$doctor_rc" = 0 ] || fail "doctor exited $doctor_rc on the README's set-up"
if printf '%s\n' "$doctor" | grep -q '^FAIL'; then fail "doctor failed a check on the README's set-up"; fi

kill -TERM "$pid"
for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
kill -0 "$pid" 2>/dev/null && fail "still running 30 s after SIGTERM"
rc=0
wait "$pid" || rc=$?
pid=""
[ "$rc" = 0 ] || fail "exit status $rc after SIGTERM"
grep -q "shutting down" "$run_log" || fail "no graceful shutdown logged"
log "README check: passed (clone, run.sh, the tour in a browser, doctor, clean exit after SIGTERM)"
