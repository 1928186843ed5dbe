"""Why a TLS connection to Cassandra failed, in one line that says what to change.

The driver reports a failed handshake as a NoHostAvailable whose per-node errors are
OSErrors (an errno 1 turns them into PermissionError) with OpenSSL's text inside:
`[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: ...`. `tls_failure` reads
that text back and names the cause: an untrusted certificate, a certificate that does not
name the address connected to, a missing or refused client certificate.

A node that refuses the client's certificate (or its lack of one) under TLS 1.3 does so
after the client has finished its half of the handshake: the client hears the node's alert
only if it reads before it writes, and otherwise sees the connection end (an SSLEOFError).
Which one comes first is a race, so an end of that kind is put down to the client
certificate as well, as a likely cause.
"""

from __future__ import annotations

import re
import ssl

from cassandra.cluster import NoHostAvailable

_OPENSSL = re.compile(r"\[SSL: (?P<code>[A-Z0-9_]+)\] (?P<text>.*?)(?: \(_ssl\.c:\d+\))?$")
_WHERE = re.compile(r"\[SSL(?:: [A-Z0-9_]+)?\] |\s*\(_ssl\.c:\d+\)")

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


def tls_failure(exc: BaseException, *, client_certificate: bool = False) -> str | None:
    """The TLS cause of a failed connection, or None when TLS is not what failed.

    `client_certificate` says whether the client presented one (it changes what an
    abrupt end of the connection most likely means).
    """
    if isinstance(exc, NoHostAvailable):
        found = [
            (str(endpoint), reason)
            for endpoint, error in sorted((exc.errors or {}).items(), key=lambda e: str(e[0]))
            if (reason := _explain(str(endpoint), error, client_certificate)) is not None
        ]
        if not found:
            return None
        _, reason = found[0]
        more = len(found) - 1
        return reason + (f" (and {more} more node{'s' if more > 1 else ''})" if more else "")
    return _explain(None, exc, client_certificate)


def _explain(endpoint: str | None, error: BaseException, client_certificate: bool) -> str | None:
    if not isinstance(error, OSError):
        return None
    node = endpoint or "the node"
    if isinstance(error, ssl.SSLEOFError):
        text = _WHERE.sub("", str(error)).strip() or "EOF"
        cause = (
            "it may have refused the client certificate in cluster.tls.cert_file"
            if client_certificate
            else "it may require a client certificate: set cluster.tls.cert_file and "
            "cluster.tls.key_file"
        )
        return f"{node} closed the TLS connection as it opened ({text}): {cause}"
    match = _OPENSSL.search(str(error))
    if match is None:
        return None
    code, text = match["code"], match["text"].rstrip(".")
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
