#!/usr/bin/env bash
# Runs MedForge's benchmarks and writes their figures into BENCHMARKS.md,
# each section with the command that produced it. Starts MariaDB when
# missing, like the tests. Usage: scripts/bench.sh [--secs S] [--clients N] [--starts N] [--only SECTION]
# (sections: allocation, session-start, session-start-podman, gate, routing, slow-clients)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/common.sh
. scripts/lib/mariadb.sh
. scripts/lib/docker.sh
. scripts/lib/caddy.sh
. scripts/lib/podman.sh
. scripts/lib/medforge-server.sh

secs=10
clients=32
starts=20
only=""
while [ $# -gt 0 ]; do
  case $1 in
    --secs) secs=$2; shift 2 ;;
    --clients) clients=$2; shift 2 ;;
    --starts) starts=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    *) die "unknown argument $1 (usage: scripts/bench.sh [--secs S] [--clients N] [--starts N] [--only SECTION])" ;;
  esac
done

ensure_mariadb
ensure_docker
ensure_test_pack
ensure_caddy
clean_docker_test_leftovers
ensure_podman
ensure_podman_test_pack
clean_podman_test_leftovers

cpu=$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ //' || echo unknown)
# Whether section $1 runs this time.
want() { [ -z "$only" ] || [ "$only" = "$1" ]; }

# Replaces the part of BENCHMARKS.md between <!-- NAME:begin --> and
# <!-- NAME:end --> (appending it when absent) with stdin.
write_section() {
  local name=$1 body
  body=$(cat)
  [ -f BENCHMARKS.md ] || printf '# Benchmarks\n\nEvery figure here was written by `scripts/bench.sh`; rerun it to refresh them.\nThese machines are noisy: read the ratios against the baseline measured in the same run, not the absolute numbers.\n' >BENCHMARKS.md
  python3 - "$name" "$body" <<'PY'
import sys, re
name, body = sys.argv[1], sys.argv[2]
text = open("BENCHMARKS.md").read()
begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
block = f"{begin}\n{body}\n{end}"
if begin in text and end in text:
    text = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: block, text, flags=re.S)
else:
    text = text.rstrip("\n") + "\n\n" + block + "\n"
open("BENCHMARKS.md", "w").write(text)
PY
}

if want allocation; then
cmd="cargo bench -p medforge-core --features testing --bench allocation -- --clients $clients --secs $secs"
log "$cmd"
table=$($cmd)
write_section allocation <<EOF
## GPU allocation: allocate+release cycles and allocation latency

$clients concurrent clients, each its own user (limit 1), sharing 7 GPUs, for $secs s per measurement.
A cycle is one allocation transaction plus the three status updates that release the session
(\`running\`, \`stopping\`, \`stopped\`); refusals ("No GPUs available") run the same transaction
and count in the latency percentiles. The baseline is a single-row \`UPDATE\` through the same
\`Store\` API by the same clients, measured in the same run.

Command: \`scripts/bench.sh --clients $clients --secs $secs\`, which runs \`$cmd\`
with MariaDB $(mariadb -N -e 'SELECT VERSION()' 2>/dev/null || echo '?') on 127.0.0.1 and SQLite on a WAL file.
Run on $(date -u +%Y-%m-%d), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(nproc) cores ($cpu).

$table
EOF

fi

if want session-start; then
cmd="cargo bench -p medforge-runtime-docker --bench session_start -- --starts $starts"
log "$cmd"
table=$($cmd)
write_section session-start <<EOF
## Session start: create until the port answers, against docker run

$starts starts of each, interleaved in one run, after one untimed warm-up of each, on the test pack
(busybox httpd, FROM scratch) with \`gpu_mode = "none"\`, on dockerd $(docker version -f '{{.Server.Version}}' 2>/dev/null || echo '?').
- docker run: \`docker run -d\` on the sessions network, \`docker inspect\` for its address, then HTTP polling
  until the port answers (the CLI way a person would script it; two CLI processes included).
- engine API: the same runtime's create, start and inspect through the Engine API, then the same polling.
- medforge: \`Sessions::create\`: allocation transaction, workspace (DirStorage), two row updates,
  container create and start, polling, the \`running\` transition.

Command: \`scripts/bench.sh --starts $starts\`, which runs \`$cmd\`.
Run on $(date -u +%Y-%m-%d), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(nproc) cores ($cpu).

$table
EOF

fi

if want session-start-podman; then
cmd="cargo bench -p medforge-runtime-podman --bench session_start -- --starts $starts"
log "$cmd"
table=$($cmd)
write_section session-start-podman <<EOF
## Session start on Podman: create until the port answers, against podman run

The same measurement as the section above (20 interleaved starts after a warm-up, the test pack,
\`gpu_mode = "none"\`), on Podman $(podman version -f '{{.Server.Version}}' 2>/dev/null || echo '?') through
its libpod API (\`medforge-runtime-podman\`), rootful, with the test pack loaded from dockerd. The CLI
baseline is \`podman run -d\` with the same \`nofile\`/\`nproc\` limits the sessions get.

Command: \`scripts/bench.sh --starts $starts\`, which runs \`$cmd\`.
Run on $(date -u +%Y-%m-%d), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(nproc) cores ($cpu).

$table
EOF
fi

if want gate; then
. scripts/lib/gate-bench.sh
log "gate benchmark"
table=$(gate_bench "$secs")
write_section gate <<EOF
## The session gate under load

Measured with wrk (\`wrk -t2 -c64 -d${secs}s --latency\`) against the release binary on loopback, SQLite, one
running session of the test pack; the gate calls carry the owner's pass for the session host and its Host, so after the
first they are answered from the gate cache. The baseline is the same server answering an unknown path (the same
middleware, a 404 problem document, no database), in the same run. Both wrk and the server share this
machine's $(nproc) cores, so absolute figures are low; read the ratio.

Command: \`scripts/bench.sh --secs $secs\` (section "gate", from \`scripts/lib/gate-bench.sh\`).
Run on $(date -u +%Y-%m-%d), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?').

$table
EOF
fi

if want routing; then
. scripts/lib/routing-bench.sh
log "routing benchmark"
table=$(routing_bench "$secs")
write_section routing <<EOF
## Routing: the built-in proxy against Caddy, on the same upstream

One run, one load generator (wrk, \`wrk -t2 -c64 -d${secs}s --latency\`), one upstream: the test pack's files
served by a keep-alive file server (Caddy's \`file-server\` in the test-pack image: busybox httpd closes every
connection and listens with a backlog of 9, so every path would measure busybox's SYN retries, not the proxy).
Four paths to \`/healthz\` of a running session: directly to the container; through \`medforge serve\`'s built-in
proxy (the owner's pass for the host, the gate decided on every request, from its cache); through Caddy $CADDY_VERSION running
\`infra/caddy/session-route.caddy\` with \`forward_auth\` to a second \`medforge serve\` in \`routing = "caddy"\`
mode; and through Caddy with a bare \`reverse_proxy\` to the container (no auth at all). "Flat out": each
connection sends its next request when the last is answered. "Paced": the same with a random pause before each
request, so that every path carries the same ${RATE} requests/s and latencies compare at equal load.
WebSockets: the test pack's echo variant, one upgraded connection, 32-byte messages, after 100 warm-up echoes.
Release build, SQLite; wrk, both proxies and the upstream share this machine's $(nproc) cores.

Command: \`scripts/bench.sh --secs $secs\` (section "routing", from \`scripts/lib/routing-bench.sh\`).
Run on $(date -u +%Y-%m-%d), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?').

$table
EOF
fi
if want slow-clients; then
. scripts/lib/slow-clients-bench.sh
log "slow-clients benchmark"
table=$(slow_clients_bench)
write_section slow-clients <<EOF
## Hostile clients: slow headers and a burst of bad sign-ins

The release server with the default \`[http]\` limits (header timeout, idle timeout, 512 connections per client
network), SQLite, one running session of the test pack. A user (from 127.0.0.1) signs in 10 times and fetches
\`/healthz\` of their session through the built-in proxy 40 times, one request at a time: alone (the baseline,
in the same run), then while 1,000 connections (from 127.0.0.2 and 127.0.0.3, two other client networks)
send \`GET / HTTP/1.1\` and then one header byte a second, never finishing, each connecting again when the
server closes it; then the same with 200 wrong-password sign-ins running at once (from 127.0.0.4). Each phase
lasts at least two header timeouts. Load generator: \`scripts/lib/slow_clients.py\` (Python asyncio), on the
same $(nproc) cores as the server.

Command: \`scripts/bench.sh --only slow-clients\` (from \`scripts/lib/slow-clients-bench.sh\`).
Run on $(date -u +%Y-%m-%d), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?').

$table
EOF
fi
log "wrote BENCHMARKS.md"
