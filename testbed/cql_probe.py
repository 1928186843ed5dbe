"""A cheap check that a node's CQL port answers at the protocol level.

A paused (SIGSTOPped) JVM still completes TCP handshakes from its listen backlog,
so a plain connect says nothing; an OPTIONS request needs the server to reply. On a TLS
port the request goes over TLS (the handshake alone would not do: it is not the server's
CQL layer answering).
"""

from __future__ import annotations

import socket
import ssl
import struct
import time

# Protocol v4 header: version, flags, stream id, opcode, body length.
_OPTIONS = struct.pack(">BBhBI", 0x04, 0x00, 1, 0x05, 0)
_RESPONSE_VERSION = 0x84
_SUPPORTED = 0x06
_HEADER_LENGTH = 9


def cql_answers(
    address: str,
    port: int = 9042,
    timeout: float = 2.0,
    *,
    ssl_context: ssl.SSLContext | None = None,
) -> bool:
    """True if `address:port` replies SUPPORTED to an OPTIONS request within `timeout`.

    With `ssl_context` the request goes over TLS, the certificate checked against `address`.
    """
    deadline = time.monotonic() + timeout
    try:
        with _connect(address, port, timeout, ssl_context) as sock:
            sock.sendall(_OPTIONS)
            header = b""
            while len(header) < _HEADER_LENGTH:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                sock.settimeout(remaining)
                chunk = sock.recv(_HEADER_LENGTH - len(header))
                if not chunk:
                    return False
                header += chunk
    except OSError:
        return False
    version, _flags, _stream, opcode, _length = struct.unpack(">BBhBI", header)
    return bool(version == _RESPONSE_VERSION and opcode == _SUPPORTED)


def _connect(
    address: str, port: int, timeout: float, ssl_context: ssl.SSLContext | None
) -> socket.socket:
    """A connected socket, through a TLS handshake (bounded by `timeout`) if `ssl_context`."""
    sock = socket.create_connection((address, port), timeout=timeout)
    if ssl_context is None:
        return sock
    try:
        return ssl_context.wrap_socket(sock, server_hostname=address)
    except BaseException:
        sock.close()
        raise
