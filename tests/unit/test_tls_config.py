"""The exporter's TLS settings: keys checked at load, files when serving starts, one line per
problem at its key; the context verifies the CA and the address; a refused handshake is
named for what it is."""

from __future__ import annotations

import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from cassandra import OperationTimedOut
from cassandra.cluster import NoHostAvailable
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from exporter.config import ConfigError, TlsConfig, parse_config
from exporter.tls import tls_failure
from testbed.cluster.security import TlsMaterial, make_tls_material
from tests.tls_support import handshake, tls_server

ADDRESS = "127.0.0.1"


@pytest.fixture(scope="module")
def material(tmp_path_factory: pytest.TempPathFactory) -> TlsMaterial:
    return make_tls_material(tmp_path_factory.mktemp("tls") / "tls", [ADDRESS])


def config(tls: dict[str, Any]) -> TlsConfig:
    data = {
        "cluster": {"contact_points": [ADDRESS], "tls": tls},
        "datacenters": {"write": "us-east"},
    }
    return parse_config(data, resolve_secrets=False).cluster.tls


def errors(tls: dict[str, Any]) -> list[str]:
    """What loading the config says about `tls`."""
    with pytest.raises(ConfigError) as caught:
        config(tls)
    return caught.value.errors


def file_errors(tls: dict[str, Any]) -> list[str]:
    """What serving says about the files of `tls` (loading for `serve` says the same)."""
    problems = config(tls).file_problems()
    assert problems, "no problem found"
    return problems


def full(material: TlsMaterial, **changes: Any) -> dict[str, Any]:
    tls = {
        "enabled": True,
        "ca_file": str(material.ca_cert),
        "cert_file": str(material.client_cert),
        "key_file": str(material.client_key),
    }
    return {**tls, **changes}


def test_a_complete_config_gives_a_context_that_checks_the_ca_and_the_name(
    material: TlsMaterial,
) -> None:
    context = config(full(material)).ssl_context()
    assert context is not None
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    relaxed = config(full(material, verify_hostname=False)).ssl_context()
    assert relaxed is not None
    assert relaxed.verify_mode == ssl.CERT_REQUIRED and not relaxed.check_hostname
    assert config({}).ssl_context() is None


def test_the_context_verifies_the_nodes_ip_address_unless_told_not_to(
    material: TlsMaterial,
) -> None:
    context = config(full(material)).ssl_context()
    relaxed = config(full(material, verify_hostname=False)).ssl_context()
    other_ca = config(full(material, ca_file=str(material.other_ca_cert))).ssl_context()
    assert context is not None and relaxed is not None and other_ca is not None
    with tls_server(material, ADDRESS, mutual=True) as port:
        assert handshake(context, ADDRESS, port, ADDRESS) == b"ok"
        with pytest.raises(ssl.SSLCertVerificationError, match="IP address mismatch"):
            handshake(context, ADDRESS, port, "127.0.0.9")
        assert handshake(relaxed, ADDRESS, port, "127.0.0.9") == b"ok"
        with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
            handshake(other_ca, ADDRESS, port, ADDRESS)


def test_missing_and_unreadable_files_are_named_at_their_key(
    material: TlsMaterial, tmp_path: Path
) -> None:
    missing = tmp_path / "missing.pem"
    assert file_errors(full(material, ca_file=str(missing))) == [
        f"cluster.tls.ca_file: cannot read {missing}: No such file or directory"
    ]
    assert file_errors(full(material, cert_file=str(tmp_path))) == [
        f"cluster.tls.cert_file: cannot read {tmp_path}: Is a directory"
    ]
    assert file_errors(full(material, key_file=str(missing))) == [
        f"cluster.tls.key_file: cannot read {missing}: No such file or directory"
    ]


def test_files_that_are_not_what_they_should_be_are_named(
    material: TlsMaterial, tmp_path: Path
) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    assert file_errors(full(material, ca_file=str(garbage))) == [
        f"cluster.tls.ca_file: no PEM certificate in {garbage}"
    ]
    assert file_errors(full(material, ca_file=str(material.client_key))) == [
        f"cluster.tls.ca_file: no PEM certificate in {material.client_key}"
    ]
    assert file_errors(full(material, cert_file=str(material.client_key))) == [
        f"cluster.tls.cert_file: no PEM certificate in {material.client_key}"
    ]
    assert file_errors(full(material, key_file=str(garbage))) == [
        f"cluster.tls.key_file: no PEM private key in {garbage}"
    ]


def test_a_key_of_another_certificate_or_an_encrypted_key_is_refused(
    material: TlsMaterial, tmp_path: Path
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    other = tmp_path / "other.key"
    other.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    assert file_errors(full(material, key_file=str(other))) == [
        f"cluster.tls.key_file: the key in {other} does not belong to the certificate in "
        "cert_file"
    ]
    encrypted = tmp_path / "encrypted.key"
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    assert file_errors(full(material, key_file=str(encrypted))) == [
        f"cluster.tls.key_file: the key in {encrypted} is encrypted: give it unencrypted"
    ]


def test_a_certificate_and_its_key_go_together(material: TlsMaterial) -> None:
    assert errors({"enabled": True, "key_file": str(material.client_key)}) == [
        "cluster.tls.cert_file: required with key_file: give the certificate too"
    ]
    assert errors({"enabled": True, "cert_file": str(material.client_cert)}) == [
        "cluster.tls.key_file: required with cert_file: give the private key too"
    ]


def test_files_without_tls_enabled_are_a_mistake(material: TlsMaterial) -> None:
    assert errors({"ca_file": str(material.ca_cert)}) == [
        "cluster.tls.enabled: is false but ca_file is set: enable TLS, or remove ca_file"
    ]


def test_files_are_read_by_serve_and_check_config_tls_files(tmp_path: Path) -> None:
    """Where a config is only checked (CI), the mounted files are not there to read;
    `check-config --tls-files` reads them as `serve` does."""
    absent = tmp_path / "absent.pem"
    path = tmp_path / "config.yaml"
    data = {
        "cluster": {"contact_points": [ADDRESS], "tls": {"enabled": True, "ca_file": str(absent)}},
        "datacenters": {"write": "us-east"},
    }
    path.write_text(yaml.safe_dump(data))
    expected = [
        f"{path}: invalid configuration",
        f"cluster.tls.ca_file: cannot read {absent}: No such file or directory",
    ]
    shape = [sys.executable, "-m", "exporter", "check-config", str(path)]
    checked = subprocess.run(shape, capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stderr
    secrets = [sys.executable, "-m", "exporter", "check-config", "--resolve-secrets", str(path)]
    assert subprocess.run(secrets, capture_output=True, timeout=60).returncode == 0
    full = [sys.executable, "-m", "exporter", "check-config", "--tls-files", str(path)]
    resolved = subprocess.run(full, capture_output=True, text=True, timeout=60)
    assert resolved.returncode == 2
    assert resolved.stderr.splitlines() == expected
    serve = [sys.executable, "-m", "exporter", "serve", "--config", str(path)]
    served = subprocess.run(serve, capture_output=True, text=True, timeout=60)
    assert served.returncode == 2
    assert served.stderr.splitlines() == expected


def refused(text: str, endpoint: str = "127.0.0.1:9042") -> NoHostAvailable:
    # What the driver raises: its socket.error(errno 1, ...) comes out as a PermissionError.
    error = OSError(1, f"Tried connecting to [('127.0.0.1', 9042)]. Last error: {text}")
    return NoHostAvailable("Unable to connect to any servers", {endpoint: error})


def test_refused_handshakes_are_named_for_their_cause() -> None:
    mismatch = refused(
        "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: IP address mismatch, "
        "certificate is not valid for '127.0.0.1'. (_ssl.c:1006)"
    )
    assert tls_failure(mismatch) == (
        "the certificate of 127.0.0.1:9042 does not name the address connected to "
        "(certificate verify failed: IP address mismatch, certificate is not valid for "
        "'127.0.0.1'): connect to a name or address in its subject alternative names, or set "
        "cluster.tls.verify_hostname: false"
    )
    untrusted = refused(
        "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed certificate "
        "in certificate chain (_ssl.c:1006)"
    )
    assert tls_failure(untrusted) == (
        "the certificate of 127.0.0.1:9042 is not signed by a trusted CA (certificate verify "
        "failed: self-signed certificate in certificate chain): set cluster.tls.ca_file to the "
        "CA that signed the nodes' certificates"
    )
    no_cert = NoHostAvailable(
        "Unable to connect to any servers",
        {
            "127.0.0.1:9042": ssl.SSLError(
                1, "[SSL: TLSV13_ALERT_CERTIFICATE_REQUIRED] tlsv13 alert certificate required "
                "(_ssl.c:2580)"
            ),
            "127.0.0.2:9042": ssl.SSLError(
                1, "[SSL: TLSV13_ALERT_CERTIFICATE_REQUIRED] tlsv13 alert certificate required"
            ),
        },
    )
    assert tls_failure(no_cert) == (
        "127.0.0.1:9042 requires a client certificate (tlsv13 alert certificate required): set "
        "cluster.tls.cert_file and cluster.tls.key_file (and 1 more node)"
    )
    plain = refused("[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)")
    assert tls_failure(plain) == (
        "127.0.0.1:9042 does not speak TLS on this port (wrong version number): is client "
        "encryption on?"
    )


def test_a_connection_ended_as_it_opened_is_put_down_to_the_client_certificate() -> None:
    """Under TLS 1.3 a node's refusal of the client certificate may reach the client as an
    end of the connection rather than as an alert."""
    eof = ssl.SSLEOFError(8, "EOF occurred in violation of protocol (_ssl.c:2427)")
    ended = NoHostAvailable("Unable to connect to any servers", {"127.0.0.1:9042": eof})
    assert tls_failure(ended) == (
        "127.0.0.1:9042 closed the TLS connection as it opened (EOF occurred in violation of "
        "protocol): it may require a client certificate: set cluster.tls.cert_file and "
        "cluster.tls.key_file"
    )
    assert tls_failure(ended, client_certificate=True) == (
        "127.0.0.1:9042 closed the TLS connection as it opened (EOF occurred in violation of "
        "protocol): it may have refused the client certificate in cluster.tls.cert_file"
    )


def test_failures_other_than_tls_are_left_alone() -> None:
    assert tls_failure(OperationTimedOut("timed out")) is None
    reset = NoHostAvailable("x", {"127.0.0.1:9042": ConnectionResetError(104, "reset")})
    assert tls_failure(reset) is None
    assert tls_failure(NoHostAvailable("x", {})) is None
