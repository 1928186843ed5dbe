"""Read models declared with CQL, and how each one's sync is measured.

Each entry of `read_models:` names one read model and one method; the method's own section
(`checkpoint:`, `audit:` or `sentinel:`) holds its CQL. Nothing here is specific to a domain.
"""

from __future__ import annotations

import re
from enum import StrEnum
from string import Template
from typing import Any, cast

from pydantic import Field, field_validator, model_validator

from exporter.config.base import Count, Duration, Rate, StrictModel, format_duration, parse_duration
from exporter.config.cluster import Consistency
from exporter.config.cql import MAX_CQL_LENGTH, check_select, check_write
from exporter.config.probes import ProbeSchedule

EARLY_FAILURES = 5
"""With this many failures in the window a sync failure ratio is judged before `min_checks`
checks: the Wilson interval is then trustworthy."""
DEFAULT_MIN_CHECKS = 200


class SyncMethod(StrEnum):
    CHECKPOINT = "checkpoint"
    AUDIT = "audit"
    SENTINEL = "sentinel"


# interval, timeout per method when not given.
DEFAULT_SCHEDULES: dict[SyncMethod, tuple[float, float]] = {
    SyncMethod.CHECKPOINT: (1.0, 0.9),
    SyncMethod.AUDIT: (10.0, 8.0),
    SyncMethod.SENTINEL: (5.0, 2.0),
}

WRITTEN_AT = "written_at"
"""The column every audit query returns: the WRITETIME (microseconds) that dates the row."""

RECENT_BINDS = frozenset({"since", "max_rows", "start_token"})
SAMPLE_BINDS = frozenset({"start_token", "max_rows"})
SENTINEL_BINDS = frozenset(
    {"sentinel_id", "sentinel_time", "sentinel_date", "sentinel_seq", "sentinel_tag", "writer_id"}
)
TEMPLATE_FIELDS = frozenset(
    {"sentinel_id", "sentinel_time_ms", "sentinel_date", "sentinel_seq", "sentinel_tag",
     "writer_id"}
)

_STRING_LITERAL = re.compile(r"'(?:[^']|'')*'")
_NAMED_BIND = re.compile(r"(?<![\w:]):([A-Za-z_][A-Za-z0-9_]*)")
_POSITIONAL_BIND = re.compile(r"\?")


def bind_names(cql: str) -> set[str]:
    """The named bind markers (`:name`) of a statement, outside string literals."""
    code = _STRING_LITERAL.sub("''", cql)
    if _POSITIONAL_BIND.search(code):
        raise ValueError("use named bind markers such as :name, not '?'")
    return set(_NAMED_BIND.findall(code))


def _cql(value: str, *, select: bool) -> str:
    text = " ".join(value.split())
    if not text:
        raise ValueError("must be a CQL statement, got an empty string")
    if len(text) > MAX_CQL_LENGTH:
        raise ValueError(f"a statement of at most {MAX_CQL_LENGTH} characters, please")
    # What runs is the text collapsed onto one line: check that, comments and all.
    if select:
        check_select(text)
    else:
        check_write(text)
    bind_names(text)  # refuses positional markers here, where the key is known
    return text


def _only_binds(cql: str, allowed: frozenset[str] | set[str], what: str) -> set[str]:
    names = bind_names(cql)
    unknown = sorted(names - set(allowed))
    if unknown:
        known = ", ".join(f":{n}" for n in sorted(allowed)) or "none"
        raise ValueError(
            f"unknown bind marker {', '.join(':' + n for n in unknown)} in {what} "
            f"(available: {known})"
        )
    return names


class CheckpointConfig(StrictModel):
    """Two queries, each returning one position (a TIMEUUID, a timestamp or a WRITETIME)."""

    head_query: str
    """The newest event's position in the event store."""
    checkpoint_query: str
    """The projector's position: the last event it has projected."""

    @field_validator("head_query", "checkpoint_query")
    @classmethod
    def _select_without_binds(cls, value: str) -> str:
        text = _cql(value, select=True)
        _only_binds(text, set(), "this query")
        return text


class AuditConfig(StrictModel):
    """Sample write-side rows, look each up in the read model, compare fields and write times."""

    source_datacenter: str | None = None
    """Where the write side is sampled; defaults to the write datacenter."""
    recent_query: str | None = None
    """Recent write-side rows; may bind :since (a timestamp), :max_rows and :start_token."""
    sample_query: str | None = None
    """Rows from a random token on; must bind :start_token, may bind :max_rows."""
    lookup_query: str
    """The read model's row for one source row; binds source columns by name."""
    compare: list[str] | dict[str, str] = Field(max_length=64)
    """Fields that must match: names common to both, or {read_model_column: source_column}."""
    budget: Rate = 10.0
    """Queries per second this audit may send, all of them counted."""
    samples_per_run: int = Field(default=40, ge=1, le=100_000)
    recent_share: float = Field(default=0.5, ge=0, le=1)
    """Share of a run's samples taken by recent_query when both queries are given."""
    recent_window: Duration = 60.0
    """What `:since` means: this long before now."""
    grace: Duration = 30.0
    """How long a row may be absent or stale before it counts as a failure."""
    lag_window: Duration = 300.0
    """Only rows written this recently count towards the current lag."""
    lag_quantile: float = Field(default=0.9, gt=0, le=1)
    """The run's lag is this quantile of its rows' lags."""

    @field_validator("recent_query", "sample_query", "lookup_query")
    @classmethod
    def _select(cls, value: str | None) -> str | None:
        return None if value is None else _cql(value, select=True)

    @field_validator("compare")
    @classmethod
    def _some_fields(cls, value: list[str] | dict[str, str]) -> list[str] | dict[str, str]:
        if not value:
            raise ValueError("name at least one field to compare")
        names = list(value) + (list(value.values()) if isinstance(value, dict) else [])
        for name in names:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise ValueError(f"{name!r} is not a column name")
        return value

    @model_validator(mode="after")
    def _queries(self) -> AuditConfig:
        if self.recent_query is None and self.sample_query is None:
            raise ValueError("give recent_query, sample_query or both")
        if self.recent_query is not None:
            _only_binds(self.recent_query, RECENT_BINDS, "recent_query")
        if self.sample_query is not None:
            names = _only_binds(self.sample_query, SAMPLE_BINDS, "sample_query")
            if "start_token" not in names:
                raise ValueError(
                    "sample_query must bind :start_token, e.g. WHERE token(id) >= :start_token"
                )
        if not bind_names(self.lookup_query):
            raise ValueError("lookup_query must bind the read model's key, e.g. :order_id")
        if self.grace >= self.lag_window:
            raise ValueError(
                f"grace ({format_duration(self.grace)}) must be shorter than lag_window "
                f"({format_duration(self.lag_window)})"
            )
        return self

    @property
    def fields(self) -> dict[str, str]:
        """{read_model_column: source_column}."""
        if isinstance(self.compare, dict):
            return dict(self.compare)
        return {name: name for name in self.compare}


class SentinelConfig(StrictModel):
    """Write a sentinel through the real write path; poll the read model until it shows."""

    write: str | list[str] = Field(union_mode="left_to_right")
    """One statement (a BATCH is one) or several, run in order in the write datacenter."""
    read: str
    """Reads the read model where the sentinel should appear."""
    match: dict[str, str] = Field(default_factory=dict, max_length=64)
    """{read column: bind name}: the sentinel has arrived when each column equals the value.
    Empty: it has arrived when `read` returns a row."""
    params: dict[str, str] = Field(default_factory=dict, max_length=64)
    """Extra text binds built per sentinel from templates such as '$sentinel_tag'."""
    poll_interval: Duration = 0.1
    sentinel_timeout: Duration = 30.0
    """A sentinel unseen for this long is counted missing."""

    @field_validator("write")
    @classmethod
    def _writes(cls, value: str | list[str]) -> list[str]:
        statements = [value] if isinstance(value, str) else list(value)
        if not statements:
            raise ValueError("give at least one statement")
        if len(statements) > 16:
            raise ValueError("give at most 16 statements")
        return [_cql(s, select=False) for s in statements]

    @field_validator("read")
    @classmethod
    def _reads(cls, value: str) -> str:
        return _cql(value, select=True)

    @field_validator("params")
    @classmethod
    def _templates(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if name in SENTINEL_BINDS:
                raise ValueError(f"{name!r} is a built-in bind and cannot be redefined")
            template = Template(text)
            if not template.is_valid():
                raise ValueError(f"{name}: invalid template (write $$ for a literal $)")
            unknown = sorted(set(template.get_identifiers()) - TEMPLATE_FIELDS)
            if unknown:
                raise ValueError(
                    f"{name}: unknown template field {', '.join('$' + u for u in unknown)} "
                    f"(available: {', '.join('$' + f for f in sorted(TEMPLATE_FIELDS))})"
                )
        return value

    @model_validator(mode="after")
    def _binds(self) -> SentinelConfig:
        available = SENTINEL_BINDS | set(self.params)
        for index, statement in enumerate(self.write):
            _only_binds(statement, available, f"write[{index}]")
        _only_binds(self.read, available, "read")
        for column, bind in self.match.items():
            if bind not in available:
                raise ValueError(f"match.{column}: {bind!r} is neither a built-in bind nor a param")
        if self.sentinel_timeout <= self.poll_interval:
            raise ValueError("sentinel_timeout must be longer than poll_interval")
        return self

    @property
    def statements(self) -> list[str]:
        return self.write if isinstance(self.write, list) else [self.write]


class ReadModelConfig(ProbeSchedule):
    """One read model and the method that measures its sync."""

    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")
    method: SyncMethod
    datacenter: str | None = None
    """Where the read model is read; defaults to the write datacenter."""
    consistency: Consistency | None = None
    """Consistency of this read model's reads; defaults to consistency.query."""
    failure_window: Duration = 900.0
    """The sync failure ratio covers the checks of this long."""
    failure_window_slices: int = Field(default=15, ge=1, le=120)
    min_checks: Count = DEFAULT_MIN_CHECKS
    """Below this many checks in the window the ratio's verdict is `insufficient data`,
    unless the window already holds `EARLY_FAILURES` failures. At 200, one failure alone
    never breaches 0.1 % (its Wilson lower bound is 0.088 %)."""
    checkpoint: CheckpointConfig | None = None
    audit: AuditConfig | None = None
    sentinel: SentinelConfig | None = None

    @model_validator(mode="before")
    @classmethod
    def _method_defaults(cls, data: Any) -> Any:
        """Fill in the method's own interval and timeout where none is given."""
        if not isinstance(data, dict):
            return data
        try:
            method = SyncMethod(cast(str, data.get("method")))
        except ValueError:
            return data
        interval, timeout = DEFAULT_SCHEDULES[method]
        data = dict(data)
        if "interval" not in data:
            data["interval"] = format_duration(interval)
        if "timeout" not in data:
            given = data["interval"]
            try:
                chosen = parse_duration(given)
            except ValueError:
                return data  # the interval's own error will say why
            data["timeout"] = format_duration(timeout if timeout < chosen else chosen * 0.8)
        return data

    @model_validator(mode="after")
    def _section_for_method(self) -> ReadModelConfig:
        sections = {m: getattr(self, m.value) for m in SyncMethod}
        if sections[self.method] is None:
            method = self.method.value
            raise ValueError(f"method {method!r} needs its `{method}:` section")
        extra = sorted(m.value for m, s in sections.items() if s is not None and m != self.method)
        if extra:
            raise ValueError(
                f"`{'`, `'.join(extra)}:` given but method is {self.method.value!r}"
            )
        return self

    @property
    def checks_sync(self) -> bool:
        """Whether the method counts checks and failures (audit and sentinel do)."""
        return self.method is not SyncMethod.CHECKPOINT

    def datacenters_used(self) -> list[str]:
        used = [self.datacenter] if self.datacenter else []
        if self.audit is not None and self.audit.source_datacenter:
            used.append(self.audit.source_datacenter)
        return used


def read_model_problems(models: list[ReadModelConfig], datacenters: tuple[str, ...]) -> list[str]:
    """Datacenters named by read models that the config does not declare."""
    problems = []
    for index, model in enumerate(models):
        for dc in model.datacenters_used():
            if dc not in datacenters:
                problems.append(
                    f"read_models[{index}] ({model.name}): unknown datacenter {dc!r} "
                    f"(declared: {', '.join(datacenters)})"
                )
    return problems
