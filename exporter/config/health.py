"""How probe results become health verdicts: severities, hysteresis, HTTP codes and groups."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from exporter.config.base import Duration, StrictModel
from exporter.config.cluster import DatacentersConfig
from exporter.config.latency import LatencyConfig
from exporter.config.read_models import ReadModelConfig
from exporter.results import Check

GROUP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
RESERVED_GROUP_NAMES = frozenset({"live", "ready"})
"""Taken by /health/live and /health/ready."""


def _upper(value: Any) -> Any:
    return value.strip().upper() if isinstance(value, str) else value


class Severity(StrEnum):
    """What a breached threshold makes of its check."""

    DOWN = "DOWN"
    DEGRADED = "DEGRADED"


BreachSeverity = Annotated[Severity, BeforeValidator(_upper)]
HttpCode = Annotated[int, Field(ge=200, le=599)]


class Severities(StrictModel):
    """Defaults follow the CQRS pattern: a lost write path or a stale read model is DOWN."""

    write_path: BreachSeverity = Severity.DOWN
    replication_lag: BreachSeverity = Severity.DEGRADED
    read_model_sync_lag: BreachSeverity = Severity.DOWN
    command_latency_p99: BreachSeverity = Severity.DEGRADED
    query_latency_p99: BreachSeverity = Severity.DEGRADED
    sync_failure_rate: BreachSeverity = Severity.DEGRADED

    def of(self, check: Check) -> Severity:
        return Severity(getattr(self, check.value))


class HttpStatuses(StrictModel):
    """The HTTP status code answered for each health status."""

    UP: HttpCode = 200
    DEGRADED: HttpCode = 200
    DOWN: HttpCode = 503
    UNKNOWN: HttpCode = 200

    def of(self, status: str) -> int:
        return int(getattr(self, status))


class GroupHttpStatuses(StrictModel):
    """Per-group overrides; a status left out answers as in `health.http_status`."""

    UP: HttpCode | None = None
    DEGRADED: HttpCode | None = None
    DOWN: HttpCode | None = None
    UNKNOWN: HttpCode | None = None


class GroupMember(StrictModel):
    """One entry of a group: a whole check, or one component of it (`check/component`)."""

    check: Check
    component: str | None = None

    def __str__(self) -> str:
        return self.check.value if self.component is None else f"{self.check}/{self.component}"


def parse_member(value: Any) -> Any:
    """Read `replication_lag` or `replication_lag/ca-central` into a GroupMember."""
    if isinstance(value, GroupMember):
        return value
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"expected CHECK or CHECK/COMPONENT, got {value!r}")
    check, _, component = value.strip().partition("/")
    known = [c.value for c in Check]
    if check not in known:
        raise ValueError(f"unknown check {check!r}; known checks: {', '.join(known)}")
    if _ and not component:
        raise ValueError(f"{value!r} names no component after '/'")
    return GroupMember(check=Check(check), component=component or None)


Member = Annotated[GroupMember, BeforeValidator(parse_member)]


class HealthGroup(StrictModel):
    """A named subset of the checks, served at /health/<name>."""

    checks: list[Member] = Field(min_length=1, max_length=256)
    http_status: GroupHttpStatuses = GroupHttpStatuses()

    @field_validator("checks")
    @classmethod
    def _once_each(cls, members: list[GroupMember]) -> list[GroupMember]:
        names = [str(m) for m in members]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"listed more than once: {', '.join(twice)}")
        return members

    def http_code(self, status: str, default: HttpStatuses) -> int:
        override = getattr(self.http_status, status)
        return default.of(status) if override is None else int(override)


class HealthConfig(StrictModel):
    evaluation_interval: Duration = 0.25
    """How often the health checks are evaluated from the probes' cached results."""
    raise_after: int = Field(default=3, ge=1, le=100)
    """Consecutive breaching readings before a check enters a worse state."""
    clear_after: int = Field(default=3, ge=1, le=100)
    """Consecutive clear readings before it leaves it."""
    severities: Severities = Severities()
    http_status: HttpStatuses = HttpStatuses()
    groups: dict[str, HealthGroup] = Field(default_factory=dict, max_length=64)

    @model_validator(mode="after")
    def _group_names(self) -> HealthConfig:
        errors = []
        for name in self.groups:
            if name in RESERVED_GROUP_NAMES:
                message = f"group name {name!r} is reserved for /health/{name}"
            elif not GROUP_NAME.match(name):
                message = (
                    f"group name {name!r} must start with a letter or digit and use only "
                    "letters, digits, '_', '.' and '-' (at most 64)"
                )
            else:
                continue
            errors.append(_error(("groups", name), message, name))
        if errors:
            raise ValidationError.from_exception_data("HealthConfig", errors)
        return self


def known_components(
    datacenters: DatacentersConfig,
    read_models: Sequence[ReadModelConfig],
    latency: LatencyConfig | None,
) -> Mapping[Check, tuple[str, ...]]:
    """The components each check can have under this config (what group entries may name)."""
    queries = [
        f"{dc}/{query.name}"
        for query in (latency.queries if latency is not None else ())
        for dc in (query.datacenters or datacenters.all)
    ]
    return {
        Check.WRITE_PATH: (datacenters.write,),
        Check.COMMAND_LATENCY_P99: (datacenters.write,),
        Check.REPLICATION_LAG: tuple(datacenters.read),
        Check.QUERY_LATENCY_P99: (*datacenters.all, *queries),
        Check.READ_MODEL_SYNC_LAG: tuple(m.name for m in read_models),
        # Only methods that count checks and failures have a failure rate.
        Check.SYNC_FAILURE_RATE: tuple(m.name for m in read_models if m.checks_sync),
    }


def check_group_components(
    health: HealthConfig, components: Mapping[Check, tuple[str, ...]]
) -> HealthConfig:
    """Reject group entries whose component the config does not have; errors name the key."""
    errors = []
    for name, group in health.groups.items():
        for index, member in enumerate(group.checks):
            known = components.get(member.check, ())
            if member.component is None or member.component in known:
                continue
            message = (
                f"{member.check.value} has no component {member.component!r}; "
                f"known: {', '.join(known) if known else 'none under this config'}"
            )
            errors.append(_error(("groups", name, "checks", index), message, str(member)))
    if errors:
        raise ValidationError.from_exception_data("HealthConfig", errors)
    return health


def _error(loc: tuple[str | int, ...], message: str, value: Any) -> InitErrorDetails:
    # Raised as a ValidationError inside a validator, so pydantic reports it at `loc`
    # under the enclosing key (e.g. health.groups.NAME.checks[1]) instead of at the model.
    return InitErrorDetails(
        type=PydanticCustomError("value_error", "{message}", {"message": message}),
        loc=loc,
        input=value,
    )
