"""TLS to Cassandra: the CA, the client certificate, and the SSL context made from them.

Loading the config checks the keys and, for `serve` (and `check-config --tls-files`), the
files too: each must be a regular file of at most `MAX_TLS_BYTES` and parse as what its key
says; each problem is one line at the key that names the file. `check-config` alone does
not read them, for they may exist only where the exporter runs (a mounted Secret).
"""

from __future__ import annotations

import ssl
from pathlib import Path

from pydantic import ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from exporter.config.base import StrictModel, read_regular_file

MAX_TLS_BYTES = 1024 * 1024
"""A CA bundle, a certificate or a key: a PEM file far smaller than this."""


class TlsFileError(Exception):
    """A TLS file that cannot be used; `key` is the config key that names it."""

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        self.message = message
        super().__init__(f"{key}: {message}")


class TlsConfig(StrictModel):
    """Client-to-node encryption. Loading the config for `serve` (or `check-config
    --tls-files`) reads the files and names a missing, unreadable or mismatched one; the
    files are given only with `enabled: true`."""

    enabled: bool = False
    """Connect over TLS; the other keys are given only then (otherwise they are an error)."""
    ca_file: Path | None = None
    """PEM CA bundle that signed the nodes' certificates; the system store if unset."""
    cert_file: Path | None = None
    """PEM client certificate, for clusters that require client certificates."""
    key_file: Path | None = None
    """The client certificate's PEM private key, unencrypted."""
    verify_hostname: bool = True
    """Check that each node's certificate names the address connected to (an IP SAN for an
    IP address). The certificate's CA is checked either way."""

    @model_validator(mode="after")
    def _consistent(self) -> TlsConfig:
        errors = []
        if self.key_file is not None and self.cert_file is None:
            errors.append(_error("cert_file", "required with key_file: give the certificate too"))
        if self.cert_file is not None and self.key_file is None:
            errors.append(_error("key_file", "required with cert_file: give the private key too"))
        if not self.enabled:
            files = ("ca_file", "cert_file", "key_file")
            given = [n for n in files if getattr(self, n) is not None]
            if "verify_hostname" in self.model_fields_set:
                given.append("verify_hostname")
            if given:
                name = given[0]
                message = f"is false but {name} is set: enable TLS, or remove {name}"
                errors.append(_error("enabled", message))
        if errors:
            raise ValidationError.from_exception_data("TlsConfig", errors)
        return self

    def file_problems(self) -> list[str]:
        """`cluster.tls.<key>: message` for a TLS file that cannot be used (at most one)."""
        try:
            self.ssl_context()
        except TlsFileError as exc:
            return [f"cluster.tls.{exc}"]
        return []

    def ssl_context(self) -> ssl.SSLContext | None:
        """The client context for the driver (None without TLS); raises TlsFileError."""
        if not self.enabled:
            return None
        ca = _read("ca_file", self.ca_file) if self.ca_file is not None else None
        try:
            # Only the CA file when given; the system store otherwise.
            context = ssl.create_default_context(
                cadata=ca.decode("ascii") if ca is not None else None
            )
        except (ssl.SSLError, UnicodeDecodeError, ValueError):
            raise TlsFileError("ca_file", f"no PEM certificate in {self.ca_file}") from None
        context.check_hostname = self.verify_hostname
        if self.cert_file is not None and self.key_file is not None:
            _load_client_certificate(context, self.cert_file, self.key_file)
        return context


def _load_client_certificate(context: ssl.SSLContext, cert_file: Path, key_file: Path) -> None:
    cert = _read("cert_file", cert_file)
    _read("key_file", key_file)
    try:
        # Parses the certificate alone, so that a failure below is the key's.
        ssl.create_default_context().load_verify_locations(cadata=cert.decode("ascii"))
    except (ssl.SSLError, UnicodeDecodeError, ValueError):
        raise TlsFileError("cert_file", f"no PEM certificate in {cert_file}") from None
    encrypted = False

    def no_password() -> bytes:
        nonlocal encrypted  # asked for: never let OpenSSL prompt on a terminal
        encrypted = True
        return b""

    try:
        context.load_cert_chain(str(cert_file), str(key_file), password=no_password)
    except ssl.SSLError as exc:
        if encrypted:
            message = f"the key in {key_file} is encrypted: give it unencrypted"
        elif exc.reason == "KEY_VALUES_MISMATCH":
            message = f"the key in {key_file} does not belong to the certificate in cert_file"
        else:
            message = f"no PEM private key in {key_file}"
        raise TlsFileError("key_file", message) from None


def _read(key: str, path: Path) -> bytes:
    try:
        return read_regular_file(path, MAX_TLS_BYTES)
    except ValueError as exc:
        raise TlsFileError(key, str(exc)) from None


def _error(key: str, message: str) -> InitErrorDetails:
    # Raised as a ValidationError inside the validator, so that pydantic reports it at
    # cluster.tls.<key> rather than at cluster.tls.
    return InitErrorDetails(
        type=PydanticCustomError("value_error", "{message}", {"message": message}),
        loc=(key,),
        input=None,
    )
