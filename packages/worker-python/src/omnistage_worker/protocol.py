"""The omnistage control protocol v1 as a worker sees it (docs/protocol.md).

One JSON object per line over a Unix socket (or TCP, optionally mutual TLS, to a head). This module only frames, parses and validates
messages; :mod:`omnistage_worker.connection` speaks them.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Dict, List, Optional

#: Bumped on any incompatible change; ``hello`` and ``welcome`` carry it.
PROTOCOL_VERSION = 1
#: The init-phases extension this SDK speaks (``phases`` in hello/welcome, the window messages).
PHASES_VERSION = 1

#: Environment variables through which the orchestrator tells a replica how to dial back.
ENV_CONTROL = "OMNISTAGE_CONTROL"
ENV_TOKEN = "OMNISTAGE_TOKEN"
ENV_STAGE_ID = "OMNISTAGE_STAGE_ID"
ENV_REPLICA_ID = "OMNISTAGE_REPLICA_ID"
ENV_RUN_ID = "OMNISTAGE_RUN_ID"
#: Mutual TLS to a head's TCP control port (docs/scale-out.md): paths of this replica's certificate,
#: its key, and the CA the head's certificate must be signed by. All three or none.
ENV_HOST_ADDRESS = "OMNISTAGE_HOST_ADDRESS"
ENV_TLS_CERT = "OMNISTAGE_TLS_CERT"
ENV_TLS_KEY = "OMNISTAGE_TLS_KEY"
ENV_TLS_CA = "OMNISTAGE_TLS_CA"

#: Longest line either side accepts (the orchestrator's default).
MAX_LINE_BYTES = 8 * 1024 * 1024

JsonObject = Dict[str, Any]


class ProtocolError(Exception):
    """A peer broke the control protocol, or the orchestrator refused this worker.

    ``code`` is the stable omnistage error code (``OMNI_PROTOCOL`` unless the orchestrator named
    another) and ``hint`` says what to do about it.
    """

    def __init__(self, message: str, hint: str = "see docs/protocol.md", code: str = "OMNI_PROTOCOL") -> None:
        super().__init__(message)
        self.code = code
        self.hint = hint


def _is_int(v: Any) -> bool:
    # bool is an int subclass in Python; JSON true is not an integer.
    return isinstance(v, int) and not isinstance(v, bool)


def _check_welcome(m: JsonObject) -> Optional[str]:
    for key in ("v", "stage_id", "replica_id"):
        if not _is_int(m.get(key)):
            return f"{key} must be an integer"
    if not isinstance(m.get("run_id"), str):
        return "run_id must be a string"
    for key in ("engine_args", "metadata"):
        if not isinstance(m.get(key), dict):
            return f"{key} must be an object"
    connectors = m.get("connectors")
    if connectors is not None:
        if not isinstance(connectors, dict):
            return "connectors must be an object"
        if not all(isinstance(v, str) for v in connectors.values()):
            return "connectors must map names to module URLs"
    if "payload_dir" in m and not isinstance(m["payload_dir"], str):
        return "payload_dir must be a string"
    return None


def _check_request(m: JsonObject) -> Optional[str]:
    if not isinstance(m.get("request_id"), str):
        return "request_id must be a string"
    if "input" not in m:
        return "input is required"
    if not isinstance(m.get("params"), dict):
        return "params must be an object"
    if "streamed" in m and not isinstance(m["streamed"], bool):
        return "streamed must be a boolean"
    for key in ("input_window", "output_window"):
        if key in m and not (_is_int(m[key]) and m[key] > 0):
            return f"{key} must be a positive integer"
    return None


def _check_input(m: JsonObject) -> Optional[str]:
    if not isinstance(m.get("request_id"), str):
        return "request_id must be a string"
    if not _is_int(m.get("seq")):
        return "seq must be an integer"
    return None if "data" in m else "data is required"


def _check_credit(m: JsonObject) -> Optional[str]:
    if not isinstance(m.get("request_id"), str):
        return "request_id must be a string"
    return None if _is_int(m.get("n")) and m["n"] > 0 else "n must be a positive integer"


def _check_strings(*keys: str) -> Callable[[JsonObject], Optional[str]]:
    def check(m: JsonObject) -> Optional[str]:
        for key in keys:
            if not isinstance(m.get(key), str):
                return f"{key} must be a string"
        return None

    return check


def _check_shutdown(m: JsonObject) -> Optional[str]:
    return None if m.get("reason") is None or isinstance(m.get("reason"), str) else "reason must be a string"


_ORCHESTRATOR_CHECKS: Dict[str, Callable[[JsonObject], Optional[str]]] = {
    "welcome": _check_welcome,
    "request": _check_request,
    "input": _check_input,
    "input_end": _check_strings("request_id"),
    "credit": _check_credit,
    "abort": _check_strings("request_id"),
    "shutdown": _check_shutdown,
    "error": _check_strings("code", "message"),
    "window_granted": lambda m: None if _is_int(m.get("window")) else "window must be an integer",
}


def _preview(line: str) -> str:
    return json.dumps(line if len(line) <= 80 else line[:80] + "…")


def parse_orchestrator_message(line: str) -> JsonObject:
    """Parses and validates one line the orchestrator sent; raises :class:`ProtocolError`."""
    try:
        value = json.loads(line)
    except ValueError:
        raise ProtocolError(f"an orchestrator message is not valid JSON: {_preview(line)}") from None
    if not isinstance(value, dict) or not isinstance(value.get("type"), str):
        raise ProtocolError(f'an orchestrator message has no "type": {_preview(line)}')
    check = _ORCHESTRATOR_CHECKS.get(value["type"])
    if check is None:
        raise ProtocolError(f'unknown orchestrator message type "{value["type"]}"')
    problem = check(value)
    if problem is not None:
        raise ProtocolError(f'invalid orchestrator "{value["type"]}" message: {problem}')
    return value


def encode_message(message: JsonObject) -> bytes:
    """One protocol line: compact JSON (non-ASCII kept as UTF-8) and a newline."""
    return (json.dumps(message, separators=(",", ":"), ensure_ascii=False) + "\n").encode("utf-8")


class LineDecoder:
    """Splits a byte stream into lines: ``\\n`` ends one, a trailing ``\\r`` is dropped, empty
    lines are skipped, and a line longer than ``max_bytes`` is a :class:`ProtocolError`."""

    def __init__(self, max_bytes: int = MAX_LINE_BYTES) -> None:
        self._buf = bytearray()
        self._max = max_bytes

    def push(self, chunk: bytes) -> List[str]:
        """Feeds bytes; returns the complete lines they finished."""
        self._buf += chunk
        lines: List[str] = []
        start = 0
        while True:
            end = self._buf.find(b"\n", start)
            if end < 0:
                break
            raw = bytes(self._buf[start:end])
            start = end + 1
            if len(raw) > self._max:
                raise ProtocolError(f"a control line of {len(raw)} bytes is longer than {self._max}")
            if raw.endswith(b"\r"):
                raw = raw[:-1]
            if raw:
                lines.append(raw.decode("utf-8"))
        del self._buf[:start]
        if len(self._buf) > self._max:
            raise ProtocolError(f"a control line is longer than {self._max} bytes")
        return lines
