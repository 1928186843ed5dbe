"""The documented alert thresholds: one source for health, alerts and dashboards."""

from __future__ import annotations

from exporter.config.base import Duration, Ratio, StrictModel


class Thresholds(StrictModel):
    """Defaults are the CQRS pattern's table of key metrics."""

    replication_lag: Duration = 1.0
    read_model_sync_lag: Duration = 5.0
    query_latency_p99: Duration = 0.050
    command_latency_p99: Duration = 0.100
    sync_failure_rate: Ratio = 0.001
