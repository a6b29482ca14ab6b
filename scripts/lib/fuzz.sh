# Fuzzes a live server's API with schemathesis (from PyPI, pinned, in a
# virtualenv under target/) against its own /api/v2/openapi.json: no 5xx,
# no response that breaks the schema, no undocumented status code. Source
# after common.sh and docker.sh; needs target/debug/medforge built.

SCHEMATHESIS_VERSION=4.32.5

ensure_schemathesis() {
  ensure_packages python3 python3 curl curl
  python3 -c "import ensurepip, venv" 2>/dev/null || ensure_packages /nonexistent-venv-marker python3-venv
  local venv=target/schemathesis-venv
  if [ ! -x "$venv/bin/st" ] || [ "$("$venv/bin/st" --version 2>/dev/null | awk '{print $3}')" != "$SCHEMATHESIS_VERSION" ]; then
    log "installing schemathesis $SCHEMATHESIS_VERSION"
    rm -rf "$venv"
    python3 -m venv "$venv" || die "python3 -m venv failed (apt-get install python3-venv)"
    "$venv/bin/pip" install -q "schemathesis==$SCHEMATHESIS_VERSION" || die "pip install schemathesis failed"
  fi
  SCHEMATHESIS="$venv/bin/st"
}

fuzz_api() {
  ensure_schemathesis
  local dir port pid cookie status=0
  dir=$(mktemp -d)
  port=$((20000 + RANDOM % 20000))
  cat >"$dir/medforge.toml" <<TOML
listen = "127.0.0.1:$port"
data_dir = "$dir/data"
[runtime]
gpu_mode = "none"
external_network = "mftest-fuzz-ext"
internal_network = "mftest-fuzz-int"
stop_timeout_secs = 1
labels = { "medforge.test_run" = "fuzz" }
[pack]
image = "$MEDFORGE_TEST_PACK_IMAGE"
[gpus]
ids = [0, 1]
[limits]
auth_per_minute = 1000000
TOML
  echo "fuzzing passphrase" | target/debug/medforge --config "$dir/medforge.toml" user add --email fuzz@example.org --admin \
    || die "could not create the fuzzing admin"
  MEDFORGE_LOG=warn target/debug/medforge --config "$dir/medforge.toml" serve >"$dir/serve.log" 2>&1 &
  pid=$!
  wait_for "curl -sf http://127.0.0.1:$port/healthz" 30 || { cat "$dir/serve.log"; die "the fuzzing server did not start"; }
  cookie=$(curl -si -H 'content-type: application/json' -d '{"email":"fuzz@example.org","password":"fuzzing passphrase"}' \
    "http://127.0.0.1:$port/api/v2/auth/login" | tr -d '\r' | sed -n 's/^[Ss]et-[Cc]ookie: \(medforge_session=[^;]*\).*/\1/p')
  [ -n "$cookie" ] || die "could not log in to the fuzzing server"
  log "schemathesis against http://127.0.0.1:$port/api/v2/openapi.json"
  # Bounded: 25 examples per operation, as an admin so that every route is reached.
  "$SCHEMATHESIS" run "http://127.0.0.1:$port/api/v2/openapi.json" -H "Cookie: $cookie" \
    --checks not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance \
    -n 25 --request-timeout 10 --seed 20261122 || status=$?
  kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
  docker ps -aq --filter label=medforge.test_run=fuzz | xargs -r docker rm -f >/dev/null
  docker network rm mftest-fuzz-ext mftest-fuzz-int >/dev/null 2>&1 || true
  if grep -q "panicked" "$dir/serve.log"; then cat "$dir/serve.log"; status=1; fi
  rm -rf "$dir"
  [ "$status" -eq 0 ] || die "schemathesis found failures (see above)"
}
