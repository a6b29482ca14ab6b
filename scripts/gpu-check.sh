#!/usr/bin/env bash
# MedForge's NVML path on a real NVIDIA GPU, in a few minutes, on a machine
# that has nothing but the driver (libnvidia-ml, nvidia-smi; often under
# /usr/local/nvidia) and python3 with torch, and reaches no registry.
#
#   scripts/gpu-check.sh <medforge binary>     the whole check, with a report
#   scripts/gpu-check.sh analyse IDLE LOAD [PID]
#                                              only the verdict, on readings
#                                              recorded before (JSON lines of
#                                              `medforge gpu sample`)
#
# The check: `medforge gpu list --probe` (NVML loads, the GPUs have names,
# UUIDs and memory), readings while GPU 0 is idle, then while a torch load
# (matrix products and 8 GiB held) runs on it; utilisation and memory used
# must move, and the load's PID should be on the GPU. Build the binary
# elsewhere (`cargo build --release -p medforge-server`); nothing here
# compiles or installs. Exit 0 when telemetry follows the load, 1 when it
# does not, 2 when the machine cannot run the check (no driver, no torch).
set -euo pipefail

IDLE_SECS=${GPU_CHECK_IDLE_SECS:-6}
LOAD_SECS=${GPU_CHECK_LOAD_SECS:-30}

# The verdict on two files of readings (GPU 0's lines are used).
analyse() {
  python3 - "$@" <<'PY'
import json, sys

def gpu0(path):
    rows = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                r = json.loads(line)
                if r.get("index") == 0:
                    rows.append(r)
    return rows

idle, load = gpu0(sys.argv[1]), gpu0(sys.argv[2])
pid = int(sys.argv[3]) if len(sys.argv) > 3 and sys.argv[3] else None
if len(idle) < 2 or len(load) < 3:
    print(f"gpu-check: too few readings of GPU 0 (idle {len(idle)}, load {len(load)})")
    sys.exit(1)

def stats(rows, key):
    v = [r[key] for r in rows]
    return min(v), max(v), sum(v) / len(v)

GIB = 1 << 30
iu, lu = stats(idle, "utilization_percent"), stats(load, "utilization_percent")
im, lm = stats(idle, "memory_used_bytes"), stats(load, "memory_used_bytes")
temps = [r["temperature_c"] for r in load if r.get("temperature_c") is not None]
power = [r["power_watts"] for r in load if r.get("power_watts") is not None]
seen = pid is not None and any(pid in r.get("pids", []) for r in load)
util_moved = lu[1] >= 50 and lu[1] - iu[1] >= 30
memory_moved = lm[1] - im[1] >= 4 * GIB
print(f"idle ({len(idle)} readings): utilisation max {iu[1]}%, memory used max {im[1] / GIB:.1f} GiB")
print(f"load ({len(load)} readings): utilisation max {lu[1]}%, mean {lu[2]:.0f}%; "
      f"memory used max {lm[1] / GIB:.1f} GiB of {load[0]['memory_total_bytes'] / GIB:.1f} GiB")
if temps:
    print(f"load: temperature {min(temps)}-{max(temps)} C")
if power:
    print(f"load: power {min(power):.0f}-{max(power):.0f} W")
if pid is not None:
    print(f"load PID {pid} {'listed' if seen else 'NOT listed'} among GPU 0's compute processes")
print(f"utilisation moved: {'yes' if util_moved else 'NO'}; memory moved: {'yes' if memory_moved else 'NO'}")
ok = util_moved and memory_moved
print("verdict: " + ("telemetry follows the load" if ok else "telemetry does NOT follow the load"))
sys.exit(0 if ok else 1)
PY
}

if [ "${1:-}" = analyse ]; then
  shift
  [ $# -ge 2 ] || { echo "usage: $0 analyse IDLE.jsonl LOAD.jsonl [PID]" >&2; exit 2; }
  analyse "$@"
  exit $?
fi

[ $# -eq 1 ] || { echo "usage: $0 <medforge binary> | $0 analyse IDLE LOAD [PID]" >&2; exit 2; }
medforge=$(readlink -f "$1")
[ -x "$medforge" ] || { echo "gpu-check: $1 is not an executable" >&2; exit 2; }

work=$(mktemp -d)
trap 'kill "${load_pid:-}" 2>/dev/null || true; rm -rf "$work"' EXIT
cd "$work"   # no medforge.toml here: the defaults, plus the library below

# The driver's library where the machine keeps it, if not on the loader's path.
if [ -z "${MEDFORGE_TELEMETRY__NVML_LIBRARY:-}" ]; then
  lib=$(find /usr/local/nvidia -name 'libnvidia-ml.so.1' 2>/dev/null | head -n 1 || true)
  [ -n "$lib" ] && export MEDFORGE_TELEMETRY__NVML_LIBRARY="$lib"
fi

echo "== MedForge GPU check, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "binary: $medforge ($("$medforge" --version))"
echo "library: ${MEDFORGE_TELEMETRY__NVML_LIBRARY:-libnvidia-ml.so.1 on the loader path}"
if command -v nvidia-smi >/dev/null; then
  echo "nvidia-smi: $(nvidia-smi --query-gpu=index,name,driver_version,memory.total --format=csv,noheader | head -n 4 | paste -sd ';')"
fi
echo "== medforge gpu list --probe"
if ! "$medforge" gpu list --probe; then
  echo "gpu-check: NVML does not load here; this machine cannot run the check" >&2
  exit 2
fi
python3 -c 'import torch; assert torch.cuda.is_available()' 2>/dev/null \
  || { echo "gpu-check: python3 with CUDA torch is needed for the load" >&2; exit 2; }

echo "== idle: ${IDLE_SECS} readings"
"$medforge" gpu sample --count "$IDLE_SECS" --every 1s > idle.jsonl
start=$(date +%s%N)
"$medforge" gpu sample --count 1 > /dev/null
echo "one reading of every GPU (a process start included): $(( ($(date +%s%N) - start) / 1000000 )) ms"

echo "== load: torch on GPU 0 for ${LOAD_SECS} s, readings every second"
CUDA_DEVICE_ORDER=PCI_BUS_ID CUDA_VISIBLE_DEVICES=0 python3 - "$LOAD_SECS" > load.out 2>&1 <<'PY' &
import sys, time, torch
secs = float(sys.argv[1])
dev = torch.device("cuda:0")
held = torch.empty((8 << 30) // 4, dtype=torch.float32, device=dev)  # 8 GiB held
a = torch.randn(8192, 8192, device=dev)
b = torch.randn(8192, 8192, device=dev)
end = time.time() + secs
n = 0
while time.time() < end:
    c = a @ b
    torch.cuda.synchronize()
    n += 1
print(f"{torch.cuda.get_device_name(0)}: {n} products of 8192x8192 in {secs:.0f} s")
PY
load_pid=$!
sleep 3   # CUDA context and allocation first
"$medforge" gpu sample --count $(( LOAD_SECS - 6 )) --every 1s > load.jsonl
wait "$load_pid" || { echo "gpu-check: the torch load failed:"; cat load.out; exit 2; }
cat load.out
load_done=$load_pid
load_pid=
echo "== verdict"
analyse idle.jsonl load.jsonl "$load_done"
