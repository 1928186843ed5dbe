"""The documented alert thresholds: one source for health, alerts and dashboards."""

from __future__ import annotations

from exporter.config.base import Duration, Ratio, StrictModel


class Thresholds(StrictModel):
    """Defaults are the CQRS pattern's table of key metrics."""

    replication_lag: Duration = 1.0
    """Replication lag from the write datacenter to a read datacenter."""
    read_model_sync_lag: Duration = 5.0
    """How far a read model may trail the write side."""
    query_latency_p99: Duration = 0.050
    """p99 of query (read) latency in a datacenter."""
    command_latency_p99: Duration = 0.100
    """p99 of command (write) latency in the write datacenter."""
    sync_failure_rate: Ratio = 0.001
    """Fraction of writes that never reach a read model correctly."""
