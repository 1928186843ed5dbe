"""The testbed's TLS material: certificates that parse, name their node, chain to the CA."""

from __future__ import annotations

import ipaddress
import ssl
import stat
import struct
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from testbed.__main__ import build_parser
from testbed.cluster import TestbedCluster
from testbed.cluster.security import (
    STORE_PASSWORD,
    ClientTls,
    TlsMaterial,
    check_tls_mode,
    make_tls_material,
)
from testbed.config_files import NodeLayout, cassandra_yaml
from testbed.cql_probe import cql_answers
from testbed.errors import TestbedError
from tests.tls_support import handshake, node_key_and_cert, tls_server

ADDRESSES = ("127.0.0.1", "127.0.0.2")


@pytest.fixture(scope="module")
def material(tmp_path_factory: pytest.TempPathFactory) -> TlsMaterial:
    return make_tls_material(tmp_path_factory.mktemp("tls") / "tls", ADDRESSES)


def load_cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_the_cas_are_self_signed_certificate_authorities(material: TlsMaterial) -> None:
    ca, other = load_cert(material.ca_cert), load_cert(material.other_ca_cert)
    for cert in (ca, other):
        assert cert.subject == cert.issuer
        assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert ca.subject != other.subject
    assert ca.public_key() != other.public_key()


def test_each_node_certificate_names_its_ip_and_localhost(material: TlsMaterial) -> None:
    for address in ADDRESSES:
        _, cert = node_key_and_cert(material, address)
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address(address)]
        assert names.get_values_for_type(x509.DNSName) == ["localhost"]
        usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert ExtendedKeyUsageOID.SERVER_AUTH in usage


def test_node_certificates_verify_against_the_ca_for_their_own_address_only(
    material: TlsMaterial,
) -> None:
    ca = load_cert(material.ca_cert)
    other = load_cert(material.other_ca_cert)
    _, cert = node_key_and_cert(material, ADDRESSES[0])
    builder = PolicyBuilder().store(Store([ca]))
    own = x509.verification.IPAddress(ipaddress.ip_address(ADDRESSES[0]))
    chain = builder.build_server_verifier(own).verify(cert, [])
    assert chain[-1] == ca
    builder.build_server_verifier(x509.verification.DNSName("localhost")).verify(cert, [])
    neighbour = x509.verification.IPAddress(ipaddress.ip_address(ADDRESSES[1]))
    with pytest.raises(VerificationError):
        builder.build_server_verifier(neighbour).verify(cert, [])
    with pytest.raises(VerificationError):
        PolicyBuilder().store(Store([other])).build_server_verifier(own).verify(cert, [])


def test_the_client_certificate_is_a_client_certificate_of_the_ca(material: TlsMaterial) -> None:
    ca = load_cert(material.ca_cert)
    cert = load_cert(material.client_cert)
    verified = PolicyBuilder().store(Store([ca])).build_client_verifier().verify(cert, [])
    assert verified.chain[-1] == ca
    key = serialization.load_pem_private_key(material.client_key.read_bytes(), password=None)
    assert key.public_key() == cert.public_key()
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]


def test_the_stores_open_with_their_password_and_keys_are_private(material: TlsMaterial) -> None:
    trust = pkcs12.load_pkcs12(material.truststore.read_bytes(), STORE_PASSWORD.encode())
    assert [c.certificate for c in trust.additional_certs] == [load_cert(material.ca_cert)]
    store, cert = node_key_and_cert(material, ADDRESSES[1])
    assert store.key is not None and store.key.public_key() == cert.public_key()
    for private in (material.client_key, *map(material.keystore, ADDRESSES)):
        assert stat.S_IMODE(private.stat().st_mode) == 0o600
    with pytest.raises(ValueError):
        pkcs12.load_pkcs12(material.keystore(ADDRESSES[0]).read_bytes(), b"wrong")


def test_a_second_make_replaces_every_file(tmp_path: Path) -> None:
    first = make_tls_material(tmp_path / "tls", ADDRESSES[:1])
    ca = first.ca_cert.read_bytes()
    second = make_tls_material(tmp_path / "tls", ADDRESSES[1:])
    assert second.ca_cert.read_bytes() != ca
    assert not (tmp_path / "tls" / "nodes" / f"{ADDRESSES[0]}.p12").exists()


def test_a_client_of_the_ca_reaches_a_node_by_its_ip_address(material: TlsMaterial) -> None:
    address = ADDRESSES[0]
    with tls_server(material, address, mutual=False) as port:
        assert handshake(material.client(with_cert=False).context(), address, port, address)
        with pytest.raises(ssl.SSLCertVerificationError, match="IP address mismatch"):
            handshake(material.client(with_cert=False).context(), address, port, ADDRESSES[1])
        other = ssl.create_default_context(cafile=str(material.other_ca_cert))
        with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
            handshake(other, address, port, address)


def test_a_mutual_node_takes_the_client_certificate_and_refuses_none(
    material: TlsMaterial,
) -> None:
    address = ADDRESSES[0]
    with tls_server(material, address, mutual=True) as port:
        assert handshake(material.client(with_cert=True).context(), address, port, address)
        with pytest.raises(ssl.SSLError, match="CERTIFICATE_REQUIRED"):
            handshake(material.client(with_cert=False).context(), address, port, address)


def test_the_cassandra_yaml_turns_client_encryption_on_only_with_tls(
    material: TlsMaterial, tmp_path: Path
) -> None:
    def layout(mutual: bool | None) -> NodeLayout:
        encryption = None if mutual is None else material.encryption(mutual=mutual)[ADDRESSES[0]]
        return NodeLayout(
            cluster_name="t",
            address=ADDRESSES[0],
            broadcast_address=ADDRESSES[0],
            seed=ADDRESSES[0],
            token=0,
            storage_port=7000,
            native_port=9042,
            data_dir=tmp_path,
            commitlog_dir=tmp_path,
            hints_dir=tmp_path,
            saved_caches_dir=tmp_path,
            cdc_raw_dir=tmp_path,
            password_auth=False,
            client_encryption=encryption,
        )

    assert "client_encryption_options" not in cassandra_yaml(layout(None))
    server = cassandra_yaml(layout(False))
    assert f"keystore: {material.keystore(ADDRESSES[0])}\n" in server
    assert f"truststore: {material.truststore}\n" in server
    assert "store_type: PKCS12\n" in server and "optional: false\n" in server
    assert "require_client_auth: false\n" in server
    assert "require_client_auth: true\n" in cassandra_yaml(layout(True))


def test_tls_modes_are_checked() -> None:
    assert check_tls_mode(None) is None
    assert check_tls_mode("mutual") == "mutual"
    with pytest.raises(TestbedError, match="unknown TLS mode 'mtls'"):
        check_tls_mode("mtls")


def test_a_tls_testbed_knows_its_material_and_keeps_its_mode_in_the_state(
    tmp_path: Path,
) -> None:
    cluster = TestbedCluster(
        ("us-east", "eu-west"), net="127.0.77", base_dir=tmp_path, tls="mutual"
    )
    material = cluster.tls_material
    assert material is not None and material.directory == tmp_path / "tls"
    assert material.addresses == ("127.0.77.1", "127.0.77.2")
    client = cluster.client_tls
    assert client == ClientTls(material.ca_cert, material.client_cert, material.client_key)
    assert all(node.client_tls == client for node in cluster.nodes)
    cluster.save_state()
    assert TestbedCluster.load(tmp_path).tls == "mutual"
    server = TestbedCluster(net="127.0.77", base_dir=tmp_path / "s", tls="server").client_tls
    assert server is not None and server.cert is None
    plain = TestbedCluster(net="127.0.77", base_dir=tmp_path / "p")
    assert plain.tls_material is None and plain.nodes[0].client_tls is None
    with pytest.raises(TestbedError, match="unknown TLS mode"):
        TestbedCluster(net="127.0.77", base_dir=tmp_path, tls="on")


def test_the_command_line_takes_tls_and_mtls() -> None:
    parser = build_parser()
    assert parser.parse_args(["up"]).tls is False
    assert parser.parse_args(["up", "--tls", "--password-auth"]).tls is True
    assert parser.parse_args(["up", "--mtls"]).mtls is True


def test_the_cql_probe_speaks_tls_and_checks_the_certificate(material: TlsMaterial) -> None:
    supported = struct.pack(">BBhBI", 0x84, 0, 1, 0x06, 0)
    address = ADDRESSES[0]
    with tls_server(material, address, mutual=True, reply=supported) as port:
        context = material.client(with_cert=True).context()
        assert cql_answers(address, port, ssl_context=context)
        assert not cql_answers(address, port)  # plain: no answer from a TLS port
        other = ssl.create_default_context(cafile=str(material.other_ca_cert))
        assert not cql_answers(address, port, ssl_context=other)
