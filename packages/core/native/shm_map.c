/*
 * shm_map: maps a shared-memory payload file into a Buffer, so the consumer of a payload reads the
 * producer's tmpfs pages in place instead of copying them (see src/connectors/shm-store.ts).
 *
 *   mapPayload(fd: number, size: number): Buffer   the file of exactly `size` bytes; the caller
 *                                                  closes fd afterwards (the mapping outlives it)
 *   mapHeld(fd: number, size: number): Buffer      the first `size` bytes of a pool segment; the
 *                                                  Buffer owns fd and closes it when it is freed,
 *                                                  which drops the shared lock taken on it
 *   lock(fd: number, exclusive: boolean): boolean  flock(LOCK_SH or LOCK_EX, non-blocking): false
 *                                                  when another open file holds a conflicting lock
 *   unlock(fd: number): void
 *
 * The locks are how a pool segment is never rewritten while a consumer still maps it (see
 * src/connectors/shm-pool.ts): a consumer's Buffer holds a shared lock for its whole life, the
 * producer takes an exclusive one (non-blocking) before reusing the segment.
 *
 * The caller opens the files and checks their sizes: every error a missing or mismatched file can
 * cause is raised in JS, with the store's own messages. What fails here is thrown as an Error
 * "<call> failed: <strerror>" (code EMAP).
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
#include <stdlib.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <unistd.h>
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

/* What a mapped Buffer's finalizer needs: the mapping, and the fd it owns (-1: none). */
struct mapping {
  size_t size;
  int fd;
};

/* Runs when V8 frees the Buffer: only then may the pages go (the file may be long unlinked), and
   only then may an owned fd close (it holds the shared lock that keeps a segment from reuse). */
static void unmap(napi_env env, void *data, void *hint) {
  struct mapping *m = hint;
  munmap(data, m->size);
  if (m->fd >= 0) close(m->fd);
  int64_t ignored;
  napi_adjust_external_memory(env, -(int64_t)m->size, &ignored);
  free(m);
}

/* Reads (fd, size) arguments; false (with a TypeError thrown) when they are not valid. */
static int get_fd_size(napi_env env, napi_callback_info info, const char *sig, int *fd, size_t *size, double *size_d) {
  size_t argc = 2;
  napi_value argv[2];
  double fd_d;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return 0;
  if (argc < 2 || !get_count(env, argv[0], INT32_MAX, &fd_d) || !get_count(env, argv[1], 9007199254740991.0, size_d)) {
    char msg[160];
    snprintf(msg, sizeof msg, "%s: fd and size must be non-negative integers", sig);
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
    return 0;
  }
  *fd = (int)fd_d;
  *size = (size_t)*size_d;
  return 1;
}

/* Maps `size` bytes of fd into a Buffer; `exact`: the file must have exactly that size, else at
   least. `own_fd`: the Buffer closes fd when freed (else the caller closes it at once). */
static napi_value map_fd(napi_env env, int fd, size_t size, double size_d, int exact, int own_fd) {
  /* Checked again here, before mapping: pages past the end of the file would raise SIGBUS on
     access instead of an error. */
  struct stat st;
  if (fstat(fd, &st) != 0) return throw_errno(env, "fstat", errno);
  if (exact ? (uint64_t)st.st_size != (uint64_t)size : (uint64_t)st.st_size < (uint64_t)size) {
    char msg[160];
    snprintf(msg, sizeof msg, "the file has %lld bytes, the caller expected %s%.0f", (long long)st.st_size, exact ? "" : "at least ", size_d);
    napi_throw_range_error(env, "ESIZE", msg);
    return NULL;
  }

  napi_value out;
  if (size == 0) { /* mmap refuses length 0 */
    if (napi_create_buffer(env, 0, NULL, &out) != napi_ok) return NULL;
    if (own_fd) close(fd);
    return out;
  }

  /* Private and writable: a consumer that writes into its Buffer gets its own copy of that page
     (copy-on-write), never a segfault, and the file stays as the producer wrote it. Not
     populated: a first read of a page maps it with its neighbours (fault-around, 64 KiB at a
     time), which measured faster than MAP_POPULATE or MADV_POPULATE_READ even for a consumer that
     reads every page (64 MiB: 6 ms against 10 to 13 ms), and costs nothing for pages never read. */
  void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  if (p == MAP_FAILED) return throw_errno(env, "mmap", errno);

  struct mapping *m = malloc(sizeof *m);
  if (m == NULL) {
    munmap(p, size);
    return throw_errno(env, "malloc", ENOMEM);
  }
  m->size = size;
  m->fd = own_fd ? fd : -1;
  napi_status s = napi_create_external_buffer(env, size, p, unmap, m, &out);
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
  free(m);
  s = napi_create_buffer_copy(env, size, p, NULL, &out);
  munmap(p, size);
  if (s == napi_ok && own_fd) close(fd); /* a copy needs no lock */
  return s == napi_ok ? out : NULL;
}

static napi_value map_payload(napi_env env, napi_callback_info info) {
  int fd;
  size_t size;
  double size_d;
  if (!get_fd_size(env, info, "mapPayload(fd, size)", &fd, &size, &size_d)) return NULL;
  return map_fd(env, fd, size, size_d, 1, 0);
}

static napi_value map_held(napi_env env, napi_callback_info info) {
  int fd;
  size_t size;
  double size_d;
  if (!get_fd_size(env, info, "mapHeld(fd, size)", &fd, &size, &size_d)) return NULL;
  return map_fd(env, fd, size, size_d, 0, 1);
}

/* Reads the fd argument and an optional boolean. */
static int get_fd_flag(napi_env env, napi_callback_info info, int *fd, bool *flag) {
  size_t argc = 2;
  napi_value argv[2];
  double fd_d;
  *flag = false;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return 0;
  if (argc < 1 || !get_count(env, argv[0], INT32_MAX, &fd_d)) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "fd must be a non-negative integer");
    return 0;
  }
  if (argc > 1 && napi_get_value_bool(env, argv[1], flag) != napi_ok) *flag = false;
  *fd = (int)fd_d;
  return 1;
}

static napi_value lock_fd(napi_env env, napi_callback_info info) {
  int fd;
  bool exclusive;
  if (!get_fd_flag(env, info, &fd, &exclusive)) return NULL;
  int r;
  do r = flock(fd, (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB);
  while (r != 0 && errno == EINTR);
  if (r != 0 && errno != EWOULDBLOCK) return throw_errno(env, "flock", errno);
  napi_value out;
  napi_get_boolean(env, r == 0, &out);
  return out;
}

static napi_value unlock_fd(napi_env env, napi_callback_info info) {
  int fd;
  bool ignored;
  if (!get_fd_flag(env, info, &fd, &ignored)) return NULL;
  if (flock(fd, LOCK_UN) != 0) return throw_errno(env, "flock", errno);
  return NULL;
}

NAPI_MODULE_INIT() {
  static const struct { const char *name; napi_callback cb; } fns[] = {
    {"mapPayload", map_payload}, {"mapHeld", map_held}, {"lock", lock_fd}, {"unlock", unlock_fd},
  };
  for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
    napi_value fn;
    if (napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].cb, NULL, &fn) != napi_ok) return NULL;
    if (napi_set_named_property(env, exports, fns[i].name, fn) != napi_ok) return NULL;
  }
  return exports;
}
