#!/usr/bin/env bash
# No import cycle between the modules of any crate here
# (scripts/tests/check_modules.py), and the check can fail: small crates
# with a cycle of each kind it knows (siblings through `use crate::`, a
# child reading its parent's mod.rs, an imported module's path, an
# intra-doc link) must each be rejected, and ones without (a parent's
# re-export, a unit test module, a path only named in a comment) passed.
# Needs python3 only. Usage: bash scripts/tests/modules.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib/common.sh

CHECKER=$(pwd)/scripts/tests/check_modules.py
python3 "$CHECKER" --root . || die "import cycles (above): see the module docs of scripts/tests/check_modules.py"

work=$(mktemp -d "${TMPDIR:-/tmp}/medforge-modules-check.XXXXXX")
trap 'rm -rf "$work"' EXIT

# crate NAME FILE=TEXT...: a crate with those files under src/.
crate() {
  local dir=$work/$1
  shift
  rm -rf "$dir"
  mkdir -p "$dir/src"
  printf '[package]\nname = "fixture"\n' >"$dir/Cargo.toml"
  local spec
  for spec in "$@"; do
    mkdir -p "$(dirname "$dir/src/${spec%%=*}")"
    printf '%s\n' "${spec#*=}" >"$dir/src/${spec%%=*}"
  done
}

# expect NAME 0|1 [TEXT]: the check's exit status on crate NAME, and TEXT in its output.
expect() {
  local out status=0
  out=$(python3 "$CHECKER" --root "$work/$1" 2>&1) || status=$?
  [ "$status" -eq "$2" ] || die "check_modules on the $1 fixture exited $status, not $2: $out"
  if [ -n "${3:-}" ] && ! grep -qF "$3" <<<"$out"; then
    die "check_modules on the $1 fixture did not say \"$3\": $out"
  fi
}

crate siblings 'lib.rs=mod a; mod b;' 'a.rs=use crate::b::B; pub struct A;' 'b.rs=pub struct B(crate::a::A);'
expect siblings 1 "import cycle between 2 modules: a, b"
crate parent 'lib.rs=mod api;' 'api/mod.rs=mod auth; pub struct Envelope; pub fn routes() { auth::routes() }' \
  'api/auth.rs=use super::Envelope; pub fn routes() {}'
expect parent 1 "import cycle between 2 modules: api, api::auth"
crate alias 'lib.rs=mod a; mod b;' 'a.rs=use crate::b; pub fn f() { b::g() }' 'b.rs=pub fn g() { crate::a::f() }'
expect alias 1 "a, b"
crate doclink 'lib.rs=mod a; mod b;' 'a.rs=/// See [`crate::b::B`].
pub struct A;' 'b.rs=use crate::a::A;'
expect doclink 1 "a, b"
crate clean 'lib.rs=mod a; mod b; pub use a::A;' 'a.rs=// crate::b would be a cycle, but this is a comment.
/// Names `crate::b` without a link.
pub struct A;
#[cfg(test)]
mod tests { use crate::b::*; }' 'b.rs=use crate::a::A; pub struct B(A);' 'c/mod.rs=mod d; pub use d::D;' 'c/d.rs=pub struct D;'
expect clean 0 "no import cycle"
log "the module check rejects each kind of cycle and passes the clean fixture"
