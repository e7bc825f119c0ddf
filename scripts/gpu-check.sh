#!/usr/bin/env bash
# GPU check: brings up two-stage pipelines of Python-SDK engines (scripts/gpu-check/gpu_engine.py)
# with omnistage and checks device mapping (CUDA_VISIBLE_DEVICES, torch, nvidia-smi pids),
# admission, init-lock serialisation and teardown, and prints bring-up and matmul figures.
#
#   scripts/gpu-check.sh                  # --platform cuda: needs NVIDIA GPUs, python3, torch
#   scripts/gpu-check.sh --dry-run        # --platform cpu: virtual devices, no torch/nvidia-smi (CI)
#   scripts/gpu-check.sh --keep ...       # keep the work directory (pipelines, reports, events)
#
# Needs python3 ≥ 3.9. Node.js is $OMNISTAGE_NODE, else the binary scripts/gpu-bundle.sh packed
# with the project (.bundle/node; the bundle is one .tar.xz that `python3 -m tarfile -e` unpacks,
# no xz tool needed), else `node` on PATH.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
platform=cuda
keep=()
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) platform=cpu ;;
    --platform) platform="${2:?--platform needs cuda or cpu}"; shift ;;
    --platform=*) platform="${1#--platform=}" ;;
    --keep) keep=(--keep) ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "gpu-check: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
case "$platform" in cuda|cpu) ;; *) echo "gpu-check: --platform must be cuda or cpu, got $platform" >&2; exit 2 ;; esac

command -v python3 >/dev/null 2>&1 || { echo "gpu-check: python3 is required (Debian: apt-get install python3)" >&2; exit 2; }
python3 -c 'import sys; sys.exit(0 if sys.version_info >= (3, 9) else 1)' || { echo "gpu-check: python3 must be 3.9 or later" >&2; exit 2; }

node="${OMNISTAGE_NODE:-}"
if [ -z "$node" ] && [ -x "$ROOT/.bundle/node" ]; then
  node="$ROOT/.bundle/node"
elif [ -z "$node" ] && command -v node >/dev/null 2>&1; then
  node="$(command -v node)"
elif [ -z "$node" ]; then
  echo "gpu-check: no Node.js: put node on PATH, set OMNISTAGE_NODE, or run from a bundle made by scripts/gpu-bundle.sh" >&2
  exit 2
fi
"$node" -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' || { echo "gpu-check: $node is not Node.js 20 or later" >&2; exit 2; }
[ -f "$ROOT/packages/cli/dist/main.js" ] || { echo "gpu-check: the project is not built: run \`npx turbo run build\` (or use a bundle from scripts/gpu-bundle.sh)" >&2; exit 2; }

if [ "$platform" = cuda ]; then
  command -v nvidia-smi >/dev/null 2>&1 || { echo "gpu-check: nvidia-smi not found: --platform cuda needs NVIDIA GPUs and their driver (or use --dry-run)" >&2; exit 2; }
  python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null \
    || { echo "gpu-check: python3 cannot use torch with CUDA (pip install torch), or use --dry-run" >&2; exit 2; }
fi

echo "gpu-check: node $("$node" --version) ($node), $(python3 --version), platform $platform"
exec python3 "$ROOT/scripts/gpu-check/check.py" --node "$node" --platform "$platform" ${keep[@]+"${keep[@]}"}
