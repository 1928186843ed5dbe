"""One driver Cluster, one execution profile per datacenter, and an awaitable execute.

The driver is blocking at connect time and callback-based afterwards. Connecting runs in an
executor; requests use `execute_async` with callbacks bridged onto the event loop
(`exporter.bridge`), so nothing here blocks the loop.

A refused login is a `CredentialsRefused` (`exporter.failures`), retried like any lost
connection; the hosts that refused last are remembered, so a request that finds no host up
because of them fails with reason `auth`, not `unavailable`.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import ssl
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from cassandra import ConsistencyLevel
from cassandra.cluster import (
    EXEC_PROFILE_DEFAULT,
    Cluster,
    ExecutionProfile,
    NoHostAvailable,
    ResponseFuture,
    Session,
)
from cassandra.policies import (
    DCAwareRoundRobinPolicy,
    ExponentialReconnectionPolicy,
    TokenAwarePolicy,
)
from cassandra.pool import Host
from cassandra.query import (
    PreparedStatement,
    SimpleStatement,
    Statement,
    named_tuple_factory,
    tuple_factory,
)

from exporter.bridge import Answer, bridge, drain, quiet_bridge
from exporter.budget import RequestBudget
from exporter.config import Config, Consistency
from exporter.credentials import Credentials, RefusalRecordingConnection
from exporter.failures import (
    CredentialsRefused,
    NotConnected,
    classify,
    describe,
    refused_everywhere,
)
from exporter.results import FailureReason
from exporter.tls import TlsError, tls_failure

log = logging.getLogger(__name__)


__all__ = [
    "CassandraConnection",
    "CredentialsRefused",
    "NotConnected",
    "classify",
    "describe",
    "profile_name",
]


def profile_name(datacenter: str, *, write: bool = False, timed: bool = False) -> str:
    """A datacenter's profile; a `timed` one (the latency probes') gives rows as tuples."""
    return f"{'timed-' if timed else ''}{'write' if write else 'read'}:{datacenter}"


def _consistency(level: Consistency) -> int:
    return int(getattr(ConsistencyLevel, level.value))


_ROW_CLASSES_KEPT = 512


@functools.lru_cache(maxsize=_ROW_CLASSES_KEPT)
def _row_class(columns: tuple[str, ...]) -> Callable[..., Any]:
    # The driver's own factory names the fields (cleaned and made unique as it does them).
    return type(named_tuple_factory(list(columns), [(None,) * len(columns)])[0])


def row_factory(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[Any]:
    """Rows as the driver's `named_tuple_factory` gives them, with one row class per set of
    columns rather than one built for every answer: building it was the largest cost of a
    replication poll."""
    if not rows:
        return []
    row = _row_class(tuple(columns))
    return [row(*values) for values in rows]


class CassandraConnection:
    """The exporter's single session, and per-datacenter requests through it."""

    def __init__(self, config: Config) -> None:
        self._config = config
        self._cluster: Cluster | None = None
        self._session: Session | None = None
        self._prepared: dict[str, PreparedStatement] = {}
        self._connect_error: Exception | None = None
        self._credentials: Credentials | None = None
        self._answers: deque[Answer] = deque()
        """Timed requests answered on the IO thread, waiting for the loop (`timed`)."""
        # Connecting and preparing block; give them their own threads, off the loop.
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="cassandra-connect")
        self.budget = RequestBudget(config.probes.budget, config.datacenters.all)
        """Every request waits for its datacenter's token (`exporter.budget`)."""

    @property
    def connected(self) -> bool:
        return self._session is not None and not self._session.is_shutdown

    @property
    def datacenters(self) -> tuple[str, ...]:
        return self._config.datacenters.all

    def _profiles(self) -> dict[Any, ExecutionProfile]:
        cluster = self._config.cluster
        consistency = self._config.consistency
        profiles: dict[Any, ExecutionProfile] = {}
        for dc, write, timed in itertools.product(
            self._config.datacenters.all, (False, True), (False, True)
        ):
            # Timed requests drop their rows: plain tuples are the cheapest.
            profiles[profile_name(dc, write=write, timed=timed)] = ExecutionProfile(
                load_balancing_policy=TokenAwarePolicy(
                    DCAwareRoundRobinPolicy(local_dc=dc, used_hosts_per_remote_dc=0)
                ),
                consistency_level=_consistency(
                    consistency.command if write else consistency.query
                ),
                request_timeout=cluster.request_timeout,
                row_factory=tuple_factory if timed else row_factory,
            )
        local = self._config.datacenters.local_datacenter
        profiles[EXEC_PROFILE_DEFAULT] = profiles[profile_name(local)]
        return profiles

    def _ssl_context(self) -> ssl.SSLContext | None:
        # With check_hostname the driver passes each node's address as server_hostname, so an
        # IP address is matched against the certificate's IP SANs.
        return self._config.cluster.tls.ssl_context()

    def _build_cluster(self) -> Cluster:
        cfg = self._config.cluster
        auth = None
        if cfg.auth is not None:
            auth = Credentials(cfg.auth.username, cfg.auth.password.get_secret_value())
        self._credentials = auth
        cluster = Cluster(
            contact_points=list(cfg.contact_points),
            port=cfg.port,
            protocol_version=cfg.protocol_version,
            execution_profiles=self._profiles(),
            auth_provider=auth,
            connection_class=RefusalRecordingConnection,
            ssl_context=self._ssl_context(),
            reconnection_policy=ExponentialReconnectionPolicy(
                base_delay=1.0, max_delay=cfg.reconnect_max_delay
            ),
            connect_timeout=cfg.connect_timeout,
            control_connection_timeout=cfg.connect_timeout,
            # Preparing on every host would wait on a stalled one.
            prepare_on_all_hosts=False,
        )
        return cluster

    def _connect_blocking(self) -> tuple[Cluster, Session]:
        cluster = self._build_cluster()
        try:
            # Without waiting for every pool, a request pinned to a datacenter whose pool is
            # still being opened fails at once with "Host has been marked down or removed".
            session = cluster.connect(wait_for_all_pools=True)
        except BaseException as exc:
            cluster.shutdown()
            # A refused handshake is a configuration problem, not an unavailable cluster.
            presented = self._config.cluster.tls.cert_file is not None
            if (problem := tls_failure(exc, client_certificate=presented)) is not None:
                raise TlsError(problem) from exc
            raise
        return cluster, session

    async def connect(self) -> None:
        """One attempt to establish the session; raises on failure."""
        if self.connected:
            return
        loop = asyncio.get_running_loop()
        try:
            cluster, session = await loop.run_in_executor(self._executor, self._connect_blocking)
        except Exception as exc:
            self._connect_error = exc
            raise
        self._connect_error = None
        self._cluster, self._session = cluster, session
        log.info("connected to Cassandra (datacenters %s)", ", ".join(self.datacenters))

    async def connect_until_established(
        self,
        *,
        initial_delay: float = 1.0,
        level: Callable[[], int] = lambda: logging.WARNING,
    ) -> None:
        """Retry `connect` with capped backoff until it succeeds or the task is cancelled.

        Raises the `NoHostAvailable` when every contact point refused the credentials: no
        retry mends that (an unreachable one keeps it retrying). `level` gives the log
        level of a failed attempt (the exporter's start is quieter).
        """
        delay = initial_delay
        while True:
            try:
                await self.connect()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if refused_everywhere(exc):
                    raise
                log.log(
                    level(),
                    "cannot connect to Cassandra (%s); retrying in %.0f s",
                    describe(exc),
                    delay,
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._config.cluster.reconnect_max_delay)

    def cluster_datacenters(self) -> set[str]:
        """The datacenters of every host the driver knows, up or down (empty before connecting)."""
        if self._cluster is None:
            return set()
        return {h.datacenter for h in self._cluster.metadata.all_hosts() if h.datacenter}

    def hosts(self, datacenter: str) -> list[Host]:
        """The hosts the driver knows in a datacenter (empty before connecting)."""
        if self._cluster is None:
            return []
        return [h for h in self._cluster.metadata.all_hosts() if h.datacenter == datacenter]

    def replicas(
        self, statement: PreparedStatement, parameters: Sequence[Any], datacenter: str
    ) -> list[Host]:
        """The hosts of a datacenter holding the partition `statement` reads with `parameters`.

        From the driver's token map, in a stable order; empty before connecting, or when the
        map cannot tell (no routing key, a keyspace it does not know yet).
        """
        if self._cluster is None:
            return []
        # The bound statement knows its keyspace from the bind markers' metadata; the
        # prepared one leaves it unset for a query that names its keyspace in the table.
        bound = statement.bind(parameters)
        key = bound.routing_key
        if key is None or bound.keyspace is None:
            return []
        hosts = self._cluster.metadata.get_replicas(bound.keyspace, key)
        return sorted(
            (h for h in hosts if h.datacenter == datacenter), key=lambda h: str(h.endpoint)
        )

    async def prepare(self, query: str) -> PreparedStatement:
        """Prepare once per query text; later calls return the cached statement."""
        statement = self._prepared.get(query)
        if statement is not None:
            return statement
        session = self._require_session()
        loop = asyncio.get_running_loop()
        try:
            statement = await loop.run_in_executor(self._executor, session.prepare, query)
        except NoHostAvailable as exc:
            explained = self._explained(exc, self.hosts(self._config.datacenters.local_datacenter))
            if explained is None:
                raise
            raise explained from exc
        self._prepared[query] = statement
        return statement

    def _explained(self, exc: NoHostAvailable, hosts: Sequence[Host]) -> NoHostAvailable | None:
        """`exc` with the refusals of those hosts that refused the credentials at their last
        login (the driver holds them down: they are not simply unreachable); None if none."""
        refused = self._credentials.refused if self._credentials is not None else {}
        found = {h.address: refused[h.address] for h in hosts if h.address in refused}
        if not found:
            return None
        message = exc.args[0] if exc.args else "no host available"
        return NoHostAvailable(message, {**(exc.errors or {}), **found})

    def why_not_connected(self) -> tuple[FailureReason, str]:
        """The reason and description a request would fail with for want of a session:
        `tls` or `auth` when the last attempt to connect was refused so."""
        exc = self._not_connected()
        return classify(exc), describe(exc)

    def _not_connected(self) -> NotConnected:
        # Why the last attempt failed goes with it: a refused handshake or login is
        # counted as `tls` or `auth`, not as an unreachable cluster.
        exc = NotConnected("no Cassandra session yet")
        exc.__cause__ = self._connect_error
        return exc

    def _require_session(self) -> Session:
        if self._session is None or self._session.is_shutdown:
            raise self._not_connected()
        return self._session

    def _send(
        self,
        query: str | Statement,
        parameters: Sequence[Any] | dict[str, Any] | None,
        datacenter: str,
        write: bool,
        consistency: Consistency | None,
        timeout: float,
        host: Host | None,
        timed: bool = False,
    ) -> ResponseFuture:
        session = self._require_session()
        if consistency is not None:
            if isinstance(query, str):
                query = SimpleStatement(query)
            elif isinstance(query, PreparedStatement):
                query, parameters = query.bind(parameters), None
            query.consistency_level = _consistency(consistency)
        return session.execute_async(
            query,
            parameters,
            timeout=timeout,
            execution_profile=profile_name(datacenter, write=write, timed=timed),
            host=host,
        )

    async def execute(
        self,
        query: str | Statement,
        parameters: Sequence[Any] | dict[str, Any] | None = None,
        *,
        datacenter: str,
        write: bool = False,
        consistency: Consistency | None = None,
        timeout: float | None = None,
        host: Host | None = None,
        admit_within: float | None = None,
    ) -> list[Any]:
        """Run one request through a datacenter's profile and return its rows.

        `write` picks the command consistency, otherwise the query consistency applies;
        `host` pins the coordinator. Only the first page is returned. With `admit_within`
        (seconds), a request the budget would hold longer is not sent: `OverBudget`.
        """
        if timeout is None:
            timeout = self._config.cluster.request_timeout
        await self._admit(datacenter, admit_within)
        future = self._send(query, parameters, datacenter, write, consistency, timeout, host)
        try:
            # A margin over the driver's own timeout, so the driver reports first.
            return await bridge(future, timeout + 1.0)
        except NoHostAvailable as exc:
            explained = self._explained(exc, [host] if host else self.hosts(datacenter))
            if explained is None:
                raise
            raise explained from exc

    async def timed(
        self,
        query: Statement,
        parameters: Sequence[Any] | None,
        *,
        datacenter: str,
        consistency: Consistency,
        timeout: float,
        write: bool = False,
    ) -> float:
        """Send one request only to time it: when it was answered (`time.monotonic` on the
        driver's IO thread), less the time it waited for the request budget, which is the
        exporter's own pacing and not the cluster's latency; its rows are dropped. The answer
        waits for the loop's next `drain_answers` instead of waking it
        (`exporter.bridge.quiet_bridge`)."""
        waited = await self._admit(datacenter)
        future = self._send(query, parameters, datacenter, write, consistency, timeout, None, True)
        try:
            return await quiet_bridge(future, timeout + 1.0, self._answers) - waited
        except NoHostAvailable as exc:
            explained = self._explained(exc, self.hosts(datacenter))
            if explained is None:
                raise
            raise explained from exc

    async def _admit(self, datacenter: str, within: float | None = None) -> float:
        """Wait for the datacenter's request budget to allow one more request (at most
        `within` seconds, else `OverBudget`); return how long that took."""
        if self.budget.try_take(datacenter):
            return 0.0
        return await self.budget.take(datacenter, within)

    def drain_answers(self) -> None:
        """Settle, on the loop, the timed requests answered since the last drain."""
        drain(self._answers)

    async def close(self) -> None:
        cluster, self._cluster, self._session = self._cluster, None, None
        if cluster is not None:
            loop = asyncio.get_running_loop()
            try:
                await asyncio.wait_for(
                    loop.run_in_executor(self._executor, cluster.shutdown), timeout=5.0
                )
            except TimeoutError:
                log.warning("driver shutdown took longer than 5 s; leaving it behind")
        self._executor.shutdown(wait=False, cancel_futures=True)
