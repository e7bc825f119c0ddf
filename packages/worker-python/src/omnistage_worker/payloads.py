"""Payloads: how tensors, images and audio travel between stages (docs/protocol.md, "Payloads").

Everything about where payload bytes live is in this one module, so a change of the store (file
names, directory, a segment pool) is made here only. A reference is a small JSON object in an
output (``{"$payload": 1, "key", "size", "via", ...}``); its bytes are inline (base64) or, for
``via: "shm"``, in a file the producer wrote once and consumers read by key.

The file's directory comes from the welcome's ``payload_dir`` (what the orchestrator says), and
only where an older orchestrator gives none is it recomputed the same way core does.
"""

from __future__ import annotations

import base64
import fcntl
import mmap
import os
import re
import secrets
import stat
import tempfile
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Mapping, Optional, Union

#: Marker field of a reference (value 1: the reference format version).
PAYLOAD_MARK = "$payload"
#: Connector classes core implements.
SHM_CONNECTOR = "SharedMemoryConnector"
INLINE_CONNECTOR = "InlineConnector"
#: Default ``shm_threshold_bytes`` of the shared-memory connector.
DEFAULT_SHM_THRESHOLD = 65536
#: Largest payload that goes inline whatever the connector (its base64 must fit in one 8 MiB line).
INLINE_MAX_BYTES = 4 * 1024 * 1024
#: Overrides the payload directory where the welcome does not say it.
PAYLOAD_DIR_ENV = "OMNISTAGE_PAYLOAD_DIR"

_KEY_RE = re.compile(r"^[A-Za-z0-9_]{1,128}$")
_CLASS_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.]{0,127}$")
_RUN_ID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
_FILE_PREFIX = "omnistage-"

PayloadRef = Dict[str, Any]
BytesLike = Union[bytes, bytearray, memoryview]


class PayloadError(Exception):
    """A payload could not be stored or read; the message says which and why."""

    code = "OMNI_REQUEST_FAILED"


def is_payload_ref(value: Any) -> bool:
    """True for a well-formed reference: an inline one carries its bytes, any other a valid key."""
    if not isinstance(value, dict) or value.get(PAYLOAD_MARK) != 1 or not isinstance(value.get("key"), str):
        return False
    size = value.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        return False
    via = value.get("via")
    if via == "inline":
        return isinstance(value.get("data_base64"), str)
    return isinstance(via, str) and bool(_CLASS_RE.match(via)) and bool(_KEY_RE.match(value["key"]))


def find_payload_refs(data: Any) -> List[PayloadRef]:
    """The references in an input or output: ``data`` itself, its fields or items, and theirs
    (``{tensor: ref}``, ``[{tensor: ref}, ...]``, ``{kind: "image", ...ref}``); no deeper."""
    found: List[PayloadRef] = []

    def visit(value: Any, depth: int) -> None:
        if is_payload_ref(value):
            found.append(value)
            return
        if depth >= 2:
            return
        if isinstance(value, dict):
            children: Iterable[Any] = value.values()
        elif isinstance(value, list):
            children = value
        else:
            return
        for child in children:
            visit(child, depth + 1)

    visit(data, 0)
    return found


def _fnv1a(data: BytesLike) -> int:
    h = 0x811C9DC5
    for b in bytes(data):
        h ^= b
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def meta_of(dtype: Optional[str] = None, shape: Optional[List[int]] = None, mime: Optional[str] = None) -> Dict[str, Any]:
    """Only the known, well-typed description fields."""
    out: Dict[str, Any] = {}
    if isinstance(dtype, str):
        out["dtype"] = dtype
    if isinstance(shape, (list, tuple)) and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape):
        out["shape"] = list(shape)
    if isinstance(mime, str):
        out["mime"] = mime
    return out


def inline_payload_ref(data: BytesLike, meta: Optional[Dict[str, Any]] = None) -> PayloadRef:
    """An inline reference holding ``data``; its key comes from the content (FNV-1a), as in core."""
    raw = bytes(data)
    return {
        PAYLOAD_MARK: 1,
        "key": "i_%08x" % _fnv1a(raw),
        "size": len(raw),
        "via": "inline",
        **(meta or {}),
        "data_base64": base64.b64encode(raw).decode("ascii"),
    }


@dataclass(frozen=True)
class OutputConnector:
    """The connector a replica's output payloads go through.

    ``type`` is the class (``SharedMemoryConnector``, ``InlineConnector`` or a class a plugin
    defines); payloads of more than ``shm_threshold_bytes`` go to a shared-memory file. ``plugin``
    is set for a class a JavaScript plugin defines, which a Python worker cannot load.
    """

    type: str
    shm_threshold_bytes: int
    plugin: bool = False


def _connector_config(engine_args: Mapping[str, Any]) -> Optional[Mapping[str, Any]]:
    kv = engine_args.get("omni_kv_config")
    cfg = kv.get("connector_config") if isinstance(kv, dict) else None
    return cfg if isinstance(cfg, dict) else None


def output_connector_of(engine_args: Mapping[str, Any], plugin_classes: Iterable[str] = ()) -> OutputConnector:
    """Reads the stage's connector from its engine args exactly as core's ``outputConnectorOf``."""
    cfg = _connector_config(engine_args)
    if cfg is not None and cfg.get("role") != "receiver":
        kind = cfg.get("type")
        if isinstance(kind, str) and kind in set(plugin_classes):
            return OutputConnector(kind, INLINE_MAX_BYTES, plugin=True)
        if kind == SHM_CONNECTOR:
            t = cfg.get("shm_threshold_bytes")
            ok = isinstance(t, (int, float)) and not isinstance(t, bool) and t >= 0 and t != float("inf")
            threshold = int(t) if ok else DEFAULT_SHM_THRESHOLD
            return OutputConnector(SHM_CONNECTOR, min(threshold, INLINE_MAX_BYTES))
    return OutputConnector(INLINE_CONNECTOR, INLINE_MAX_BYTES)


def default_payload_dir(env: Mapping[str, str] = os.environ) -> str:
    """Where core puts payload files when the welcome does not say: ``$OMNISTAGE_PAYLOAD_DIR``, else
    ``/dev/shm`` when writable, else the OS temp dir."""
    override = env.get(PAYLOAD_DIR_ENV)
    if override:
        return override
    if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK | os.X_OK):
        return "/dev/shm"
    return tempfile.gettempdir()


class PayloadStore:
    """One replica's view of the run's payload files: writes its outputs, reads its inputs.

    ``payload_dir`` is the welcome's; ``stage_id``/``replica_id`` and a random tag make the keys of
    this process unique in the run.
    """

    def __init__(self, run_id: str, stage_id: int, replica_id: int, payload_dir: Optional[str]) -> None:
        self.run_id = run_id
        self.dir = payload_dir or default_payload_dir()
        self._prefix = "s%dr%d_%s_" % (stage_id, replica_id, secrets.token_hex(4))
        self._seq = 0

    def path(self, key: str) -> str:
        """The file of a stored payload: ``<dir>/omnistage-<run_id>-<key>``."""
        if not _RUN_ID_RE.match(self.run_id):
            raise PayloadError(f"run id {self.run_id!r} cannot name a payload file")
        if not _KEY_RE.match(key):
            raise PayloadError(f"payload key {key!r} is not valid (letters, digits and _ only)")
        return os.path.join(self.dir, f"{_FILE_PREFIX}{self.run_id}-{key}")

    def next_key(self) -> str:
        """A key unique in the run: ``s<stage>r<replica>_<random tag>_<sequence in base 36>``."""
        n, digits = self._seq, ""
        self._seq += 1
        while True:
            n, r = divmod(n, 36)
            digits = "0123456789abcdefghijklmnopqrstuvwxyz"[r] + digits
            if n == 0:
                return self._prefix + digits

    def write(self, key: str, data: BytesLike) -> str:
        """Writes a payload once (exclusive create, mode 0600); a partial file is removed."""
        path = self.path(key)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as err:
            raise PayloadError(f"writing payload {key} to {self.dir} failed: {err.strerror} ({path})") from err
        try:
            view = memoryview(data).cast("B")
            off = 0
            while off < len(view):
                off += os.write(fd, view[off:])
        except OSError as err:
            os.close(fd)
            _unlink_quietly(path)
            raise PayloadError(f"writing payload {key} to {self.dir} failed: {err.strerror}") from err
        os.close(fd)
        return path

    def read(
        self,
        key: str,
        size: Optional[int] = None,
        into: Optional[Union[bytearray, memoryview]] = None,
        segment_bytes: Optional[int] = None,
    ) -> memoryview:
        """The bytes of a payload by key: a read-only view of the file mapped with ``mmap`` (no
        copy; it stays valid after the file is deleted), or, with ``into``, a view of ``into``
        holding a copy. A payload in a producer's pool segment (``segment_bytes`` in its reference)
        is copied under the segment's shared lock: the segment is rewritten for a later payload
        once released, so a mapping must not outlive the read (core's SDK keeps the lock for as
        long as its Buffer lives; here a copy is simpler). The file is opened without following a
        link or blocking, and must be a regular file of the size the reference says."""
        path = self.path(key)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except FileNotFoundError:
            raise _gone(key, path) from None
        except OSError as err:
            raise PayloadError(f"opening payload {key} ({path}) failed: {err.strerror}") from err
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise PayloadError(f"payload {key} ({path}) is not a regular file")
            actual = _checked_size(key, st.st_size, size, segment_bytes)
            if segment_bytes is not None:
                _hold_segment(fd, st, key, path)
                into = into if into is not None else bytearray(actual)
            if into is not None:
                return _read_into(fd, key, actual, memoryview(into).cast("B"))
            if actual == 0:
                return memoryview(b"")
            # The mapping outlives the descriptor and the file's unlink; it is freed with the view.
            return memoryview(mmap.mmap(fd, actual, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ))
        finally:
            os.close(fd)


def _gone(key: str, path: str) -> PayloadError:
    return PayloadError(
        f"payload {key} is gone ({path}): it was released (every consumer acknowledged it, "
        "or its request ended) or the run was swept"
    )


def _checked_size(key: str, file_size: int, size: Optional[int], segment_bytes: Optional[int]) -> int:
    """How many bytes to read: the file must be of the reference's size (or its segment's)."""
    if segment_bytes is None:
        if size is not None and file_size != size:
            raise PayloadError(f"payload {key} has {file_size} bytes, its reference says {size}")
        return file_size
    if file_size != segment_bytes:
        raise PayloadError(f"payload {key} has {file_size} bytes, its reference says a segment of {segment_bytes}")
    if size is None or size > segment_bytes:
        raise PayloadError(f"payload {key}: its reference says {size} bytes in a segment of {segment_bytes}")
    return size


def _hold_segment(fd: int, st: os.stat_result, key: str, path: str) -> None:
    """Takes the shared lock of a pool segment (held until ``fd`` closes) and checks the key still
    names it: released meanwhile, the segment may already hold another payload."""
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        raise _gone(key, path) from None
    try:
        now = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        raise _gone(key, path) from None
    if (now.st_ino, now.st_dev) != (st.st_ino, st.st_dev):
        raise _gone(key, path)


def _read_into(fd: int, key: str, size: int, target: memoryview) -> memoryview:
    if len(target) < size:
        raise PayloadError(f"payload {key} has {size} bytes, the buffer to read it into only {len(target)}")
    off = 0
    while off < size:
        n = os.preadv(fd, [target[off:size]], off)
        if n == 0:
            raise PayloadError(f"payload {key} ended after {off} of {size} bytes")
        off += n
    return target[:size]


def decode_inline(ref: PayloadRef) -> memoryview:
    """The bytes of an inline reference."""
    try:
        return memoryview(base64.b64decode(ref.get("data_base64", ""), validate=True))
    except ValueError as err:
        raise PayloadError(f"inline payload {ref.get('key')} has invalid base64: {err}") from err


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
