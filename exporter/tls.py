"""Why a TLS connection to Cassandra failed, in one line that says what to change.

The driver reports a failed handshake as a NoHostAvailable whose per-node errors are
OSErrors (an errno 1 turns them into PermissionError) with OpenSSL's text inside:
`[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: ...`. `tls_failure` reads
that text back and names the cause: an untrusted certificate, a certificate that does not
name the address connected to, a missing or refused client certificate.
"""

from __future__ import annotations

import re

from cassandra.cluster import NoHostAvailable

_OPENSSL = re.compile(r"\[SSL: (?P<code>[A-Z0-9_]+)\] (?P<text>.*?)(?: \(_ssl\.c:\d+\))?$")

_NO_CLIENT_CERTIFICATE = {"TLSV13_ALERT_CERTIFICATE_REQUIRED"}
_CLIENT_CERTIFICATE_REFUSED = {
    "SSLV3_ALERT_BAD_CERTIFICATE",
    "SSLV3_ALERT_CERTIFICATE_UNKNOWN",
    "TLSV1_ALERT_UNKNOWN_CA",
    "SSLV3_ALERT_CERTIFICATE_EXPIRED",
}
_NOT_TLS = {"WRONG_VERSION_NUMBER"}


class TlsError(Exception):
    """A connection that failed in its TLS handshake; the message says why, in one line."""


def tls_failure(exc: BaseException) -> str | None:
    """The TLS cause of a failed connection, or None when TLS is not what failed."""
    if isinstance(exc, NoHostAvailable):
        found = [
            (str(endpoint), reason)
            for endpoint, error in sorted((exc.errors or {}).items(), key=lambda e: str(e[0]))
            if (reason := _explain(str(endpoint), error)) is not None
        ]
        if not found:
            return None
        _, reason = found[0]
        more = len(found) - 1
        return reason + (f" (and {more} more node{'s' if more > 1 else ''})" if more else "")
    return _explain(None, exc)


def _explain(endpoint: str | None, error: BaseException) -> str | None:
    if not isinstance(error, OSError):
        return None
    match = _OPENSSL.search(str(error))
    if match is None:
        return None
    code, text = match["code"], match["text"].rstrip(".")
    node = endpoint or "the node"
    if code == "CERTIFICATE_VERIFY_FAILED":
        if "mismatch" in text:
            return (
                f"the certificate of {node} does not name the address connected to "
                f"({text}): connect to a name or address in its subject alternative names, "
                "or set cluster.tls.verify_hostname: false"
            )
        return (
            f"the certificate of {node} is not signed by a trusted CA ({text}): "
            "set cluster.tls.ca_file to the CA that signed the nodes' certificates"
        )
    if code in _NO_CLIENT_CERTIFICATE:
        return (
            f"{node} requires a client certificate ({text}): "
            "set cluster.tls.cert_file and cluster.tls.key_file"
        )
    if code in _CLIENT_CERTIFICATE_REFUSED:
        return f"{node} refused the client certificate in cluster.tls.cert_file ({text})"
    if code in _NOT_TLS:
        return f"{node} does not speak TLS on this port ({text}): is client encryption on?"
    return f"the TLS handshake with {node} failed ({text})"
