/*
 * shm_map: maps a shared-memory payload file into a Buffer, so the consumer of a payload reads the
 * producer's tmpfs pages in place instead of copying them (see src/connectors/shm-store.ts).
 *
 *   mapPayload(fd: number, size: number): Buffer   the file of exactly `size` bytes; the caller
 *                                                  closes fd afterwards (the mapping outlives it)
 *   mapShared(fd: number, size: number): Buffer    the producer's writable view of its pool segment
 *                                                  (MAP_SHARED: writes go to the file's pages);
 *                                                  the caller closes fd afterwards
 *   mapHeld(fd: number, size: number): Buffer      the first `size` bytes of a pool segment; the
 *                                                  Buffer owns fd and closes it when it is freed,
 *                                                  which drops the shared lock taken on it
 *   lock(fd: number, exclusive: boolean): boolean  flock(LOCK_SH or LOCK_EX, non-blocking): false
 *                                                  when another open file holds a conflicting lock
 *   unlock(fd: number): void
 *   reserve(fd: number, size: number): void      sizes a new pool segment and allocates its pages
 *                                                  (posix_fallocate): a full file system is an
 *                                                  ENOSPC error here, never a SIGBUS later, when a
 *                                                  mapped page is first written
 *
 * A consumer maps each pool segment once and hands out views of it (see
 * src/connectors/shm-mappings.ts):
 *   segmentMap(fd: number, size: number): External  the whole segment, MAP_PRIVATE; owns fd
 *   segmentAcquire(seg): boolean   one more user; the first takes the shared lock (false: refused)
 *   segmentRelease(seg): void      one user less; the last drops the lock
 *   segmentWritten(seg, length): number   pages of the first `length` bytes this process wrote
 *                                         (private copies: they no longer show the file), from
 *                                         /proc/self/pagemap; -1 when it cannot be read
 *   segmentView(seg, length): Buffer      the first `length` bytes; takes over one acquired use,
 *                                         released when the Buffer is freed
 *
 * The locks are how a pool segment is never rewritten while a consumer still maps it (see
 * src/connectors/shm-pool.ts): a consumer's Buffer holds a shared lock for its whole life, the
 * producer takes an exclusive one (non-blocking) before reusing the segment.
 *
 * The caller opens the files and checks their sizes: every error a missing or mismatched file can
 * cause is raised in JS, with the store's own messages. What fails here is thrown as an Error
 * "<call> failed: <strerror>" (code ENOSPC or EDQUOT when the file system is full, else EMAP).
 *
 * Built by scripts/build-native.mjs with the system compiler (no node-gyp); Node-API only, so one
 * build serves every Node version the package supports.
 */
#define NAPI_VERSION 8
#include <node_api.h>

#include <errno.h>
#include <fcntl.h>
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
  napi_throw_error(env, err == ENOSPC ? "ENOSPC" : err == EDQUOT ? "EDQUOT" : "EMAP", msg);
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

/* Reads (fd, size) and maps the whole file, which must have exactly `size` (> 0) bytes, with
   `flags`. NULL (an exception thrown) when it cannot. */
static void *map_whole(napi_env env, napi_callback_info info, const char *sig, int flags, int *fd, size_t *size) {
  double size_d;
  if (!get_fd_size(env, info, sig, fd, size, &size_d)) return NULL;
  struct stat st;
  if (fstat(*fd, &st) != 0) return throw_errno(env, "fstat", errno), NULL;
  if (*size == 0 || (uint64_t)st.st_size != (uint64_t)*size) {
    char msg[160];
    snprintf(msg, sizeof msg, "%s: the file is not of the given size", sig);
    napi_throw_range_error(env, "ESIZE", msg);
    return NULL;
  }
  void *p = mmap(NULL, *size, PROT_READ | PROT_WRITE, flags, *fd, 0);
  if (p == MAP_FAILED) return throw_errno(env, "mmap", errno), NULL;
  return p;
}

static napi_value map_shared(napi_env env, napi_callback_info info) {
  int fd;
  size_t size;
  void *p = map_whole(env, info, "mapShared(fd, size)", MAP_SHARED, &fd, &size);
  if (p == NULL) return NULL;
  struct mapping *m = malloc(sizeof *m);
  if (m == NULL) {
    munmap(p, size);
    return throw_errno(env, "malloc", ENOMEM);
  }
  m->size = size;
  m->fd = -1;
  napi_value out;
  if (napi_create_external_buffer(env, size, p, unmap, m, &out) != napi_ok) {
    munmap(p, size);
    free(m);
    return NULL;
  }
  int64_t ignored;
  napi_adjust_external_memory(env, (int64_t)size, &ignored);
  return out;
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

/* Allocates the pages of a new segment before anything maps it: tmpfs hands out pages on first
   touch, and a mapped page it cannot hand out is a SIGBUS that kills the process. */
static napi_value reserve_fd(napi_env env, napi_callback_info info) {
  int fd;
  size_t size;
  double size_d;
  if (!get_fd_size(env, info, "reserve(fd, size)", &fd, &size, &size_d)) return NULL;
  if (size == 0) return NULL;
  int err;
  do err = posix_fallocate(fd, 0, (off_t)size);
  while (err == EINTR);
  if (err != 0) return throw_errno(env, "posix_fallocate", err);
  return NULL;
}

/* A consumer's mapping of one pool segment. Freed when the JS handle is collected and no view
   is left (views keep the memory; the lock is held while `uses` > 0). */
struct segment {
  void *base;
  size_t size;
  int fd;
  int64_t uses;
  int handle_gone;
};

static void segment_maybe_free(struct segment *seg) {
  if (!seg->handle_gone || seg->uses > 0) return;
  munmap(seg->base, seg->size);
  close(seg->fd);
  free(seg);
}

static void segment_handle_gone(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  struct segment *seg = data;
  seg->handle_gone = 1;
  segment_maybe_free(seg);
}

static void segment_release_one(struct segment *seg) {
  if (--seg->uses == 0) flock(seg->fd, LOCK_UN);
  segment_maybe_free(seg);
}

/* The segment behind argv[0]; NULL (TypeError thrown) when it is not one. */
static struct segment *get_segment(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  size_t argc = want;
  void *data = NULL;
  napi_valuetype t;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (argc < want || napi_typeof(env, argv[0], &t) != napi_ok || t != napi_external || napi_get_value_external(env, argv[0], &data) != napi_ok || data == NULL) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "the first argument must be a segment from segmentMap()");
    return NULL;
  }
  return data;
}

/* A length argument within the segment. */
static int get_length(napi_env env, napi_value v, struct segment *seg, size_t *out) {
  double d;
  if (!get_count(env, v, (double)seg->size, &d)) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "length must be an integer within the segment");
    return 0;
  }
  *out = (size_t)d;
  return 1;
}

static napi_value segment_map(napi_env env, napi_callback_info info) {
  int fd;
  size_t size;
  void *p = map_whole(env, info, "segmentMap(fd, size)", MAP_PRIVATE, &fd, &size);
  if (p == NULL) return NULL;
  struct segment *seg = calloc(1, sizeof *seg);
  if (seg == NULL) {
    munmap(p, size);
    return throw_errno(env, "calloc", ENOMEM);
  }
  seg->base = p;
  seg->size = size;
  seg->fd = fd;
  napi_value out;
  if (napi_create_external(env, seg, segment_handle_gone, NULL, &out) != napi_ok) {
    munmap(seg->base, size);
    free(seg);
    return NULL;
  }
  return out;
}

static napi_value segment_acquire(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  struct segment *seg = get_segment(env, info, 1, argv);
  if (seg == NULL) return NULL;
  int ok = 1;
  if (seg->uses == 0) {
    int r;
    do r = flock(seg->fd, LOCK_SH | LOCK_NB);
    while (r != 0 && errno == EINTR);
    if (r != 0 && errno != EWOULDBLOCK) return throw_errno(env, "flock", errno);
    ok = r == 0;
  }
  if (ok) seg->uses++;
  napi_value out;
  napi_get_boolean(env, ok, &out);
  return out;
}

static napi_value segment_release(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  struct segment *seg = get_segment(env, info, 1, argv);
  if (seg != NULL && seg->uses > 0) segment_release_one(seg);
  return NULL;
}

/* Pagemap entry bits (Documentation/admin-guide/mm/pagemap.rst). */
#define PM_PRESENT (1ULL << 63)
#define PM_FILE (1ULL << 61)

static napi_value segment_written(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  struct segment *seg = get_segment(env, info, 2, argv);
  size_t length;
  if (seg == NULL || !get_length(env, argv[1], seg, &length)) return NULL;
  static int pagemap = -2;
  if (pagemap == -2) pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
  uintptr_t at = (uintptr_t)seg->base / page, last = ((uintptr_t)seg->base + length + page - 1) / page;
  int64_t count = pagemap < 0 ? -1 : 0;
  uint64_t entries[512];
  while (count >= 0 && at < last) {
    size_t n = last - at < 512 ? last - at : 512;
    ssize_t got = pread(pagemap, entries, n * sizeof entries[0], (off_t)(at * sizeof entries[0]));
    if (got <= 0) {
      count = -1;
      break;
    }
    for (size_t i = 0; i < (size_t)got / sizeof entries[0]; i++) count += (entries[i] & PM_PRESENT) && !(entries[i] & PM_FILE);
    at += (size_t)got / sizeof entries[0];
  }
  napi_value out;
  napi_create_int64(env, count, &out);
  return out;
}

static void view_gone(napi_env env, void *data, void *hint) {
  (void)data;
  struct segment *seg = hint;
  int64_t ignored;
  napi_adjust_external_memory(env, -(int64_t)seg->size, &ignored);
  segment_release_one(seg);
}

static napi_value segment_view(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  struct segment *seg = get_segment(env, info, 2, argv);
  size_t length;
  if (seg == NULL || !get_length(env, argv[1], seg, &length)) return NULL;
  if (seg->uses <= 0) {
    napi_throw_error(env, "ESTATE", "segmentView: acquire the segment first");
    return NULL;
  }
  napi_value out;
  /* Its own ArrayBuffer: sub-views of it keep it (and so the use and the lock) alive. Counted as
     the segment's size, so collection (and the lock's release) comes as soon as for a mapping. */
  if (napi_create_external_buffer(env, length, seg->base, view_gone, seg, &out) != napi_ok) return NULL;
  int64_t ignored;
  napi_adjust_external_memory(env, (int64_t)seg->size, &ignored);
  return out;
}

NAPI_MODULE_INIT() {
  static const struct { const char *name; napi_callback cb; } fns[] = {
    {"mapPayload", map_payload}, {"mapHeld", map_held}, {"mapShared", map_shared}, {"lock", lock_fd}, {"unlock", unlock_fd}, {"reserve", reserve_fd},
    {"segmentMap", segment_map}, {"segmentAcquire", segment_acquire}, {"segmentRelease", segment_release},
    {"segmentWritten", segment_written}, {"segmentView", segment_view},
  };
  for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
    napi_value fn;
    if (napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].cb, NULL, &fn) != napi_ok) return NULL;
    if (napi_set_named_property(env, exports, fns[i].name, fn) != napi_ok) return NULL;
  }
  return exports;
}
