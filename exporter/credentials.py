"""The driver's login with `cluster.auth`: a refused login becomes `CredentialsRefused`
(retried on the reconnection schedule), and the hosts that refused last are remembered."""

from __future__ import annotations

from typing import Any

from cassandra import AuthenticationFailed
from cassandra.auth import PlainTextAuthenticator, PlainTextAuthProvider
from cassandra.cluster import Cluster

from exporter.failures import CredentialsRefused, server_message


class Credentials(PlainTextAuthProvider):  # type: ignore[misc]
    """`cluster.auth`'s credentials, remembering which hosts refused them last."""

    def __init__(self, username: str, password: str) -> None:
        super().__init__(username=username, password=password)
        self.refused: dict[str, CredentialsRefused] = {}
        """Host address → the refusal of its last login, until a login there succeeds."""

    def new_authenticator(self, host: str) -> Authenticator:
        return Authenticator(self, host)


class Authenticator(PlainTextAuthenticator):  # type: ignore[misc]
    def __init__(self, credentials: Credentials, host: str) -> None:
        super().__init__(credentials.username, credentials.password)
        self.credentials = credentials
        self.host = host

    def on_authentication_success(self, token: Any) -> None:
        self.credentials.refused.pop(self.host, None)


class RefusalRecordingConnection(Cluster.connection_class):  # type: ignore[misc]
    """The driver's connection, raising `CredentialsRefused` for a refused login.

    The driver stops reconnecting to a host for good on `AuthenticationFailed`; as a
    connection error the login is tried again on the reconnection schedule.
    """

    @classmethod
    def factory(cls, endpoint: Any, timeout: float, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().factory(endpoint, timeout, *args, **kwargs)
        except AuthenticationFailed as exc:
            authenticator = kwargs.get("authenticator")
            username = getattr(authenticator, "username", None)
            refused = CredentialsRefused(server_message(str(exc)), endpoint, username)
            if isinstance(authenticator, Authenticator):
                authenticator.credentials.refused[authenticator.host] = refused
            raise refused from exc
