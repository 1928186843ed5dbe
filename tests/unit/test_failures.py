"""Access problems get reasons of their own (auth, unauthorized, tls) and messages naming the
cause; a refusal by every contact point at start ends `serve` with one line, exit 2."""

from __future__ import annotations

import asyncio
import ssl
from collections import namedtuple
from typing import Any

import pytest
from cassandra import AuthenticationFailed, OperationTimedOut, Unauthorized
from cassandra.cluster import Cluster, NoHostAvailable
from cassandra.connection import ConnectionException

from exporter import connection as connection_module
from exporter.config import parse_config
from exporter.connection import CassandraConnection, CredentialsRefused, NotConnected
from exporter.failures import classify, describe, refused_everywhere
from exporter.results import FailureReason
from exporter.serving import EXIT_CONFIG, serve

BAD = (
    'Failed to authenticate to 10.0.0.1:9042: Error from server: code=0100 [Bad credentials] '
    'message="Provided username exporter and/or password are incorrect"'
)
GRANT = (
    'Error from server: code=2100 [Unauthorized] message="User exporter has no SELECT '
    'permission on <table shop.orders> or any of its parents"'
)
VERIFY = (
    "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed certificate "
    "(_ssl.c:1006)"
)
FLATTENED = f"Tried connecting to [('10.0.0.1', 9042)]. Last error: {VERIFY}"
REFUSED = CredentialsRefused(
    "Provided username exporter and/or password are incorrect", "10.0.0.1:9042", "exporter"
)
CONFIG = parse_config(
    {
        "cluster": {
            "contact_points": ["10.0.0.1"],
            "auth": {"username": "exporter", "password": {"env": "UNSET"}},
        },
        "datacenters": {"write": "us-east", "read": ["eu-west"]},
    },
    resolve_secrets=False,
)


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (AuthenticationFailed(BAD), FailureReason.AUTH),
        (REFUSED, FailureReason.AUTH),
        (NoHostAvailable("x", {"a": REFUSED, "b": AuthenticationFailed(BAD)}), FailureReason.AUTH),
        (NoHostAvailable("x", {"a": REFUSED, "b": OSError(111, "refused")}), FailureReason.AUTH),
        (Unauthorized(GRANT), FailureReason.UNAUTHORIZED),
        (ssl.SSLCertVerificationError(1, VERIFY), FailureReason.TLS),
        (OSError(1, FLATTENED), FailureReason.TLS),
        (ConnectionException(f"Failed: {VERIFY}"), FailureReason.TLS),
        (NoHostAvailable("x", {"a": OSError(1, FLATTENED), "b": REFUSED}), FailureReason.TLS),
        # A connection an established session loses is gone, not a handshake refused.
        (ssl.SSLEOFError(8, "EOF occurred in violation of protocol"), FailureReason.ERROR),
        (NoHostAvailable("x", {"a": OSError(111, "Connection refused")}),
         FailureReason.UNAVAILABLE),
        (NoHostAvailable("x", {}), FailureReason.UNAVAILABLE),
        (NotConnected("no session"), FailureReason.UNAVAILABLE),
        (OperationTimedOut("slow"), FailureReason.TIMEOUT),
        (RuntimeError("boom"), FailureReason.ERROR),
    ],
)
def test_classify(exc: BaseException, reason: FailureReason) -> None:
    assert classify(exc) is reason


def test_an_ssl_error_raised_from_a_driver_error_is_tls() -> None:
    try:
        try:
            raise ssl.SSLError(1, "[SSL: TLSV13_ALERT_CERTIFICATE_REQUIRED] alert")
        except ssl.SSLError as inner:
            raise ConnectionException("connection closed") from inner
    except ConnectionException as exc:
        assert classify(exc) is FailureReason.TLS


def test_messages_name_the_user_the_key_the_grant_and_the_ssl_reason() -> None:
    assert describe(REFUSED) == (
        "cluster.auth: Cassandra refused the credentials of user 'exporter' (Provided "
        "username exporter and/or password are incorrect)"
    )
    assert describe(CredentialsRefused("Remote end requires authentication")) == (
        "cluster.auth: Cassandra requires credentials and none are configured (Remote end "
        "requires authentication)"
    )
    assert describe(Unauthorized(GRANT)) == (
        "not authorized: User exporter has no SELECT permission on <table shop.orders> or any "
        "of its parents (`cqrs-exporter grants` prints the grants the config needs)"
    )
    tls = describe(OSError(1, FLATTENED))
    assert tls.startswith(
        "cluster.tls: the TLS handshake failed ([SSL: CERTIFICATE_VERIFY_FAILED] certificate "
        "verify failed: self-signed certificate); check cluster.tls.ca_file"
    )
    assert "_ssl.c" not in tls


def test_a_refusal_inside_no_host_available_is_said_once_with_its_hosts() -> None:
    other = CredentialsRefused(REFUSED.args[0], "10.0.0.2:9042", "exporter")
    exc = NoHostAvailable("x", {"10.0.0.2:9042": other, "10.0.0.1:9042": REFUSED,
                                "10.0.0.3:9042": OSError(111, "refused")})
    assert describe(exc) == (
        "cluster.auth: Cassandra refused the credentials of user 'exporter' (Provided username "
        "exporter and/or password are incorrect) on 10.0.0.1:9042, 10.0.0.2:9042; other "
        "hosts: ConnectionRefusedError"
    )
    assert not refused_everywhere(exc)
    assert refused_everywhere(NoHostAvailable("x", {"a": REFUSED, "b": other}))
    assert not refused_everywhere(NoHostAvailable("x", {}))


def test_the_connection_turns_a_refused_login_into_a_retryable_refusal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The driver gives up on a host for good on AuthenticationFailed; a connection error
    is retried, and the host's refusal is remembered until a login there succeeds."""
    base = Cluster.connection_class

    def refuse(cls: Any, endpoint: Any, timeout: float, *args: Any, **kwargs: Any) -> Any:
        raise AuthenticationFailed(BAD)

    monkeypatch.setattr(base, "factory", classmethod(refuse))
    connection = CassandraConnection(CONFIG)
    cluster = connection._build_cluster()
    credentials = connection._credentials
    assert credentials is not None
    authenticator = credentials.new_authenticator("10.0.0.1")
    with pytest.raises(CredentialsRefused) as raised:
        cluster.connection_class.factory("10.0.0.1:9042", 1.0, authenticator=authenticator)
    assert isinstance(raised.value, ConnectionException)
    assert not isinstance(raised.value, AuthenticationFailed)
    assert raised.value.username == "exporter"
    assert credentials.refused == {"10.0.0.1": raised.value}
    authenticator.on_authentication_success(None)
    assert credentials.refused == {}
    cluster.shutdown()


def test_a_request_to_hosts_held_down_for_refusing_the_credentials_fails_with_auth() -> None:
    Host = namedtuple("Host", "address datacenter is_up")
    connection = CassandraConnection(CONFIG)
    connection._build_cluster().shutdown()
    assert connection._credentials is not None
    connection._credentials.refused["10.0.1.1"] = REFUSED
    explained = connection._explained(
        NoHostAvailable("Unable to complete the operation against any hosts", {}),
        [Host("10.0.1.1", "eu-west", False)],
    )
    assert explained is not None and classify(explained) is FailureReason.AUTH
    assert connection._explained(NoHostAvailable("x", {}), [Host("10.0.0.1", "us-east", True)]) \
        is None


async def test_serve_exits_2_with_one_line_when_every_contact_point_refuses(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async def refused(self: CassandraConnection) -> None:
        raise NoHostAvailable("Unable to connect to any servers", {"10.0.0.1:9042": REFUSED})

    monkeypatch.setattr(connection_module.CassandraConnection, "connect", refused)
    code = await asyncio.wait_for(serve(CONFIG, "127.0.0.1", 0), timeout=30)
    assert code == EXIT_CONFIG
    assert capsys.readouterr().err == (
        "cqrs-exporter: cluster.auth: Cassandra refused the credentials of user 'exporter' "
        "(Provided username exporter and/or password are incorrect) on 10.0.0.1:9042\n"
    )


async def test_an_unreachable_contact_point_keeps_the_exporter_trying(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    attempts = 0

    async def unreachable(self: CassandraConnection) -> None:
        nonlocal attempts
        attempts += 1
        raise NoHostAvailable("x", {"10.0.0.1:9042": REFUSED, "10.0.0.2:9042": OSError(111, "x")})

    monkeypatch.setattr(connection_module.CassandraConnection, "connect", unreachable)
    connection = CassandraConnection(CONFIG)
    task = asyncio.create_task(connection.connect_until_established(initial_delay=0.01))
    await asyncio.sleep(0.2)
    assert not task.done() and attempts >= 2
    task.cancel()


async def test_a_sentinel_awaited_while_its_polls_are_refused_fails_its_runs_unauthorized(
) -> None:
    """The poller's failure is the run's: a revoked SELECT on the read model is counted."""
    from exporter.config.read_models import bind_names
    from probes.base import ProbeContext
    from probes.read_models.sentinel import SentinelProbe
    from probes.registry import KINDS

    Prepared = namedtuple("Prepared", "query column_metadata")
    Column = namedtuple("Column", "name")

    class Refusing:
        connected = True

        async def prepare(self, query: str) -> Any:
            return Prepared(query, [Column(n) for n in sorted(bind_names(query))])

        async def execute(self, query: Any, *args: Any, **kwargs: Any) -> list[Any]:
            if query.query.startswith("SELECT"):
                raise Unauthorized(GRANT)
            return []

    config = parse_config({
        "cluster": {"contact_points": ["10.0.0.1"]},
        "datacenters": {"write": "us-east"},
        "read_models": [{"name": "orders", "method": "sentinel", "sentinel": {
            "write": "INSERT INTO shop.orders (id) VALUES (:sentinel_id)",
            "read": "SELECT id FROM shop.orders WHERE id = :sentinel_id",
            "poll_interval": "10ms"}}],
    })
    (probe,) = KINDS["read_model"].build(ProbeContext(config, Refusing()))  # type: ignore[arg-type]
    assert isinstance(probe, SentinelProbe)
    await probe.start()
    try:
        assert (await probe.run()).success  # the sentinel is written
        for _ in range(100):
            if probe.last_poll_reason is not None:
                break
            await asyncio.sleep(0.01)
        outcome = await probe.run()
    finally:
        await probe.stop()
    assert outcome.reason is FailureReason.UNAUTHORIZED
    assert "has no SELECT permission on <table shop.orders>" in outcome.detail


def test_not_connected_for_a_refused_handshake_or_login_says_so() -> None:
    from exporter.failures import NotConnected
    from exporter.tls import TlsError

    refused = TlsError("cluster.tls.ca_file: 127.0.0.1 presented a certificate the CA did not sign")
    try:
        raise NotConnected("no Cassandra session yet") from refused
    except NotConnected as exc:
        not_connected = exc
    plain = NotConnected("no Cassandra session yet")

    assert classify(not_connected) is FailureReason.TLS
    assert describe(not_connected) == str(refused)
    assert classify(plain) is FailureReason.UNAVAILABLE
