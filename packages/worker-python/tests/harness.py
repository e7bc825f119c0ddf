"""A strict stand-in orchestrator for the conformance tests: a real Unix socket, a real worker
process (``python -m omnistage_worker ENTRY``) with a piped stdin, and every line the worker
sends parsed and checked against docs/protocol.md's worker messages."""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(os.path.dirname(HERE), "src")
FIXTURES = os.path.join(HERE, "fixtures")
TOKEN = "test-token-0123456789"

_WORKER_FIELDS: Dict[str, Callable[[Dict[str, Any]], bool]] = {
    "hello": lambda m: all(isinstance(m.get(k), int) for k in ("v", "stage_id", "replica_id", "pid")) and isinstance(m.get("token"), str),
    "ready": lambda m: m.get("info") is None or isinstance(m["info"], dict),
    "heartbeat": lambda m: True,
    "output": lambda m: isinstance(m.get("request_id"), str) and isinstance(m.get("seq"), int) and "data" in m and isinstance(m.get("done"), bool),
    "request_error": lambda m: isinstance(m.get("request_id"), str) and isinstance(m.get("message"), str),
    "log": lambda m: m.get("level") in ("debug", "info", "warn", "error") and isinstance(m.get("message"), str),
    "payload_ack": lambda m: isinstance(m.get("key"), str),
    "input_ack": lambda m: isinstance(m.get("request_id"), str) and isinstance(m.get("seq"), int),
    "window_request": lambda m: isinstance(m.get("window"), int),
    "window_end": lambda m: isinstance(m.get("window"), int),
}


def welcome(**overrides: Any) -> Dict[str, Any]:
    """A valid welcome for stage 0 replica 0 of run ``r1``, with ``overrides``."""
    msg: Dict[str, Any] = {"type": "welcome", "v": 1, "run_id": "r1", "stage_id": 0, "replica_id": 0,
                           "engine_args": {"k": 1}, "metadata": {"stage_type": "llm"}}
    msg.update(overrides)
    return msg


def is_alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie counts as dead: PID 1 here may not reap orphans)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


def wait_until(pred: Callable[[], bool], timeout: float = 20.0) -> bool:
    """Polls ``pred`` until true (True) or ``timeout`` seconds (False)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.01)
    return pred()


class Orchestrator:
    """Listens on a socket in a fresh temp dir (or, ``tcp``, on 127.0.0.1 as a head does; ``tls``:
    each accepted connection is wrapped server-side); :meth:`start` runs a worker against it."""

    def __init__(self, tcp: bool = False, tls: Optional[ssl.SSLContext] = None) -> None:
        self.dir = tempfile.mkdtemp(prefix="omnistage-pytest-")
        self.tls = tls
        if tcp:
            self.server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.server.bind(("127.0.0.1", 0))
            self.path = f"tcp://127.0.0.1:{self.server.getsockname()[1]}"
        else:
            self.path = os.path.join(self.dir, "control.sock")
            self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.server.bind(self.path)
        self.server.listen(4)
        self.server.settimeout(20)
        self.proc: Optional[subprocess.Popen] = None
        self.conn: Optional[socket.socket] = None
        self.messages: List[Dict[str, Any]] = []
        self._buf = b""

    def start(self, entry: Optional[str] = None, argv: Optional[List[str]] = None, env: Optional[Dict[str, str]] = None,
              drop_env: str = "") -> subprocess.Popen:
        full_env = dict(os.environ, PYTHONPATH=SRC, OMNISTAGE_CONTROL=self.path, OMNISTAGE_TOKEN=TOKEN,
                        OMNISTAGE_STAGE_ID="0", OMNISTAGE_REPLICA_ID="0", OMNISTAGE_RUN_ID="r1")
        full_env.update(env or {})
        full_env.pop("OMNISTAGE_PAYLOAD_DIR", None)
        if drop_env:
            full_env.pop(drop_env)
        cmd = argv if argv is not None else [sys.executable, "-m", "omnistage_worker", os.path.join(FIXTURES, entry or "echo_engine.py:Echo")]
        self.proc = subprocess.Popen(cmd, env=full_env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        return self.proc

    def accept(self) -> Dict[str, Any]:
        """Accepts the worker's connection; returns its hello (checked)."""
        self.conn, _ = self.server.accept()
        self.conn.settimeout(20)
        if self.tls is not None:
            self.conn = self.tls.wrap_socket(self.conn, server_side=True)
        hello = self.recv()
        assert hello["type"] == "hello", hello
        assert hello["v"] == 1 and hello["token"] == TOKEN and hello["stage_id"] == 0 and hello["replica_id"] == 0, hello
        assert self.proc is not None and hello["pid"] == self.proc.pid, (hello, self.proc.pid if self.proc else None)
        return hello

    def attach(self, **welcome_overrides: Any) -> Dict[str, Any]:
        """hello → welcome → ready; returns the ready message."""
        self.accept()
        self.send(welcome(**welcome_overrides))
        ready = self.recv()
        assert ready["type"] == "ready", ready
        return ready

    def send(self, message: Any) -> None:
        raw = message if isinstance(message, bytes) else (json.dumps(message) + "\n").encode()
        assert self.conn is not None
        self.conn.sendall(raw)

    def recv(self, timeout: float = 20.0) -> Dict[str, Any]:
        """The next worker message (parsed and validated); AssertionError on EOF or timeout."""
        assert self.conn is not None
        self.conn.settimeout(timeout)
        while b"\n" not in self._buf:
            chunk = self.conn.recv(1 << 20)
            assert chunk, "the worker closed the connection"
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        msg = json.loads(line)
        check = _WORKER_FIELDS.get(msg.get("type"))
        assert check is not None and check(msg), f"invalid worker message: {line!r}"
        self.messages.append(msg)
        return msg

    def recv_until(self, pred: Callable[[Dict[str, Any]], bool], timeout: float = 20.0) -> List[Dict[str, Any]]:
        """Messages up to and including the first matching ``pred``."""
        got: List[Dict[str, Any]] = []
        end = time.monotonic() + timeout
        while True:
            msg = self.recv(max(0.01, end - time.monotonic()))
            got.append(msg)
            if pred(msg):
                return got

    def request(self, rid: str, input: Any, params: Optional[Dict[str, Any]] = None) -> List[Dict[str, Any]]:
        """Sends a request; returns its messages up to the last output or its request_error."""
        self.send({"type": "request", "request_id": rid, "input": input, "params": params or {}})
        return self.recv_until(lambda m: m.get("request_id") == rid and (m["type"] == "request_error" or m.get("done") is True))

    def hang_up(self) -> None:
        """Closes the orchestrator's end of the control connection."""
        assert self.conn is not None
        self.conn.close()
        self.conn = None

    def at_eof(self, timeout: float = 20.0) -> bool:
        """True once the worker closed its end (after at most ``timeout`` s)."""
        assert self.conn is not None
        self.conn.settimeout(timeout)
        try:
            while True:
                chunk = self.conn.recv(65536)
                if not chunk:
                    return True
                self._buf += chunk
        except socket.timeout:
            return False

    def wait_exit(self, timeout: float = 20.0) -> "tuple[int, str, str]":
        """The worker's exit code, stdout and stderr (killed and failed after ``timeout``)."""
        assert self.proc is not None
        # Not communicate(): it would close the worker's stdin, which is itself an exit signal.
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"the worker did not exit within {timeout} s; stderr: {self.proc.stderr.read().decode()}") from None
        return self.proc.returncode, self.proc.stdout.read().decode(), self.proc.stderr.read().decode()

    def close(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
                if pipe is not None:
                    pipe.close()
        for s in (self.conn, self.server):
            if s is not None:
                s.close()
        shutil.rmtree(self.dir, ignore_errors=True)
