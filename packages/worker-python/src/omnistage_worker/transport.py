"""How a worker reaches its orchestrator: the endpoint forms of the Node SDK.

``OMNISTAGE_CONTROL`` is a Unix socket path, or ``tcp://HOST:PORT`` for a head on another host
(docs/scale-out.md); with ``OMNISTAGE_TLS_CERT``, ``OMNISTAGE_TLS_KEY`` and ``OMNISTAGE_TLS_CA`` set,
that TCP connection is mutual TLS (at least 1.2): this replica presents its certificate and checks
the head's against the CA and the address it dialled.

A TLS connection reaches the rest of the SDK as one end of a socket pair, whose other end a pump
thread copies to and from the TLS socket: an OpenSSL connection must not be used from two threads
at once, and the SDK reads on one thread while request threads send.
"""

from __future__ import annotations

import os
import re
import select
import socket
import ssl
import threading
from typing import Mapping, Optional, Tuple

from .protocol import ENV_HOST_ADDRESS, ENV_TLS_CA, ENV_TLS_CERT, ENV_TLS_KEY, ProtocolError

_TCP = re.compile(r"^tcp://\[?([^\]]+?)\]?:(\d+)$")
_TLS_HINT = "the agent passes the paths of its --tls-cert, --tls-key and --tls-ca files; check they exist on this host"


class TlsPump:
    """Copies bytes between a non-blocking TLS socket and one end of a socket pair, on one thread.

    ``local`` is the other end, a plain socket. ``error`` says why the TLS side failed, if it did.
    """

    def __init__(self, tls: ssl.SSLSocket) -> None:
        self.local, self._inner = socket.socketpair()
        self.error: Optional[str] = None
        self._tls = tls
        tls.setblocking(False)
        threading.Thread(target=self._run, name="omnistage-tls", daemon=True).start()

    def _run(self) -> None:
        tls, inner = self._tls, self._inner
        out = b""
        try:
            while True:
                if tls.pending() > 0:
                    readable, writable = [tls], []
                else:
                    # While bytes wait for the TLS side, stop reading the SDK's: backpressure.
                    readable, writable, _ = select.select([tls] if out else [tls, inner], [tls] if out else [], [])
                if tls in readable and not self._from_tls():
                    return
                if inner in readable:
                    data = inner.recv(1 << 16)
                    if not data:
                        return
                    out += data
                if out:
                    out = out[self._send(out):]
        except (OSError, ValueError) as err:
            self.error = str(err)
        finally:
            for s in (inner, tls):
                try:
                    s.close()
                except OSError:
                    pass

    def _from_tls(self) -> bool:
        try:
            data = self._tls.recv(1 << 16)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return True  # a partial record, or a renegotiation step: wait for more
        if not data:
            return False
        self._inner.sendall(data)
        return True

    def _send(self, data: bytes) -> int:
        try:
            return self._tls.send(data)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return 0


def _tls_files(env: Mapping[str, str]) -> Optional[Tuple[str, str, str]]:
    names = (ENV_TLS_CERT, ENV_TLS_KEY, ENV_TLS_CA)
    given = [name for name in names if env.get(name)]
    if not given:
        return None
    if len(given) < len(names):
        raise ProtocolError(f"{', '.join(names)} go together; only {', '.join(given)} is set",
                            "the agent sets all three from its --tls-cert, --tls-key and --tls-ca")
    for name in names:
        if not os.access(env[name], os.R_OK):
            raise ProtocolError(f"cannot read {name}={env[name]}", _TLS_HINT)
    return env[ENV_TLS_CERT], env[ENV_TLS_KEY], env[ENV_TLS_CA]


def _tls_context(cert: str, key: str, ca: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies the head's certificate and name
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_verify_locations(cafile=ca)
    except (OSError, ssl.SSLError) as err:
        raise ProtocolError(f"{ENV_TLS_CA}={ca} is not a PEM CA certificate ({err})", _TLS_HINT) from None
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as err:
        raise ProtocolError(f"{ENV_TLS_CERT}={cert} and {ENV_TLS_KEY}={key} are not a PEM certificate and its key ({err})", _TLS_HINT) from None
    return context


def dial(endpoint: str, env: Mapping[str, str], timeout: float) -> Tuple[socket.socket, Optional[TlsPump]]:
    """Connects to ``endpoint``; returns the socket to speak the protocol on, and the TLS pump behind
    it (None for plain sockets). Raises :class:`ProtocolError` saying what failed."""
    tcp = _TCP.match(endpoint)
    if tcp is None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(endpoint)
        except OSError as err:
            sock.close()
            raise ProtocolError(f"cannot reach the orchestrator at {endpoint}: {err.strerror or err}") from None
        return sock, None
    host, port = tcp.group(1), int(tcp.group(2))
    files = _tls_files(env)
    context = None if files is None else _tls_context(*files)
    try:
        # An agent's --advertise: the connection leaves from the host's address, so the head sees which host dialled.
        source = env.get(ENV_HOST_ADDRESS) or None
        sock = socket.create_connection((host, port), timeout=timeout, source_address=None if source is None else (source, 0))
    except OSError as err:
        raise ProtocolError(f"cannot reach the orchestrator at {endpoint}: {err.strerror or err}") from None
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if context is None:
        return sock, None
    try:
        tls = context.wrap_socket(sock, server_hostname=host)
    except (OSError, ssl.SSLError) as err:
        sock.close()
        raise ProtocolError(f"the TLS handshake with the orchestrator at {endpoint} failed: {err}",
                            "the head's certificate must be signed by OMNISTAGE_TLS_CA and name the address dialled") from None
    pump = TlsPump(tls)
    return pump.local, pump
