"""The web config model: what it accepts, what it refuses (one line naming the key, never
a hash), the TLS context it builds, basic auth's cache, and the rate-limited accept log."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from exporter.web.auth import BasicAuth, parse_basic
from exporter.web.config import WebConfigError, load_web_config, parse_web_config
from exporter.web.limits import install_accept_error_handler
from exporter.web.state import WebState
from tests.web_support import PASSWORD, bcrypt_hash, make_certificates, write_web_config

HASH = bcrypt_hash(PASSWORD)


def errors(data: Any) -> list[str]:
    with pytest.raises(WebConfigError) as caught:
        parse_web_config(data)
    return caught.value.errors


def test_an_empty_file_is_no_tls_and_no_auth() -> None:
    config = parse_web_config(None)
    assert config.tls_server_config is None and config.basic_auth_users == {}


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"tls_server_config": {"key_file": "k"}}, "tls_server_config.cert_file: is required"),
        ({"tls_server_config": {"cert_file": "", "key_file": "k"}},
         "tls_server_config.cert_file: must name a file"),
        ({"tls_server_config": {"cert_file": "c", "key_file": "k", "min_version": "TLS14"}},
         "tls_server_config.min_version: "),
        ({"tls_server_config": {"cert_file": "c", "key_file": "k",
                                "client_auth_type": "Sometimes"}},
         "tls_server_config.client_auth_type: "),
        ({"tls_server_config": {"cert_file": "c", "key_file": "k",
                                "cipher_suites": ["TLS_RSA_WITH_RC4_128_SHA", "BOGUS"]}},
         "tls_server_config.cipher_suites: unknown or insecure cipher suite(s) "
         "TLS_RSA_WITH_RC4_128_SHA, BOGUS"),
        ({"tls_server_config": {"cert_file": "c", "key_file": "k", "curve_preferences": []}},
         "tls_server_config.curve_preferences: unknown key"),
        ({"http_server_config": {"headers": {"Authorization": "x"}}},
         "http_server_config.headers: HTTP header 'Authorization' can not be configured"),
        ({"http_server_config": {"headers": {"Content-Type": "text/html"}}},
         "http_server_config.headers: HTTP header 'Content-Type' can not be configured"),
        ({"http_server_config": {"headers": {"X-Frame-Options": "allow"}}},
         "http_server_config.headers: X-Frame-Options must be one of deny, sameorigin"),
        ({"basic_auth_users": {"alice": "plain-password"}},
         "basic_auth_users: user 'alice': expected a bcrypt hash"),
        ({"basic_auth_users": {"alice": "$2y$03$" + "a" * 53}},
         "basic_auth_users: user 'alice': bcrypt cost must be between 4 and 31"),
        ({"basic_auth_users": ["alice"]}, "basic_auth_users: expected a mapping"),
        ({"basic_auth_users": {"a:b": HASH}}, "basic_auth_users: user names are"),
        ({"rate_limit": {"interval": "1s"}}, "rate_limit: unknown key"),
        ([1, 2], "(top level): expected a mapping"),
    ],
)
def test_refusals_name_the_key(data: Any, expected: str) -> None:
    (line,) = errors(data)
    assert line.startswith(expected), line


def test_a_refused_password_line_never_echoes_it() -> None:
    (line,) = errors({"basic_auth_users": {"alice": "hunter2-not-a-hash"}})
    assert "hunter2" not in line


def test_known_go_cipher_names_map_to_openssl(tmp_path: Path) -> None:
    certs = make_certificates(tmp_path)
    path = write_web_config(tmp_path / "web.yml", {"tls_server_config": {
        "cert_file": str(certs.cert), "key_file": str(certs.key),
        "cipher_suites": ["TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
                          "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
                          "TLS_AES_128_GCM_SHA256"],
        "prefer_server_cipher_suites": False, "min_version": "TLS12", "max_version": "TLS12",
    }})
    _, context = load_web_config(path)
    assert context is not None
    tls12 = {c["name"] for c in context.get_ciphers() if c["protocol"] == "TLSv1.2"}
    assert tls12 == {"ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-CHACHA20-POLY1305"}


@pytest.mark.parametrize(
    ("tls", "expected"),
    [
        ({"cert_file": "{d}/missing.pem", "key_file": "{key}"},
         "tls_server_config.cert_file: {d}/missing.pem: no such file"),
        ({"cert_file": "{cert}", "key_file": "{other_key}"},
         "tls_server_config.cert_file: cannot load"),
        ({"cert_file": "{cert}", "key_file": "{key}", "client_auth_type":
          "RequireAndVerifyClientCert"},
         "tls_server_config.client_ca_file: is required with RequireAndVerifyClientCert"),
        ({"cert_file": "{cert}", "key_file": "{key}", "client_ca_file": "{ca}"},
         "tls_server_config.client_ca_file: is set but client_auth_type is NoClientCert"),
        ({"cert_file": "{cert}", "key_file": "{key}", "client_auth_type":
          "VerifyClientCertIfGiven", "client_ca_file": "{key}"},
         "tls_server_config.client_ca_file: cannot load"),
        ({"cert_file": "{cert}", "key_file": "{key}", "min_version": "TLS13",
          "max_version": "TLS12"}, "tls_server_config.max_version: is below min_version"),
    ],
)
def test_tls_files_are_checked_at_load(tmp_path: Path, tls: dict[str, str], expected: str
                                       ) -> None:
    certs = make_certificates(tmp_path)
    other = make_certificates(tmp_path / "other")
    names = {"d": str(tmp_path), "cert": str(certs.cert), "key": str(certs.key),
             "other_key": str(other.key), "ca": str(certs.ca)}
    path = write_web_config(
        tmp_path / "web.yml", {"tls_server_config": {k: v.format(**names) for k, v in tls.items()}}
    )
    with pytest.raises(WebConfigError) as caught:
        load_web_config(path)
    (line,) = caught.value.errors
    assert line.startswith(expected.format(**names)), line


@pytest.mark.parametrize(
    ("content", "expected"),
    [(b"\xff\xfe", "not UTF-8 text"), (b"a: [", "not valid YAML at line"),
     (b"x" * (2 << 20), "larger than")],
)
def test_unreadable_files_are_one_line(tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "web.yml"
    path.write_bytes(content)
    with pytest.raises(WebConfigError) as caught:
        load_web_config(path)
    assert expected in caught.value.errors[0]


def test_serve_with_a_bad_web_config_exits_2_with_one_line(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "cluster: {contact_points: [127.0.0.1]}\ndatacenters: {write: us-east}\n"
        "server: {listen: '127.0.0.1:0'}\n"
    )
    web = write_web_config(tmp_path / "web.yml", {"basic_auth_users": {"alice": "hunter2"}})
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "exporter", "serve", "--config", str(config),
         "--web.config.file", str(web)],
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 2
    assert time.monotonic() - started < 10
    assert result.stderr.splitlines() == [
        f"{web}: invalid web configuration",
        "basic_auth_users: user 'alice': expected a bcrypt hash ($2y$10$..., e.g. from "
        '`htpasswd -nBC 10 ""`)',
    ]
    assert "hunter2" not in result.stderr + result.stdout


def test_basic_auth_header_parsing() -> None:
    assert parse_basic("Basic YWxpY2U6cGE6c3M=") == (b"alice", b"pa:ss")
    assert parse_basic("basic YWxpY2U6") == (b"alice", b"")
    for bad in ("", "Basic", "Basic ***", "Digest YWxpY2U6cGE6c3M=", "Basic YWxpY2U="):
        assert parse_basic(bad) is None


async def test_verdicts_are_cached_and_a_changed_hash_misses_the_cache(tmp_path: Path) -> None:
    path = write_web_config(tmp_path / "web.yml", {"basic_auth_users": {"alice": HASH}})
    state = WebState(path)
    auth = BasicAuth(state)
    try:
        assert await auth.check(b"alice", PASSWORD.encode()) is True
        assert await auth.check(b"alice", b"wrong") is False
        assert await auth.check(b"bob", PASSWORD.encode()) is False
        assert len(auth._verdicts) == 3
        assert all(PASSWORD.encode() not in key for key in auth._verdicts)
        assert await auth.check(b"alice", PASSWORD.encode()) is True
        assert len(auth._verdicts) == 3  # answered from the cache
        write_web_config(path, {"basic_auth_users": {"alice": bcrypt_hash("new-password")}})
        assert state.poll()
        assert await auth.check(b"alice", PASSWORD.encode()) is False
        assert await auth.check(b"alice", b"new-password") is True
    finally:
        auth.close()


def test_a_broken_reload_keeps_the_last_good_config_and_logs_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_web_config(tmp_path / "web.yml", {"basic_auth_users": {"alice": HASH}})
    state = WebState(path)
    for attempt in range(3):
        path.write_text(f"basic_auth_users: {{alice: not-a-hash}}\n# {attempt}\n")
        assert not state.poll()
    assert state.config.basic_auth_users["alice"] == HASH.encode()
    lines = [r for r in caplog.records if "not reloaded" in r.getMessage()]
    assert len(lines) == 1 and "basic_auth_users" in lines[0].getMessage()
    assert lines[0].exc_info is None


async def test_accept_errors_are_logged_once_a_minute(caplog: pytest.LogCaptureFixture) -> None:
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    install_accept_error_handler(loop)
    try:
        with caplog.at_level(logging.ERROR, logger="exporter.web"):
            for _ in range(100):
                loop.call_exception_handler({
                    "message": "socket.accept() out of system resource",
                    "exception": OSError(24, "Too many open files"),
                })
        records = [r for r in caplog.records if r.name == "exporter.web"]
        assert len(records) == 1 and records[0].exc_info is None
        assert "Too many open files" in records[0].getMessage()
    finally:
        loop.set_exception_handler(previous)
