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

fuzz_api() {
  ensure_schemathesis
  local cookie status=0
  start_medforge target/debug/medforge fuzz "[0, 1]"
  echo "fuzzing passphrase" | target/debug/medforge --config "$MF_CONFIG" user add --email fuzz@example.org --admin \
    || die "could not create the fuzzing admin"
  cookie=$(medforge_cookie login fuzz@example.org "fuzzing passphrase")
  log "schemathesis against $MF_URL/api/v2/openapi.json"
  # Bounded: 25 examples per operation, as an admin so that every route is reached.
  "$SCHEMATHESIS" run "$MF_URL/api/v2/openapi.json" -H "Cookie: $cookie" \
    --checks not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance \
    -n 25 --request-timeout 10 --seed 20261122 || status=$?
  stop_medforge fuzz || status=1
  [ "$status" -eq 0 ] || die "schemathesis found failures (see above)"
}
