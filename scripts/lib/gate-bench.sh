# The gate benchmark: gate decisions per second and p99 at 64 connections
# with wrk, against the same server answering a trivial route (an unknown
# path: the same middleware, no database), and the server's resident
# memory idle and under load. Source after common.sh, docker.sh and
# medforge-server.sh; prints
# a markdown table on stdout.

gate_bench() {
  local secs=$1 cookie slug pass rss_idle rss_load
  ensure_packages wrk wrk curl curl
  cargo build --release -p medforge-server >&2
  # The forward_auth gate is what is measured: Caddy's mode, where session
  # hosts reach the gate path (the built-in proxy refuses it there).
  MF_ROUTING=caddy start_medforge target/release/medforge gbench "[0]"
  local port=$MF_PORT pid=$MF_PID dir=$MF_DIR
  cookie=$(medforge_cookie signup bench@example.org "bench passphrase")
  slug=$(medforge_running_session "$cookie")
  # The gate decides on the session host's pass (docs/security.md).
  local host="s-$slug.external.medforge.localhost"
  pass=$(medforge_pass "$MF_URL" "$MF_URL" "$host" "$cookie" gate)
  curl -sf -o /dev/null -H "Cookie: $pass" -H "Host: $host" \
    "http://127.0.0.1:$port/api/v2/auth/session-proxy" || die "the gate refused the benchmark session"
  rss_idle=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")

  # wrk's latency lines: "50%  1.23ms" ... "99%  4.56ms".
  run_wrk() { wrk -t2 -c64 -d"${secs}s" --latency "$@" 2>&1; }
  local trivial gate
  trivial=$(run_wrk "http://127.0.0.1:$port/api/v2/bench-trivial-404")
  (sleep $((secs / 2)); awk '/VmRSS/ {print $2}' "/proc/$pid/status" >"$dir/rss") &
  local sampler=$!
  gate=$(run_wrk -H "Cookie: $pass" -H "Host: $host" "http://127.0.0.1:$port/api/v2/auth/session-proxy")
  wait "$sampler"
  rss_load=$(cat "$dir/rss")
  stop_medforge gbench || die "the benchmark server panicked"

  PYTHONPATH=scripts/lib python3 - "$trivial" "$gate" "$rss_idle" "$rss_load" <<'PY'
import sys
from wrk import parse
t, g = parse(sys.argv[1]), parse(sys.argv[2])
idle, load = int(sys.argv[3]) / 1024, int(sys.argv[4]) / 1024
print("| route (wrk, 64 connections, 2 threads) | requests/s | p50 ms | p99 ms | non-2xx |")
print("|---|---|---|---|---|")
print(f"| trivial (unknown path, 404 problem document) | {t[0]:.0f} | {t[1]:.2f} | {t[2]:.2f} | {t[3]} |")
print(f"| gate: GET /api/v2/auth/session-proxy, owner's pass, cached | {g[0]:.0f} | {g[1]:.2f} | {g[2]:.2f} | {g[3]} |")
print()
print(f"Gate throughput ÷ trivial: **{g[0] / t[0]:.2f}** (target ≥ 0.5); gate p99 **{g[2]:.2f} ms** (target < 5 ms).")
print(f"Resident memory: {idle:.1f} MiB idle, {load:.1f} MiB under the gate load.")
PY
}
