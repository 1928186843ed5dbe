"""The exporter's configuration: one YAML file, validated once into frozen objects.

Everything past `load_config` works with these objects, never with dicts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator

from exporter.config.base import (
    RESOLVE_SECRETS,
    Duration,
    Ratio,
    Secret,
    StrictModel,
    UnresolvedSecret,
    format_duration,
)
from exporter.config.budget import BudgetConfig
from exporter.config.cluster import (
    AuthConfig,
    ClusterConfig,
    Consistency,
    ConsistencyConfig,
    DatacentersConfig,
    MonitoringConfig,
    check_replication_factors,
)
from exporter.config.health import HealthConfig, check_group_components, known_components
from exporter.config.latency import LatencyConfig, check_latency_datacenters
from exporter.config.loading import LoadError, load_yaml
from exporter.config.probes import ProbeSchedule, ReachabilityConfig
from exporter.config.read_models import ReadModelConfig, SyncMethod, read_model_problems
from exporter.config.replication import ReplicationConfig, check_replication_mode
from exporter.config.server import LogFormat, ServerConfig, parse_listen
from exporter.config.sharding import ShardingConfig, hashmod, parse_shard
from exporter.config.slo import SloConfig
from exporter.config.thresholds import Thresholds
from exporter.config.tls import TlsConfig, TlsFileError

__all__ = [
    "AuthConfig",
    "BudgetConfig",
    "ClusterConfig",
    "Config",
    "ConfigError",
    "Consistency",
    "ConsistencyConfig",
    "DatacentersConfig",
    "Duration",
    "HealthConfig",
    "LatencyConfig",
    "LogFormat",
    "MonitoringConfig",
    "ProbeSchedule",
    "ProbesConfig",
    "Ratio",
    "ReachabilityConfig",
    "ReadModelConfig",
    "ReplicationConfig",
    "Secret",
    "ServerConfig",
    "ShardingConfig",
    "SyncMethod",
    "Thresholds",
    "TlsConfig",
    "TlsFileError",
    "UnresolvedSecret",
    "format_duration",
    "hashmod",
    "load_config",
    "parse_config",
    "parse_listen",
    "parse_shard",
]


class ProbesConfig(StrictModel):
    """One section per probe; every probe has `enabled`, `interval` and `timeout`."""

    startup_grace: Duration = 30.0
    """How long after start the probes wait for a session and a checked schema before they
    run anyway, and within which a probe's failures before its first success are `starting`
    (logged once, at INFO) rather than warnings."""

    reachability: ReachabilityConfig = ReachabilityConfig()
    """Whether each datacenter answers through its own execution profile."""
    replication: ReplicationConfig = ReplicationConfig()
    """Cross-datacenter replication lag sentinels (see docs/replication.md)."""
    latency: LatencyConfig = LatencyConfig()
    """Fixed-rate command and query latency (see docs/latency.md)."""
    budget: BudgetConfig = BudgetConfig()
    """The requests a second all probes together may send to a datacenter, and the series
    `/metrics` may hold (see docs/read-models.md)."""


class Config(StrictModel):
    """The whole configuration file."""

    cluster: ClusterConfig
    """How to reach the cluster."""
    datacenters: DatacentersConfig
    """Which datacenter takes commands and which serve queries."""
    consistency: ConsistencyConfig = ConsistencyConfig()
    """Consistency levels of the exporter's own requests."""
    monitoring: MonitoringConfig = MonitoringConfig()
    """The exporter's own keyspace."""
    probes: ProbesConfig = ProbesConfig()
    """Each probe's schedule and settings."""
    read_models: list[ReadModelConfig] = Field(default_factory=list, max_length=2000)
    """The read models to watch, each with its measuring method (see docs/read-models.md)."""
    thresholds: Thresholds = Thresholds()
    """The documented alert thresholds, shared by /health, the alert rules and the dashboards."""
    health: HealthConfig = HealthConfig()
    """How thresholds become verdicts (see docs/health.md)."""
    server: ServerConfig = ServerConfig()
    """The HTTP server and logging."""
    sharding: ShardingConfig = ShardingConfig()
    """Which share of the read models and declared queries this exporter runs (see
    docs/sharding.md)."""
    slo: SloConfig = SloConfig()
    """Service level objectives and the read-your-writes guidance (see docs/slo.md)."""

    @field_validator("monitoring")
    @classmethod
    def _replication_factors_known(
        cls, monitoring: MonitoringConfig, info: ValidationInfo
    ) -> MonitoringConfig:
        datacenters = info.data.get("datacenters")
        if datacenters is None:
            return monitoring
        return check_replication_factors(monitoring, datacenters)

    @field_validator("probes")
    @classmethod
    def _replication_mode_fits(cls, probes: ProbesConfig, info: ValidationInfo) -> ProbesConfig:
        datacenters = info.data.get("datacenters")
        if datacenters is not None:
            check_replication_mode(probes.replication, datacenters)
            check_latency_datacenters(probes.latency, datacenters)
        return probes

    @field_validator("health")
    @classmethod
    def _health_groups_are_known(cls, health: HealthConfig, info: ValidationInfo) -> HealthConfig:
        datacenters, models = info.data.get("datacenters"), info.data.get("read_models")
        if datacenters is None or models is None:
            return health  # already reported where they failed
        probes = info.data.get("probes")
        latency = probes.latency if probes is not None else None
        components = known_components(datacenters, models, latency)
        return check_group_components(health, components)

    @model_validator(mode="after")
    def _read_models_are_known(self) -> Config:
        names = [model.name for model in self.read_models]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"read model names must be unique: {', '.join(duplicates)}")
        problems = read_model_problems(self.read_models, self.datacenters.all)
        if problems:
            raise ValueError("; ".join(problems))
        return self


class ConfigError(Exception):
    """A configuration that cannot be used; `errors` are `path.to.key: message` lines."""

    def __init__(self, source: str, errors: list[str]) -> None:
        self.source = source
        self.errors = errors
        super().__init__("\n".join(errors))


_MESSAGES = {
    "extra_forbidden": "unknown key",
    "missing": "required key is missing",
}


def _location(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif parts:
            parts.append(f".{item}")
        else:
            parts.append(str(item))
    return "".join(parts) or "(top level)"


_SENSITIVE = ("auth", "password", "secret", "token", "credential", "key_file")
"""A location with one of these in its path never has its input quoted in a message."""


def _quotable(loc: tuple[int | str, ...], got: Any) -> bool:
    """Whether a wrong value may be repeated: never a string near a secret, never a long one."""
    if isinstance(got, dict | list):
        return False
    if not isinstance(got, str):
        return True
    path = ".".join(str(part) for part in loc).lower()
    return len(got) <= 40 and not any(word in path for word in _SENSITIVE)


def _message(error: Any) -> str:
    kind = error["type"]
    if kind in _MESSAGES:
        return _MESSAGES[kind]
    message = str(error["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        if message.startswith(prefix):
            message = message[len(prefix) :]
    if kind.endswith("_type") or kind.endswith("_parsing"):
        got = error.get("input")
        if _quotable(tuple(error["loc"]), got):
            message = f"{message[0].lower()}{message[1:]}, got {got!r}"
        elif not isinstance(got, dict | list):
            message = f"{message[0].lower()}{message[1:]}, got a {type(got).__name__}"
    return message[0].lower() + message[1:] if message else message


def _model_errors(exc: ValidationError) -> list[str]:
    lines = []
    for error in exc.errors():
        # Model-level validators report at the model's own location.
        loc = tuple(
            p for p in error["loc"] if not (isinstance(p, str) and p.startswith("function-"))
        )
        lines.append(f"{_location(loc)}: {_message(error)}")
    return lines


def parse_config(
    data: Any,
    source: str = "<config>",
    *,
    resolve_secrets: bool = True,
    read_tls_files: bool | None = None,
) -> Config:
    """Validate already-parsed YAML into a frozen Config, or raise ConfigError.

    With `resolve_secrets=False` secret references are checked but not read: their values
    are `UnresolvedSecret`s, good for validating a config, not for connecting with it.
    `read_tls_files` (by default as `resolve_secrets`) reads and parses the TLS files here,
    each problem at its key.
    """
    if data is None:
        raise ConfigError(source, ["(top level): the configuration file is empty"])
    if not isinstance(data, dict):
        raise ConfigError(
            source, [f"(top level): expected a mapping of keys, got {type(data).__name__}"]
        )
    try:
        config = Config.model_validate(data, context={RESOLVE_SECRETS: resolve_secrets})
    except ValidationError as exc:
        raise ConfigError(source, _model_errors(exc)) from None
    except RecursionError:  # only parsed data deeper than any file load_config accepts
        raise ConfigError(source, ["(top level): nested too deeply"]) from None
    if read_tls_files is None:
        read_tls_files = resolve_secrets
    if read_tls_files and (problems := config.cluster.tls.file_problems()):
        raise ConfigError(source, problems)
    return config


def load_config(
    path: str | Path, *, resolve_secrets: bool = True, read_tls_files: bool | None = None
) -> Config:
    """Read and validate a YAML config file, or raise ConfigError (see `parse_config`).

    The file is refused unread past a size cap, and when binary, not UTF-8, nested too
    deeply, holding too many values once aliases are expanded, or repeating a key (see
    `exporter.config.loading`).
    """
    source = str(path)
    try:
        data = load_yaml(path)
    except LoadError as exc:
        raise ConfigError(source, [str(exc)]) from None
    return parse_config(
        data, source, resolve_secrets=resolve_secrets, read_tls_files=read_tls_files
    )
