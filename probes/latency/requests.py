"""The requests the latency probe times: a command, the probe's own read, declared queries."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Sequence
from typing import Any

from cassandra.query import PreparedStatement

from exporter.config import Config, Consistency
from exporter.config.latency import DeclaredQuery
from exporter.connection import CassandraConnection, describe
from exporter.results import FailureReason
from exporter.tables import Table
from probes.latency.timing import NotReady

# A stable name for log filters, whatever the module's path.
log = logging.getLogger(__name__)

RING = 64
"""Rows per writer in `command_probe`: commands overwrite them in turn, reads pick one."""
COMMANDS = Table(
    # A fixed ring of RING rows per writer, overwritten by the commands: rows never grow.
    "command_probe",
    key=(("writer_id", "text"), ("slot", "int")),
    columns=(("sequence", "bigint"), ("payload", "text")),
)
PAYLOAD = "x" * 100
"""A small, constant payload: the command's size is not what is being measured."""
KEY_RETRY = 2.0
"""Seconds between attempts to load keys while there are none."""


def command_cql(keyspace: str) -> str:
    return (
        f"INSERT INTO {keyspace}.{COMMANDS.name} (writer_id, slot, sequence, payload) "
        "VALUES (?, ?, ?, ?)"
    )


def probe_read_cql(keyspace: str) -> str:
    return f"SELECT sequence FROM {keyspace}.{COMMANDS.name} WHERE writer_id = ? AND slot = ?"


class _Prepared:
    """A statement prepared once through the shared connection."""

    def __init__(self, connection: CassandraConnection, cql: str) -> None:
        self.connection = connection
        self.cql = cql
        self.statement: PreparedStatement | None = None

    @property
    def connected(self) -> bool:
        return self.connection.connected

    def why_not_connected(self) -> tuple[FailureReason, str]:
        return self.connection.why_not_connected()

    async def prepare(self) -> None:
        if self.statement is None:
            self.statement = await self.connection.prepare(self.cql)

    def _ready(self) -> PreparedStatement:
        if self.statement is None:
            raise NotReady("the statement is not prepared yet")
        return self.statement


class CommandWrite(_Prepared):
    """An INSERT into the monitoring keyspace through the write datacenter."""

    def __init__(
        self, connection: CassandraConnection, config: Config, consistency: Consistency
    ) -> None:
        super().__init__(connection, command_cql(config.monitoring.keyspace))
        self.datacenter = config.datacenters.write
        self.writer_id = config.monitoring.writer_id
        self.consistency = consistency
        self.sequence = 0

    async def send(self, timeout: float) -> float:
        self.sequence += 1
        return await self.connection.timed(
            self._ready(),
            (self.writer_id, self.sequence % RING, self.sequence, PAYLOAD),
            datacenter=self.datacenter,
            write=True,
            consistency=self.consistency,
            timeout=timeout,
        )


class ProbeRead(_Prepared):
    """A single-partition read of one of the command probe's rows, in one datacenter."""

    def __init__(
        self,
        connection: CassandraConnection,
        config: Config,
        datacenter: str,
        consistency: Consistency,
        rng: random.Random,
    ) -> None:
        super().__init__(connection, probe_read_cql(config.monitoring.keyspace))
        self.datacenter = datacenter
        self.writer_id = config.monitoring.writer_id
        self.consistency = consistency
        self._rng = rng

    async def send(self, timeout: float) -> float:
        return await self.connection.timed(
            self._ready(),
            (self.writer_id, self._rng.randrange(RING)),
            datacenter=self.datacenter,
            consistency=self.consistency,
            timeout=timeout,
        )


class KeyPool:
    """Bind values for a declared query, read with its key query and refreshed periodically."""

    def __init__(
        self,
        connection: CassandraConnection,
        query: DeclaredQuery,
        datacenters: Sequence[str],
        rng: random.Random,
        clock: Callable[[], float],
    ) -> None:
        self.connection = connection
        self.query = query
        self.datacenters = tuple(datacenters)
        self.keys: list[tuple[Any, ...]] = []
        self.problem: str | None = "keys not loaded yet"
        self.loaded_at: float | None = None
        self._rng = rng
        self._clock = clock
        self._logged: str | None = None

    def pick(self) -> tuple[Any, ...]:
        if not self.keys:
            raise NotReady(self.problem or "the key query returned no rows")
        return self._rng.choice(self.keys)

    async def load(self) -> None:
        """Read the keys from the first datacenter that answers; keep the old ones on failure."""
        assert self.query.key_query is not None
        errors = []
        for dc in self.datacenters:
            try:
                rows = await self.connection.execute(self.query.key_query, datacenter=dc)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                errors.append(f"{dc}: {describe(exc)}")
                continue
            keys = [tuple(row) for row in rows[: self.query.max_keys]]
            widths = {len(key) for key in keys}
            if widths and widths != {self.query.markers}:
                self.problem = (
                    f"key_query returns {min(widths)} column(s) but cql has "
                    f"{self.query.markers} bind marker(s)"
                )
            elif not keys:
                self.problem = "the key query returned no rows"
            else:
                self.keys, self.problem = keys, None
            self.loaded_at = self._clock()
            self._logged = None
            return
        problem = "the key query failed: " + "; ".join(errors)
        if problem != self._logged:
            # Once per distinct problem: the query retries every few seconds.
            log.warning("declared query %s: %s", self.query.name, problem)
            self._logged = problem
        if not self.keys:
            self.problem = problem

    async def run(self) -> None:
        """Reload the keys every `key_refresh` (sooner while there are none) until cancelled."""
        while True:
            if self.connection.connected:
                await self.load()
            await asyncio.sleep(self.query.key_refresh if self.keys else KEY_RETRY)


class DeclaredRead(_Prepared):
    """A user-declared read-model query in one datacenter, with a random key per request."""

    def __init__(
        self,
        connection: CassandraConnection,
        query: DeclaredQuery,
        datacenter: str,
        consistency: Consistency,
        keys: KeyPool | None,
    ) -> None:
        super().__init__(connection, query.cql)
        self.datacenter = datacenter
        self.consistency = consistency
        self.keys = keys

    async def prepare(self) -> None:
        await super().prepare()
        if self.keys is not None:
            self.keys.pick()  # raises NotReady with the reason while there are no keys

    async def send(self, timeout: float) -> float:
        parameters = self.keys.pick() if self.keys is not None else None
        return await self.connection.timed(
            self._ready(),
            parameters,
            datacenter=self.datacenter,
            consistency=self.consistency,
            timeout=timeout,
        )
