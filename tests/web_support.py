"""Helpers for the web config tests: server and client certificates, a web config file,
and a real exporter (against no cluster) behind the web listeners."""

from __future__ import annotations

import asyncio
import os
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bcrypt
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from exporter.app import create_app
from exporter.config import parse_config
from exporter.service import Exporter
from exporter.web.server import HttpServer
from exporter.web.state import WebState
from testbed.cluster.security import TlsMaterial, make_tls_material
from tests.tls_support import node_key_and_cert

UNREACHABLE: dict[str, Any] = {
    "cluster": {"contact_points": ["127.0.0.1"], "port": 1, "connect_timeout": "1s"},
    "datacenters": {"write": "us-east"},
    "probes": {
        "startup_grace": "2s",
        "replication": {"enabled": False},
        "latency": {"enabled": False},
    },
}
"""An exporter config whose cluster never answers: the HTTP side works all the same."""

PASSWORD = "s3cret-for-tests"


def bcrypt_hash(password: str, cost: int = 4) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(cost)).decode()


@dataclass(frozen=True)
class Certificates:
    """A CA, a server certificate for 127.0.0.1 and a client certificate (mTLS)."""

    material: TlsMaterial
    cert: Path
    key: Path

    @property
    def ca(self) -> Path:
        return self.material.ca_cert

    @property
    def serial(self) -> int:
        return x509.load_pem_x509_certificate(self.cert.read_bytes()).serial_number

    def client_context(self, *, with_cert: bool = False, extra_ca: Path | None = None
                       ) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca))
        if extra_ca is not None:
            context.load_verify_locations(cafile=str(extra_ca))
        if with_cert:
            context.load_cert_chain(self.material.client_cert, self.material.client_key)
        return context


def make_certificates(directory: Path) -> Certificates:
    """Fresh material in `directory` (the testbed's generator), the server's as PEM files."""
    material = make_tls_material(directory / "material", ["127.0.0.1"])
    store, cert = node_key_and_cert(material, "127.0.0.1")
    assert store.key is not None
    cert_path, key_path = directory / "server.pem", directory / "server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        store.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return Certificates(material, cert_path, key_path)


def write_web_config(path: Path, config: dict[str, Any]) -> Path:
    """Write atomically (as a mounted Secret changes), so a poll never reads half a file."""
    temporary = path.with_suffix(".tmp")
    temporary.write_text(yaml.safe_dump(config))
    os.replace(temporary, path)
    return path


@dataclass
class Served:
    http: HttpServer

    @property
    def port(self) -> int:
        return self.http.port

    @property
    def health_port(self) -> int | None:
        return self.http.health_port


@asynccontextmanager
async def serve_web(
    web_config: Path | None, server: dict[str, Any] | None = None
) -> AsyncIterator[Served]:
    """A real exporter (no cluster) behind HttpServer on 127.0.0.1 and free ports."""
    config = parse_config({**UNREACHABLE, "server": server or {}})
    state = WebState(web_config) if web_config is not None else None
    http = HttpServer(create_app(Exporter(config)), config.server, state)
    await http.start("127.0.0.1", 0)
    try:
        yield Served(http)
    finally:
        await asyncio.wait_for(http.stop(), timeout=15)


async def peer_serial(port: int, context: ssl.SSLContext) -> int:
    """The serial number of the certificate the server presents in a new handshake."""
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
    try:
        ssl_object = writer.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True)
        return x509.load_der_x509_certificate(der).serial_number
    finally:
        writer.close()
