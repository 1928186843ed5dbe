"""The web config file, in the Prometheus exporter-toolkit format, validated strictly.

    tls_server_config:      cert_file, key_file, client_auth_type, client_ca_file,
                            min_version, max_version, cipher_suites, prefer_server_cipher_suites
    http_server_config:     headers (the five exporter-toolkit allows), http2 (accepted, unused)
    basic_auth_users:       user -> bcrypt hash

`load_web_config` reads the file, checks every key and builds the TLS context, so that a
missing, unreadable or mismatched certificate is a problem named at its key. Every problem
is one line; none carries a secret (a hash is never echoed).
"""

from __future__ import annotations

import re
import ssl
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

MAX_FILE_BYTES = 1 << 20
"""A web config is a few lines; anything larger is refused unread."""

MAX_USERS = 1000

# Go's crypto/tls names of the suites tls.CipherSuites() returns, and OpenSSL's names.
# The TLS 1.3 suites are accepted and left to OpenSSL, as Go does (they are not configurable).
TLS12_CIPHERS = {
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305": "ECDHE-RSA-CHACHA20-POLY1305",
}
TLS13_CIPHERS = frozenset(
    {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"}
)

ALLOWED_HEADERS: dict[str, tuple[str, ...]] = {
    "Strict-Transport-Security": (),
    "X-Content-Type-Options": ("nosniff",),
    "X-Frame-Options": ("deny", "sameorigin"),
    "X-XSS-Protection": (),
    "Content-Security-Policy": (),
}
"""The headers exporter-toolkit lets a web config add, and the values it accepts (any if
none are listed); every other header (Authorization, Content-Type, Set-Cookie...) is refused."""


class TlsVersion(StrEnum):
    TLS10 = "TLS10"
    TLS11 = "TLS11"
    TLS12 = "TLS12"
    TLS13 = "TLS13"

    @property
    def ssl(self) -> ssl.TLSVersion:
        return {
            "TLS10": ssl.TLSVersion.TLSv1,
            "TLS11": ssl.TLSVersion.TLSv1_1,
            "TLS12": ssl.TLSVersion.TLSv1_2,
            "TLS13": ssl.TLSVersion.TLSv1_3,
        }[self.value]


class ClientAuth(StrEnum):
    NONE = "NoClientCert"
    REQUEST = "RequestClientCert"
    REQUIRE_ANY = "RequireAnyClientCert"
    VERIFY_IF_GIVEN = "VerifyClientCertIfGiven"
    REQUIRE_AND_VERIFY = "RequireAndVerifyClientCert"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class TlsServerConfig(_Strict):
    cert_file: Path
    """PEM certificate (chain) the exporter presents."""
    key_file: Path
    """Its PEM private key, unencrypted."""
    client_auth_type: ClientAuth = ClientAuth.NONE
    """Whether clients must present a certificate; RequireAndVerifyClientCert for mTLS."""
    client_ca_file: Path | None = None
    """PEM CA bundle that client certificates are verified against."""
    min_version: TlsVersion = TlsVersion.TLS12
    max_version: TlsVersion = TlsVersion.TLS13
    cipher_suites: tuple[str, ...] = ()
    """Go names of the TLS 1.2 suites offered, in order; OpenSSL's defaults if empty."""
    prefer_server_cipher_suites: bool = True

    @field_validator("cert_file", "key_file", "client_ca_file", mode="before")
    @classmethod
    def _non_empty(cls, value: Any) -> Any:
        if value == "":
            raise ValueError("must name a file")
        return value

    @field_validator("cipher_suites")
    @classmethod
    def _ciphers(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        known = TLS12_CIPHERS.keys() | TLS13_CIPHERS
        unknown = [name for name in value if name not in known]
        if unknown:
            raise ValueError(
                f"unknown or insecure cipher suite(s) {', '.join(unknown)}: use Go's names of "
                "tls.CipherSuites(), e.g. TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
            )
        return value

    @property
    def openssl_ciphers(self) -> str | None:
        names = [TLS12_CIPHERS[name] for name in self.cipher_suites if name in TLS12_CIPHERS]
        return ":".join(dict.fromkeys(names)) or None


class HttpServerConfig(_Strict):
    headers: dict[str, str] = Field(default_factory=dict)
    """Extra response headers; only the ones exporter-toolkit allows."""
    http2: bool = True
    """Accepted for compatibility; the exporter serves HTTP/1.1."""

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            allowed = ALLOWED_HEADERS.get(name)
            if allowed is None:
                raise ValueError(
                    f"HTTP header {name!r} can not be configured: only "
                    f"{', '.join(ALLOWED_HEADERS)}"
                )
            if allowed and text not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}")
            if any(c in text for c in "\r\n\0"):
                raise ValueError(f"{name} must be one line")
        return value


_BCRYPT = re.compile(r"\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}")


def _check_hash(value: Any) -> bytes:
    """The hash's form and cost only: checking it costs a bcrypt round, done per request."""
    if not isinstance(value, str) or not (match := _BCRYPT.fullmatch(value)):
        raise ValueError('expected a bcrypt hash ($2y$10$..., e.g. from `htpasswd -nBC 10 ""`)')
    if not 4 <= int(match.group(1)) <= 31:
        raise ValueError("bcrypt cost must be between 4 and 31")
    return value.encode()


class WebConfig(_Strict):
    tls_server_config: TlsServerConfig | None = None
    http_server_config: HttpServerConfig = Field(default_factory=HttpServerConfig)
    basic_auth_users: dict[str, bytes] = Field(default_factory=dict, repr=False)
    """User name -> bcrypt hash of the password; basic auth is required when non-empty."""

    @field_validator("basic_auth_users", mode="before")
    @classmethod
    def _users(cls, value: Any) -> Any:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ValueError("expected a mapping of user name to bcrypt hash")
        if len(value) > MAX_USERS:
            raise ValueError(f"at most {MAX_USERS} users")
        users: dict[str, bytes] = {}
        for user, hashed in value.items():
            if not isinstance(user, str) or not user or ":" in user:
                raise ValueError("user names are non-empty strings without ':'")
            try:
                users[user] = _check_hash(hashed)
            except ValueError as exc:
                raise ValueError(f"user {user!r}: {exc}") from None
        return users


class WebConfigError(Exception):
    """A web config that cannot be used: one line per problem, each naming its key."""

    def __init__(self, source: str, errors: list[str]) -> None:
        self.source = source
        self.errors = errors
        super().__init__("; ".join(errors))


def _location(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def parse_web_config(data: Any, source: str = "web config") -> WebConfig:
    """Validate parsed YAML; errors name the key (never echo a value: it may be a hash)."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise WebConfigError(source, ["(top level): expected a mapping"])
    try:
        return WebConfig.model_validate(data)
    except ValidationError as exc:
        lines = []
        for error in exc.errors(include_input=False, include_url=False):
            message = error["msg"].removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                message = "unknown key (not supported by this exporter)"
            elif error["type"] == "missing":
                message = "is required"
            lines.append(f"{_location(error['loc'])}: {message}")
        raise WebConfigError(source, lines) from None


def read_web_config(path: Path) -> WebConfig:
    """Read and validate the file, without building the TLS context."""
    source = str(path)
    try:
        if not path.is_file():
            raise WebConfigError(source, [f"{source}: not a regular file"])
        if path.stat().st_size > MAX_FILE_BYTES:
            raise WebConfigError(source, [f"{source}: larger than {MAX_FILE_BYTES} bytes"])
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise WebConfigError(source, [f"{source}: cannot read: {exc.strerror}"]) from None
    except UnicodeDecodeError:
        raise WebConfigError(source, [f"{source}: not UTF-8 text"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise WebConfigError(source, [f"{source}: not valid YAML{where}"]) from None
    return parse_web_config(data, source)


def server_context(tls: TlsServerConfig) -> ssl.SSLContext:
    """The server-side SSL context the config describes; TlsContextError names the key."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.minimum_version = tls.min_version.ssl
        context.maximum_version = tls.max_version.ssl
    except (ValueError, ssl.SSLError) as exc:
        raise TlsContextError("tls_server_config.min_version", str(exc)) from None
    if tls.min_version.ssl > tls.max_version.ssl:
        raise TlsContextError("tls_server_config.max_version", "is below min_version")
    if tls.prefer_server_cipher_suites:
        context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    if (ciphers := tls.openssl_ciphers) is not None:
        try:
            context.set_ciphers(ciphers)
        except ssl.SSLError:
            raise TlsContextError(
                "tls_server_config.cipher_suites", "none of them is available in this OpenSSL"
            ) from None
    for key, path in (("cert_file", tls.cert_file), ("key_file", tls.key_file)):
        if not path.is_file():
            raise TlsContextError(f"tls_server_config.{key}", f"{path}: no such file")
    try:
        context.load_cert_chain(tls.cert_file, tls.key_file)
    except OSError as exc:
        raise TlsContextError(
            "tls_server_config.cert_file",
            f"cannot load {tls.cert_file} with {tls.key_file}: {exc.strerror or exc}",
        ) from None
    if tls.client_auth_type is ClientAuth.NONE:
        if tls.client_ca_file is not None:
            raise TlsContextError(
                "tls_server_config.client_ca_file", "is set but client_auth_type is NoClientCert"
            )
        return context
    if tls.client_ca_file is None:
        raise TlsContextError(
            "tls_server_config.client_ca_file",
            f"is required with {tls.client_auth_type.value}: this exporter verifies every "
            "client certificate it is sent",
        )
    try:
        context.load_verify_locations(cafile=tls.client_ca_file)
    except (OSError, ssl.SSLError) as exc:
        message = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise TlsContextError(
            "tls_server_config.client_ca_file", f"cannot load {tls.client_ca_file}: {message}"
        ) from None
    # OpenSSL verifies every certificate it is given: Go's RequestClientCert and
    # RequireAnyClientCert (no verification) become "verified if given" and "required and
    # verified".
    required = tls.client_auth_type in (ClientAuth.REQUIRE_ANY, ClientAuth.REQUIRE_AND_VERIFY)
    context.verify_mode = ssl.CERT_REQUIRED if required else ssl.CERT_OPTIONAL
    return context


class TlsContextError(Exception):
    def __init__(self, key: str, message: str) -> None:
        self.key = key
        super().__init__(f"{key}: {message}")


def load_web_config(path: Path) -> tuple[WebConfig, ssl.SSLContext | None]:
    """The validated config and its TLS context (None without tls_server_config)."""
    config = read_web_config(path)
    if config.tls_server_config is None:
        return config, None
    try:
        return config, server_context(config.tls_server_config)
    except TlsContextError as exc:
        raise WebConfigError(str(path), [str(exc)]) from None
