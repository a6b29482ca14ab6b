# A throw-away `medforge serve` for the scripts that need a live server
# (fuzzing, the gate benchmark): its own data directory, port, networks
# and container label. Source after common.sh and docker.sh.

# start_medforge BINARY RUN GPU_IDS: sets MF_DIR, MF_CONFIG, MF_PORT, MF_PID, MF_URL.
# MF_ROUTING (default builtin) sets `routing`, MF_GATE_UPSTREAM (default
# name) `gate_upstream`, MF_IMAGE (default the test pack) the pack image,
# MF_FAILED_LOGINS_PER_ACCOUNT (default 10, the product's) the lock-out
# after failed sign-ins.
start_medforge() {
  local binary=$1 run=$2 gpus=$3
  MF_DIR=$(mktemp -d)
  MF_CONFIG=$MF_DIR/medforge.toml
  MF_PORT=$(free_port)
  MF_URL=http://127.0.0.1:$MF_PORT
  cat >"$MF_CONFIG" <<TOML
listen = "127.0.0.1:$MF_PORT"
metrics_listen = "127.0.0.1:0"
routing = "${MF_ROUTING:-builtin}"
gate_upstream = "${MF_GATE_UPSTREAM:-name}"
data_dir = "$MF_DIR/data"
[runtime]
gpu_mode = "none"
external_network = "mftest-$run-ext"
internal_network = "mftest-$run-int"
stop_timeout = "1s"
labels = { "medforge.test_run" = "$run" }
[pack]
image = "${MF_IMAGE:-$MEDFORGE_TEST_PACK_IMAGE}"
[gpus]
ids = $gpus
[limits]
auth_per_minute = 1000000
failed_logins_per_account = ${MF_FAILED_LOGINS_PER_ACCOUNT:-10}
# The scripts make their users by signing up.
[auth]
signup = "open"
# Not what they measure ("auto" would write this host's ruleset, and the
# host's own path to a session passes no isolation rule anyway).
[firewall]
kind = "none"
TOML
  MEDFORGE_LOG=warn "$binary" --config "$MF_CONFIG" serve >"$MF_DIR/serve.log" 2>&1 &
  MF_PID=$!
  wait_for "curl -sf $MF_URL/healthz" 30 || { cat "$MF_DIR/serve.log"; die "medforge ($run) did not start"; }
}

# medforge_cookie ROUTE EMAIL PASSWORD: signs up or logs in (ROUTE is
# signup or login) and prints the Cookie header value.
medforge_cookie() {
  local cookie
  cookie=$(curl -si -H 'content-type: application/json' -d "{\"email\":\"$2\",\"password\":\"$3\"}" \
    "$MF_URL/api/v2/auth/$1" | tr -d '\r' | sed -n 's/^[Ss]et-[Cc]ookie: \(medforge_session=[^;]*\).*/\1/p')
  [ -n "$cookie" ] || die "could not $1 as $2"
  printf '%s' "$cookie"
}

# medforge_pass UI FRONT HOST COOKIE [gate]: the pass of the session host
# HOST (host:port) for COOKIE's login, by the handshake of
# docs/security.md, as a Cookie header value. FRONT (http://127.0.0.1:<port>)
# answers for the session host (the built-in proxy, or Caddy); with `gate`,
# FRONT is a Caddy-mode server asked as forward_auth asks it. UI is the
# MedForge server whose UI makes the code.
medforge_pass() {
  local ui=$1 front=$2 host=$3 cookie=$4 gate=${5:-} to_ui back pass
  _mf_ask() { # PATH: the session host's answer to a GET of PATH, headers included
    if [ -n "$gate" ]; then
      curl -si -H "Host: $host" -H "X-Forwarded-Method: GET" -H "X-Forwarded-Uri: $1" "$front/api/v2/auth/session-proxy"
    else
      curl -si -H "Host: $host" "$front$1"
    fi
  }
  _mf_location() { tr -d '\r' | sed -n 's/^[Ll]ocation: //p'; }
  to_ui=$(_mf_ask / | _mf_location)
  [ -n "$to_ui" ] || die "$host sent no way in"
  local rest=${to_ui#*://}
  back=$(curl -si -H "Host: ${rest%%/*}" -H "Cookie: $cookie" "$ui/${rest#*/}" | _mf_location)
  [ -n "$back" ] || die "the UI gave no code for $host"
  rest=${back#*://}
  pass=$(_mf_ask "/${rest#*/}" | tr -d '\r' | sed -n 's/^[Ss]et-[Cc]ookie: \(medforge_pass=[^;]*\).*/\1/p')
  [ -n "$pass" ] || die "$host gave no pass"
  printf '%s' "$pass"
}

# medforge_running_session COOKIE: starts an external session for the
# cookie's user on the last started server, waits until it runs, prints its slug.
medforge_running_session() {
  local cookie=$1 sid i state=""
  sid=$(curl -sf -X POST -H 'content-type: application/json' -H "Cookie: $cookie" "$MF_URL/api/v2/external/sessions" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["session"]["id"])') \
    || die "could not start a session"
  for i in $(seq 1 120); do
    state=$(curl -sf -H "Cookie: $cookie" "$MF_URL/api/v2/external/sessions/$sid" \
      | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["status"])' 2>/dev/null || true)
    [ "$state" = running ] && break
    sleep 0.5
  done
  [ "$state" = running ] || die "the session did not start ($state)"
  curl -sf -H "Cookie: $cookie" "$MF_URL/api/v2/external/sessions/$sid" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["slug"])'
}

# stop_medforge RUN: stops the server and removes its containers, networks and data.
# Fails when the server had panicked.
stop_medforge() {
  local run=$1 panicked=0
  kill "$MF_PID" 2>/dev/null; wait "$MF_PID" 2>/dev/null
  docker ps -aq --filter "label=medforge.test_run=$run" | xargs -r docker rm -f >/dev/null
  docker network rm "mftest-$run-ext" "mftest-$run-int" >/dev/null 2>&1 || true
  if grep -q "panicked" "$MF_DIR/serve.log"; then cat "$MF_DIR/serve.log"; panicked=1; fi
  rm -rf "$MF_DIR"
  [ "$panicked" -eq 0 ]
}
