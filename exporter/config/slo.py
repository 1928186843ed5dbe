"""Service level objectives on the thresholds: how often each check must hold, over a period.

Each SLO is named after the health check whose threshold it uses (`thresholds:`). The four
time-slice SLOs count the health evaluations (one slice each) in which the check held; the
sync-failure SLO counts the read models' sync checks. `freshness` sets up the
read-your-writes guidance served at `/freshness` (see docs/slo.md).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field, field_validator

from exporter.config.base import Duration, LongDuration, Ratio, StrictModel, format_duration
from exporter.config.thresholds import Thresholds

DEFAULT_PERIOD = 30 * 24 * 3600.0
"""The SRE workbook's 30 days; its burn-rate windows are fractions of it."""


def _confidences_differ(values: list[float]) -> list[float]:
    if len(set(values)) != len(values):
        raise ValueError("confidences must be distinct")
    return sorted(values)


class FreshnessConfig(StrictModel):
    """Read-your-writes guidance: the wait after a command's acknowledgement after which a
    read in each read datacenter sees it with a given probability."""

    window: Duration = 3600.0
    """The sentinel visibilities the waits are computed from: those seen this recently."""
    confidences: Annotated[list[Ratio], AfterValidator(_confidences_differ)] = Field(
        default_factory=lambda: [0.99, 0.999], min_length=1
    )
    """The probabilities to give the wait for (`0.99`, `99.9%`)."""
    min_samples: int = Field(default=30, ge=1)
    """Below this many visibilities in the window no wait is given (and the advice is to read
    from the write datacenter)."""


class SloConfig(StrictModel):
    """Objectives are the fraction of slices (or checks) that must be good over `period`."""

    period: LongDuration = DEFAULT_PERIOD
    """The SLO period (written `720h` for 30 days); the burn-rate windows scale with it."""
    replication_lag: Ratio = 0.999
    """Replication lag to each read datacenter under its threshold."""
    read_model_sync_lag: Ratio = 0.99
    """Each read model fresh within its sync-lag threshold."""
    query_latency_p99: Ratio = 0.995
    """Query p99 under its threshold, per datacenter (and declared query)."""
    command_latency_p99: Ratio = 0.995
    """Command p99 under its threshold in the write datacenter."""
    sync_failure_rate: Ratio | None = None
    """Sync checks that find the read model correct; default: 1 - `thresholds.sync_failure_rate`
    (0.1 % of checks may fail)."""
    freshness: FreshnessConfig = FreshnessConfig()
    """The read-your-writes guidance at `/freshness`."""

    @field_validator("period")
    @classmethod
    def _long_enough(cls, period: float) -> float:
        if period < 3600:
            raise ValueError(f"period ({format_duration(period)}) must be at least 1h")
        return period

    def objective(self, slo: str, thresholds: Thresholds) -> float:
        """The objective of the SLO named after a check (see `SLO_NAMES`)."""
        if slo == "sync_failure_rate":
            if self.sync_failure_rate is not None:
                return self.sync_failure_rate
            return 1.0 - thresholds.sync_failure_rate
        return float(getattr(self, slo))


SLO_NAMES: tuple[str, ...] = (
    "replication_lag",
    "read_model_sync_lag",
    "query_latency_p99",
    "command_latency_p99",
    "sync_failure_rate",
)
"""Every SLO, named after the check whose threshold it uses."""
TIME_SLICE_SLOS: tuple[str, ...] = SLO_NAMES[:4]
"""The SLOs counted in health-evaluation slices; the last one counts sync checks."""
