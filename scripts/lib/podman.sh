# Podman for the tests: Debian's podman (4.3), its API service started in
# the background on the rootful socket, and the test pack images copied in
# from dockerd (`docker save | podman load`: nothing is ever pulled).
# Source after common.sh and docker.sh (ensure_test_pack first); exports
# MEDFORGE_TEST_PODMAN_SOCKET and MEDFORGE_TEST_PODMAN_{,SILENT_}PACK_IMAGE.

PODMAN_SOCKET=/run/podman/podman.sock

_podman_answers() {
  curl -sf --max-time 5 --unix-socket "$PODMAN_SOCKET" http://podman/v4.0.0/libpod/_ping >/dev/null 2>&1
}

_start_podman_service() {
  log "starting podman's API service on $PODMAN_SOCKET"
  mkdir -p "$(dirname "$PODMAN_SOCKET")"
  rm -f "$PODMAN_SOCKET"
  # setsid: a service in the caller's process group dies with it.
  setsid nohup podman system service --time=0 "unix://$PODMAN_SOCKET" >/var/log/medforge-podman.log 2>&1 </dev/null &
  record_daemon podman-service $!
  wait_for _podman_answers 30 || die "podman's API service did not start; see /var/log/medforge-podman.log"
}

ensure_podman() {
  ensure_packages podman podman curl curl
  _podman_answers || _start_podman_service
  export MEDFORGE_TEST_PODMAN_SOCKET=$PODMAN_SOCKET
}

# Does the API service start a container? One left running by an earlier
# run can answer pings yet fail every start ("write child: broken pipe",
# seen once here); one of ours that does is started again.
_podman_service_runs() {
  podman --remote --url "unix://$PODMAN_SOCKET" run --rm --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 \
    "$MEDFORGE_TEST_PODMAN_PACK_IMAGE" true >/dev/null 2>&1
}

ensure_podman_service_runs() {
  _podman_service_runs && return 0
  if stop_our_daemon podman-service podman; then
    log "podman's API service answered but could not start containers: started it again"
    sleep 1
    _start_podman_service
  fi
  _podman_service_runs || die "podman's API service on $PODMAN_SOCKET cannot start a container (see /var/log/medforge-podman.log)"
}

# Copies IMAGE from dockerd into Podman's store when Podman's copy is
# missing or differs; prints Podman's name for it (localhost/IMAGE).
_podman_copy() {
  local image=$1 want have
  want=$(docker image inspect -f '{{.Id}}' "$image") || die "$image is not in dockerd"
  have=$(podman image inspect --format '{{.Id}}' "localhost/$image" 2>/dev/null || true)
  if [ "sha256:$have" != "$want" ] && [ "$have" != "$want" ]; then
    docker save "$image" | podman load -q >/dev/null || die "could not load $image into podman"
  fi
  printf 'localhost/%s' "$image"
}

ensure_podman_test_pack() {
  MEDFORGE_TEST_PODMAN_PACK_IMAGE=$(_podman_copy "$MEDFORGE_TEST_PACK_IMAGE")
  MEDFORGE_TEST_PODMAN_SILENT_PACK_IMAGE=$(_podman_copy "$MEDFORGE_TEST_SILENT_PACK_IMAGE")
  export MEDFORGE_TEST_PODMAN_PACK_IMAGE MEDFORGE_TEST_PODMAN_SILENT_PACK_IMAGE
  ensure_podman_service_runs
}

# Containers and networks of earlier test runs.
clean_podman_test_leftovers() {
  local ids nets
  ids=$(podman ps -aq --filter label=medforge.test_run)
  [ -z "$ids" ] || podman rm -f $ids >/dev/null
  nets=$(podman network ls -q --filter name=mftest-)
  [ -z "$nets" ] || podman network rm -f $nets >/dev/null || true
}
