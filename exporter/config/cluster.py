"""Where the cluster is, how to reach it, and which datacenter plays which part."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from exporter.config.base import (
    DATACENTER_NAME,
    DatacenterName,
    Duration,
    Identifier,
    RoleName,
    Secret,
    StrictModel,
)
from exporter.config.tls import TlsConfig

MAX_REPLICATION_FACTOR = 20


class Consistency(StrEnum):
    """Consistency levels an exporter may use; names as in CQL."""

    ONE = "ONE"
    LOCAL_ONE = "LOCAL_ONE"
    QUORUM = "QUORUM"
    LOCAL_QUORUM = "LOCAL_QUORUM"
    EACH_QUORUM = "EACH_QUORUM"
    ALL = "ALL"


class AuthConfig(StrictModel):
    username: RoleName
    """The Cassandra role the exporter logs in as (letters, digits, `_`, `.`, `@`, `-`)."""
    password: Secret
    """The role's password, from an environment variable or a file."""


class ClusterConfig(StrictModel):
    contact_points: list[str] = Field(max_length=100)
    """Addresses of a few nodes to discover the cluster from (at most 100)."""
    port: int = Field(default=9042, ge=1, le=65535)
    """The native protocol (CQL) port."""
    auth: AuthConfig | None = None
    """Username and password; omit for clusters without authentication."""
    tls: TlsConfig = TlsConfig()
    """Client-to-node encryption."""
    protocol_version: int = Field(default=5, ge=3, le=5)
    """Native protocol version; 5 for Cassandra 4.0 and later."""
    connect_timeout: Duration = 10.0
    """How long to wait for a node to accept a connection, and for the control connection."""
    request_timeout: Duration = 5.0
    """Default client-side timeout of a request; probes set shorter ones of their own."""
    reconnect_max_delay: Duration = 30.0
    """Longest wait between reconnection attempts to a node that went away."""

    @field_validator("contact_points")
    @classmethod
    def _some_contact_points(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one contact point is required")
        for point in value:
            if not point.strip():
                raise ValueError("contact points must not be empty strings")
            if len(point) > 255 or any(c.isspace() or not c.isprintable() for c in point):
                raise ValueError("a contact point is a host name or an address, one word")
        return value


class DatacentersConfig(StrictModel):
    """The write datacenter takes the commands; each read datacenter serves queries."""

    write: DatacenterName
    """The primary datacenter, where commands are written at the command consistency (as the
    snitch names it: letters, digits, `_`, `.`, `-`)."""
    read: list[DatacenterName] = Field(default_factory=list, max_length=32)
    """The regional datacenters that serve queries from read models (at most 32)."""
    local: DatacenterName | None = None
    """The datacenter this exporter runs beside (regional mode); defaults to the write one."""

    @model_validator(mode="after")
    def _distinct(self) -> DatacentersConfig:
        if self.write in self.read:
            raise ValueError(
                f"the write datacenter {self.write!r} must not also be listed as a read datacenter"
            )
        if len(set(self.read)) != len(self.read):
            raise ValueError("read datacenters must be listed once each")
        if self.local is not None and self.local not in self.all:
            raise ValueError(
                f"local datacenter {self.local!r} is neither the write nor a read datacenter"
            )
        return self

    @property
    def all(self) -> tuple[str, ...]:
        return (self.write, *self.read)

    @property
    def local_datacenter(self) -> str:
        return self.local or self.write


class ConsistencyConfig(StrictModel):
    command: Consistency = Consistency.LOCAL_QUORUM
    """Consistency of the exporter's writes (sentinels, command probe), as commands write."""
    query: Consistency = Consistency.LOCAL_ONE
    """Consistency of the exporter's reads in each datacenter, as the query side reads."""


class MonitoringConfig(StrictModel):
    """The exporter's own keyspace, where it writes sentinels and command probes."""

    keyspace: Identifier = "cqrs_monitoring"
    """The exporter's own keyspace (NetworkTopologyStrategy over every configured datacenter):
    a letter, then letters, digits or `_`, at most 48."""
    create_schema: bool = False
    """Create the keyspace and tables at start-up; otherwise check them, naming what is missing."""
    replication_factor: dict[str, int] | int = 3
    """Per-datacenter replication factor of the monitoring keyspace (1 to 20), or one for
    all; the keys must be configured datacenters."""
    writer_id: str = Field(default="default", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    """Names this exporter's sentinel rows, so several writers never share a row."""

    @field_validator("replication_factor", mode="before")
    @classmethod
    def _factors(cls, value: Any) -> Any:
        def check(factor: Any, what: str) -> None:
            if isinstance(factor, bool) or not isinstance(factor, int):
                raise ValueError(f"{what}must be a whole number, got {type(factor).__name__}")
            if not 1 <= factor <= MAX_REPLICATION_FACTOR:
                raise ValueError(f"{what}must be from 1 to {MAX_REPLICATION_FACTOR}, got {factor}")

        if isinstance(value, dict):
            for dc, factor in value.items():
                if not isinstance(dc, str) or not DATACENTER_NAME.fullmatch(dc):
                    raise ValueError("keys must be configured datacenters")
                check(factor, f"{dc} ")
        else:
            check(value, "")
        return value

    def replication_for(self, datacenters: tuple[str, ...]) -> dict[str, int]:
        if isinstance(self.replication_factor, int):
            return {dc: self.replication_factor for dc in datacenters}
        return {dc: self.replication_factor.get(dc, 3) for dc in datacenters}



def check_replication_factors(
    monitoring: MonitoringConfig, datacenters: DatacentersConfig
) -> MonitoringConfig:
    """Replication factors may be given only for configured datacenters; errors at the key."""
    if isinstance(monitoring.replication_factor, int):
        return monitoring
    known = datacenters.all
    errors = [
        InitErrorDetails(
            type=PydanticCustomError(
                "value_error",
                "{message}",
                {"message": f"unknown datacenter {dc!r} (declared: {', '.join(known)})"},
            ),
            loc=("replication_factor", dc),
            input=None,
        )
        for dc in monitoring.replication_factor
        if dc not in known
    ]
    if errors:
        raise ValidationError.from_exception_data("MonitoringConfig", errors)
    return monitoring
