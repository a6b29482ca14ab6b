# The slow-clients benchmark (docs/security.md, "Hostile clients"): the
# release server with the default [http] limits, one running session of
# the test pack, and scripts/lib/slow_clients.py's load: a user's sign-in
# and a request proxied to their session, alone and while 1,000
# connections dribble their headers (with, in a third phase, 200
# wrong-password sign-ins at once). Source after common.sh, docker.sh and
# medforge-server.sh; prints a markdown table on stdout.

slow_clients_bench() {
  local cookie slug pass host
  cargo build --release -p medforge-server >&2
  start_medforge target/release/medforge slowbench "[0]"
  cookie=$(medforge_cookie signup slow-bench@example.org "bench passphrase")
  slug=$(medforge_running_session "$cookie")
  host="s-$slug.external.medforge.localhost"
  pass=$(medforge_pass "$MF_URL" "$MF_URL" "$host:$MF_PORT" "$cookie")
  python3 scripts/lib/slow_clients.py "$MF_PORT" "$host:$MF_PORT" "$pass" slow-bench@example.org "bench passphrase" \
    "$MF_PID" "$("target/release/medforge" --config "$MF_CONFIG" config check 2>/dev/null \
      | sed -n 's/^header_read_timeout = "\([0-9]*\)s"$/\1/p' | head -1)"
  local rc=$?
  stop_medforge slowbench || die "the benchmark server panicked"
  return $rc
}
