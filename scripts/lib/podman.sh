# Podman for the tests: Debian's podman (4.3), its API service started in
# the background on the rootful socket, and the test pack images copied in
# from dockerd (`docker save | podman load`: nothing is ever pulled).
# Source after common.sh and docker.sh (ensure_test_pack first); exports
# MEDFORGE_TEST_PODMAN_SOCKET and MEDFORGE_TEST_PODMAN_{,SILENT_}PACK_IMAGE.

PODMAN_SOCKET=/run/podman/podman.sock

_podman_answers() {
  curl -sf --max-time 5 --unix-socket "$PODMAN_SOCKET" http://podman/v4.0.0/libpod/_ping >/dev/null 2>&1
}

ensure_podman() {
  ensure_packages podman podman curl curl
  if ! _podman_answers; then
    log "starting podman's API service on $PODMAN_SOCKET"
    mkdir -p "$(dirname "$PODMAN_SOCKET")"
    rm -f "$PODMAN_SOCKET"
    nohup podman system service --time=0 "unix://$PODMAN_SOCKET" >/var/log/medforge-podman.log 2>&1 &
    wait_for _podman_answers 30 || die "podman's API service did not start; see /var/log/medforge-podman.log"
  fi
  export MEDFORGE_TEST_PODMAN_SOCKET=$PODMAN_SOCKET
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
}

# Containers and networks of earlier test runs.
clean_podman_test_leftovers() {
  local ids nets
  ids=$(podman ps -aq --filter label=medforge.test_run)
  [ -z "$ids" ] || podman rm -f $ids >/dev/null
  nets=$(podman network ls -q --filter name=mftest-)
  [ -z "$nets" ] || podman network rm -f $nets >/dev/null || true
}
