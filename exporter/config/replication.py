"""The replication probes: lag sentinels, the regional heartbeat, Cassandra's own backlog."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, ClassVar

from pydantic import model_validator

from exporter.config.base import Duration, format_duration
from exporter.config.cluster import DatacentersConfig
from exporter.config.probes import ProbeSchedule


class ReplicationMode(StrEnum):
    """What this exporter can reach: the write datacenter (writer) or only its own (regional)."""

    WRITER = "writer"
    REGIONAL = "regional"


class ReadMode(StrEnum):
    """How a read datacenter's sentinel row is read."""

    LOCAL_ONE = "local_one"
    PER_REPLICA = "per_replica"


class BacklogConfig(ProbeSchedule):
    """Cassandra's own replication backlog (pending hints, internode queues) over CQL."""

    interval: Duration = 10.0
    timeout: Duration = 5.0


class ReplicationConfig(ProbeSchedule):
    interval: Duration = 0.1
    """How often a sentinel (writer mode) is written; the heartbeat interval a regional exporter
    expects, so set it the same on both. It bounds how far a stall's start can precede the
    first sentinel that misses it, so it is the error of the lag at a random moment (100ms
    reads a stall to within 60 ms at p90; see docs/replication.md for its cost)."""
    timeout: Duration = 1.0
    """How long one round (the sentinel's write, at 80 % of it) may take. It may be longer
    than `interval`: the rounds due while a slow write goes on are skipped and counted in
    `cqrs_probe_skipped_runs_total`, and the sentinels already written are still looked for."""
    timeout_may_outlast_interval: ClassVar[bool] = True
    mode: ReplicationMode = ReplicationMode.WRITER
    poll_interval: Duration = 0.050
    """How often an unseen sentinel (or an overdue heartbeat) is looked for."""
    read_timeout: Duration = 0.5
    """How long one visibility read may take; a read that fails or times out counts as a miss."""
    sentinel_timeout: Duration = 30.0
    """A sentinel unseen for this long is counted lost (its datacenter's lag keeps growing)."""
    read_mode: ReadMode = ReadMode.LOCAL_ONE
    """`local_one`: one read per datacenter, answered by whichever replica the driver picks;
    `per_replica`: each of the datacenter's replicas of the sentinel row, read through it, so
    one lagging replica cannot hide (the lag is the worst replica's)."""
    backlog: BacklogConfig = BacklogConfig()

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data: Any) -> Any:
        if isinstance(data, dict) and "per_replica" in data:
            raise ValueError(
                "per_replica is now read_mode: per_replica (or local_one, the default)"
            )
        return data

    @model_validator(mode="after")
    def _periods_fit(self) -> ReplicationConfig:
        if self.poll_interval >= self.interval:
            raise ValueError(
                f"poll_interval ({format_duration(self.poll_interval)}) must be shorter than "
                f"interval ({format_duration(self.interval)})"
            )
        if self.sentinel_timeout <= self.interval:
            raise ValueError(
                f"sentinel_timeout ({format_duration(self.sentinel_timeout)}) must be longer "
                f"than interval ({format_duration(self.interval)})"
            )
        if self.read_timeout >= self.sentinel_timeout:
            raise ValueError(
                f"read_timeout ({format_duration(self.read_timeout)}) must be shorter than "
                f"sentinel_timeout ({format_duration(self.sentinel_timeout)})"
            )
        return self


def check_replication_mode(replication: ReplicationConfig, datacenters: DatacentersConfig) -> None:
    """Regional mode reads beside one read datacenter: `datacenters.local` must name it."""
    if replication.mode is not ReplicationMode.REGIONAL or not replication.enabled:
        return
    if datacenters.local is None or datacenters.local == datacenters.write:
        raise ValueError(
            "replication.mode is regional, so datacenters.local must name the read "
            "datacenter this exporter runs in"
        )
