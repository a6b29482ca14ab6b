#!/usr/bin/env bash
# Checks docs/ against the code (scripts/tests/check_docs.py): every CLI
# command and subcommand of the built binary has one heading in
# docs/cli.md, every UI route one heading in docs/ui.md, every API route
# one row in docs/api.md; config keys are explained only in
# medforge.example.toml; relative links in docs/*.md and README.md resolve.
# Then shows the check can fail: changed copies of the docs (a heading
# removed, one doubled, a route left out, a key table added, links broken)
# and a binary with one command more must each be rejected, for the
# expected reason. Needs python3 and a built binary; no daemon, no cargo.
# Usage: bash scripts/tests/docs.sh [path/to/medforge]   (default target/debug/medforge)
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib/common.sh

ROOT=$(pwd)
BIN=${1:-target/debug/medforge}
CHECKER=$ROOT/scripts/tests/check_docs.py
[ -x "$BIN" ] || die "$BIN is not an executable: build it first (cargo build -p medforge-server)"
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
command -v python3 >/dev/null || die "python3 not found"

log "checking docs/ against $BIN and the sources"
python3 "$CHECKER" --root "$ROOT" --bin "$BIN"

work=$(mktemp -d "${TMPDIR:-/tmp}/medforge-docs-check.XXXXXX")
trap 'rm -rf "$work"' EXIT

# edit FILE OLD NEW: replaces the first OLD in FILE by NEW (Python
# escapes such as \n allowed); fails if OLD is not there, so that no
# negative case passes because its edit silently did nothing.
edit() {
  python3 - "$1" "$2" "$3" <<'EOF'
import sys
path, old, new = sys.argv[1], sys.argv[2].encode().decode("unicode_escape"), sys.argv[3].encode().decode("unicode_escape")
text = open(path, encoding="utf-8").read()
if old not in text:
    sys.exit(f"docs.sh: the self-test's edit found no {old!r} in {path}")
open(path, "w", encoding="utf-8").write(text.replace(old, new, 1))
EOF
}

# must_fail NAME EXPECTED [checker args...]: the checker on $work/docs must
# exit 1 and say EXPECTED.
cases=0
must_fail() {
  local name=$1 expected=$2 out rc
  shift 2
  set +e
  out=$(python3 "$CHECKER" --root "$ROOT" --docs "$work/docs" "$@" 2>&1)
  rc=$?
  set -e
  [ "$rc" -eq 1 ] || die "self-test '$name': the checker exited $rc, not 1; it said: $out"
  grep -qF -- "$expected" <<<"$out" || die "self-test '$name': expected \"$expected\" in: $out"
  cases=$((cases + 1))
}

fresh() { rm -rf "$work/docs" && cp -R "$ROOT/docs" "$work/docs"; }

fresh
edit "$work/docs/cli.md" '#### medforge gpu enable\n' ''
must_fail "a subcommand's heading removed" 'no heading for `medforge gpu enable`' --bin "$BIN"

fresh
edit "$work/docs/cli.md" '### medforge migrate\n' '### medforge migrate\n\n### medforge migrate\n'
must_fail "a command documented twice" '2 headings for `medforge migrate`' --bin "$BIN"

fresh
edit "$work/docs/cli.md" '--caddy' '--cady'
edit "$work/docs/cli.md" '--caddy' '--cady'
must_fail "an option not mentioned" 'option `--caddy`' --bin "$BIN"

fresh
cat >"$work/medforge" <<EOF
#!/bin/sh
# The real binary, with one command more in its top-level help.
if [ "\$#" -eq 1 ] && [ "\$1" = help ]; then
  "$BIN" help | sed 's/^  help /  frobnicate  Frobnicate things\n  help /'
elif [ "\$#" -eq 2 ] && [ "\$1" = help ] && [ "\$2" = frobnicate ]; then
  printf 'Frobnicate things\n\nUsage: medforge frobnicate\n\nOptions:\n  -h, --help  Print help\n'
else
  exec "$BIN" "\$@"
fi
EOF
chmod +x "$work/medforge"
must_fail "a command the docs lack" 'no heading for `medforge frobnicate`' --bin "$work/medforge"

fresh
edit "$work/docs/ui.md" '### `/admin/events`\n' ''
must_fail "a UI route left out" 'UI route `/admin/events`' --bin "$BIN"

fresh
edit "$work/docs/ui.md" '### `/account`\n' '### `/account`, `/acount`\n'
must_fail "a UI heading naming no route" 'heading names `/acount`' --bin "$BIN"

fresh
edit "$work/docs/api.md" '| `PATCH` | `/api/v2/admin/gpus/{id}` |' '| `PUT` | `/api/v2/admin/gpus/{id}` |'
must_fail "an API route left out" '`PATCH /api/v2/admin/gpus/{id}` is not a row' --bin "$BIN"

fresh
edit "$work/docs/api.md" '| `GET` | `/healthz` |' '| `GET` | `/metrics` |'
must_fail "an API route listed twice" '`GET /metrics` is in 2 rows' --bin "$BIN"

fresh
edit "$work/docs/operations.md" '## Backup\n' '```toml\n[runtime]\ngpu_mode = "none"\n```\n\n## Backup\n'
must_fail "a config snippet in the docs" 'sets config key `gpu_mode`' --bin "$BIN"

fresh
edit "$work/docs/cli.md" '## Commands\n' '| key | meaning |\n| --- | --- |\n| `base_domain` | x |\n| `runtime.kind` | y |\n| `storage.root` | z |\n\n## Commands\n'
must_fail "a table of config keys" 'lists config keys' --bin "$BIN"

fresh
edit "$work/docs/operations.md" '(../medforge.example.toml)' '(../medforge.exmple.toml)'
must_fail "a link to a missing file" 'points at nothing' --bin "$BIN"

fresh
edit "$work/docs/operations.md" '(cli.md#medforge-doctor)' '(cli.md#medforge-docter)'
must_fail "a link to a missing heading" 'no heading with the anchor #medforge-docter' --bin "$BIN"

log "the checker rejected all $cases broken copies, each for its reason"
log "docs: ok"
