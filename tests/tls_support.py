"""Helpers for TLS tests: a node's key and certificate, a TLS server, a client handshake."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from testbed.cluster.security import TlsMaterial


def node_key_and_cert(
    material: TlsMaterial, address: str
) -> tuple[pkcs12.PKCS12KeyAndCertificates, x509.Certificate]:
    """The node's key store, opened, and its certificate."""
    store = pkcs12.load_pkcs12(
        material.keystore(address).read_bytes(), material.keystore_password.encode()
    )
    assert store.cert is not None
    return store, store.cert.certificate


@contextmanager
def tls_server(
    material: TlsMaterial, address: str, *, mutual: bool, reply: bytes = b"ok"
) -> Iterator[int]:
    """A TLS server on `address` with the node's certificate, sending `reply` to each client."""
    store, cert = node_key_and_cert(material, address)
    assert store.key is not None
    directory = material.directory / "server"
    directory.mkdir(exist_ok=True)
    (directory / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "key.pem").write_bytes(
        store.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(directory / "cert.pem", directory / "key.pem")
    if mutual:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(material.ca_cert)
    listener = socket.create_server((address, 0))
    listener.settimeout(0.1)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(10)
            try:
                with context.wrap_socket(conn, server_side=True) as tls:
                    tls.sendall(reply)
                    tls.recv(64)  # what the client sends, or its close: no reset on close
            except OSError:
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=10)
        listener.close()


def handshake(context: ssl.SSLContext, address: str, port: int, server_hostname: str) -> bytes:
    with (
        socket.create_connection((address, port), timeout=10) as plain,
        context.wrap_socket(plain, server_hostname=server_hostname) as tls,
    ):
        return tls.recv(2)


@contextmanager
def forwarder(listen: tuple[str, int], target: tuple[str, int]) -> Iterator[None]:
    """Forward TCP connections from `listen` to `target`: a node under another address."""
    listener = socket.create_server(listen)
    listener.settimeout(0.1)
    stop = threading.Event()
    open_sockets: list[socket.socket] = []

    def pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def accept() -> None:
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            try:
                upstream = socket.create_connection(target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            open_sockets.extend((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=pump, args=(source, sink), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=10)
        listener.close()
        for sock in open_sockets:
            sock.close()
