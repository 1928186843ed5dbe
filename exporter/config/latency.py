"""The command and query latency probes, and the server-side latency view."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from exporter.config.base import Count, Duration, StrictModel, format_duration
from exporter.config.cluster import Consistency, DatacentersConfig
from exporter.config.cql import MAX_CQL_LENGTH, check_select
from exporter.config.probes import ProbeSchedule

BUILTIN_QUERY = ""
"""The `query` label of the probe's own read of the monitoring keyspace (empty = absent)."""

# Quoted strings first, so a `?` or `FROM` inside a literal is not mistaken for syntax.
_CQL_TOKENS = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|\?|[^'\"?]+")
_QUALIFIED_TABLE = re.compile(
    r"\bFROM\s+(\"(?:[^\"]|\"\")+\"|[A-Za-z_]\w*)\s*\.\s*(\"(?:[^\"]|\"\")+\"|[A-Za-z_]\w*)",
    re.IGNORECASE,
)


def bind_markers(cql: str) -> int:
    """How many `?` bind markers a statement has, outside quoted literals and names."""
    return sum(1 for token in _CQL_TOKENS.findall(cql) if token == "?")


def _unquote(name: str) -> str:
    return name[1:-1].replace('""', '"') if name.startswith('"') else name.lower()


def queried_table(cql: str) -> tuple[str, str] | None:
    """(keyspace, table) of a `SELECT ... FROM keyspace.table`, as Cassandra stores the names."""
    match = _QUALIFIED_TABLE.search(cql)
    if match is None:
        return None
    return _unquote(match.group(1)), _unquote(match.group(2))


def _select(cql: str) -> None:
    if len(cql) > MAX_CQL_LENGTH:
        raise ValueError(f"a statement of at most {MAX_CQL_LENGTH} characters, please")
    check_select(cql)


class DeclaredQuery(StrictModel):
    """A real read-model query, timed in each of its datacenters with keys from `key_query`."""

    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")
    """The `query` label and the health component `<datacenter>/<name>`."""
    cql: str = Field(min_length=1)
    """A SELECT naming its table with the keyspace; `?` markers take the key's columns."""
    key_query: str | None = None
    """A SELECT whose rows are the bind values for `cql` (one column per `?`)."""
    key_refresh: Duration = 300.0
    """How often the keys are read again."""
    max_keys: int = Field(default=1000, ge=1, le=100_000)
    datacenters: list[str] | None = Field(default=None, max_length=33)
    """Where the query is timed; defaults to every datacenter."""
    consistency: Consistency | None = None
    """Defaults to `probes.latency.query_consistency`, then `consistency.query`."""
    rate: float | None = Field(default=None, gt=0, le=1000)
    """Requests per second per datacenter; defaults to `probes.latency.rate`."""

    @field_validator("cql")
    @classmethod
    def _cql_is_a_qualified_select(cls, cql: str) -> str:
        _select(cql)
        if queried_table(cql) is None:
            raise ValueError("name the table with its keyspace, as in FROM keyspace.table")
        return cql

    @field_validator("key_query")
    @classmethod
    def _key_query_is_a_select(cls, key_query: str | None) -> str | None:
        if key_query is not None:
            _select(key_query)
        return key_query

    @model_validator(mode="after")
    def _keys_fit_the_markers(self) -> DeclaredQuery:
        markers = bind_markers(self.cql)
        if markers and self.key_query is None:
            raise ValueError(
                f"cql has {markers} bind marker(s) (?), so key_query must say where their "
                "values come from"
            )
        if not markers and self.key_query is not None:
            raise ValueError("key_query is given but cql has no bind markers (?) to take keys")
        if self.datacenters is not None and len(set(self.datacenters)) != len(self.datacenters):
            raise ValueError("datacenters must be listed once each")
        return self

    @property
    def markers(self) -> int:
        return bind_markers(self.cql)


class ServerLatencyConfig(ProbeSchedule):
    """Cassandra's own coordinator latency per table, from the 5.0 virtual tables."""

    interval: Duration = 15.0
    timeout: Duration = 5.0
    column_unit: Literal["seconds", "milliseconds"] = "seconds"
    """What the `p99th_ms` column really holds. Cassandra 5.0 keeps its timers in
    microseconds but converts them as if they were nanoseconds, so the `_ms` columns hold
    seconds; set `milliseconds` for a release that reports what the name says."""


class LatencyConfig(ProbeSchedule):
    """Fixed-rate command and query timing; `timeout` bounds each request."""

    interval: Duration = 10.0
    """How often the window's quantiles are refreshed for /metrics and /health."""
    timeout: Duration = 1.0
    """Per request, from its intended start: an unanswered request counts at this value."""
    rate: float = Field(default=10.0, gt=0, le=1000)
    """Requests per second per datacenter, at fixed intended start times."""
    window: Duration = 300.0
    window_slices: int = Field(default=5, ge=1, le=60)
    min_samples: Count = 100
    """Below this many samples in the window the p99 verdict is `insufficient data`."""
    command_consistency: Consistency | None = None
    """Defaults to `consistency.command`."""
    query_consistency: Consistency | None = None
    """Defaults to `consistency.query`."""
    loop_lag_flag: Duration = 0.010
    """Timings overlapping an event-loop lag longer than this are counted as lagged."""
    queries: list[DeclaredQuery] = Field(default_factory=list, max_length=100)
    server: ServerLatencyConfig = ServerLatencyConfig()

    @model_validator(mode="after")
    def _coherent(self) -> LatencyConfig:
        if self.window / self.window_slices < 1.0:
            raise ValueError(
                f"window ({format_duration(self.window)}) split into {self.window_slices} "
                "slices gives slices shorter than 1s"
            )
        if self.window <= self.timeout:
            raise ValueError(
                f"window ({format_duration(self.window)}) must be longer than timeout "
                f"({format_duration(self.timeout)})"
            )
        names = [q.name for q in self.queries]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"query names must be unique: {', '.join(duplicates)}")
        return self


def check_latency_datacenters(latency: LatencyConfig, datacenters: DatacentersConfig) -> None:
    """Every datacenter a declared query names must be one of the configured ones."""
    known = datacenters.all
    for index, query in enumerate(latency.queries):
        for dc in query.datacenters or ():
            if dc not in known:
                raise ValueError(
                    f"latency.queries[{index}].datacenters: unknown datacenter {dc!r} "
                    f"(known: {', '.join(known)})"
                )
