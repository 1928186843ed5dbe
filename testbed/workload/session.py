"""The workload's one driver session: LOCAL_QUORUM in the write datacenter, awaited from asyncio."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

from cassandra import ConsistencyLevel
from cassandra.cluster import (
    EXEC_PROFILE_DEFAULT,
    Cluster,
    ExecutionProfile,
    ResponseFuture,
    Session,
)
from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy
from cassandra.query import BoundStatement, PreparedStatement, Statement


def bridge(future: ResponseFuture) -> asyncio.Future[list[Any]]:
    """An asyncio future of the rows of a driver future, settled on the running loop."""
    loop = asyncio.get_running_loop()
    result: asyncio.Future[list[Any]] = loop.create_future()

    def settle(rows: Any, error: BaseException | None) -> None:
        if result.done():
            return
        if error is not None:
            result.set_exception(error)
        else:
            result.set_result(list(rows) if rows else [])

    def deliver(rows: Any = None, error: BaseException | None = None) -> None:
        with contextlib.suppress(RuntimeError):  # the loop has closed
            loop.call_soon_threadsafe(settle, rows, error)

    future.add_callbacks(lambda rows: deliver(rows), lambda exc: deliver(None, exc))
    return result


class WorkloadSession:
    """Connects on first use; prepares each statement once; fills `{ks}` with the keyspace."""

    def __init__(self, contact_points: Sequence[str], write_datacenter: str, keyspace: str,
                 port: int) -> None:
        self.contact_points = list(contact_points)
        self.write_datacenter = write_datacenter
        self.keyspace = keyspace
        self.port = port
        self._cluster: Cluster | None = None
        self._session: Session | None = None
        self._prepared: dict[str, PreparedStatement] = {}

    def _connect_blocking(self) -> tuple[Cluster, Session]:
        profile = ExecutionProfile(
            load_balancing_policy=TokenAwarePolicy(
                DCAwareRoundRobinPolicy(local_dc=self.write_datacenter)
            ),
            consistency_level=ConsistencyLevel.LOCAL_QUORUM,
            request_timeout=10.0,
        )
        cluster = Cluster(
            contact_points=self.contact_points,
            port=self.port,
            protocol_version=5,
            execution_profiles={EXEC_PROFILE_DEFAULT: profile},
            connect_timeout=10.0,
            control_connection_timeout=10.0,
        )
        try:
            return cluster, cluster.connect(wait_for_all_pools=True)
        except BaseException:
            cluster.shutdown()
            raise

    async def connect(self) -> None:
        if self._session is not None:
            return
        loop = asyncio.get_running_loop()
        self._cluster, self._session = await loop.run_in_executor(None, self._connect_blocking)

    async def execute(self, query: str | Statement, params: Any = None,
                      *, timeout: float = 10.0) -> list[Any]:
        """Run one statement (LOCAL_QUORUM, write DC)."""
        if self._session is None:
            raise RuntimeError("the workload is not connected")
        return await bridge(self._session.execute_async(query, params, timeout=timeout))

    async def _prepare(self, query: str) -> PreparedStatement:
        statement = self._prepared.get(query)
        if statement is None:
            assert self._session is not None
            loop = asyncio.get_running_loop()
            statement = await loop.run_in_executor(None, self._session.prepare, query)
            self._prepared[query] = statement
        return statement

    async def bound(self, query: str, params: Sequence[Any]) -> BoundStatement:
        """`query`, its `{ks}` filled in, prepared and bound to `params`."""
        return (await self._prepare(query.format(ks=self.keyspace))).bind(params)

    async def run(self, query: str, params: Sequence[Any]) -> list[Any]:
        """Run `query` (its `{ks}` filled in) as a prepared statement."""
        return await self.execute(await self._prepare(query.format(ks=self.keyspace)), params)

    async def close(self) -> None:
        cluster, self._cluster, self._session = self._cluster, None, None
        if cluster is not None:
            await asyncio.get_running_loop().run_in_executor(None, cluster.shutdown)
