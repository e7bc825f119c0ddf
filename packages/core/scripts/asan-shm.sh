#!/usr/bin/env bash
# Runs the shared-memory tests against the native addon built with AddressSanitizer: out-of-bounds
# accesses, use after free or unmap, and double frees in native/shm_map.c abort the test process
# with a report instead of passing unseen. node itself is not instrumented, so libasan is preloaded
# into it (and into every process the tests start; they inherit LD_PRELOAD).
#
#   packages/core/scripts/asan-shm.sh [vitest args...]   (default: test/connectors)
#
# Needs gcc and its libasan (Debian: gcc, libasan8). Leak checking is off: node keeps memory to
# its exit by design, and LeakSanitizer would report that, not the addon. The normal addon is
# rebuilt at the end, whatever happened.
set -euo pipefail
cd "$(dirname "$0")/.."

libasan="$(gcc -print-file-name=libasan.so)"
if [ ! -e "$libasan" ] || [ "$libasan" = libasan.so ]; then
  echo "asan-shm: gcc has no libasan.so here (Debian: apt-get install libasan8)" >&2
  exit 2
fi
trap 'node scripts/build-native.mjs' EXIT

CC="gcc -fsanitize=address -fno-omit-frame-pointer -g" node scripts/build-native.mjs
[ -e dist/native/shm_map.node ] || { echo "asan-shm: the instrumented addon did not build" >&2; exit 2; }
nm -D dist/native/shm_map.node | grep -q __asan_ || { echo "asan-shm: the addon is not instrumented" >&2; exit 2; }
echo "asan-shm: addon built with -fsanitize=address; running the tests with LD_PRELOAD=$libasan"

# handle_segv=0: V8 handles SIGSEGV itself (guard pages); abort_on_error: a report fails the run.
export LD_PRELOAD="$libasan"
export ASAN_OPTIONS="detect_leaks=0:handle_segv=0:abort_on_error=1:halt_on_error=1"
if [ "$#" -eq 0 ]; then set -- test/connectors; fi
npx vitest run "$@"
