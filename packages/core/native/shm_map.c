/*
 * shm_map: maps a shared-memory payload file into a Buffer, so the consumer of a payload reads the
 * producer's tmpfs pages in place instead of copying them (see src/connectors/shm-store.ts).
 *
 *   mapPayload(fd: number, size: number): Buffer
 *
 * The caller opens the file, checks its size and closes the fd afterwards (the mapping outlives
 * it): every error a missing or mismatched file can cause is raised in JS, with the store's own
 * messages. What fails here is thrown as an Error "<call> failed: <strerror>" (code EMAP).
 *
 * Built by scripts/build-native.mjs with the system compiler (no node-gyp); Node-API only, so one
 * build serves every Node version the package supports.
 */
#define NAPI_VERSION 8
#include <node_api.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

static napi_value throw_errno(napi_env env, const char *call, int err) {
  char msg[160];
  snprintf(msg, sizeof msg, "%s failed: %s", call, strerror(err));
  napi_throw_error(env, "EMAP", msg);
  return NULL;
}

/* A non-negative integer argument (fd or size) that fits a double exactly. */
static int get_count(napi_env env, napi_value v, double max, double *out) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_number) return 0;
  if (napi_get_value_double(env, v, out) != napi_ok) return 0;
  return *out >= 0 && *out <= max && *out == (double)(int64_t)*out;
}

/* Runs when V8 frees the Buffer: only then may the pages go (the file may be long unlinked). */
static void unmap(napi_env env, void *data, void *hint) {
  size_t size = (size_t)(uintptr_t)hint;
  munmap(data, size);
  int64_t ignored;
  napi_adjust_external_memory(env, -(int64_t)size, &ignored);
}

static napi_value map_payload(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  double fd_d, size_d;
  if (argc < 2 || !get_count(env, argv[0], INT32_MAX, &fd_d) || !get_count(env, argv[1], 9007199254740991.0, &size_d)) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "mapPayload(fd, size): fd and size must be non-negative integers");
    return NULL;
  }
  int fd = (int)fd_d;
  size_t size = (size_t)size_d;

  /* Checked again here, before mapping: pages past the end of the file would raise SIGBUS on
     access instead of an error. */
  struct stat st;
  if (fstat(fd, &st) != 0) return throw_errno(env, "fstat", errno);
  if ((uint64_t)st.st_size != (uint64_t)size) {
    char msg[160];
    snprintf(msg, sizeof msg, "the file has %lld bytes, the caller expected %.0f", (long long)st.st_size, size_d);
    napi_throw_range_error(env, "ESIZE", msg);
    return NULL;
  }

  napi_value out;
  if (size == 0) { /* mmap refuses length 0 */
    if (napi_create_buffer(env, 0, NULL, &out) != napi_ok) return NULL;
    return out;
  }

  /* Private and writable: a consumer that writes into its Buffer gets its own copy of that page
     (copy-on-write), never a segfault, and the file stays as the producer wrote it. Not
     populated: a first read of a page maps it with its neighbours (fault-around, 64 KiB at a
     time), which measured faster than MAP_POPULATE or MADV_POPULATE_READ even for a consumer that
     reads every page (64 MiB: 6 ms against 10 to 13 ms), and costs nothing for pages never read. */
  void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  if (p == MAP_FAILED) return throw_errno(env, "mmap", errno);

  napi_status s = napi_create_external_buffer(env, size, p, unmap, (void *)(uintptr_t)size, &out);
  if (s == napi_ok) {
    /* Tells V8 the Buffer holds `size` bytes, so garbage collection (and the munmap) comes as
       soon as it would for a Buffer of its own memory. */
    int64_t ignored;
    napi_adjust_external_memory(env, (int64_t)size, &ignored);
    return out;
  }
  /* A runtime that forbids external buffers (V8 sandbox) gets a copy: slower, still right. */
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (pending) {
    napi_value ignored;
    napi_get_and_clear_last_exception(env, &ignored);
  }
  s = napi_create_buffer_copy(env, size, p, NULL, &out);
  munmap(p, size);
  return s == napi_ok ? out : NULL;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  if (napi_create_function(env, "mapPayload", NAPI_AUTO_LENGTH, map_payload, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "mapPayload", fn) != napi_ok) return NULL;
  return exports;
}
