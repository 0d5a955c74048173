#!/usr/bin/env bash
# GPU measurement: WebGPU training throughput (AdamW, Muon) and the fused-kernel bench at d=256 and d=512
# (4 layers, T=128, B=16, head_dim 64), and the same model in PyTorch on CUDA; one table at the end, the same as
# JSON and markdown under --out (default: $OUT when set, else bench/gpu-bench-out/).
#
#   bash scripts/gpu-bench.sh                 # the full measurement (under 8 minutes on a GPU; budget 450 s)
#   bash scripts/gpu-bench.sh --quick         # fewer repetitions, the kernel bench in quick mode
#   bash scripts/gpu-bench.sh --smoke         # d=64 only, one step: checks that everything runs (test/bench)
#
# Other options: --out DIR, --budget SECONDS (the measurement's time budget), --sizes 256,512, --torch-cpu (also
# PyTorch on the CPU), --full-software (on a software adapter also the kernel bench above d=256), --no-install
# (never run npm). It first checks, and says what is missing: Node >= 20; node_modules (else `npm ci` when the
# registry answers, `npm ci --offline` from npm's cache when it does not); the Vulkan loader and drivers (ICDs)
# that Dawn will see, and nvidia-smi; PyTorch with CUDA under /usr/bin/python3 or python3. Only Node and
# node_modules are required: without PyTorch or CUDA the PyTorch rows say why they were skipped, and without
# Node the PyTorch rows still run. The measurement itself is scripts/gpu-bench.ts.
set -uo pipefail
caller_dir="$PWD"
self="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"
cd "$(dirname "$self")/.." || exit 1
absolute() { case "$1" in /*) echo "$1" ;; *) echo "$caller_dir/$1" ;; esac; }

say() { printf '[gpu-bench] %s\n' "$*"; }
check() { printf '[check] %-8s %s\n' "$1" "$2"; }
usage() { sed -n '2,/^set -uo/p' "$self" | sed '$d' | sed 's/^# \{0,1\}//'; }

install=1
out_dir=""
driver_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --no-install) install=0 ;;
    --out) [ $# -ge 2 ] || { say "--out needs a directory"; exit 2; }; out_dir="$(absolute "$2")"; shift ;;
    --budget | --sizes) [ $# -ge 2 ] || { say "$1 needs a value"; exit 2; }; driver_args+=("$1" "$2"); shift ;;
    --quick | --smoke | --torch-cpu | --full-software) driver_args+=("$1") ;;
    *) say "unknown option '$1' (--help lists them)"; exit 2 ;;
  esac
  shift
done
if [ -z "$out_dir" ]; then
  if [ -n "${OUT:-}" ]; then out_dir="$(absolute "$OUT")"; else out_dir="$PWD/bench/gpu-bench-out"; fi
fi
driver_args+=(--out "$out_dir")

# ---- Node and node_modules: the WebGPU part needs both ----------------------------------------------------
node_problem=""
node_major=0
if ! command -v node >/dev/null 2>&1; then
  node_problem="Node.js is not installed (osp-lab needs Node >= 20: https://nodejs.org, or your distribution's nodejs package)"
  check node "MISSING: $node_problem"
else
  node_version="$(node -p 'process.versions.node' 2>/dev/null || echo 0)"
  node_major="${node_version%%.*}"
  if [ "$node_major" -lt 20 ] 2>/dev/null; then
    node_problem="Node $node_version is too old: osp-lab needs Node >= 20"
    check node "TOO OLD: $node_problem"
  else
    check node "v$node_version"
  fi
fi

required_modules=(tsx @tensorflow/tfjs @tensorflow/tfjs-core @tensorflow/tfjs-backend-webgpu webgpu zod)
missing_modules() {
  local m missing=()
  for m in "${required_modules[@]}"; do [ -f "node_modules/$m/package.json" ] || missing+=("$m"); done
  echo "${missing[*]:-}"
}
install_modules() {
  if ! command -v npm >/dev/null 2>&1; then
    say "npm is not installed, so node_modules cannot be installed here"
    return 1
  fi
  if timeout 20 npm ping >/dev/null 2>&1; then
    say "running npm ci (the npm registry answers; this builds the native pack too and takes a few minutes)"
    npm ci --no-audit --no-fund && return 0
  else
    say "the npm registry does not answer (no network?): trying npm ci --offline from npm's cache"
    timeout 900 npm ci --offline --no-audit --no-fund && return 0
  fi
  return 1
}
if [ -z "$node_problem" ]; then
  missing="$(missing_modules)"
  if [ -n "$missing" ] && [ "$install" = 1 ]; then
    check modules "node_modules lacks: $missing; installing"
    install_modules || say "npm ci failed (see above)"
    missing="$(missing_modules)"
  fi
  if [ -n "$missing" ]; then
    node_problem="node_modules lacks $missing. Run 'npm ci' where the npm registry is reachable, or copy node_modules from a machine with the same OS, CPU architecture and Node major version (linux-x64: the 'webgpu' package carries Dawn for it)"
    check modules "MISSING: $node_problem"
  else
    check modules "node_modules has $(echo "${required_modules[@]}" | sed 's/ /, /g')"
  fi
fi

# ---- The GPU, its driver, and the Vulkan loader and ICDs that Dawn will see --------------------------------
gpu="none (nvidia-smi not found: no NVIDIA driver on this machine)"
gpu_driver="unknown"
if command -v nvidia-smi >/dev/null 2>&1; then
  if smi="$(timeout 30 nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1)"; then
    count="$(printf '%s\n' "$smi" | grep -c .)"
    first="$(printf '%s\n' "$smi" | head -n 1)"
    gpu="$(echo "$first" | cut -d, -f1 | xargs) ($(echo "$first" | cut -d, -f3 | xargs))"
    [ "$count" -gt 1 ] && gpu="$gpu, one of $count GPUs"
    gpu_driver="$(echo "$first" | cut -d, -f2 | xargs) (nvidia-smi)"
  else
    gpu="none (nvidia-smi failed: $(printf '%s' "$smi" | tail -n 1))"
  fi
fi
check gpu "$gpu; driver $gpu_driver"

loader="no libvulkan.so.1 (the Vulkan loader: apt-get install libvulkan1)"
if ldconfig -p 2>/dev/null | grep -q 'libvulkan\.so\.1'; then
  loader="loader libvulkan.so.1"
else
  for dir in /usr/lib/x86_64-linux-gnu /usr/lib/aarch64-linux-gnu /usr/lib64 /usr/lib /usr/local/lib; do
    [ -e "$dir/libvulkan.so.1" ] && loader="loader $dir/libvulkan.so.1" && break
  done
fi
icd_dirs=(/etc/vulkan/icd.d /usr/share/vulkan/icd.d /usr/local/share/vulkan/icd.d "$HOME/.local/share/vulkan/icd.d")
icd_files=()
for override in "${VK_DRIVER_FILES:-}" "${VK_ICD_FILENAMES:-}"; do
  [ -n "$override" ] && IFS=: read -r -a icd_files <<<"$override" && say "Vulkan ICDs set by VK_DRIVER_FILES / VK_ICD_FILENAMES: $override" && break
done
if [ ${#icd_files[@]} -eq 0 ]; then
  for dir in "${icd_dirs[@]}"; do
    for f in "$dir"/*.json; do [ -e "$f" ] && icd_files+=("$f"); done
  done
fi
icds=""
nvidia_icd=0
for f in "${icd_files[@]}"; do
  icds="${icds:+$icds, }$(basename "$f")"
  case "$(basename "$f")" in nvidia*) nvidia_icd=1 ;; esac
done
vulkan="$loader; ICDs: ${icds:-none found in ${icd_dirs[*]}}"
if command -v vulkaninfo >/dev/null 2>&1; then
  devices="$(timeout 60 vulkaninfo --summary 2>/dev/null | awk -F'= *' '/^[[:space:]]*deviceName/ { n = $2 }
    /^[[:space:]]*driverName/ { d = $2 } /^[[:space:]]*driverInfo/ { printf "%s%s (%s %s)", sep, n, d, $2; sep = ", " }')"
  vulkan="$vulkan; vulkaninfo devices: ${devices:-none (vulkaninfo --summary listed no device)}"
else
  vulkan="$vulkan; vulkaninfo not installed (apt-get install vulkan-tools lists the devices)"
fi
check vulkan "$vulkan"
if [ "${gpu#none}" = "$gpu" ] && [ "$nvidia_icd" = 0 ]; then
  say "WARNING: nvidia-smi sees a GPU but no nvidia*.json Vulkan ICD is installed: Dawn cannot use the GPU and will"
  say "  pick a software adapter (lavapipe) if there is one. Install the driver's Vulkan part (e.g. libnvidia-gl-<version>),"
  say "  or in a container run with NVIDIA_DRIVER_CAPABILITIES=all (graphics adds the Vulkan ICD)."
fi

# ---- PyTorch with CUDA (optional) ------------------------------------------------------------------------
torch_cuda_python=""
torch_any_python=""
torch_reasons=()
candidates=(/usr/bin/python3)
py3="$(command -v python3 2>/dev/null || true)"
[ -n "$py3" ] && [ "$(readlink -f "$py3")" != "$(readlink -f /usr/bin/python3 2>/dev/null)" ] && candidates+=("$py3")
for py in "${candidates[@]}"; do
  if [ ! -x "$py" ]; then
    torch_reasons+=("$py: not found")
    continue
  fi
  probe="$(timeout 120 "$py" -c '
import torch
cuda = torch.cuda.is_available()
print("\t".join([torch.__version__, str(torch.version.cuda), str(cuda), torch.cuda.get_device_name(0) if cuda else "-"]))
' 2>&1)"
  status=$?
  if [ $status -ne 0 ]; then
    last="$(printf '%s' "$probe" | tail -n 1)"
    case "$last" in
      *"No module named 'torch'"*) torch_reasons+=("$py: torch is not installed") ;;
      *) torch_reasons+=("$py: import torch failed (${last:-status $status})") ;;
    esac
    continue
  fi
  IFS=$'\t' read -r t_version t_cuda t_ok t_gpu <<<"$(printf '%s' "$probe" | tail -n 1)"
  torch_any_python="${torch_any_python:-$py}"
  if [ "$t_ok" = "True" ]; then
    torch_cuda_python="$py"
    check torch "$py: torch $t_version, CUDA $t_cuda on $t_gpu"
    break
  elif [ "$t_cuda" = "None" ]; then
    torch_reasons+=("$py: torch $t_version is a CPU-only build")
  else
    torch_reasons+=("$py: torch $t_version (CUDA $t_cuda) sees no GPU: torch.cuda.is_available() is False")
  fi
done
torch_skip=""
if [ -z "$torch_cuda_python" ]; then
  torch_skip="no PyTorch with CUDA: $(printf '%s; ' "${torch_reasons[@]}" | sed 's/; $//')"
  check torch "$torch_skip (the pytorch-cuda rows are skipped)"
fi

# ---- Without Node: the PyTorch rows only -----------------------------------------------------------------
if [ -n "$node_problem" ]; then
  say "the WebGPU part cannot run: $node_problem"
  if [ -z "$torch_cuda_python" ]; then
    say "and there is no PyTorch with CUDA either: nothing to measure"
    exit 1
  fi
  mkdir -p "$out_dir"
  file="$out_dir/gpu-bench-torch-only-$(date -u +%Y-%m-%dT%H-%M-%SZ).jsonl"
  say "running the PyTorch rows only (full mode: 5 warm-up steps, median of 30), into $file"
  printf '%-28s %10s %9s\n' run tokens/s ms/step
  for d in 256 512; do
    for opt in adamw muon; do
      line="$(timeout 300 "$torch_cuda_python" bench/torch_reference.py --device cuda --hidden $d --heads $((d / 64)) \
        --layers 4 --vocab 256 --batch 16 --seq 128 --optimizer $opt --steps 30 --warmup 5 2>&1 | tail -n 1)"
      echo "$line" >>"$file"
      if [ "${line#\{}" != "$line" ]; then
        "$torch_cuda_python" -c 'import json,sys; r=json.loads(sys.argv[1]); print("%-28s %10.0f %9.1f" % (sys.argv[2], r["tokensPerSec"], r["stepMs"]))' \
          "$line" "pytorch-cuda d=$d $opt"
      else
        printf '%-28s failed: %s\n' "pytorch-cuda d=$d $opt" "$line"
      fi
    done
  done
  exit 1
fi

# ---- The measurement --------------------------------------------------------------------------------------
driver_args+=(--gpu "$gpu" --gpu-driver "$gpu_driver" --vulkan "$vulkan")
if [ -n "$torch_cuda_python" ]; then
  driver_args+=(--torch-python "$torch_cuda_python")
else
  driver_args+=(--torch-cuda-skip "$torch_skip")
  [ -n "$torch_any_python" ] && driver_args+=(--torch-python "$torch_any_python")
fi
node_minor="$(node -p 'process.versions.node.split(".")[1]')"
if [ "$node_major" -gt 20 ] || [ "$node_minor" -ge 6 ]; then
  exec node --import tsx scripts/gpu-bench.ts "${driver_args[@]}"
else
  exec node_modules/.bin/tsx scripts/gpu-bench.ts "${driver_args[@]}"
fi
