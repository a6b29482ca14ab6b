# Stage timing for scripts/test.sh. `stage NAME` ends the stage before it
# and starts NAME; the table of every stage's seconds is printed when the
# script exits, passed or failed (the stage it failed in says so). No
# wrapper around the commands, so `set -e` keeps stopping at the first
# failure. Source after common.sh.

STAGE_TIMES=$(mktemp "${TMPDIR:-/tmp}/medforge-stages.XXXXXX")
_stage_name=""
_stage_start=0
_stages_start=$(date +%s)

# _stage_record NAME SECONDS OUTCOME: one row of the table, tab-separated
# (scripts/lib/test_times.py writes its rows in the same format).
_stage_record() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$STAGE_TIMES"; }

_stage_end() {
  if [ -n "$_stage_name" ]; then _stage_record "$_stage_name" $(($(date +%s) - _stage_start)) "$1"; fi
  _stage_name=""
}

stage() {
  _stage_end ok
  _stage_name=$1
  _stage_start=$(date +%s)
  log "$1"
}

# stage_rows NAME: like `stage`, for a step whose command writes its own
# rows to $STAGE_TIMES (cargo test through scripts/lib/test_times.py): NAME
# gets no row of its own.
stage_rows() {
  _stage_end ok
  log "$1"
}

_stage_table() {
  local rc=$1 outcome=ok
  [ "$rc" = 0 ] || outcome="FAILED (exit $rc)"
  _stage_end "$outcome"
  {
    echo
    echo "Stage timings (seconds; all $(($(date +%s) - _stages_start)) s):"
    awk -F '\t' '{ printf "  %-64s %6d  %s\n", $1, $2, $3 }' "$STAGE_TIMES"
  } >&2
  rm -f "$STAGE_TIMES"
}
trap '_stage_table $?' EXIT
