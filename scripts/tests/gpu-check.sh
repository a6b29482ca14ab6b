#!/usr/bin/env bash
# The parts of scripts/gpu-check.sh that need no GPU, on this machine:
# its verdict on readings the real binary takes from the stand-in
# libnvidia-ml (medforge-telemetry-nvml/stand-in), idle and then "busy",
# which must pass, and on readings that do not move, which must fail; and
# the whole check, which must stop with exit 2 and a sentence where NVML
# does not load and where there is no CUDA torch.
# Usage: scripts/tests/gpu-check.sh <medforge binary>
set -euo pipefail
cd "$(dirname "$0")/../.."
medforge=$(readlink -f "${1:?usage: $0 <medforge binary>}")
check=$PWD/scripts/gpu-check.sh
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "gpu-check test: $*" >&2; exit 1; }

cc -shared -fPIC -O1 -o "$work/libnvidia-ml.so.1" medforge-telemetry-nvml/stand-in/libnvidia-ml.c -ldl
state=$work/nvml-stand-in.state
gib=$((1 << 30))
gpu() { # utilization memory_used pids
  echo "GPU-5eed0000-0000-4000-8000-000000000000;NVIDIA H200 (stand-in);$((141 * gib));$2;$1;40;90000;$3"
}
export MEDFORGE_TELEMETRY__NVML_LIBRARY=$work/libnvidia-ml.so.1
cd "$work"

gpu 0 $((1 * gib)) "" > "$state"
"$medforge" gpu sample --count 3 --every 100ms > idle.jsonl
gpu 97 $((9 * gib)) "4242" > "$state"
"$medforge" gpu sample --count 4 --every 100ms > load.jsonl
out=$("$check" analyse idle.jsonl load.jsonl 4242) || fail "a load that moves the readings must pass: $out"
grep -q "verdict: telemetry follows the load" <<<"$out" || fail "$out"
grep -q "load PID 4242 listed" <<<"$out" || fail "$out"
grep -q "memory used max 9.0 GiB of 141.0 GiB" <<<"$out" || fail "$out"

"$medforge" gpu sample --count 4 --every 100ms > still.jsonl
if out=$("$check" analyse load.jsonl still.jsonl); then fail "readings that do not move must fail: $out"; fi
grep -q "utilisation moved: NO; memory moved: NO" <<<"$out" || fail "$out"

# The whole check: NVML loads (the stand-in), then no CUDA torch here: 2.
set +e
out=$("$check" "$medforge" 2>&1); rc=$?
set -e
[ "$rc" = 2 ] || fail "exit $rc without torch: $out"
grep -q "NVIDIA H200 (stand-in)" <<<"$out" || fail "the probe did not run: $out"
grep -q "python3 with CUDA torch is needed" <<<"$out" || fail "$out"
# No NVML at all: 2, and it says so.
set +e
out=$(MEDFORGE_TELEMETRY__NVML_LIBRARY=$work/none/libnvidia-ml.so.1 "$check" "$medforge" 2>&1); rc=$?
set -e
[ "$rc" = 2 ] || fail "exit $rc without NVML: $out"
grep -q "NVML does not load here" <<<"$out" || fail "$out"
echo "gpu-check test: the verdict passes a moving load, fails a still one; no NVML or no torch: exit 2"
