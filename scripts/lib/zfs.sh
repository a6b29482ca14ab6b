# ZFS for the tests: kernel ZFS when the host has it, else zfs-fuse from
# Debian (real `zfs` and `zpool` commands, pools on files). Source after
# common.sh. Test pools are named `mft...` and live in
# ${TMPDIR:-/tmp}/medforge-zfs-test.

ZFS_TEST_DIR=${TMPDIR:-/tmp}/medforge-zfs-test

_kernel_zfs() { [ -e /sys/module/zfs ]; }

# zpool answers, and so does every mounted dataset (a wedged zfs-fuse
# can answer the first and hang on the second).
_zfs_fuse_answers() {
  timeout 20 zpool list >/dev/null 2>&1 || return 1
  local m
  for m in $(mount | awk '$5 == "fuse.zfs" {print $3}'); do
    timeout 5 stat -c %i "$m" >/dev/null 2>&1 || return 1
  done
}

# Starts zfs-fuse (it forks) and records it as ours. zfs-fuse refuses to
# start while its pid file exists, so a file left by a zfs-fuse that is
# gone (a reboot keeps /run on some hosts) is removed first.
_start_zfs_fuse() {
  mkdir -p "$MEDFORGE_TEST_PIDS"
  our_daemon zfs-fuse zfs-fuse >/dev/null || rm -f "$MEDFORGE_TEST_PIDS/zfs-fuse.pid"
  zfs-fuse --pidfile "$MEDFORGE_TEST_PIDS/zfs-fuse.pid" || die "zfs-fuse did not start"
}

# Stops the zfs-fuse the scripts started and starts it afresh; when every
# pool it knew was a test pool, it forgets them (they are only ever test
# data). A zfs-fuse the host runs for itself is never touched.
_restart_zfs_fuse() {
  local pools
  pools=$(timeout 10 zpool list -H -o name 2>/dev/null || true)
  stop_our_daemon zfs-fuse zfs-fuse \
    || die "zfs-fuse is wedged, and it is not one these scripts started: restart it yourself (it serves this host's pools)"
  sleep 1
  mount | awk '$5 == "fuse.zfs" {print $3}' | sort -r | while read -r m; do umount -l "$m" || true; done
  if [ -z "$(printf '%s\n' "$pools" | grep -v '^mft' | grep -v '^$' || true)" ]; then
    rm -f /var/lib/zfs/zpool.cache /etc/zfs/zpool.cache
  fi
  _start_zfs_fuse
  wait_for "zpool list" 30 || die "zfs-fuse restarted but zpool does not answer"
}

ensure_zfs() {
  ensure_packages zpool zfs-fuse zfs-fuse zfs-fuse
  _kernel_zfs && return 0
  if pgrep -x zfs-fuse >/dev/null && ! _zfs_fuse_answers; then
    # zfs-fuse can wedge when a test dies half-way (a pool destroyed under
    # a mount still in use): its FUSE mounts stop answering.
    log "zfs-fuse is not answering: restarting it"
    _restart_zfs_fuse
  fi
  if ! pgrep -x zfs-fuse >/dev/null; then
    log "starting zfs-fuse"
    _start_zfs_fuse
  fi
  wait_for "zpool list" 30 || die "zfs-fuse is running but zpool does not answer"
}

# Pools left by test runs that crashed or failed (a failed case keeps its
# pool for inspection until the next run).
clean_zfs_test_leftovers() {
  local pool ds stuck=""
  for pool in $(zpool list -H -o name 2>/dev/null | grep '^mft' || true); do
    for ds in $(zfs list -H -o name -r "$pool" 2>/dev/null | sort -r); do
      timeout 20 zfs unmount -f "$ds" >/dev/null 2>&1 || true
    done
    timeout 30 zpool destroy -f "$pool" >/dev/null 2>&1 || stuck="$stuck $pool"
  done
  if [ -n "$stuck" ] && ! _kernel_zfs; then
    # zfs-fuse keeps answering "pool is busy" for pools a wedged run left.
    log "test pools$stuck are stuck: restarting zfs-fuse"
    _restart_zfs_fuse
    for pool in $(zpool list -H -o name 2>/dev/null | grep '^mft' || true); do
      timeout 30 zpool destroy -f "$pool" >/dev/null 2>&1 || log "warning: could not destroy test pool $pool"
    done
  fi
  if [ -d "$ZFS_TEST_DIR" ] && ! mount | grep -q " $ZFS_TEST_DIR/"; then
    rm -rf "$ZFS_TEST_DIR"
  fi
}
