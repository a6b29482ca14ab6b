# Docker Engine for the tests: installed and started when missing (no
# systemd here: dockerd runs in the background), and the small test pack
# image built locally (never pulled). Source after common.sh.

TEST_PACK_IMAGE=${TEST_PACK_IMAGE:-medforge-test-pack:latest}

ensure_docker() {
  ensure_packages /usr/sbin/dockerd docker.io docker docker.io /bin/busybox busybox-static ip iproute2
  if ! docker info >/dev/null 2>&1; then
    log "starting dockerd"
    start_dockerd
  fi
}

# Starts dockerd in the background (setsid: a daemon in the caller's
# process group dies with it) and records it as ours.
start_dockerd() {
  setsid nohup /usr/sbin/dockerd >>/var/log/medforge-dockerd.log 2>&1 </dev/null &
  wait_for "docker info" 60 || die "dockerd did not start; see /var/log/medforge-dockerd.log"
  record_daemon dockerd "$(cat /var/run/docker.pid)"
}

# The test pack: busybox's httpd serving /healthz on :8080 as uid 1000, in
# a FROM-scratch image. It stands in for code-server wherever the test is
# about the container, not the IDE. Rebuilt only when its inputs change.
ensure_test_pack() {
  local ctx hash
  ctx=$(mktemp -d)
  cp /bin/busybox "$ctx/busybox"
  mkdir -p "$ctx/www"
  echo '{"status":"alive"}' >"$ctx/www/healthz"
  echo 'medforge test pack' >"$ctx/www/index.html"
  # A CGI that counts the bytes it is sent, for streamed uploads. It reads
  # the whole body before it answers, as upload handlers do (an answer
  # that starts before the upload ends makes Caddy drop the connection).
  mkdir -p "$ctx/www/cgi-bin"
  cat >"$ctx/www/cgi-bin/count" <<'CGI'
#!/bin/sh
n=$(wc -c)
printf 'Content-Type: text/plain\r\n\r\n%s\n' "$n"
CGI
  chmod 755 "$ctx/www/cgi-bin/count"
  # A CGI that answers with its session's slug and logs a request for any
  # other session's host ("foreign-host:" on stderr, in `docker logs`): the
  # routing load test counts those, and the gate paths httpd logs (-vv).
  cat >"$ctx/www/cgi-bin/hit" <<'CGI'
#!/bin/sh
case "$HTTP_HOST" in
  "s-$MEDFORGE_SESSION_SLUG".*) ;;
  *) echo "foreign-host:$HTTP_HOST" >&2 ;;
esac
printf 'Content-Type: text/plain\r\n\r\n%s\n' "$MEDFORGE_SESSION_SLUG"
CGI
  chmod 755 "$ctx/www/cgi-bin/hit"
  cat >"$ctx/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
COPY www /www
USER 1000:1000
EXPOSE 8080
# -vv: every request's path goes to the log (`url:/...`), so tests can
# count what reached the container.
CMD ["/bin/httpd", "-f", "-vv", "-p", "8080", "-h", "/www"]
DOCKERFILE
  hash=$(cd "$ctx" && find . -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)
  if [ "$(docker image inspect -f '{{ index .Config.Labels "medforge.build_hash" }}' "$TEST_PACK_IMAGE" 2>/dev/null)" != "$hash" ]; then
    log "building $TEST_PACK_IMAGE"
    docker build -q --label "medforge.build_hash=$hash" -t "$TEST_PACK_IMAGE" "$ctx" >/dev/null \
      || die "could not build $TEST_PACK_IMAGE"
  fi
  # A variant that never answers on its port, for start-up timeouts and for
  # interrupting a create half-way.
  printf 'FROM %s\nCMD ["/bin/sleep", "3600"]\n' "$TEST_PACK_IMAGE" >"$ctx/Dockerfile.silent"
  docker build -q -f "$ctx/Dockerfile.silent" -t "${TEST_PACK_IMAGE%:*}:silent" "$ctx" >/dev/null \
    || die "could not build ${TEST_PACK_IMAGE%:*}:silent"
  # A variant whose port 8080 answers an upgrade with 101 and then echoes
  # every byte: the session proxy's tunnels are tested against it.
  cat >"$ctx/serve.sh" <<'SH'
#!/bin/sh
# One connection on stdin/stdout: an upgrade gets 101 and an echo of every
# byte after it; anything else a small HTTP answer.
upgrade=""
while IFS= read -r line; do
  line=$(printf '%s' "$line" | tr -d '\r')
  [ -z "$line" ] && break
  case $(printf '%s' "$line" | tr 'A-Z' 'a-z') in
    upgrade:*) upgrade=1 ;;
  esac
done
if [ -n "$upgrade" ]; then
  printf 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n'
  exec cat
fi
printf 'HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 8\r\n\r\nws pack\n'
SH
  chmod 755 "$ctx/serve.sh"
  printf 'FROM %s\nCOPY serve.sh /serve.sh\nCMD ["/bin/nc", "-ll", "-p", "8080", "-e", "/serve.sh"]\n' "$TEST_PACK_IMAGE" \
    >"$ctx/Dockerfile.ws"
  docker build -q -f "$ctx/Dockerfile.ws" -t "${TEST_PACK_IMAGE%:*}:ws" "$ctx" >/dev/null \
    || die "could not build ${TEST_PACK_IMAGE%:*}:ws"
  rm -rf "$ctx"
  export MEDFORGE_TEST_PACK_IMAGE=$TEST_PACK_IMAGE
  export MEDFORGE_TEST_WS_PACK_IMAGE=${TEST_PACK_IMAGE%:*}:ws
  export MEDFORGE_TEST_SILENT_PACK_IMAGE=${TEST_PACK_IMAGE%:*}:silent
}

# Containers and networks left by earlier test runs (a failed case keeps
# its state for inspection).
clean_docker_test_leftovers() {
  local ids nets
  ids=$(docker ps -aq --filter label=medforge.test_run)
  [ -z "$ids" ] || docker rm -f $ids >/dev/null
  nets=$(docker network ls -q --filter name=mftest-)
  [ -z "$nets" ] || docker network rm $nets >/dev/null || true
}
