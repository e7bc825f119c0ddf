"""The worker side of the control protocol: attach to the orchestrator, serve requests, exit with it.

The same rules as the Node SDK (``@omnistage/core/worker``, docs/protocol.md "Worker behaviour"):
hello with the per-replica token, wait for the welcome (or an ``error``), ``ready`` once the engine
is loaded, requests streamed as ``output`` chunks, ``abort`` silences a request, and the process
exits 0 (after the shutdown handlers, bounded) on ``shutdown``, when the control connection closes
or when a piped stdin reaches EOF, so a replica never outlives its orchestrator.

Each request runs on its own thread; sends are serialised on one lock.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import socket
import stat
import sys
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Union

from . import payloads, transport
from .payloads import BytesLike, OutputConnector, PayloadError, PayloadRef, PayloadStore
from .inputs import InputChunks
from .protocol import (
    ENV_CONTROL,
    ENV_REPLICA_ID,
    ENV_STAGE_ID,
    ENV_TOKEN,
    PHASES_VERSION,
    PROTOCOL_VERSION,
    JsonObject,
    LineDecoder,
    ProtocolError,
    encode_message,
    parse_orchestrator_message,
)


@dataclass(frozen=True)
class Request:
    """One request routed to this replica: its id, its input (any JSON; for a streamed input its
    first chunk), its params, whether the input streams, and ``inputs``: every chunk as it arrives
    (``for chunk in request.inputs`` or ``async for``; an ordinary request yields its one input)."""

    request_id: str
    input: Any
    params: JsonObject
    streamed: bool = False
    inputs: Optional[InputChunks] = field(default=None, compare=False, repr=False)


class RequestStream:
    """Where a handler sends a request's results. After ``end``, ``error`` or an abort, sends are
    dropped (the orchestrator has forgotten the request)."""

    def __init__(self, request_id: str, send: Callable[[JsonObject], bool], finished: Callable[["RequestStream"], None],
                 output_window: Optional[int] = None) -> None:
        self.request_id = request_id
        self._send = send
        self._finished = finished
        self._seq = 0
        self._done = False
        self._lock = threading.Lock()
        self._aborted = threading.Event()
        self.abort_reason: Optional[str] = None
        # Flow control (docs/protocol.md): outputs beyond the granted credits wait here.
        self._credits: float = float("inf") if output_window is None else output_window
        self._held: List[JsonObject] = []
        self._room = threading.Condition(self._lock)

    @property
    def aborted(self) -> bool:
        """True once the orchestrator sent ``abort`` for this request or the worker shuts down."""
        return self._aborted.is_set()

    @property
    def open(self) -> bool:
        """True while results may still be sent."""
        return not self._done and not self._aborted.is_set()

    def wait_aborted(self, timeout: Optional[float] = None) -> bool:
        """Blocks until the request is aborted (True) or ``timeout`` seconds passed (False)."""
        return self._aborted.wait(timeout)

    def write(self, data: Any) -> bool:
        """Sends one partial result (or holds it until the orchestrator grants credit); returns False
        once the request is finished or aborted."""
        with self._lock:
            if not self.open:
                return False
            seq, self._seq = self._seq, self._seq + 1
            message = {"type": "output", "request_id": self.request_id, "seq": seq, "data": data, "done": False}
            if self._held or self._credits <= 0:
                self._held.append(message)
                return True
            self._credits -= 1
            return self._send(message)

    def drained(self, timeout: Optional[float] = None) -> bool:
        """Blocks until the orchestrator has room for more output (flow control: a slow consumer
        downstream holds this request back), the request ended, or ``timeout`` passed (False)."""
        with self._room:
            return self._room.wait_for(
                lambda: (not self._held and self._credits > 0) or self._aborted.is_set() or self._done, timeout)

    def end(self, data: Any = None) -> None:
        """Sends the last result (default null), after any output still held for credit, and
        finishes the request."""
        with self._lock:
            if not self.open:
                return
            self._done = True
            message = {"type": "output", "request_id": self.request_id, "seq": self._seq, "data": data, "done": True}
            if self._held:
                self._held.append(message)
                self._room.notify_all()
                return
            self._send(message)
        self._finished(self)

    def _grant(self, n: int) -> None:
        last_sent = False
        with self._lock:
            self._credits += n
            while self._held:
                head = self._held[0]
                counted = not head["done"]
                if counted and self._credits <= 0:
                    break
                if counted:
                    self._credits -= 1
                self._held.pop(0)
                self._send(head)
                last_sent = not counted
            self._room.notify_all()
        if last_sent:
            self._finished(self)

    def error(self, message: str) -> None:
        """Fails the request with a message; nothing more is sent for it."""
        with self._lock:
            if not self.open:
                return
            self._done = True
            self._send({"type": "request_error", "request_id": self.request_id, "message": str(message)})
        self._finished(self)

    def _abort(self, reason: str) -> None:
        with self._lock:
            if self.abort_reason is None:
                self.abort_reason = reason
            self._aborted.set()
            self._held.clear()
            self._room.notify_all()


#: ``handler(request, stream)``. Its return value ends the request unless it already ended; a
#: generator's items are sent as partial results (its ``return`` value is the last), a coroutine
#: is run to completion; what it raises fails the request.
RequestHandler = Callable[[Request, RequestStream], Any]
ShutdownHandler = Callable[[str], Any]


class _Window:
    """The context manager :meth:`Connection.exclusive` returns: the window opens on enter."""

    def __init__(self, conn: "Connection") -> None:
        self._conn = conn
        self._id: Optional[int] = None

    def __enter__(self) -> "_Window":
        self._id = self._conn._open_window()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._conn._close_window(self._id)


def _worker_error(message: str, hint: str = "see docs/protocol.md") -> ProtocolError:
    return ProtocolError(message, hint)


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name)
    if not value:
        raise _worker_error(
            f"{name} is not set",
            "this program is an omnistage worker: start it through omnistage, which sets the OMNISTAGE_* variables",
        )
    return value


def _required_int(env: Mapping[str, str], name: str) -> int:
    text = _required(env, name)
    try:
        return int(text, 10)
    except ValueError:
        raise _worker_error(f"{name} is not an integer: {json.dumps(text)}") from None


def connect(
    env: Optional[Mapping[str, str]] = None,
    *,
    exit_process: bool = True,
    shutdown_timeout: float = 5.0,
    watch_stdin: bool = True,
    heartbeat_s: float = 0.0,
    handshake_timeout: float = 30.0,
    phases: bool = False,
) -> "Connection":
    """Dials the orchestrator named in the environment (``OMNISTAGE_CONTROL``: a Unix socket path or
    ``tcp://HOST:PORT``, mutual TLS with ``OMNISTAGE_TLS_CERT``/``_KEY``/``_CA``; ``OMNISTAGE_TOKEN``,
    ``OMNISTAGE_STAGE_ID``, ``OMNISTAGE_REPLICA_ID``), says hello and returns the attached
    connection once the welcome came. Raises :class:`ProtocolError` when the orchestrator cannot
    be reached, refuses this worker (``error``), or answers with anything but a valid welcome.

    From then on the process exits with code 0 (``exit_process``) when the connection closes, on
    ``shutdown`` (after the shutdown handlers, at most ``shutdown_timeout`` seconds) or when a
    piped stdin reaches EOF (``watch_stdin``). ``heartbeat_s`` > 0 sends a heartbeat that often (default: as often as the welcome asks).
    ``phases`` declares init phases in hello (docs/protocol.md "Init phases"): the worker loads with
    its devices shared and wraps what must run alone in :meth:`Connection.exclusive`.
    """
    env = os.environ if env is None else env
    path = _required(env, ENV_CONTROL)
    token = _required(env, ENV_TOKEN)
    stage_id = _required_int(env, ENV_STAGE_ID)
    replica_id = _required_int(env, ENV_REPLICA_ID)
    sock, pump = transport.dial(path, env, handshake_timeout)
    try:
        sock.settimeout(handshake_timeout)
        hello = {"type": "hello", "v": PROTOCOL_VERSION, "token": token, "stage_id": stage_id, "replica_id": replica_id, "pid": os.getpid()}
        if phases:
            hello["phases"] = PHASES_VERSION
        sock.sendall(encode_message(hello))
        decoder = LineDecoder()
        welcome, rest = _await_welcome(sock, decoder, handshake_timeout)
        sock.settimeout(None)
    except (ProtocolError, OSError) as err:
        sock.close()
        if pump is not None and pump.error is not None:
            # The head refused this replica's certificate after the handshake (TLS 1.3): say so.
            raise ProtocolError(f"the orchestrator refused this worker's TLS connection: {pump.error}",
                                "the head must trust the CA that signed OMNISTAGE_TLS_CERT") from None
        if isinstance(err, ProtocolError):
            raise
        raise _worker_error(f"the control connection failed during the handshake: {err}") from None
    except BaseException:
        sock.close()
        raise
    return Connection(sock, decoder, welcome, rest, exit_process=exit_process, shutdown_timeout=shutdown_timeout,
                      watch_stdin=watch_stdin, heartbeat_s=heartbeat_s)


def _await_welcome(sock: socket.socket, decoder: LineDecoder, timeout: float) -> "tuple[JsonObject, List[str]]":
    while True:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            raise _worker_error(f"no welcome from the orchestrator within {timeout:g} s") from None
        except OSError as err:
            raise _worker_error(f"the control connection failed during the handshake: {err}") from None
        if not chunk:
            raise _worker_error("the orchestrator closed the connection during the handshake")
        lines = decoder.push(chunk)
        if not lines:
            continue
        message = parse_orchestrator_message(lines[0])
        if message["type"] == "error":
            raise ProtocolError(f"the orchestrator rejected this worker: {message['code']}: {message['message']}", "see docs/protocol.md")
        if message["type"] != "welcome":
            raise _worker_error(f'expected welcome, got "{message["type"]}"')
        if message["v"] != PROTOCOL_VERSION:
            raise _worker_error(f"orchestrator speaks protocol v{message['v']}, this worker v{PROTOCOL_VERSION}")
        # Lines pipelined right after the welcome (a request) are kept for the connection.
        return message, lines[1:]


class Connection:
    """A worker's attached control connection (use :func:`connect`)."""

    def __init__(self, sock: socket.socket, decoder: LineDecoder, welcome: JsonObject, pending: List[str], *,
                 exit_process: bool, shutdown_timeout: float, watch_stdin: bool, heartbeat_s: float) -> None:
        self.welcome: JsonObject = {k: welcome[k] for k in ("run_id", "stage_id", "replica_id", "engine_args", "metadata")}
        if isinstance(welcome.get("payload_dir"), str) and welcome["payload_dir"]:
            self.welcome["payload_dir"] = welcome["payload_dir"]
        if isinstance(welcome.get("connectors"), dict):
            self.welcome["connectors"] = dict(welcome["connectors"])
        if isinstance(welcome.get("phases"), int):
            self.welcome["phases"] = welcome["phases"]
        plane = welcome.get("payload_plane")
        if isinstance(plane, dict) and isinstance(plane.get("host_id"), str) and isinstance(plane.get("url"), str):
            self.welcome["payload_plane"] = dict(plane)
        self._windows = 0
        self._window: Optional[Dict[str, Any]] = None
        self.output_connector: OutputConnector = payloads.output_connector_of(self.engine_args, self.welcome.get("connectors", {}).keys())
        self._store = PayloadStore(self.welcome["run_id"], self.welcome["stage_id"], self.welcome["replica_id"], self.welcome.get("payload_dir"))
        self._sock = sock
        self._decoder = decoder
        self._exit_process = exit_process
        self._shutdown_timeout = shutdown_timeout
        self._send_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._inflight: Dict[str, RequestStream] = {}
        #: Requests until they end: where their input chunks go (``input``/``input_end``).
        self._requests: Dict[str, Request] = {}
        self._output_windows: Dict[str, Optional[int]] = {}
        self._queued: List[Request] = []
        self._handler: Optional[RequestHandler] = None
        self._shutdown_handlers: List[ShutdownHandler] = []
        self._ready_sent = False
        self._terminating = False
        self._closed = threading.Event()
        for line in pending:
            self._on_line(line)
        threading.Thread(target=self._read_loop, name="omnistage-control", daemon=True).start()
        if watch_stdin:
            _watch_stdin_eof(lambda: self._terminate("stdin closed"))
        if heartbeat_s <= 0 and isinstance(welcome.get("heartbeat_ms"), (int, float)):
            heartbeat_s = welcome["heartbeat_ms"] / 1000.0  # what the orchestrator asks for
        if heartbeat_s > 0:
            threading.Thread(target=self._heartbeat_loop, args=(heartbeat_s,), name="omnistage-heartbeat", daemon=True).start()

    # ---- what the orchestrator said ------------------------------------------------------------

    @property
    def engine_args(self) -> JsonObject:
        """The stage's engine args, after every plugin's ``buildArgs`` (from the welcome)."""
        return self.welcome["engine_args"]

    @property
    def metadata(self) -> JsonObject:
        """The replica's stage metadata (``stage_type``, ``engine_output_type``, ... from the welcome)."""
        return self.welcome["metadata"]

    # ---- lifecycle -------------------------------------------------------------------------------

    def ready(self, info: Optional[JsonObject] = None) -> None:
        """Tells the orchestrator the engine is loaded and requests may come. Once; later calls do nothing."""
        if self._ready_sent:
            return
        if info is not None and not isinstance(info, dict):
            raise TypeError("ready(info): info must be a dict (a JSON object)")
        self._ready_sent = True
        self._send({"type": "ready"} if info is None else {"type": "ready", "info": info})

    def exclusive(self, fn: Optional[Callable[[], Any]] = None) -> Any:
        """Runs init work with this replica's devices alone (docs/protocol.md "Init phases").

        ``conn.exclusive(profile)`` calls ``profile()`` inside the window and returns its result;
        ``with conn.exclusive(): profile()`` does the same as a context manager. Needs
        ``connect(phases=True)``; when the orchestrator did not grant phases (an older one), the whole
        init is exclusive already and nothing is asked. One window at a time, before :meth:`ready`.
        Raises :class:`ProtocolError` if the orchestrator refuses or the connection ends meanwhile.
        """
        window = _Window(self)
        if fn is None:
            return window
        with window:
            return fn()

    def _open_window(self) -> Optional[int]:
        if "phases" not in self.welcome:
            return None
        if self._ready_sent:
            raise _worker_error("exclusive() is for init: it was called after ready()")
        with self._state_lock:
            if self._window is not None:
                raise _worker_error(f"exclusive() while window {self._window['id']} is open: one window at a time")
            self._windows += 1
            window: Dict[str, Any] = {"id": self._windows, "event": threading.Event(), "error": None}
            self._window = window
        if not self._send({"type": "window_request", "window": window["id"]}):
            window["error"] = "the control connection is closed"
        else:
            window["event"].wait()
        if window["error"] is not None:
            with self._state_lock:
                self._window = None
            raise _worker_error(f"no init window: {window['error']}")
        return int(window["id"])

    def _close_window(self, window_id: Optional[int]) -> None:
        if window_id is None:
            return
        with self._state_lock:
            self._window = None
        self._send({"type": "window_end", "window": window_id})

    def _refuse_window(self, reason: str) -> None:
        with self._state_lock:
            window = self._window
        if window is not None and not window["event"].is_set():
            window["error"] = reason
            window["event"].set()

    def on_request(self, handler: RequestHandler) -> None:
        """Sets the request handler; requests that arrived earlier are delivered now."""
        with self._state_lock:
            self._handler = handler
            queued, self._queued = self._queued, []
        for request in queued:
            self._dispatch(request)

    def on_shutdown(self, fn: ShutdownHandler) -> None:
        """Runs ``fn(reason)`` before the worker exits (shutdown, connection or stdin closed)."""
        self._shutdown_handlers.append(fn)

    def log(self, level: str, message: str) -> None:
        """Sends a structured log line (``debug``, ``info``, ``warn`` or ``error``) to the orchestrator."""
        if level not in ("debug", "info", "warn", "error"):
            raise ValueError(f"log level must be debug, info, warn or error, got {level!r}")
        self._send({"type": "log", "level": level, "message": str(message)})

    def close(self) -> None:
        """Closes the connection; like any close, this runs the shutdown handlers and (by default) exits 0."""
        self._terminate("closed by the worker")

    def wait_closed(self, timeout: Optional[float] = None) -> bool:
        """Blocks until the connection is gone and the shutdown handlers ran (True), or ``timeout``."""
        # Short waits keep the main thread responsive to signals (KeyboardInterrupt, SIGTERM).
        if timeout is not None:
            return self._closed.wait(timeout)
        while not self._closed.wait(0.5):
            pass
        return True

    @property
    def closed(self) -> bool:
        """True once the connection is gone and the shutdown handlers ran."""
        return self._closed.is_set()

    # ---- payloads ----------------------------------------------------------------------------------

    def put_payload(self, data: BytesLike, *, dtype: Optional[str] = None, shape: Optional[List[int]] = None,
                    mime: Optional[str] = None) -> PayloadRef:
        """Stores an output payload through the stage's connector and returns the reference to put in
        the output: inline at or below the threshold, else written once to a shared-memory file the
        consumers read by key (only the reference crosses the socket). ``data`` may be reused after."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError("put_payload needs bytes, a bytearray or a memoryview (e.g. memoryview(array))")
        size = memoryview(data).nbytes
        meta = payloads.meta_of(dtype, shape, mime)
        connector = self.output_connector
        if connector.plugin:
            raise PayloadError(
                f'this stage sends over connector "{connector.type}", a class a JavaScript plugin defines; '
                "the Python worker SDK implements SharedMemoryConnector and InlineConnector only"
            )
        if size <= connector.shm_threshold_bytes:
            return payloads.inline_payload_ref(data, meta)
        key = self._store.next_key()
        self._store.write(key, data)
        ref: PayloadRef = {payloads.PAYLOAD_MARK: 1, "key": key, "size": size, "via": "shm", **meta}
        plane = self.welcome.get("payload_plane")
        if plane is not None:
            # Head mode: consumers on other hosts fetch it from this host's payload server.
            ref["origin"] = {"host_id": plane["host_id"], "url": plane["url"]}
        return ref

    def get_payload(self, ref: PayloadRef, into: Optional[Union[bytearray, memoryview]] = None) -> memoryview:
        """The bytes of a payload this replica received: inline ones decoded, ``shm`` ones mapped
        read-only from their file by key (valid after the file is deleted), or copied into ``into``
        (a staging buffer of at least ``ref["size"]`` bytes; the result is a view of it)."""
        if not payloads.is_payload_ref(ref):
            raise PayloadError('get_payload needs a payload reference ({"$payload": 1, "key", "size", "via", ...})')
        if ref["via"] == "inline":
            return payloads.decode_inline(ref)
        if ref["via"] == "shm":
            origin, plane = ref.get("origin"), self.welcome.get("payload_plane")
            if isinstance(origin, dict) and plane is not None and origin.get("host_id") != plane["host_id"]:
                raise PayloadError(
                    f'payload {ref["key"]} is stored on host {origin.get("host_id")!r}, and the Python worker SDK '
                    "cannot fetch payloads from other hosts yet: serve this stage on its producer's host "
                    "(docs/scale-out.md, \"Payloads across hosts\")"
                )
            segment = ref.get("segment_bytes")
            return self._store.read(ref["key"], size=ref["size"], into=into, segment_bytes=segment if isinstance(segment, int) else None)
        raise PayloadError(
            f'payload {ref["key"]} came through connector "{ref["via"]}", which the Python worker SDK cannot read '
            "(it implements shm and inline payloads only)"
        )

    def ack_payload(self, ref: Union[PayloadRef, str]) -> None:
        """Tells the orchestrator this replica is done with a payload it received (``payload_ack``), so
        its file can be deleted once every consumer is. Nothing for inline payloads."""
        if isinstance(ref, str):
            self._send({"type": "payload_ack", "key": ref})
        elif payloads.is_payload_ref(ref) and ref["via"] != "inline":
            self._send({"type": "payload_ack", "key": ref["key"]})

    # ---- internals ---------------------------------------------------------------------------------

    def _send(self, message: JsonObject) -> bool:
        data = encode_message(message)
        with self._send_lock:
            if self._terminating:
                return False
            try:
                self._sock.sendall(data)
                return True
            except OSError:
                return False

    def _read_loop(self) -> None:
        while True:
            try:
                chunk = self._sock.recv(1 << 20)
            except OSError:
                chunk = b""
            if not chunk:
                self._terminate("the control connection closed")
                return
            try:
                lines = self._decoder.push(chunk)
            except ProtocolError as err:
                self._fatal(err)
                return
            for line in lines:
                if not self._on_line(line):
                    return

    def _on_line(self, line: str) -> bool:
        if self._terminating:
            return False
        try:
            message = parse_orchestrator_message(line)
        except ProtocolError as err:
            self._fatal(err)
            return False
        kind = message["type"]
        if kind == "request":
            request = self._request_of(message)
            with self._state_lock:
                if self._handler is None:
                    self._queued.append(request)
                    return True
            self._dispatch(request)
        elif kind in ("input", "input_end", "credit"):
            self._on_stream_message(message)
        elif kind == "abort":
            with self._state_lock:
                stream = self._inflight.pop(message["request_id"], None)
                request = self._requests.pop(message["request_id"], None)
            if stream is not None:
                stream._abort("aborted by the orchestrator")
            if request is not None and request.inputs is not None:
                request.inputs._fail("aborted by the orchestrator")
        elif kind == "shutdown":
            self._terminate(message.get("reason") or "shutdown requested by the orchestrator")
            return False
        elif kind == "window_granted":
            with self._state_lock:
                window = self._window
            if window is not None and window["id"] == message["window"]:
                window["event"].set()
        elif kind == "error":
            self._refuse_window(f"the orchestrator refused it: {message['code']}: {message['message']}")
            sys.stderr.write(f"omnistage worker: orchestrator error {message['code']}: {message['message']}\n")
        else:  # a second welcome
            self._fatal(ProtocolError("unexpected second welcome"))
            return False
        return True

    def _request_of(self, message: JsonObject) -> Request:
        rid = message["request_id"]
        streamed = message.get("streamed") is True
        ack = (lambda seq: self._send({"type": "input_ack", "request_id": rid, "seq": seq})) if streamed else None
        inputs = InputChunks(message["input"], ack, message.get("input_window", 1))
        request = Request(rid, message["input"], message["params"], streamed, inputs)
        with self._state_lock:
            self._requests[rid] = request
            self._output_windows[rid] = message.get("output_window")
        return request

    def _on_stream_message(self, message: JsonObject) -> None:
        rid = message["request_id"]
        with self._state_lock:
            request = self._requests.get(rid)
            stream = self._inflight.get(rid)
        if message["type"] == "credit":
            if stream is not None:
                stream._grant(message["n"])
        elif request is not None and request.inputs is not None:
            if message["type"] == "input":
                request.inputs._push(message["data"])
            else:
                request.inputs._end()

    def _dispatch(self, request: Request) -> None:
        rid = request.request_id

        def finished(s: RequestStream) -> None:
            with self._state_lock:
                if self._inflight.get(rid) is s:
                    del self._inflight[rid]
                    self._requests.pop(rid, None)

        with self._state_lock:
            window = self._output_windows.pop(rid, None)
        stream = RequestStream(rid, self._send, finished, window)
        with self._state_lock:
            duplicate = rid in self._inflight
            if not duplicate:
                self._inflight[rid] = stream
            handler = self._handler
        if duplicate:
            self._send({"type": "request_error", "request_id": rid, "message": f"request {rid} is already in flight"})
            return
        assert handler is not None
        threading.Thread(target=_serve, args=(handler, request, stream), name=f"omnistage-request-{rid}", daemon=True).start()

    def _heartbeat_loop(self, every: float) -> None:
        # One at once: from its first heartbeat on the orchestrator holds this replica to the interval.
        self._send({"type": "heartbeat"})
        while not self._closed.wait(every):
            self._send({"type": "heartbeat"})

    def _fatal(self, err: BaseException) -> None:
        sys.stderr.write(f"omnistage worker: control protocol error: {err}\n")
        self._terminate("control protocol error")

    def _terminate(self, reason: str) -> None:
        """Aborts in-flight requests, runs the shutdown handlers (bounded), closes, exits 0. Once."""
        with self._state_lock:
            if self._terminating:
                return
            streams = list(self._inflight.values())
            self._inflight.clear()
            requests = list(self._requests.values())
            self._requests.clear()
        with self._send_lock:
            self._terminating = True
        self._refuse_window(reason)
        try:
            for stream in streams:
                stream._abort(reason)
            for request in requests:
                if request.inputs is not None:
                    request.inputs._fail(reason)
            handlers = threading.Thread(target=_run_shutdown_handlers, args=(list(self._shutdown_handlers), reason),
                                        name="omnistage-shutdown", daemon=True)
            handlers.start()
            handlers.join(self._shutdown_timeout)
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._sock.close()
        finally:
            self._closed.set()
            if self._exit_process:
                _exit_now(0)


def _serve(handler: RequestHandler, request: Request, stream: RequestStream) -> None:
    try:
        result = handler(request, stream)
        if inspect.iscoroutine(result):
            result = asyncio.run(result)
        if inspect.isgenerator(result):
            result = _drain(result, stream)
        stream.end(result)
    except BaseException as err:  # noqa: BLE001 - whatever the engine raises fails its request
        stream.error(str(err) or type(err).__name__)


def _drain(gen: Any, stream: RequestStream) -> Any:
    """Sends a generator's items as partial results; stops it (``GeneratorExit``) on abort."""
    try:
        while True:
            if not stream.open:
                gen.close()
                return None
            stream.write(next(gen))
    except StopIteration as stop:
        return stop.value


def _run_shutdown_handlers(handlers: List[ShutdownHandler], reason: str) -> None:
    for fn in handlers:
        try:
            result = fn(reason)
            if inspect.iscoroutine(result):
                asyncio.run(result)
        except BaseException as err:  # noqa: BLE001 - one failing handler must not stop the others
            sys.stderr.write(f"omnistage worker: a shutdown handler failed: {err}\n")


def _exit_now(code: int) -> None:
    # Engine threads may be blocked in native code: exit without waiting for them.
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001
            pass
    os._exit(code)


def _watch_stdin_eof(on_eof: Callable[[], None]) -> None:
    """Calls ``on_eof`` when a piped stdin ends (the orchestrator holds the other end). TTYs and
    files are not watched."""
    try:
        mode = os.fstat(0).st_mode
    except OSError:
        return
    if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)):
        return

    def watch() -> None:
        while True:
            try:
                if not os.read(0, 65536):
                    break
            except InterruptedError:
                continue
            except OSError:
                break
        on_eof()

    threading.Thread(target=watch, name="omnistage-stdin", daemon=True).start()
