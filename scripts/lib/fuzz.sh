# Fuzzes a live server's API with schemathesis (from PyPI, pinned, in a
# virtualenv under target/) against its own /api/v2/openapi.json: no 5xx,
# no response that breaks the schema, no undocumented status code. Source
# after common.sh, docker.sh and medforge-server.sh; needs target/debug/medforge built.

SCHEMATHESIS_VERSION=4.32.5

ensure_schemathesis() {
  ensure_packages curl curl
  local venv=target/schemathesis-venv
  if [ ! -x "$venv/bin/st" ] || [ "$("$venv/bin/st" --version 2>/dev/null | awk '{print $3}')" != "$SCHEMATHESIS_VERSION" ]; then
    log "installing schemathesis $SCHEMATHESIS_VERSION"
    rm -rf "$venv"
    ensure_venv "$venv"
    "$venv/bin/pip" install -q "schemathesis==$SCHEMATHESIS_VERSION" || die "pip install schemathesis failed"
  fi
  SCHEMATHESIS="$venv/bin/st"
}

# The warnings that mean schemathesis did not reach what it fuzzed: an
# operation that saw only 401/403 answers tested nothing but the login
# check. Its config makes `missing_auth` fail the run; the output is
# searched as well, for any wording of the same.
FUZZ_AUTH_WARNING='missing authentication|authentication failed|only 401/403|returned authentication errors'

# fuzz_run LOG ARGS...: one schemathesis run, its output also in LOG.
fuzz_run() {
  local log=$1 status=0
  shift
  printf '[warnings]\nfail-on = ["missing_auth"]\n' >target/schemathesis.toml
  "$SCHEMATHESIS" --config-file target/schemathesis.toml run "$MF_URL/api/v2/openapi.json" \
    --checks not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance \
    -n 25 --request-timeout 10 --seed 20261122 "$@" 2>&1 | tee "$log" || status=$?
  if grep -Eiq "$FUZZ_AUTH_WARNING" "$log"; then
    log "schemathesis reached operations only as far as the login check (above): its login must last the run"
    status=1
  fi
  return "$status"
}

fuzz_api() {
  ensure_schemathesis
  local cookie logout_cookie status=0
  # The fuzzer tries wrong passwords for its own account too: no lock-out
  # may end its login half-way.
  MF_FAILED_LOGINS_PER_ACCOUNT=1000000 start_medforge target/debug/medforge fuzz "[0, 1]"
  echo "fuzzing passphrase" | target/debug/medforge --config "$MF_CONFIG" user add --email fuzz@example.org --admin \
    || die "could not create the fuzzing admin"
  cookie=$(medforge_cookie login fuzz@example.org "fuzzing passphrase")
  log "schemathesis against $MF_URL/api/v2/openapi.json"
  # Bounded: 25 examples per operation, as an admin so that every route is
  # reached. Logout would end that login part-way (and every operation
  # after it would see only 401s), so it is fuzzed apart, with a login of
  # its own.
  fuzz_run target/schemathesis.log -H "Cookie: $cookie" --exclude-path /api/v2/auth/logout || status=$?
  logout_cookie=$(medforge_cookie login fuzz@example.org "fuzzing passphrase")
  fuzz_run target/schemathesis-logout.log -H "Cookie: $logout_cookie" --include-path /api/v2/auth/logout \
    || status=1
  stop_medforge fuzz || status=1
  [ "$status" -eq 0 ] || die "schemathesis found failures (see above)"
}
