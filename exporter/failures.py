"""What a failed request means: its bounded reason, and a log line that names the cause.

Access problems get reasons of their own, since no retry mends them and each has a config
key or a grant to look at: `auth` (Cassandra refused the credentials of `cluster.auth`),
`unauthorized` (the role lacks a permission; Cassandra's message names it and the table)
and `tls` (the handshake failed; `cluster.tls.*`). The driver hides them in other
exceptions: a refusal at connect time is one error per host inside `NoHostAvailable`, and a
failed TLS handshake is an `OSError` whose text keeps the SSL reason.
"""

from __future__ import annotations

import re
import ssl

from cassandra import (
    AuthenticationFailed,
    OperationTimedOut,
    ReadTimeout,
    Unauthorized,
    Unavailable,
    WriteTimeout,
)
from cassandra.cluster import NoHostAvailable
from cassandra.connection import ConnectionException, ConnectionShutdown

from exporter.results import FailureReason
from exporter.tls import TlsError


class NotConnected(Exception):
    """No session to Cassandra yet (or any more)."""


class CredentialsRefused(ConnectionException):  # type: ignore[misc]
    """Cassandra refused the credentials of `username` (None: none were configured).

    The connection raises it instead of the driver's `AuthenticationFailed`, which would
    end the driver's reconnection to that host for good: credentials rotated under a
    running exporter are then tried again, and work again once they match.
    """

    def __init__(self, message: str, endpoint: object = None, username: str | None = None):
        super().__init__(message, endpoint)
        self.username = username


TLS_TEXT = re.compile(r"\[SSL[:\]]|\(_ssl\.c:\d+\)")
"""What the ssl module puts in every error text; the driver keeps only the text of a
handshake that failed while connecting."""
_SERVER_MESSAGE = re.compile(r'message="(.*)"', re.DOTALL)
_ACCESS_ORDER = (FailureReason.TLS, FailureReason.AUTH, FailureReason.UNAUTHORIZED)


def is_tls_failure(exc: BaseException) -> bool:
    """An SSL error, or the text of one the driver re-raised while connecting."""
    seen: BaseException | None = exc
    for _ in range(5):  # the exception, then what it was raised from
        if seen is None:
            return False
        if isinstance(seen, TlsError):
            return True  # a refused handshake, already explained (exporter.tls)
        if isinstance(seen, ssl.SSLEOFError | ssl.SSLZeroReturnError):
            return False  # a connection closed under an established session: gone, not TLS
        if isinstance(seen, ssl.SSLError):
            return True
        if isinstance(seen, OSError | ConnectionException) and TLS_TEXT.search(str(seen)):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def access_reason(exc: BaseException) -> FailureReason | None:
    """`auth`, `unauthorized` or `tls` when that is what went wrong, else None.

    A `NoHostAvailable` is an access problem when one of its hosts' errors is: a refused
    handshake or login is what to fix first, even when other hosts were also down.
    """
    if isinstance(exc, NotConnected):
        cause = exc.__cause__
        return access_reason(cause) if cause is not None else None
    if isinstance(exc, NoHostAvailable):
        reasons = {access_reason(error) for error in (exc.errors or {}).values()}
        return next((reason for reason in _ACCESS_ORDER if reason in reasons), None)
    if isinstance(exc, CredentialsRefused | AuthenticationFailed):
        return FailureReason.AUTH
    if isinstance(exc, Unauthorized):
        return FailureReason.UNAUTHORIZED
    if is_tls_failure(exc):
        return FailureReason.TLS
    return None


def classify(exc: BaseException) -> FailureReason:
    """Map a driver or asyncio exception onto the bounded failure reasons."""
    access = access_reason(exc)
    if access is not None:
        return access
    if isinstance(exc, OperationTimedOut | ReadTimeout | WriteTimeout | TimeoutError):
        return FailureReason.TIMEOUT
    if isinstance(
        exc,
        NotConnected | NoHostAvailable | Unavailable | ConnectionException | ConnectionShutdown,
    ):
        return FailureReason.UNAVAILABLE
    return FailureReason.ERROR


def refused_everywhere(exc: BaseException) -> bool:
    """Every host tried refused the credentials: a definitive answer, not an outage."""
    if not isinstance(exc, NoHostAvailable) or not exc.errors:
        return False
    return all(
        isinstance(error, CredentialsRefused | AuthenticationFailed)
        for error in exc.errors.values()
    )


def server_message(text: str) -> str:
    """The server's own words in a driver error (`... message="..."`), else the text."""
    match = _SERVER_MESSAGE.search(text)
    return (match.group(1) if match else text).strip()


def _credentials(exc: BaseException) -> str:
    username = exc.username if isinstance(exc, CredentialsRefused) else None
    said = server_message(str(exc))
    if isinstance(exc, CredentialsRefused) and username is None:
        return f"cluster.auth: Cassandra requires credentials and none are configured ({said})"
    who = f" of user {username!r}" if username is not None else ""
    return f"cluster.auth: Cassandra refused the credentials{who} ({said})"


def _tls(exc: BaseException) -> str:
    if isinstance(exc, TlsError):
        return str(exc)  # exporter.tls has said which node and why, naming the keys
    text = str(exc)
    said = text.split("Last error: ", 1)[-1] if "Last error: " in text else text
    said = re.sub(r"\s*\(_ssl\.c:\d+\)", "", said).strip() or type(exc).__name__
    return (
        f"cluster.tls: the TLS handshake failed ({said}); check cluster.tls.ca_file, "
        "cluster.tls.cert_file, cluster.tls.key_file and cluster.tls.verify_hostname"
    )


def _one(exc: BaseException) -> str:
    if isinstance(exc, NotConnected) and exc.__cause__ is not None and access_reason(exc):
        return _one(exc.__cause__)  # not connected for a refused handshake or login
    reason = access_reason(exc)
    if reason is FailureReason.AUTH:
        return _credentials(exc)
    if reason is FailureReason.UNAUTHORIZED:
        return (
            f"not authorized: {server_message(str(exc))} (`cqrs-exporter grants` prints "
            "the grants the config needs)"
        )
    if reason is FailureReason.TLS:
        return _tls(exc)
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def describe(exc: BaseException) -> str:
    """A short log-safe description of a failure (for logs only, never for bodies).

    An access problem inside a `NoHostAvailable` is said in full, with the hosts it came
    from; other failures of its hosts are only named.
    """
    if not isinstance(exc, NoHostAvailable):
        return _one(exc)
    errors = exc.errors or {}
    if access_reason(exc) is None:
        reasons = sorted({type(e).__name__ for e in errors.values()})
        return "no host available" + (f" ({', '.join(reasons)})" if reasons else "")
    by_text: dict[str, list[str]] = {}
    others: set[str] = set()
    for host, error in errors.items():
        if access_reason(error) is None:
            others.add(type(error).__name__)
        else:
            by_text.setdefault(_one(error), []).append(_host(host))
    said = "; ".join(f"{text} on {', '.join(sorted(hosts))}" for text, hosts in by_text.items())
    return said + (f"; other hosts: {', '.join(sorted(others))}" if others else "")


def _host(host: object) -> str:
    address = getattr(host, "address", None)
    return str(address if address is not None else host)
