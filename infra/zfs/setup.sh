#!/usr/bin/env bash
# Prepares the ZFS datasets MedForge keeps workspaces in, on an existing
# pool. Idempotent: run it again after changing an option, and it changes
# only what differs. Every command it runs (or, with --dry-run, would run)
# is printed first.
#
# Usage: infra/zfs/setup.sh [--dry-run] [--mountpoint PATH] [--operator USER] DATASET
#   DATASET        the workspaces root, e.g. tank/medforge/workspaces; the
#                  same as `storage.root` in medforge.toml. Its pool must exist.
#   --mountpoint   where DATASET mounts (workspaces mount below it);
#                  default: ZFS's own (/<DATASET>).
#   --operator     a non-root user allowed to create, mount, snapshot and set
#                  quotas below DATASET (`zfs allow`), where the platform
#                  supports delegation; note that mounting still needs root
#                  on Linux, so the server normally runs as root.
#   --dry-run      print the commands, change nothing.
#
# Each workspace dataset (DATASET/<user_id>) is created by the server on a
# user's first session, with the quota from `storage.quota_bytes`.
set -euo pipefail

dry_run=0 mountpoint="" operator="" dataset=""
usage() { sed -n 's/^# \{0,1\}//;2,18p' "$0" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case $1 in
    --dry-run) dry_run=1 ;;
    --mountpoint) mountpoint=${2:?--mountpoint needs a path}; shift ;;
    --operator) operator=${2:?--operator needs a user}; shift ;;
    -h | --help) usage ;;
    -*) echo "setup.sh: unknown option $1" >&2; usage ;;
    *) [ -z "$dataset" ] || usage; dataset=$1 ;;
  esac
  shift
done
[ -n "$dataset" ] || usage

say() { printf 'setup.sh: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }
# Runs (or, dry, prints) one command.
act() {
  printf '+ %s\n' "$*"
  [ "$dry_run" = 1 ] || "$@"
}

# The same rule as the server's (medforge-storage-zfs/src/dataset.rs).
component='[A-Za-z0-9_:][A-Za-z0-9_.:-]*'
[[ $dataset =~ ^[A-Za-z][A-Za-z0-9_.:-]*(/$component)*$ ]] || die "$dataset is not a dataset name"
[[ $dataset != */../* && $dataset != */.. ]] || die "$dataset is not a dataset name"
[ -z "$mountpoint" ] || [[ $mountpoint == /* ]] || die "--mountpoint must be an absolute path"
command -v zfs >/dev/null || die "zfs not found: install OpenZFS (zfsutils-linux) or zfs-fuse"
pool=${dataset%%/*}
zpool list -H -o name "$pool" >/dev/null 2>&1 || die "pool $pool does not exist: create it first (zpool create $pool ...)"

# Properties: the value wanted now, set only when it differs.
prop() { zfs get -H -o value "$1" "$2" 2>/dev/null; }
ensure_prop() {
  local name=$1 want=$2 ds=$3
  if [ "$(prop "$name" "$ds")" != "$want" ]; then
    act zfs set "$name=$want" "$ds"
  fi
}

if zfs list -H -o name "$dataset" >/dev/null 2>&1; then
  say "$dataset exists"
else
  act zfs create -p "$dataset"
fi
if [ "$dry_run" = 1 ] && ! zfs list -H -o name "$dataset" >/dev/null 2>&1; then
  say "dry run: $dataset would get atime=off, compression (lz4 where supported), snapdir=hidden"
  exit 0
fi
[ -z "$mountpoint" ] || ensure_prop mountpoint "$mountpoint" "$dataset"
ensure_prop atime off "$dataset"
# lz4 where the pool has the feature (OpenZFS); zfs-fuse and old pools only
# know lzjb/gzip, where `on` is the sensible default.
case $(zpool get -H -o value feature@lz4_compress "$pool" 2>/dev/null) in
  enabled | active) ensure_prop compression lz4 "$dataset" ;;
  *) [ "$(prop compression "$dataset")" != off ] || act zfs set compression=on "$dataset" ;;
esac
# Snapshots are for admins (zfs rollback), not for browsing from a session.
ensure_prop snapdir hidden "$dataset"

if [ -n "$operator" ]; then
  id "$operator" >/dev/null 2>&1 || die "no such user: $operator"
  if zfs allow "$dataset" >/dev/null 2>&1; then
    act zfs allow -u "$operator" create,mount,snapshot,quota,rollback,destroy "$dataset"
  else
    say "warning: this ZFS has no delegation (zfs allow); run the server as root"
  fi
fi

mp=$(prop mountpoint "$dataset")
[[ $mp == /* ]] || die "$dataset has mountpoint $mp: workspaces need a directory (use --mountpoint)"
[ "$dry_run" = 0 ] || { say "dry run: nothing changed"; exit 0; }
say "ready: set storage.kind = \"zfs\" and storage.root = \"$dataset\" in medforge.toml (mounted at $mp)"
