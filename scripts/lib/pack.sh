# The real code-server pack for the tests, built locally without any
# registry. Source after common.sh and docker.sh (dockerd must be running).
#
# ensure_base_image: a Debian bookworm base image (medforge-base:bookworm),
#   made with `debootstrap --variant=minbase` from this host's Debian mirror
#   and `docker import`ed; nothing is pulled. Skipped when the image exists.
# ensure_pack_base: picks the pack's base and sets BASE_IMAGE_TAG. With
#   MEDFORGE_PACK_BASE=auto (the default): the CUDA runtime image
#   ($CUDA_BASE_IMAGE, what GPU sessions want) when it is present or a
#   registry answers the pull, else the debootstrap base above (air-gapped
#   labs with only a package mirror, our test machines). `cuda` or
#   `debootstrap` forces one.
# ensure_default_pack: builds infra/packs/default (the production
#   Dockerfile) on that base, tagged $DEFAULT_PACK_IMAGE and labelled
#   medforge.build_hash=<hash of its build context and base image>; skipped
#   when the tag has that label already, and tagged without a build when
#   another tag of the same hash exists. The host's extra CA
#   certificates (/usr/local/share/ca-certificates/*.crt, a TLS-intercepting
#   proxy's) go into the build context's certs/ for the build stage only.
#   Exports MEDFORGE_TEST_CODE_SERVER_IMAGE. The first build takes minutes
#   (npm fetches code-server and builds its native modules); its output is
#   in $PACK_BUILD_LOG.

BASE_IMAGE_TAG=${BASE_IMAGE_TAG:-medforge-base:bookworm}
CUDA_BASE_IMAGE=${CUDA_BASE_IMAGE:-nvidia/cuda:12.4.1-runtime-ubuntu22.04}
DEFAULT_PACK_IMAGE=${DEFAULT_PACK_IMAGE:-medforge-pack-default:latest}
PACK_BUILD_LOG=${PACK_BUILD_LOG:-${TMPDIR:-/tmp}/medforge-pack-build.log}

_pack_repo_root() { (cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd); }

# The Debian mirror this host's apt uses (one-line or deb822 sources), or
# MEDFORGE_DEBIAN_MIRROR, or deb.debian.org.
_debian_mirror() {
  local m=${MEDFORGE_DEBIAN_MIRROR:-}
  if [ -z "$m" ]; then
    m=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null \
      | sed -nE 's,^[[:space:]]*(deb([[:space:]]+\[[^]]*\])?|URIs:)[[:space:]]+((https?|file)://[^[:space:]]*/debian)/?([[:space:]].*)?$,\3,p' \
      | head -n 1) || true
  fi
  echo "${m:-http://deb.debian.org/debian}"
}

ensure_base_image() {
  docker image inspect "$BASE_IMAGE_TAG" >/dev/null 2>&1 && return 0
  local sudo="" mirror dir
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  ensure_packages debootstrap debootstrap
  if [ ! -f /usr/share/keyrings/debian-archive-keyring.gpg ]; then
    log "installing debian-archive-keyring"
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends debian-archive-keyring >/dev/null \
      || die "apt-get install debian-archive-keyring failed"
  fi
  mirror=$(_debian_mirror)
  dir=$(mktemp -d "${TMPDIR:-/tmp}/medforge-base.XXXXXX")
  log "debootstrap bookworm from $mirror (about a minute)"
  if ! $sudo debootstrap --variant=minbase --keyring=/usr/share/keyrings/debian-archive-keyring.gpg \
    bookworm "$dir" "$mirror" >"$dir.log" 2>&1; then
    tail -n 20 "$dir.log" >&2
    $sudo rm -rf "$dir"
    die "debootstrap failed (log: $dir.log)"
  fi
  $sudo rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/cache/apt/*.bin "$dir"/var/lib/apt/lists/*
  log "importing $BASE_IMAGE_TAG"
  if ! $sudo tar -C "$dir" -c . | docker import -c 'CMD ["/bin/bash"]' -c 'ENV LANG=C.UTF-8' - "$BASE_IMAGE_TAG" >/dev/null; then
    $sudo rm -rf "$dir"
    die "docker import of $BASE_IMAGE_TAG failed"
  fi
  $sudo rm -rf "$dir" "$dir.log"
}

# How long a registry may take to answer before the pack falls back to the
# debootstrap base: a closed network often drops packets instead of
# refusing, and `docker pull` would wait minutes. Only a registry that
# answers this fast is waited for through the whole download.
CUDA_PULL_ANSWER_SECS=${CUDA_PULL_ANSWER_SECS:-20}

# Pulls $CUDA_BASE_IMAGE when its registry answers within
# $CUDA_PULL_ANSWER_SECS: the pull itself is the probe, cut off when it has
# printed no progress by then, and otherwise left to finish the download.
_pull_cuda_base() {
  local out pull_pid i answered='Pulling from|Pulling fs layer|Already exists|Downloading|Digest:'
  out=$(mktemp)
  docker pull "$CUDA_BASE_IMAGE" >"$out" 2>&1 &
  pull_pid=$!
  for ((i = 0; i < CUDA_PULL_ANSWER_SECS * 4; i++)); do
    if ! kill -0 "$pull_pid" 2>/dev/null; then break; fi
    # A progress line: the registry answered.
    if grep -qE "$answered" "$out"; then break; fi
    sleep 0.25
  done
  if kill -0 "$pull_pid" 2>/dev/null && ! grep -qE "$answered" "$out"; then
    kill "$pull_pid" 2>/dev/null || true
    wait "$pull_pid" 2>/dev/null || true
    rm -f "$out"
    return 1
  fi
  local rc=0
  wait "$pull_pid" || rc=$?
  rm -f "$out"
  return "$rc"
}

ensure_pack_base() {
  local mode=${MEDFORGE_PACK_BASE:-auto}
  case "$mode" in
    debootstrap) ensure_base_image ;;
    cuda | auto)
      if docker image inspect "$CUDA_BASE_IMAGE" >/dev/null 2>&1; then
        BASE_IMAGE_TAG=$CUDA_BASE_IMAGE
      elif log "pulling $CUDA_BASE_IMAGE (the CUDA base; ${CUDA_PULL_ANSWER_SECS} s for a registry to answer)" \
        && _pull_cuda_base; then
        BASE_IMAGE_TAG=$CUDA_BASE_IMAGE
      elif [ "$mode" = cuda ]; then
        die "cannot pull $CUDA_BASE_IMAGE (MEDFORGE_PACK_BASE=cuda): no registry reachable?"
      else
        log "no registry answers: the pack's base is built from Debian's packages instead (no CUDA libraries)"
        ensure_base_image
      fi
      ;;
    *) die "MEDFORGE_PACK_BASE must be auto, cuda or debootstrap (not $mode)" ;;
  esac
  log "the pack's base: $BASE_IMAGE_TAG"
}

ensure_default_pack() {
  ensure_pack_base
  local src ctx hash base_id crt
  src="$(_pack_repo_root)/infra/packs/default"
  [ -f "$src/Dockerfile" ] || die "no $src/Dockerfile"
  ctx=$(mktemp -d "${TMPDIR:-/tmp}/medforge-pack.XXXXXX")
  cp -a "$src/." "$ctx/"
  mkdir -p "$ctx/certs"
  for crt in /usr/local/share/ca-certificates/*.crt; do
    if [ -f "$crt" ]; then cp "$crt" "$ctx/certs/"; fi
  done
  base_id=$(docker image inspect -f '{{ .Id }}' "$BASE_IMAGE_TAG")
  hash=$( {
    (cd "$ctx" && find . -type f -print0 | sort -z | xargs -0 sha256sum)
    echo "base $base_id"
  } | sha256sum | cut -c1-16)
  local same
  same=$(docker images -q --filter "label=medforge.build_hash=$hash" | head -n 1)
  if [ "$(docker image inspect -f '{{ index .Config.Labels "medforge.build_hash" }}' "$DEFAULT_PACK_IMAGE" 2>/dev/null)" = "$hash" ]; then
    :
  elif [ -n "$same" ]; then
    log "tagging $DEFAULT_PACK_IMAGE: the pack with build hash $hash is built already"
    docker tag "$same" "$DEFAULT_PACK_IMAGE" || die "docker tag $same $DEFAULT_PACK_IMAGE failed"
  else
    log "building $DEFAULT_PACK_IMAGE (a few minutes; log: $PACK_BUILD_LOG)"
    if ! docker build --build-arg "BASE_IMAGE=$BASE_IMAGE_TAG" --label "medforge.build_hash=$hash" \
      -t "$DEFAULT_PACK_IMAGE" "$ctx" >"$PACK_BUILD_LOG" 2>&1; then
      tail -n 30 "$PACK_BUILD_LOG" >&2
      rm -rf "$ctx"
      die "could not build $DEFAULT_PACK_IMAGE (log: $PACK_BUILD_LOG)"
    fi
  fi
  rm -rf "$ctx"
  export MEDFORGE_TEST_CODE_SERVER_IMAGE=$DEFAULT_PACK_IMAGE
}
