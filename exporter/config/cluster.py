"""Where the cluster is, how to reach it, and which datacenter plays which part."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from pydantic import Field, field_validator, model_validator

from exporter.config.base import Duration, Secret, StrictModel


class Consistency(StrEnum):
    """Consistency levels an exporter may use; names as in CQL."""

    ONE = "ONE"
    LOCAL_ONE = "LOCAL_ONE"
    QUORUM = "QUORUM"
    LOCAL_QUORUM = "LOCAL_QUORUM"
    EACH_QUORUM = "EACH_QUORUM"
    ALL = "ALL"


class AuthConfig(StrictModel):
    username: str = Field(min_length=1)
    password: Secret


class TlsConfig(StrictModel):
    enabled: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    verify_hostname: bool = True

    @model_validator(mode="after")
    def _pairs(self) -> TlsConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together: give both or neither")
        return self


class ClusterConfig(StrictModel):
    contact_points: list[str]
    port: int = Field(default=9042, ge=1, le=65535)
    auth: AuthConfig | None = None
    tls: TlsConfig = TlsConfig()
    protocol_version: int = Field(default=5, ge=3, le=5)
    connect_timeout: Duration = 10.0
    request_timeout: Duration = 5.0
    reconnect_max_delay: Duration = 30.0

    @field_validator("contact_points")
    @classmethod
    def _some_contact_points(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one contact point is required")
        for point in value:
            if not point.strip():
                raise ValueError("contact points must not be empty strings")
        return value


class DatacentersConfig(StrictModel):
    """The write datacenter takes the commands; each read datacenter serves queries."""

    write: str = Field(min_length=1)
    read: list[str] = Field(default_factory=list)
    local: str | None = None
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
    query: Consistency = Consistency.LOCAL_ONE


class MonitoringConfig(StrictModel):
    """The exporter's own keyspace, where it writes sentinels and command probes."""

    keyspace: str = Field(default="cqrs_monitoring", pattern=r"^[A-Za-z][A-Za-z0-9_]{0,47}$")
    create_schema: bool = False
    replication_factor: dict[str, int] | int = 3
    """Per-datacenter replication factor of the monitoring keyspace, or one for all."""
    writer_id: str = Field(default="default", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    """Names this exporter's sentinel rows, so several writers never share a row."""

    def replication_for(self, datacenters: tuple[str, ...]) -> dict[str, int]:
        if isinstance(self.replication_factor, int):
            return {dc: self.replication_factor for dc in datacenters}
        return {dc: self.replication_factor.get(dc, 3) for dc in datacenters}
