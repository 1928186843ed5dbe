"""Every metric the exporter exports: its name, type and label names, in one place.

Probes, the health metrics and the self metrics build their families from these specs
(`SPEC.family(help)`), and the dashboard and rule generators name metrics through them,
so a renamed metric or label is renamed everywhere at once. `tests/unit/` checks that every
metric a generated rule or dashboard query uses is here, with the labels it uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    SummaryMetricFamily,
)


class MetricType(StrEnum):
    GAUGE = "gauge"
    COUNTER = "counter"
    HISTOGRAM = "histogram"
    SUMMARY = "summary"
    INFO = "info"


_SUFFIXES: dict[MetricType, tuple[str, ...]] = {
    MetricType.GAUGE: ("",),
    MetricType.COUNTER: ("_total",),
    MetricType.HISTOGRAM: ("_bucket", "_sum", "_count"),
    MetricType.SUMMARY: ("", "_sum", "_count"),
    MetricType.INFO: ("_info",),
}


@dataclass(frozen=True)
class MetricSpec:
    """One exported metric family. `name` is the family name, without `_total` or `_info`."""

    name: str
    type: MetricType
    labels: tuple[str, ...] = ()
    value_labels: tuple[str, ...] = ()
    """An info's labels that come from its value (`version`...) rather than from `labels`."""

    @property
    def samples(self) -> tuple[str, ...]:
        """The sample names as they appear in the exposition and in PromQL."""
        return tuple(self.name + suffix for suffix in _SUFFIXES[self.type])

    @property
    def total(self) -> str:
        """The sample name of a counter (`name_total`), of an info (`name_info`), else `name`."""
        return self.samples[0]

    @property
    def bucket(self) -> str:
        """A histogram's bucket samples (`name_bucket`), the input of histogram_quantile()."""
        return self._sample("_bucket")

    @property
    def count(self) -> str:
        """A histogram's observation count (`name_count`)."""
        return self._sample("_count")

    def _sample(self, suffix: str) -> str:
        if suffix not in _SUFFIXES[self.type]:
            raise ValueError(f"{self.name} is a {self.type}: it has no {suffix} samples")
        return self.name + suffix



# One spec class per type: `family(help)` returns a new, empty family of that type's own
# class, so its `add_metric` is typed.


@dataclass(frozen=True)
class GaugeSpec(MetricSpec):
    type: MetricType = MetricType.GAUGE

    def family(self, documentation: str, *, value: float | None = None) -> GaugeMetricFamily:
        """A new, empty family (or, for a gauge without labels, one holding `value`)."""
        if value is not None:
            return GaugeMetricFamily(self.name, documentation, value=value)
        return GaugeMetricFamily(self.name, documentation, labels=list(self.labels))


@dataclass(frozen=True)
class CounterSpec(MetricSpec):
    type: MetricType = MetricType.COUNTER

    def family(self, documentation: str) -> CounterMetricFamily:
        return CounterMetricFamily(self.name, documentation, labels=list(self.labels))


@dataclass(frozen=True)
class HistogramSpec(MetricSpec):
    type: MetricType = MetricType.HISTOGRAM

    def family(self, documentation: str) -> HistogramMetricFamily:
        return HistogramMetricFamily(self.name, documentation, labels=list(self.labels))


@dataclass(frozen=True)
class SummarySpec(MetricSpec):
    """Quantiles with their `_sum` and `_count`; the `quantile` label comes with each value."""

    type: MetricType = MetricType.SUMMARY

    def family(self, documentation: str) -> SummaryMetricFamily:
        return SummaryMetricFamily(self.name, documentation, labels=list(self.labels))

    def add(
        self,
        family: SummaryMetricFamily,
        values: list[str],
        quantiles: dict[str, float],
        *,
        count: int,
        total: float,
    ) -> None:
        """One series of `family`: its `quantile` samples, then its `_count` and `_sum`."""
        labels = dict(zip(self.labels, values, strict=True))
        for quantile, value in quantiles.items():
            family.add_sample(self.name, {**labels, "quantile": quantile}, value)
        family.add_metric(values, count_value=count, sum_value=total)


@dataclass(frozen=True)
class InfoSpec(MetricSpec):
    type: MetricType = MetricType.INFO

    def family(self, documentation: str) -> InfoMetricFamily:
        return InfoMetricFamily(self.name, documentation, labels=list(self.labels))


def _gauge(name: str, *labels: str) -> GaugeSpec:
    return GaugeSpec(name, labels=labels)


def _counter(name: str, *labels: str) -> CounterSpec:
    return CounterSpec(name, labels=labels)


def _histogram(name: str, *labels: str) -> HistogramSpec:
    return HistogramSpec(name, labels=labels)


def _summary(name: str, *labels: str) -> SummarySpec:
    return SummarySpec(name, labels=labels)


def _info(name: str, *labels: str) -> InfoSpec:
    return InfoSpec(name, labels=labels)


PAIR = ("source_datacenter", "target_datacenter")
"""The labels of a replication path: from the write datacenter to a read one."""
DC = "cassandra_datacenter"

# --- the exporter itself --------------------------------------------------------------------
EXPORTER_BUILD = InfoSpec("cqrs_exporter_build", value_labels=("version", "python_version"))
UP = _gauge("cqrs_up")
PROBE_SUCCESS = _gauge("cqrs_probe_success", "probe")
PROBE_DURATION = _gauge("cqrs_probe_duration_seconds", "probe")
PROBE_LAST_SUCCESS = _gauge("cqrs_probe_last_success_timestamp_seconds", "probe")
PROBE_RUNS = _counter("cqrs_probe_runs", "probe")
PROBE_FAILURES = _counter("cqrs_probe_failures", "probe", "reason")
PROBE_SKIPPED = _counter("cqrs_probe_skipped_runs", "probe")
EVENT_LOOP_LAG = _histogram("cqrs_event_loop_lag_seconds")
PROBE_SCHEDULE_DRIFT = _histogram("cqrs_probe_schedule_drift_seconds")
EXPORTER_SHARD = InfoSpec("cqrs_exporter_shard", value_labels=("index", "count"))
EXPORTER_SERIES = _gauge("cqrs_exporter_series")
EXPORTER_SERIES_DROPPED = _gauge("cqrs_exporter_series_dropped")
EXPORTER_READ_MODELS_DROPPED = _gauge("cqrs_exporter_read_models_dropped")

# --- the request budget ---------------------------------------------------------------------
BUDGET_REQUESTS_PER_SECOND = _gauge("cqrs_budget_requests_per_second", DC)
BUDGET_REQUESTS = _counter("cqrs_budget_requests", DC, "share")
BUDGET_WAIT = _counter("cqrs_budget_wait_seconds", DC, "share")
BUDGET_GAVE_UP = _counter("cqrs_budget_gave_up", DC, "share")
BUDGET_SCHEDULE_STRETCH = _gauge("cqrs_budget_schedule_stretch_factor", DC)

# --- reachability ---------------------------------------------------------------------------
DATACENTER_REACHABLE = _gauge("cqrs_datacenter_reachable", DC)
DATACENTER_REACHABILITY_SECONDS = _gauge("cqrs_datacenter_reachability_seconds", DC)
DATACENTER_REACHABILITY_FAILURES = _counter("cqrs_datacenter_reachability_failures", DC, "reason")

# --- replication ----------------------------------------------------------------------------
REPLICATION_LAG = _gauge("cqrs_replication_lag_seconds", *PAIR)
REPLICATION_LAG_RESOLUTION = _gauge("cqrs_replication_lag_resolution_seconds", *PAIR)
REPLICATION_LAG_LOWER_BOUND = _gauge("cqrs_replication_lag_lower_bound_seconds", *PAIR)
REPLICATION_LAG_UPPER_BOUND = _gauge("cqrs_replication_lag_upper_bound_seconds", *PAIR)
REPLICATION_VISIBILITY = _histogram("cqrs_replication_visibility_seconds", *PAIR)
REPLICATION_SENTINELS_LOST = _counter("cqrs_replication_sentinels_lost", *PAIR)
REPLICATION_SENTINELS_WRITTEN = _counter("cqrs_replication_sentinels_written", "source_datacenter")
REPLICATION_READ_FAILURES = _counter("cqrs_replication_read_failures", *PAIR, "reason")
REPLICATION_HEARTBEAT_AGE = _gauge("cqrs_replication_heartbeat_age_seconds", *PAIR)
REPLICATION_REPLICAS = _gauge("cqrs_replication_replicas", *PAIR)
REPLICATION_REPLICAS_CAUGHT_UP = _gauge("cqrs_replication_replicas_caught_up", *PAIR)
REPLICATION_HINTS_PENDING = _gauge("cqrs_replication_hints_pending_files", *PAIR)
REPLICATION_INTERNODE_PENDING_MESSAGES = _gauge(
    "cqrs_replication_internode_pending_messages", *PAIR
)
REPLICATION_INTERNODE_PENDING_BYTES = _gauge("cqrs_replication_internode_pending_bytes", *PAIR)
REPLICATION_BACKLOG_NODES = _gauge("cqrs_replication_backlog_nodes", DC)

# --- command and query latency --------------------------------------------------------------
COMMAND_DURATION = _histogram("cqrs_command_duration_seconds", DC, "consistency")
QUERY_DURATION = _histogram("cqrs_query_duration_seconds", DC, "consistency", "query")
COMMAND_LATENCY_P99 = _gauge("cqrs_command_latency_p99_seconds", DC)
COMMAND_LATENCY_WINDOW = _summary("cqrs_command_latency_window_seconds", DC)
COMMAND_LATENCY_SAMPLES = _gauge("cqrs_command_latency_samples", DC)
COMMAND_LATENCY_LAGGED_SAMPLES = _gauge("cqrs_command_latency_lagged_samples", DC)
QUERY_LATENCY_P99 = _gauge("cqrs_query_latency_p99_seconds", DC, "query")
QUERY_LATENCY_WINDOW = _summary("cqrs_query_latency_window_seconds", DC, "query")
QUERY_LATENCY_SAMPLES = _gauge("cqrs_query_latency_samples", DC, "query")
QUERY_LATENCY_LAGGED_SAMPLES = _gauge("cqrs_query_latency_lagged_samples", DC, "query")
REQUEST_FAILURES = _counter("cqrs_request_failures", "operation", DC, "reason")
LATENCY_MISSED_SLOTS = _counter("cqrs_latency_missed_slots", "operation", DC)
SERVER_COORDINATOR_LATENCY_P99 = _gauge(
    "cqrs_server_coordinator_latency_p99_seconds", "operation", DC, "keyspace", "table"
)
SERVER_LATENCY_NODES_ANSWERED = _gauge("cqrs_server_latency_nodes_answered", DC)

# --- read models ----------------------------------------------------------------------------
READ_MODEL = InfoSpec("cqrs_read_model", labels=("read_model",), value_labels=("method",))
READ_MODEL_SYNC_LAG = _gauge("cqrs_read_model_sync_lag_seconds", "read_model")
READ_MODEL_SOURCE_CLOCK_AHEAD = _gauge("cqrs_read_model_source_clock_ahead_seconds", "read_model")
READ_MODEL_QUERIES = _counter("cqrs_read_model_queries", "read_model")
READ_MODEL_SCHEDULE_STRETCH = _gauge("cqrs_read_model_schedule_stretch_factor", "read_model")
SYNC_CHECKS = _counter("cqrs_sync_checks", "read_model")
SYNC_FAILURES = _counter("cqrs_sync_failures", "read_model", "reason")
SYNC_FAILURE_RATIO = _gauge("cqrs_sync_failure_ratio", "read_model")
SYNC_FAILURE_RATIO_LOWER = _gauge("cqrs_sync_failure_ratio_lower", "read_model")
SYNC_FAILURE_RATIO_UPPER = _gauge("cqrs_sync_failure_ratio_upper", "read_model")
SYNC_WINDOW_CHECKS = _gauge("cqrs_sync_window_checks", "read_model")

# --- health ---------------------------------------------------------------------------------
HEALTH_OVERALL_STATUS = _gauge("cqrs_health_overall_status", "status")
HEALTH_STATUS = _gauge("cqrs_health_status", "check", "status")
HEALTH_COMPONENT_STATUS = _gauge("cqrs_health_component_status", "check", "component", "status")
HEALTH_GROUP_STATUS = _gauge("cqrs_health_group_status", "group", "status")
HEALTH_THRESHOLD = _gauge("cqrs_health_threshold", "check")
HEALTH_LAST_EVALUATION = _gauge("cqrs_health_last_evaluation_timestamp_seconds")

# --- service level objectives and read-your-writes (docs/slo.md) ------------------------------
# An SLI is the ratio of two counters: good / all, with the same labels (`slo`, `component`).
SLO_GOOD_SLICES = _counter("cqrs_slo_good_slices", "slo", "component")
SLO_SLICES = _counter("cqrs_slo_slices", "slo", "component")
SLO_OBJECTIVE = _gauge("cqrs_slo_objective", "slo")
READ_YOUR_WRITES_WAIT = _gauge("cqrs_read_your_writes_wait_seconds", *PAIR, "confidence")
FRESHNESS_SAMPLES = _gauge("cqrs_freshness_visibility_samples", *PAIR)
FRESHNESS_STALE = _gauge("cqrs_freshness_stale", *PAIR)


CATALOGUE: dict[str, MetricSpec] = {
    spec.name: spec for spec in globals().copy().values() if isinstance(spec, MetricSpec)
}
"""Every spec above by family name."""


def by_sample(sample: str) -> MetricSpec | None:
    """The spec a sample name (as in PromQL: `_total`, `_bucket`, `_info`...) belongs to."""
    for spec in CATALOGUE.values():
        if sample in spec.samples:
            return spec
    return None
