"""TLS on the testbed's CQL port: a CA, node and client certificates, and Java key stores.

`make_tls_material(directory, addresses)` writes, afresh, into `directory`:

    ca.pem                  the CA that signs every certificate below
    other-ca.pem            an unrelated CA: a client that trusts only it must refuse the nodes
    client.pem, client.key  a client certificate (cqrs-exporter) and its key, for mutual TLS
    truststore.p12          the CA as a Java trust store: the nodes check client certificates on it
    nodes/<address>.p12     a node's key and certificate (IP SAN <address>, DNS SAN localhost)

The stores are PKCS12, which Cassandra reads with `store_type: PKCS12`; `cryptography` writes
them all, so no keytool is needed. Keys are ECDSA P-256: quick to make, and every JDK and
OpenSSL speaks it. Nothing here is a secret worth keeping: the material is made again at
every `up`, and the store password is a constant.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from testbed.config_files import ClientEncryption
from testbed.errors import TestbedError

TLS_MODES = ("server", "mutual")
"""`server`: the nodes present certificates; `mutual`: they also require one from each client."""

STORE_PASSWORD = "testbed-store"
CLIENT_NAME = "cqrs-exporter"
VALIDITY = datetime.timedelta(days=365)
CLOCK_SKEW = datetime.timedelta(hours=1)


def check_tls_mode(mode: str | None) -> str | None:
    """`mode` if it is None or one of TLS_MODES, else a TestbedError naming the choices."""
    if mode is None or mode in TLS_MODES:
        return mode
    raise TestbedError(f"unknown TLS mode {mode!r}: use {' or '.join(TLS_MODES)} (or none)")


@dataclass(frozen=True)
class ClientTls:
    """What a client of the testbed needs: the CA, and a certificate if the nodes ask for one."""

    ca_cert: Path
    cert: Path | None = None
    key: Path | None = None

    def context(self) -> ssl.SSLContext:
        """A client context that verifies the node's certificate and the address it names."""
        context = ssl.create_default_context(cafile=str(self.ca_cert))
        if self.cert is not None and self.key is not None:
            context.load_cert_chain(str(self.cert), str(self.key))
        return context


@dataclass(frozen=True)
class TlsMaterial:
    """Where the certificates and stores of a TLS testbed are (see the module docstring)."""

    directory: Path
    addresses: tuple[str, ...]

    @property
    def ca_cert(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def other_ca_cert(self) -> Path:
        return self.directory / "other-ca.pem"

    @property
    def client_cert(self) -> Path:
        return self.directory / "client.pem"

    @property
    def client_key(self) -> Path:
        return self.directory / "client.key"

    @property
    def truststore(self) -> Path:
        return self.directory / "truststore.p12"

    @property
    def keystore_password(self) -> str:
        return STORE_PASSWORD

    @property
    def truststore_password(self) -> str:
        return STORE_PASSWORD

    def keystore(self, address: str) -> Path:
        """The PKCS12 key store of the node at `address`."""
        if address not in self.addresses:
            raise TestbedError(f"no TLS key store for {address}: not a node of this testbed")
        return self.directory / "nodes" / f"{address}.p12"

    def client(self, *, with_cert: bool) -> ClientTls:
        """The client side: the CA, with the client certificate and key when `with_cert`."""
        if with_cert:
            return ClientTls(self.ca_cert, self.client_cert, self.client_key)
        return ClientTls(self.ca_cert)

    def encryption(self, *, mutual: bool) -> dict[str, ClientEncryption]:
        """Each node's client_encryption_options, by address."""
        return {
            address: ClientEncryption(
                keystore=self.keystore(address),
                keystore_password=self.keystore_password,
                truststore=self.truststore,
                truststore_password=self.truststore_password,
                require_client_auth=mutual,
            )
            for address in self.addresses
        }


def tls_material(directory: Path, addresses: Sequence[str]) -> TlsMaterial:
    """The paths of the material in `directory`, without making anything."""
    return TlsMaterial(Path(directory), tuple(addresses))


def make_tls_material(directory: Path, addresses: Sequence[str]) -> TlsMaterial:
    """Write a fresh CA, other CA, client certificate, trust store and node key stores."""
    material = tls_material(directory, addresses)
    if material.directory.exists():
        shutil.rmtree(material.directory)
    (material.directory / "nodes").mkdir(parents=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key, ca_cert = _authority("cqrs testbed CA", now)
    _, other_cert = _authority("cqrs testbed other CA", now)
    _write(material.ca_cert, _pem(ca_cert))
    _write(material.other_ca_cert, _pem(other_cert))
    client_names: list[x509.GeneralName] = [_dns(CLIENT_NAME)]
    client_key, client_cert = _issue(
        ca_key, ca_cert, CLIENT_NAME, client_names, client=True, now=now
    )
    _write(material.client_cert, _pem(client_cert))
    _write(material.client_key, _pem_key(client_key), private=True)
    _write(material.truststore, _truststore(ca_cert))
    for address in material.addresses:
        names: list[x509.GeneralName] = [_ip(address), _dns("localhost")]
        key, cert = _issue(ca_key, ca_cert, address, names, client=False, now=now)
        _write(material.keystore(address), _keystore(key, cert, ca_cert), private=True)
    return material


def make_node_encryption(
    material: TlsMaterial | None, mode: str | None
) -> dict[str, ClientEncryption] | None:
    """Make `material` afresh and return each node's TLS settings; None for a plain testbed."""
    if material is None:
        return None
    make_tls_material(material.directory, material.addresses)
    return material.encryption(mutual=mode == "mutual")


# --- certificates -----------------------------------------------------------------------


def _ip(address: str) -> x509.IPAddress:
    try:
        return x509.IPAddress(ipaddress.ip_address(address))
    except ValueError:
        raise TestbedError(f"node address {address!r} is not an IP address") from None


def _dns(name: str) -> x509.DNSName:
    return x509.DNSName(name)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "cqrs-cassandra-exporter testbed"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _builder(
    subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePublicKey, now: datetime.datetime
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key), critical=False)
    )


def _authority(
    common_name: str, now: datetime.datetime
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A self-signed CA that may sign end-entity certificates only."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(common_name)
    cert = (
        _builder(name, name, key.public_key(), now)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _issue(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    common_name: str,
    names: list[x509.GeneralName],
    *,
    client: bool,
    now: datetime.datetime,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A key and a certificate for a server or a client, `names` as its SANs, signed by the CA."""
    key = ec.generate_private_key(ec.SECP256R1())
    usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
    builder = (
        _builder(_name(common_name), ca_cert.subject, key.public_key(), now)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return key, builder.sign(ca_key, hashes.SHA256())


# --- files ------------------------------------------------------------------------------


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _store_encryption() -> serialization.KeySerializationEncryption:
    return serialization.BestAvailableEncryption(STORE_PASSWORD.encode())


def _keystore(
    key: ec.EllipticCurvePrivateKey, cert: x509.Certificate, ca_cert: x509.Certificate
) -> bytes:
    return pkcs12.serialize_key_and_certificates(
        b"node", key, cert, [ca_cert], _store_encryption()
    )


def _truststore(ca_cert: x509.Certificate) -> bytes:
    # A Java trust store marks each certificate trusted (an attribute plain PKCS12 lacks).
    return pkcs12.serialize_java_truststore(
        [pkcs12.PKCS12Certificate(ca_cert, b"ca")], _store_encryption()
    )


def _write(path: Path, data: bytes, *, private: bool = False) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    with os.fdopen(os.open(path, flags, 0o600 if private else 0o644), "wb") as out:
        out.write(data)
