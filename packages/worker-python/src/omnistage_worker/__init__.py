"""omnistage_worker: the Python SDK of omnistage's control protocol (docs/protocol.md).

A replica process started by omnistage attaches with :func:`connect` (or :func:`run_worker` for an
engine object), says ``ready``, serves requests as streamed outputs, moves tensors through the
stage's connector (:meth:`Connection.put_payload` / :meth:`Connection.get_payload`) and exits with
its orchestrator. Standard library only, Python 3.9 or later.
"""

from .connection import Connection, Request, RequestHandler, RequestStream, ShutdownHandler, connect
from .inputs import InputAborted, InputChunks
from .engine import EntryError, load_entry, run_worker, serve
from .payloads import (
    INLINE_CONNECTOR,
    SHM_CONNECTOR,
    OutputConnector,
    PayloadError,
    PayloadRef,
    find_payload_refs,
    is_payload_ref,
)
from .protocol import PROTOCOL_VERSION, ProtocolError

__all__ = [
    "Connection",
    "EntryError",
    "INLINE_CONNECTOR",
    "InputAborted",
    "InputChunks",
    "OutputConnector",
    "PROTOCOL_VERSION",
    "PayloadError",
    "PayloadRef",
    "ProtocolError",
    "Request",
    "RequestHandler",
    "RequestStream",
    "SHM_CONNECTOR",
    "ShutdownHandler",
    "connect",
    "find_payload_refs",
    "is_payload_ref",
    "load_entry",
    "run_worker",
    "serve",
]

__version__ = "0.1.0"
