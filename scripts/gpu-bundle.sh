#!/usr/bin/env bash
# Packs the built project with a Node.js binary for scripts/gpu-check.sh on a GPU machine that has
# python3 and torch but no Node.js: one xz-compressed tar, at most 64 MiB, that python3 alone can
# unpack. Prints its size; fails when it is over the limit.
#
#   npx turbo run build && scripts/gpu-bundle.sh [OUT.tar.xz]      # default: ./omnistage-gpu-check.tar.xz
#   # on the GPU machine:
#   python3 -m tarfile -e omnistage-gpu-check.tar.xz . && omnistage/scripts/gpu-check.sh
#
# The node binary is this machine's (`node` on PATH, or $OMNISTAGE_NODE): same OS and CPU
# architecture as the GPU machine, glibc Linux x86_64 or aarch64.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
out="$(realpath -m "${1:-$PWD/omnistage-gpu-check.tar.xz}")"
limit=$((64 * 1024 * 1024))
cd "$ROOT"
[ -f packages/cli/dist/main.js ] || { echo "gpu-bundle: build first: npx turbo run build" >&2; exit 2; }
command -v xz >/dev/null 2>&1 || { echo "gpu-bundle: xz is required (Debian: apt-get install xz-utils)" >&2; exit 2; }
node_bin="$(readlink -f "${OMNISTAGE_NODE:-$(command -v node)}")"

# What gpu-check.sh runs: the CLI and the packages it loads (dist, not sources or tests), the
# Python SDK, the check itself, and the production dependencies (workspace links included).
files=(package.json scripts/gpu-check.sh scripts/gpu-check packages/worker-python/src packages/worker-python/pyproject.toml)
for pkg in packages/core packages/cli packages/plugin-llm packages/plugin-diffusion packages/plugin-kv-connector packages/plugin-python; do
  files+=("$pkg/package.json" "$pkg/dist")
  [ -d "$pkg/bin" ] && files+=("$pkg/bin")
done
while IFS= read -r dep; do
  case "$dep" in node_modules/@omnistage-example/*|node_modules/omnistage-plugin-timeline) ;; node_modules/*) files+=("$dep") ;; esac
done < <(npm ls --omit=dev --all --parseable 2>/dev/null | sed "s|^$ROOT/||")

mkdir -p "$(dirname "$out")"
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/omnistage/.bundle"
tar -cf - --exclude='__pycache__' --exclude='*.map' "${files[@]}" | tar -C "$stage/omnistage" -xf -
cp "$node_bin" "$stage/omnistage/.bundle/node"
tar -C "$stage" -cf - omnistage | xz -T0 -6 > "$out"

size=$(stat -c %s "$out")
awk -v f="$out" -v s="$size" -v n="$(stat -c %s "$node_bin")" -v v="$("$node_bin" --version)" 'BEGIN {
  printf "gpu-bundle: %s\n  %d bytes (%.1f MiB) of at most 64 MiB, with node %s (%.1f MiB unpacked)\n", f, s, s / 1048576, v, n / 1048576 }'
if [ "$size" -gt "$limit" ]; then
  echo "gpu-bundle: the bundle is over 64 MiB" >&2
  exit 1
fi
