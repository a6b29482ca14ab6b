# The routing benchmark: the same test-pack upstream (its files, served by a
# keep-alive file server: ensure_static_pack) reached four ways, with
# the same load generator (wrk, 64 connections) in one run: directly, through
# the built-in proxy (gate included), through Caddy with forward_auth to the
# gate (the production route, infra/caddy/session-route.caddy), and through
# Caddy with no auth at all. Then WebSocket round trips (the test pack's ws
# variant echoes) directly, through the built-in proxy and through Caddy.
# Source after common.sh, docker.sh, caddy.sh and medforge-server.sh; prints
# markdown on stdout.

# The test pack's files served by a keep-alive file server (Caddy's
# file-server, a static binary) instead of busybox httpd: httpd closes
# every connection and listens with a backlog of 9, so at 64 connections
# every path measured busybox (p99 about 1 s of SYN retries), not the proxy
# in front. Prints the image name.
ensure_static_pack() {
  local ctx image=${MEDFORGE_TEST_PACK_IMAGE%:*}:static
  ctx=$(mktemp -d)
  cp "$MEDFORGE_TEST_CADDY" "$ctx/caddy"
  printf 'FROM %s\nCOPY caddy /bin/caddy\nCMD ["/bin/caddy", "file-server", "--listen", ":8080", "--root", "/www"]\n' \
    "$MEDFORGE_TEST_PACK_IMAGE" >"$ctx/Dockerfile"
  docker build -q -t "$image" "$ctx" >/dev/null 2>&1 || die "could not build $image"
  rm -rf "$ctx"
  printf '%s' "$image"
}

# bench_pair IMAGE: a builtin server and a Caddy-mode server (each with one
# running session of IMAGE) and Caddy in front: sets B_* and C_* and CADDY_*.
bench_pair() {
  local image=$1 route
  MF_IMAGE=$image MF_ROUTING=builtin start_medforge target/release/medforge rbench-b "[0]"
  B_PORT=$MF_PORT B_PID=$MF_PID B_DIR=$MF_DIR
  B_COOKIE=$(medforge_cookie signup bench-b@example.org "bench passphrase")
  B_SLUG=$(medforge_running_session "$B_COOKIE")
  B_IP=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "mf-session-$B_SLUG")
  MF_IMAGE=$image MF_ROUTING=caddy MF_GATE_UPSTREAM=address start_medforge target/release/medforge rbench-c "[0]"
  C_PORT=$MF_PORT C_PID=$MF_PID C_DIR=$MF_DIR
  C_COOKIE=$(medforge_cookie signup bench-c@example.org "bench passphrase")
  C_SLUG=$(medforge_running_session "$C_COOKIE")
  CADDY_DIR=$(mktemp -d)
  CADDY_AUTH=$(free_port)
  CADDY_OPEN=$(free_port)
  route=$(pwd)/infra/caddy/session-route.caddy
  cat >"$CADDY_DIR/Caddyfile" <<CADDY
{
	auto_https off
	admin off
}
http://*.external.medforge.localhost:$CADDY_AUTH {
	bind 127.0.0.1
	import $route 127.0.0.1:$C_PORT
}
http://*.external.medforge.localhost:$CADDY_OPEN {
	bind 127.0.0.1
	reverse_proxy $B_IP:8080 {
		flush_interval -1
	}
}
CADDY
  HOME=$CADDY_DIR XDG_DATA_HOME=$CADDY_DIR XDG_CONFIG_HOME=$CADDY_DIR \
    "$MEDFORGE_TEST_CADDY" run --adapter caddyfile --config "$CADDY_DIR/Caddyfile" >"$CADDY_DIR/caddy.log" 2>&1 &
  CADDY_PID=$!
  wait_for "curl -s -o /dev/null http://127.0.0.1:$CADDY_OPEN/" 20 || { cat "$CADDY_DIR/caddy.log"; die "caddy did not start"; }
  # Session hosts take their own pass, not the login (docs/security.md).
  B_PASS=$(medforge_pass "http://127.0.0.1:$B_PORT" "http://127.0.0.1:$B_PORT" \
    "s-$B_SLUG.external.medforge.localhost:$B_PORT" "$B_COOKIE")
  C_PASS=$(medforge_pass "http://127.0.0.1:$C_PORT" "http://127.0.0.1:$CADDY_AUTH" \
    "s-$C_SLUG.external.medforge.localhost:$CADDY_AUTH" "$C_COOKIE")
}

# Stops what bench_pair started.
bench_pair_stop() {
  kill "$CADDY_PID" 2>/dev/null; wait "$CADDY_PID" 2>/dev/null || true
  rm -rf "$CADDY_DIR"
  MF_PID=$B_PID MF_DIR=$B_DIR stop_medforge rbench-b || die "the builtin benchmark server panicked"
  MF_PID=$C_PID MF_DIR=$C_DIR stop_medforge rbench-c || die "the caddy-mode benchmark server panicked"
}

# RATE: the paced load, requests/s (below what every path manages flat out).
RATE=${RATE:-2000}

routing_bench() {
  local secs=$1
  ensure_packages wrk wrk curl curl
  cargo build --release -p medforge-server >&2

  local static
  static=$(ensure_static_pack)
  # Whatever happens, nothing of the benchmark is left running.
  trap 'bench_pair_stop >/dev/null 2>&1 || true' EXIT
  bench_pair "$static"
  local b_host="s-$B_SLUG.external.medforge.localhost" c_host="s-$C_SLUG.external.medforge.localhost"
  # Each path must answer the upstream's /healthz before it is measured.
  curl -sf -o /dev/null "http://$B_IP:8080/healthz" || die "the benchmark container does not answer"
  curl -sf -o /dev/null -H "Host: $b_host:$B_PORT" -H "Cookie: $B_PASS" "http://127.0.0.1:$B_PORT/healthz" \
    || die "the built-in proxy does not answer"
  curl -sf -o /dev/null -H "Host: $b_host:$CADDY_OPEN" "http://127.0.0.1:$CADDY_OPEN/healthz" \
    || die "Caddy (no auth) does not answer"
  curl -sf -o /dev/null -H "Host: $c_host:$CADDY_AUTH" -H "Cookie: $C_PASS" "http://127.0.0.1:$CADDY_AUTH/healthz" \
    || die "Caddy (forward_auth) does not answer"
  # Flat out: 64 connections, each sending its next request on the answer.
  # Paced: the same, with a random pause (mean 64/RATE s) before each
  # request, so that every path carries about RATE requests/s and latencies
  # compare at the same load (flat out, a faster path pushes more requests
  # through the same upstream and meets its tail).
  local paced=$CADDY_DIR/paced.lua
  printf 'local mean_ms = 64 * 1000 / %s\nfunction delay() return math.random() * 2 * mean_ms end\n' "$RATE" >"$paced"
  run_wrk() { wrk -t2 -c64 -d"${secs}s" --latency "$@" 2>&1; }
  local name args results=()
  for name in direct builtin open auth; do
    case $name in
      direct) args=("http://$B_IP:8080/healthz") ;;
      builtin) args=(-H "Host: $b_host:$B_PORT" -H "Cookie: $B_PASS" "http://127.0.0.1:$B_PORT/healthz") ;;
      open) args=(-H "Host: $b_host:$CADDY_OPEN" "http://127.0.0.1:$CADDY_OPEN/healthz") ;;
      auth) args=(-H "Host: $c_host:$CADDY_AUTH" -H "Cookie: $C_PASS" "http://127.0.0.1:$CADDY_AUTH/healthz") ;;
    esac
    results+=("$(run_wrk "${args[@]}")" "$(run_wrk -s "$paced" "${args[@]}")")
  done
  bench_pair_stop

  bench_pair "$MEDFORGE_TEST_WS_PACK_IMAGE"
  local n=2000 ws_direct ws_builtin ws_caddy
  b_host="s-$B_SLUG.external.medforge.localhost" c_host="s-$C_SLUG.external.medforge.localhost"
  ws_direct=$(python3 scripts/lib/ws_rtt.py "$B_IP:8080" "$b_host" "" $n) || die "WebSocket echo (direct) failed"
  ws_builtin=$(python3 scripts/lib/ws_rtt.py "127.0.0.1:$B_PORT" "$b_host:$B_PORT" "$B_PASS" $n) \
    || die "WebSocket echo (built-in proxy) failed"
  ws_caddy=$(python3 scripts/lib/ws_rtt.py "127.0.0.1:$CADDY_AUTH" "$c_host:$CADDY_AUTH" "$C_PASS" $n) \
    || die "WebSocket echo (Caddy) failed"
  bench_pair_stop
  trap - EXIT

  PYTHONPATH=scripts/lib python3 - "$RATE" "$ws_direct" "$ws_builtin" "$ws_caddy" "$n" "${results[@]}" <<'PY'
import sys
from wrk import parse
rate = sys.argv[1]
wd, wb, wc = ([float(x) for x in v.split()] for v in sys.argv[2:5])
n = sys.argv[5]
runs = [parse(t) for t in sys.argv[6:]]
(d, dp), (b, bp), (o, op), (a, ap) = [(runs[i], runs[i + 1]) for i in range(0, 8, 2)]
print(f"| path to the same upstream (wrk, 64 connections, 2 threads) | flat out: requests/s | ÷ direct | p50 ms | p99 ms | paced at {rate}/s: requests/s | p50 ms | p99 ms | non-2xx | socket errors |")
print("|---|---|---|---|---|---|---|---|---|---|")
for name, r, p in [("direct to the container", d, dp), ("built-in proxy, gate included", b, bp),
                   ("Caddy, no auth", o, op), ("Caddy, forward_auth to the gate", a, ap)]:
    print(f"| {name} | {r[0]:.0f} | {r[0] / d[0]:.2f} | {r[1]:.2f} | {r[2]:.2f} | {p[0]:.0f} | {p[1]:.2f} | {p[2]:.2f} | {r[3] + p[3]} | {r[4] + p[4]} |")
print()
print(f"Built-in proxy ÷ Caddy with no auth, flat out: **{b[0] / o[0]:.2f}** in requests/s (target ≥ 1). "
      f"p99 at the same load ({rate}/s): **{bp[2]:.2f} ms** against Caddy's {op[2]:.2f} ms with no auth "
      f"and {ap[2]:.2f} ms with forward_auth (target: no worse); flat out {b[2]:.2f} ms against {o[2]:.2f} ms. "
      f"Caddy with forward_auth ÷ Caddy with no auth, flat out: {a[0] / o[0]:.2f}.")
print()
print(f"| WebSocket round trip, 32 bytes, {n} echoes on one connection | p50 µs | p99 µs | p50 overhead vs direct |")
print("|---|---|---|---|")
for name, r in [("direct to the container", wd), ("built-in proxy", wb), ("Caddy, forward_auth route", wc)]:
    print(f"| {name} | {r[0]:.0f} | {r[1]:.0f} | {(r[0] - wd[0]) / 1000:+.3f} ms |")
print()
print(f"Built-in proxy WebSocket overhead at p50: **{(wb[0] - wd[0]) / 1000:.3f} ms** (target < 1 ms).")
PY
}
